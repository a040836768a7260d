// A worker thread that dies (an uncaught error in it: it should not happen, but a bug or a runtime
// failure could) fails the calls it held with WASP_INTERNAL; the pool starts another in its place,
// so queued and later calls still run. The failure is injected at the one seam there is: the
// Worker constructor, swapped for the test so that the pool's first thread runs a script that
// takes its mailbox and then throws.
import { afterAll, expect, test } from "bun:test";
import { Virtine, WaspError, WorkerPool } from "../src/index.ts";
import { guest } from "./support.ts";

const RealWorker = globalThis.Worker;
afterAll(() => {
  globalThis.Worker = RealWorker;
});

test("a worker that dies fails its calls with WASP_INTERNAL, and the pool replaces it", async () => {
  const dying = URL.createObjectURL(new Blob([`self.onmessage = () => { throw new Error("injected failure"); };`], { type: "application/javascript" }));
  let created = 0;
  globalThis.Worker = class extends RealWorker {
    constructor(url: string | URL, options?: WorkerOptions) {
      super(created++ === 0 ? dying : url, options);
    }
  } as typeof Worker;
  await using workers = new WorkerPool({ size: 1 });
  await using fib = await Virtine.load(guest("fib"), { workers });
  // 8 calls fill the first worker's slots; 4 more wait in the queue
  const calls = Array.from({ length: 12 }, (_, i) => fib.invoke(i).then((v) => ({ v }), (e: unknown) => ({ e })));
  const settled = await Promise.all(calls);
  const failed = settled.filter((s) => "e" in s);
  expect(failed.length).toBe(8);
  for (const f of failed) {
    expect(f.e).toBeInstanceOf(WaspError);
    expect((f.e as WaspError).code).toBe("WASP_INTERNAL");
    expect((f.e as Error).message).toMatch(/^a wasp worker failed: .*injected failure/);
  }
  // the queued calls ran on the worker started in its place
  expect(settled.slice(8)).toEqual([8n, 9n, 10n, 11n].map((_, i) => ({ v: [21n, 34n, 55n, 89n][i] })));
  expect(await fib.invoke(20)).toBe(6765n);
  expect(created).toBe(2);
  expect(workers.stats.workers).toBe(1);
  URL.revokeObjectURL(dying);
}, 20_000);
