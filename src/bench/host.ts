// Host functions in `wasp bench` (issue 13.7): one round trip from a guest to a TypeScript function
// and back, on the calling thread (closures) and on a worker (a module every worker imports) —
// beside `hypercall`, the bare exit the round trip is built on.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Virtine } from "../api/virtine.ts";
import { WorkerPool } from "../api/workers.ts";
import { summarize, timeSync, type SeriesResult } from "./stats.ts";
import type { Series } from "./suite.ts";

/** main(n): n calls of host function "inc", each given the running total. */
const GUEST = `const virtine = @import("virtine");
pub fn main(n: u64) u64 {
    var total: u64 = 0;
    var i: u64 = 0;
    while (i < n) : (i += 1) total = virtine.hostInt("inc", .{total}) catch return 0;
    return total;
}`;
const CALLS_PER_RUN = 100;

export const HOST_SERIES: Series[] = [
  {
    // per host call: a run making CALLS_PER_RUN of them less a run making none
    name: "host_function",
    reports: ["host_function", "host_function_worker"],
    defaultRuns: 100,
    async run(runs): Promise<SeriesResult[]> {
      const dir = mkdtempSync(join(tmpdir(), "wasp-bench-host-"));
      const module = join(dir, "fns.ts");
      writeFileSync(module, "export function inc(x: bigint) { return x + 1n; }\n");
      const workers = new WorkerPool({ size: 1 });
      try {
        await using local = await Virtine.fromZig(GUEST, { name: "hostcalls", hostFunctions: { inc: (x) => (x as bigint) + 1n }, workers });
        const per = (n: number, t: number) => t / n;
        const sync: number[] = [];
        const check = (v: bigint) => {
          if (v !== BigInt(CALLS_PER_RUN)) throw new Error(`host_function: the guest counted ${v}`);
        };
        for (let i = 0; i < 5; i++) check(local.invokeSync(CALLS_PER_RUN));
        for (let i = 0; i < runs; i++) {
          const [full] = timeSync(1, 0, () => check(local.invokeSync(CALLS_PER_RUN)));
          const [empty] = timeSync(1, 0, () => local.invokeSync(0));
          sync.push(Math.max(0, per(CALLS_PER_RUN, full - empty)));
        }
        await using remote = await Virtine.fromZig(GUEST, { name: "hostcalls", hostModule: module, workers });
        const worker: number[] = [];
        for (let i = 0; i < 5; i++) check(await remote.invoke(CALLS_PER_RUN));
        for (let i = 0; i < runs; i++) {
          let t = Bun.nanoseconds();
          check(await remote.invoke(CALLS_PER_RUN));
          const full = (Bun.nanoseconds() - t) / 1000;
          t = Bun.nanoseconds();
          await remote.invoke(0);
          const empty = (Bun.nanoseconds() - t) / 1000;
          worker.push(Math.max(0, per(CALLS_PER_RUN, full - empty)));
        }
        return [summarize("host_function", "us", sync), summarize("host_function_worker", "us", worker)];
      } finally {
        await workers.close();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  },
];
