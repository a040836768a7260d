// `npm run test:scale`: the scale-out recipe of docs/deploy.md, run — two `wasp serve` nodes on
// loopback behind HAProxy (health checks on /readyz, retries and redispatch), load from wrk, one
// node killed (SIGKILL) mid-run. Reports how many requests failed and exits 1 if more failed than
// the killed node could have had in flight (one per wrk connection). Needs Debian's haproxy and
// wrk (`.ci/run` installs them) and /dev/kvm (or `tools/test-emulated.sh npm run test:scale`).
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, startNode, WASP, type ServeNode } from "./serve-node.ts";

const GUEST = join(ROOT, "dist/guests/httphello.bin");
const CONNECTIONS = 4;
const SECONDS = Number(process.env.WASP_SCALE_SECONDS ?? 8);
const KILL_AFTER_MS = (SECONDS * 1000) / 3;

function need(tool: string): string {
  for (const d of ["/usr/sbin", "/usr/bin", "/bin", "/usr/local/bin"]) if (existsSync(join(d, tool))) return join(d, tool);
  console.error(`scale-out: ${tool} is missing: apt install haproxy wrk`);
  process.exit(2);
}

async function freePort(): Promise<number> {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = s.port;
  s.stop(true);
  return port;
}

async function node(name: string): Promise<ServeNode> {
  const n = await startNode(name, ["--route", `/h=${GUEST}`, "--warm-calls", "10", "--no-access-log"]);
  console.log(`scale-out: node ${name} ready on port ${n.port}`);
  return n;
}

const haproxyBin = need("haproxy");
const wrkBin = need("wrk");
if (!existsSync(WASP) || !existsSync(GUEST)) {
  console.error("scale-out: dist/wasp or dist/guests/httphello.bin is missing: npm install builds them");
  process.exit(2);
}
const dir = mkdtempSync(join(tmpdir(), "wasp-scale-"));
const a = await node("a");
const b = await node("b");
const front = await freePort();
const cfg = join(dir, "haproxy.cfg");
writeFileSync(
  cfg,
  `global
  maxconn 256
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  retries 3
  option redispatch
  retry-on conn-failure empty-response response-timeout
frontend wasp
  bind 127.0.0.1:${front}
  default_backend nodes
backend nodes
  balance roundrobin
  option httpchk GET /readyz
  timeout check 2s
  default-server inter 500ms fall 2 rise 2
  server a 127.0.0.1:${a.port} check
  server b 127.0.0.1:${b.port} check
`,
);
const haproxy = Bun.spawn([haproxyBin, "-db", "-f", cfg], { stdout: "ignore", stderr: "inherit" });
const url = `http://127.0.0.1:${front}/h/x`;
let ok = false;
for (let i = 0; i < 100 && !ok; i++) {
  ok = await fetch(url).then((r) => r.status === 200, () => false);
  if (!ok) await Bun.sleep(100);
}
if (!ok) throw new Error("HAProxy did not answer through the nodes");

const wrk = Bun.spawn([wrkBin, "-t1", `-c${CONNECTIONS}`, `-d${SECONDS}s`, "--latency", url], { stdout: "pipe", stderr: "inherit" });
await Bun.sleep(KILL_AFTER_MS);
a.proc.kill("SIGKILL");
console.log(`scale-out: node a killed (SIGKILL) after ${KILL_AFTER_MS} ms`);
const report = await new Response(wrk.stdout).text();
await wrk.exited;
const requests = Number(/(\d+) requests in/.exec(report)?.[1] ?? NaN);
const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(report)?.[1] ?? 0);
const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(report);
const socketErrors = sock ? sock.slice(1).reduce((s, n) => s + Number(n), 0) : 0;
const failed = non2xx + socketErrors;
const stillReady = await fetch(`http://127.0.0.1:${b.port}/readyz`).then((r) => r.status === 200, () => false);
haproxy.kill("SIGTERM");
b.proc.kill("SIGTERM");
const bStatus = await b.proc.exited;
await haproxy.exited;
rmSync(dir, { recursive: true, force: true });
const summary = { requests, failed, non2xx, socketErrors, connections: CONNECTIONS, survivorReady: stillReady, survivorExit: bStatus };
console.log(report.trim());
console.log(`scale-out: ${JSON.stringify(summary)}`);
if (!(requests > 0) || failed > CONNECTIONS || !stillReady || bStatus !== 0) {
  console.error(`scale-out: FAILED: ${failed} failed requests (at most ${CONNECTIONS}, the killed node's in flight), survivor ready ${stillReady}, its exit ${bStatus}`);
  console.error(`scale-out: the survivor's log:\n${b.log.join("\n")}`);
  process.exit(1);
}
console.log(`scale-out: ok: ${requests} requests, ${failed} failed (at most ${CONNECTIONS} could: the killed node's in flight)`);
