// A `wasp serve` node for the tools that drive one (scale-out.ts, soak.ts): started on a free port,
// its JSON log read to the end and kept, resolved once it says it is ready.
import { join } from "node:path";

export const ROOT = join(import.meta.dir, "..");
export const WASP = join(ROOT, "dist/wasp");

export interface ServeNode {
  proc: Bun.Subprocess<"ignore", "ignore", "pipe">;
  port: number;
  log: string[];
}

export async function startNode(name: string, args: readonly string[]): Promise<ServeNode> {
  const proc = Bun.spawn([WASP, "serve", "--port", "0", ...args], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const log: string[] = [];
  let port = 0;
  let onReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => (onReady = resolve));
  const reading = (async () => {
    let buf = "";
    for await (const chunk of proc.stderr) {
      buf += new TextDecoder().decode(chunk);
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        log.push(line);
        // a line that is not JSON is kept (and fails the checks that read the log), never ends the reading
        let l: { msg?: string; url?: string };
        try {
          l = JSON.parse(line);
        } catch {
          continue;
        }
        if (l.msg === "listening" && l.url) port = Number(new URL(l.url).port);
        if (l.msg === "ready") onReady();
      }
    }
  })();
  await Promise.race([ready, reading.then(async () => Promise.reject(new Error(`node ${name} exited before it was ready (status ${await proc.exited}): ${log.join(" | ")}`)))]);
  return { proc, port, log };
}
