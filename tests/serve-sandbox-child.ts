// Run by tests/serve-sandbox.test.ts in a child process (a sandbox cannot be undone): serves IMAGE
// at /h sandboxed as `wasp serve` is (src/cli/serve.ts: Landlock from servePaths before the worker
// pool, the serve filter before ready), then tries what the sandbox must refuse, on its main thread
// and on a thread it starts afterwards, prints one JSON line with what happened and its port, and
// serves (the test's requests come from outside: a sandboxed server cannot connect anywhere) until
// its standard input closes.
//   bun tests/serve-sandbox-child.ts IMAGE FORBIDDEN_FILE [--no-sandbox]
import { closeSync, openSync } from "node:fs";
import * as libc from "../ffi/libc.ts";
import { errnoName } from "../ffi/errno.ts";
import { sandboxFiles, sandboxSyscalls } from "../src/host/harden.ts";
import { kvmDevicePath } from "../src/kvm/system.ts";
import { functionConfig, type ServeConfig } from "../src/serve/config.ts";
import { servePaths } from "../src/serve/sandbox.ts";
import { WaspServer } from "../src/serve/server.ts";

const [image, forbidden] = process.argv.slice(2);
const sandbox = !process.argv.includes("--no-sandbox");
const out: Record<string, unknown> = {};

const config: ServeConfig = {
  host: "127.0.0.1",
  port: 0,
  functions: [functionConfig({ route: "/h", image }, "/h", process.cwd(), { timeoutMs: 10_000, maxBody: 1024 })],
  workers: 1,
  maxQueue: 8,
  graceMs: 2000,
  warmCalls: 1,
  accessLog: false,
};
const landlock = sandbox ? sandboxFiles(servePaths(config, kvmDevicePath())) : undefined;
const server = new WaspServer(config, { log: () => {}, beforeReady: () => (out.filter = landlock ? sandboxSyscalls("serve").syscalls : 0) });
await server.start();

function sys(nr: number, a = 0, b = 0, c = 0, d = 0): number | string {
  const r = libc.raw.syscall(nr, a, b, c, d) as number;
  return r === -1 ? errnoName(libc.errno()) : r;
}

out.landlockAbi = landlock?.abi ?? 0;
out.socket = sys(41, 2, 1, 0); // socket(AF_INET, SOCK_STREAM, 0)
out.socketpair = sys(53, 1, 1, 0, 0);
out.execve = (() => {
  try {
    return Bun.spawnSync(["/bin/true"]).exitCode;
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
})();
out.forbiddenOpen = (() => {
  try {
    closeSync(openSync(forbidden, "r"));
    return "opened";
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
})();
// a thread started after the sandbox: inside both layers
out.thread = await new Promise((resolve) => {
  const at = (f: string) => JSON.stringify(new URL(f, import.meta.url).pathname);
  const src = `import * as libc from ${at("../ffi/libc.ts")};
import { errnoName } from ${at("../ffi/errno.ts")};
import { openSync } from "node:fs";
const r = libc.raw.syscall(41, 2, 1, 0, 0);
let open = "opened";
try { openSync(${JSON.stringify(forbidden)}, "r"); } catch (e) { open = e.code ?? String(e); }
postMessage({ socket: r === -1 ? errnoName(libc.errno()) : "made", open });`;
  const w = new Worker(URL.createObjectURL(new Blob([src], { type: "application/typescript" })));
  w.onmessage = (e) => {
    resolve(e.data);
    w.terminate();
  };
});
out.port = server.port;
process.stdout.write(`${JSON.stringify(out)}\n`);
for await (const _ of Bun.stdin.stream()) {
  // until the test closes it
}
await server.stop();
process.exit(0);
