// The ceiling of invoke_async_throughput: fib(24) calls per second from plain threads that each
// run a Runner in a tight loop (no pool, no hand-off), against the public API's WorkerPool, one
// and two threads each, in alternating batches in one process. `bun scripts/threads-vs-pool.ts`
import { Virtine, WorkerPool } from "../src/index.ts";

const N = 24;
const BATCH = 400;
const ROUNDS = 8;
const fibPath = new URL("../dist/guests/fib.bin", import.meta.url).pathname;

const threadSource = `
import { Runner } from ${JSON.stringify(new URL("../src/virtine/runner.ts", import.meta.url).pathname)};
let v;
self.onmessage = (e) => {
  const [calls, n] = e.data;
  v ??= Runner.fromFile(${JSON.stringify(fibPath)});
  for (let i = 0; i < calls; i++) v.run([n]);
  self.postMessage(0);
};`;
const threadUrl = URL.createObjectURL(new Blob([threadSource], { type: "application/typescript" }));
const threads = [new Worker(threadUrl), new Worker(threadUrl)];
const threadBatch = async (k: number, n = N, calls = BATCH) => {
  const t = performance.now();
  await Promise.all(threads.slice(0, k).map((w) => new Promise((done) => {
    w.onmessage = done;
    w.postMessage([calls / k, n]);
  })));
  return calls / ((performance.now() - t) / 1000);
};

const pools = [new WorkerPool({ size: 1 }), new WorkerPool({ size: 2 })];
const fibs = await Promise.all(pools.map((workers) => Virtine.load(fibPath, { workers })));
const poolBatch = async (k: number, n = N, calls = BATCH) => {
  let started = 0;
  const t = performance.now();
  await Promise.all(Array.from({ length: k * pools[k - 1].slotsPerWorker }, async () => {
    while (started < calls) {
      started++;
      await fibs[k - 1].invoke(n);
    }
  }));
  return calls / ((performance.now() - t) / 1000);
};

const rates: Record<string, number[]> = { threads_1: [], threads_2: [], pool_1: [], pool_2: [] };
// warm-up, as in the bench: every thread's JIT tiers settle after ~15,000 calls (fib(0) is quick)
for (const k of [1, 2]) await threadBatch(k, 0, 20_000 * k), await poolBatch(k, 0, 20_000 * k);
for (const k of [1, 2]) await threadBatch(k), await poolBatch(k);
for (let r = 0; r < ROUNDS; r++) {
  for (const k of [1, 2]) {
    rates[`threads_${k}`].push(await threadBatch(k));
    rates[`pool_${k}`].push(await poolBatch(k));
  }
}
const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
for (const [name, r] of Object.entries(rates)) console.log(`${name.padEnd(10)} ${Math.round(median(r))} calls/s`);
console.log(`2 vs 1: threads ${(median(rates.threads_2) / median(rates.threads_1)).toFixed(2)}x, pool ${(median(rates.pool_2) / median(rates.pool_1)).toFixed(2)}x`);
for (const f of fibs) await f.closeAsync();
for (const p of pools) await p.close();
for (const w of threads) w.terminate();
URL.revokeObjectURL(threadUrl);
