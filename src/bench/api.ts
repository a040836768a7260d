// Series of the public TypeScript interface: a call on the calling thread (invoke_sync), a call on
// a worker awaited one at a time (invoke_async), calls per second with every worker busy
// (invoke_async_throughput, and _1 with a single worker), and the two ways to hand a call to a
// worker that issue 6 asked to compare (handoff_atomics: wasp's SharedArrayBuffer slots;
// handoff_postmessage: a worker answering a postMessage).
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { Virtine } from "../api/virtine.ts";
import { WorkerPool, threadEntry } from "../api/workers.ts";
import type { LoopRequest } from "./loop-worker.ts";
import { embeddedBench } from "./guests.ts";
import { summarize, timeAsync, timeSync, type SeriesResult } from "./stats.ts";
import type { Series } from "./suite.ts";

/** Calls per throughput sample; each worker is kept full (slotsPerWorker calls in flight). */
const BATCH = 400;
/**
 * The throughput guest's work per call: fib(24), ~0.2 ms. With a few µs of work a call is mostly
 * its VM exit, and two vCPUs taking exits at once slow each other down in this nested VM (measured:
 * two threads running fib(18) in tight loops, no pool at all, reach 1.5-1.75x one thread) — the
 * series would measure the machine rather than the pool.
 */
const THROUGHPUT_N = 24;
/**
 * Untimed calls before a series of the public API measures: each thread's copy of the call path is
 * still being JIT-compiled for its first ~15,000 calls (see throughput()); timing them would measure
 * the compiler (invoke_async's p99 was ~2 ms after 50 warm-up calls, ~0.1-0.2 ms after these).
 */
const WARM_CALLS_PER_WORKER = 20_000;

async function fibVirtine(workers: WorkerPool): Promise<Virtine> {
  return Virtine.load(new Uint8Array(readFileSync(embeddedBench("fib"))), { workers });
}

/**
 * Calls per second with every worker busy: one pool of `size` workers (one per core) and one of a
 * single worker; and, for the ceiling, `size` bare threads and one, each running a Runner in a
 * tight loop (no pool, no hand-off per call). All four are measured in alternating batches, so that
 * they see the same moments of a noisy machine: a low pool ratio beside a low thread ratio is the
 * machine, not the pool.
 */
async function throughput(size: number, samples: number): Promise<SeriesResult[]> {
  const pools = [new WorkerPool({ size }), new WorkerPool({ size: 1 })];
  const threads = Array.from({ length: size }, () => new Worker(threadEntry(new URL("./loop-worker.ts", import.meta.url), "bench/loop-worker.js")));
  const image = new Uint8Array(readFileSync(embeddedBench("fib")));
  const ask = (w: Worker, req: LoopRequest) => new Promise<void>((done, fail) => {
    w.onmessage = () => done();
    w.onerror = (e) => fail(new Error(`a bench thread failed: ${e.message}`));
    w.postMessage(req);
  });
  try {
    const fibs = await Promise.all(pools.map(fibVirtine));
    const poolBatch = async (i: number, n = THROUGHPUT_N, calls = BATCH) => {
      let started = 0;
      const lane = async () => {
        while (started < calls) {
          started++;
          await fibs[i].invoke(n);
        }
      };
      const t = Bun.nanoseconds();
      await Promise.all(Array.from({ length: pools[i].size * pools[i].slotsPerWorker }, lane));
      return calls / ((Bun.nanoseconds() - t) / 1e9);
    };
    const threadBatch = async (k: number, n = THROUGHPUT_N, calls = BATCH) => {
      const taken = new Int32Array(new SharedArrayBuffer(4));
      const t = Bun.nanoseconds();
      await Promise.all(threads.slice(0, k).map((w) => ask(w, { image, name: "fib.bin", n, calls, taken })));
      return calls / ((Bun.nanoseconds() - t) / 1e9);
    };
    const batches = [() => poolBatch(0), () => poolBatch(1), () => threadBatch(size), () => threadBatch(1)];
    // Warm-up. Each worker thread JIT-compiles its own copy of the call path, and JavaScriptCore
    // keeps tiering it up (to FTL) for the first ~15,000 calls a thread makes; the compiler threads
    // are shared, so until then the two-worker pool pays for them with a core its workers need,
    // while the one-worker pool does not (measured: 5-10 % of the run still going to "JITWorker" after
    // 800 calls per worker). The call path does not depend on the guest's work: fib(0) warms it fast.
    for (const i of [0, 1]) await poolBatch(i, 0, WARM_CALLS_PER_WORKER * pools[i].size);
    await threadBatch(size, 0, WARM_CALLS_PER_WORKER * size);
    for (let w = 0; w < 2; w++) for (const b of batches) await b();
    const rates: number[][] = batches.map(() => []);
    for (let k = 0; k < samples; k++) for (const [i, b] of batches.entries()) rates[i].push(await b());
    for (const f of fibs) await f.closeAsync();
    // a rate's tail is its low side: "p99" is the rate 99 % of the samples beat
    const result = (name: string, r: number[]): SeriesResult => {
      const s = [...r].sort((a, b) => a - b);
      return { name, unit: "calls/s", n: s.length, median: Math.round(s[Math.floor(s.length / 2)]), p99: Math.round(s[Math.floor(s.length / 100)]) };
    };
    // (the one-worker figures first: the table sets the others beside them)
    return [
      result("invoke_async_throughput_1", rates[1]),
      result("invoke_async_throughput", rates[0]),
      result("thread_throughput_1", rates[3]),
      result("thread_throughput", rates[2]),
    ];
  } finally {
    for (const p of pools) await p.close();
    await Promise.all(threads.map((w) => ask(w, "stop").catch(() => {})));
    for (const w of threads) w.terminate();
  }
}

