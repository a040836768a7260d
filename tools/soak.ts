// `npm run soak`: one `wasp serve` node under wrk for WASP_SOAK_SECONDS (default 60) with a mix —
// 80% normal requests, 10% to a guest that panics (502), 10% to one that spins past its deadline
// (504). Every response must have its path's status, the server must stay ready, and its open fds
// and RSS must stay flat: both are reported at the start and the end. Exits 1 on any breach.
// Needs Debian's wrk and /dev/kvm (or `tools/test-emulated.sh npm run soak`).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, startNode } from "./serve-node.ts";

const GUEST = join(ROOT, "dist/guests/httphello.bin");
const SECONDS = Number(process.env.WASP_SOAK_SECONDS ?? 60);
const CONNECTIONS = 4;
/** fds a long run may legitimately add (a worker's pool growing to its size, keep-alive sockets) */
const FD_SLACK = 16;
/** RSS growth tolerated between the warm start and the end (allocator and JIT settling) */
const RSS_SLACK = 1.5;

const wrkBin = ["/usr/bin/wrk", "/usr/local/bin/wrk"].find(existsSync);
if (!wrkBin) {
  console.error("soak: wrk is missing: apt install wrk");
  process.exit(2);
}

const { proc, port, log } = await startNode("soak", ["--route", `/h=${GUEST}`, "--timeout", "250", "--warm-calls", "50", "--no-access-log"]);

const fds = () => readdirSync(`/proc/${proc.pid}/fd`).length;
const rssKiB = () => Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${proc.pid}/status`, "utf8"))?.[1] ?? NaN);
const base = `http://127.0.0.1:${port}`;
// one round of the mix first, so that every path has been taken once before the baseline
for (const p of ["/h/ok", "/h/panic", "/h/spin"]) await fetch(`${base}${p}`);
const start = { fds: fds(), rssKiB: rssKiB() };

const dir = mkdtempSync(join(tmpdir(), "wasp-soak-"));
const script = join(dir, "mix.lua");
writeFileSync(
  script,
  `local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counter = 0; n200 = 0; n502 = 0; n504 = 0; other = 0 end
function request()
  counter = counter + 1
  local r = counter % 10
  if r == 0 then return wrk.format("GET", "/h/panic") end
  if r == 1 then return wrk.format("GET", "/h/spin") end
  return wrk.format("GET", "/h/ok")
end
function response(status, headers, body)
  if status == 200 then n200 = n200 + 1 elseif status == 502 then n502 = n502 + 1 elseif status == 504 then n504 = n504 + 1 else other = other + 1 end
end
function done(summary, latency, requests)
  local a, b, c, d = 0, 0, 0, 0
  for _, t in ipairs(threads) do a = a + t:get("n200"); b = b + t:get("n502"); c = c + t:get("n504"); d = d + t:get("other") end
  io.write(string.format('SOAK {"200":%d,"502":%d,"504":%d,"other":%d}\\n', a, b, c, d))
end
`,
);
const wrk = Bun.spawnSync([wrkBin, "-t1", `-c${CONNECTIONS}`, `-d${SECONDS}s`, "--timeout", "10s", "-s", script, base]);
const report = wrk.stdout.toString();
rmSync(dir, { recursive: true, force: true });
const counts = JSON.parse(/^SOAK (.*)$/m.exec(report)?.[1] ?? "null") as Record<string, number> | null;
const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(report);
const socketErrors = sock ? sock.slice(1).reduce((s, n) => s + Number(n), 0) : 0;
const stillReady = await fetch(`${base}/readyz`).then((r) => r.status === 200, () => false);
const end = { fds: fds(), rssKiB: rssKiB() };
proc.kill("SIGTERM");
const exit = await proc.exited;

console.log(report.replace(/^SOAK .*\n/m, "").trim());
const total = counts ? counts["200"]! + counts["502"]! + counts["504"]! + counts.other! : 0;
const summary = { seconds: SECONDS, counts, socketErrors, start, end, ready: stillReady, exit };
console.log(`soak: ${JSON.stringify(summary)}`);
const problems: string[] = [];
if (!counts || total === 0) problems.push("no responses counted");
else {
  if (counts.other! > 0) problems.push(`${counts.other} responses with a status other than 200, 502, 504`);
  // the mix is by request count per connection: each error path is a tenth of the requests, give or take the in-flight ones at the end
  for (const s of ["502", "504"]) if (Math.abs(counts[s]! - total / 10) > total / 20 + CONNECTIONS) problems.push(`${counts[s]} responses ${s} for ${total} requests, not about a tenth`);
}
if (socketErrors > 0) problems.push(`${socketErrors} socket errors`);
if (!stillReady) problems.push("the server is not ready at the end");
if (exit !== 0) problems.push(`the server exited with ${exit} on SIGTERM`);
if (end.fds > start.fds + FD_SLACK) problems.push(`open fds grew from ${start.fds} to ${end.fds}`);
if (end.rssKiB > start.rssKiB * RSS_SLACK) problems.push(`RSS grew from ${start.rssKiB} to ${end.rssKiB} KiB`);
// every log line whole JSON (lines written by two writers once interleaved mid-line)
await Bun.sleep(100);
const broken = log.filter((l) => {
  try {
    JSON.parse(l);
    return false;
  } catch {
    return true;
  }
});
if (broken.length > 0) problems.push(`${broken.length} log lines are not JSON, the first: ${broken[0].slice(0, 200)}`);
if (!log.some((l) => l.includes('"msg":"stopped"'))) problems.push("the server did not log that it stopped");
if (problems.length > 0) {
  console.error(`soak: FAILED: ${problems.join("; ")}`);
  console.error(`soak: the server's log:\n${log.slice(-20).join("\n")}`);
  process.exit(1);
}
console.log(`soak: ok: ${total} requests in ${SECONDS} s (200: ${counts!["200"]}, 502: ${counts!["502"]}, 504: ${counts!["504"]}); fds ${start.fds} -> ${end.fds}, RSS ${start.rssKiB} -> ${end.rssKiB} KiB`);