export const API_SERIES: Series[] = [
  {
    // fib(0) through the public API on the calling thread: a warm shell, one exit, the reset off the path
    name: "invoke_sync",
    defaultRuns: 1000,
    async run(runs) {
      await using pool = new WorkerPool({ size: 1 });
      await using fib = await fibVirtine(pool);
      return summarize("invoke_sync", "us", timeSync(runs, WARM_CALLS_PER_WORKER, () => {
        if (fib.invokeSync(0) !== 0n) throw new Error("fib(0) is not 0");
      }));
    },
  },
  {
    // a call making a few hypercalls (4 writes) through the public API on the calling thread, and
    // the same call recorded (issue 16: at most 10% more): the Recorder's hook on each hypercall,
    // the outcome's hashes and the recording's encoding are all inside the timing
    name: "invoke_record",
    reports: ["invoke_hypercalls", "invoke_record"],
    defaultRuns: 1000,
    async run(runs) {
      await using pool = new WorkerPool({ size: 1 });
      await using calls = await Virtine.load(new Uint8Array(readFileSync(embeddedBench("calls"))), { workers: pool });
      const plain = () => {
        if (calls.runSync({ args: [4] }).value !== 4n) throw new Error("calls(4) is not 4");
      };
      const recorded = () => {
        const r = calls.runSync({ args: [4], record: true });
        if (r.value !== 4n || !r.recording) throw new Error("calls(4) recorded nothing");
      };
      // alternating batches, so that both see the same moments of a noisy machine
      for (let i = 0; i < WARM_CALLS_PER_WORKER / 2; i++) {
        plain();
        recorded();
      }
      const a: number[] = [];
      const b: number[] = [];
      for (let i = 0; i < runs; i += 50) {
        a.push(...timeSync(Math.min(50, runs - i), 0, plain));
        b.push(...timeSync(Math.min(50, runs - i), 0, recorded));
      }
      return [summarize("invoke_hypercalls", "us", a), summarize("invoke_record", "us", b)];
    },
  },
  {
    // fib(0) through the public API on a worker, awaited before the next: the hand-off's latency on top of invoke_sync
    name: "invoke_async",
    defaultRuns: 1000,
    async run(runs) {
      await using pool = new WorkerPool({ size: 1 });
      await using fib = await fibVirtine(pool);
      return summarize("invoke_async", "us", await timeAsync(runs, WARM_CALLS_PER_WORKER, async () => {
        if ((await fib.invoke(0)) !== 0n) throw new Error("fib(0) is not 0");
      }));
    },
  },
  {
    // fib(24) calls per second, every worker busy: one worker per core, and (alternating) one worker,
    // and bare threads (one per core, and one) for the ceiling
    name: "invoke_async_throughput",
    reports: ["invoke_async_throughput_1", "invoke_async_throughput", "thread_throughput_1", "thread_throughput"],
    defaultRuns: 15,
    run: (runs) => throughput(Math.max(2, availableParallelism()), runs),
  },
  {
    // wasp's hand-off: a call slot in a SharedArrayBuffer, the worker woken by Atomics.notify (or
    // still polling), the reply seen by main's setImmediate polling — no guest runs
    name: "handoff_atomics",
    defaultRuns: 2000,
    async run(runs) {
      await using pool = new WorkerPool({ size: 1 });
      return summarize("handoff_atomics", "us", await timeAsync(runs, 100, async () => {
        await pool.ping();
      }));
    },
  },
  {
    // the alternative: postMessage to a worker that answers with postMessage (structured clone both ways)
    name: "handoff_postmessage",
    defaultRuns: 2000,
    async run(runs) {
      const url = URL.createObjectURL(new Blob(["self.onmessage = (e) => self.postMessage(e.data)"], { type: "application/javascript" }));
      const w = new Worker(url);
      try {
        let reply: () => void = () => {};
        w.onmessage = () => reply();
        const msg = { virtine: 1, args: [0n], input: undefined };
        return summarize("handoff_postmessage", "us", await timeAsync(runs, 100, () => new Promise<void>((resolve) => {
          reply = resolve;
          w.postMessage(msg);
        })));
      } finally {
        w.terminate();
        URL.revokeObjectURL(url);
      }
    },
  },
];
