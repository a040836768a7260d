// The public TypeScript interface, used only through the package's entry point: results on the
// calling thread and on workers, data in and out, typed errors across the worker boundary,
// concurrency and the queue's bound, cancellation, and closing that leaves nothing behind.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  BadArgsError,
  BadImageError,
  BadOutputError,
  ClosedError,
  GuestFaultError,
  GuestPanicError,
  PolicyViolationError,
  QueueFullError,
  TimeoutError,
  Virtine,
  WaspError,
  WorkerPool,
} from "../src/index.ts";
import { slow, fibRef, guest, openFds, wasp } from "./support.ts";

const tmp = mkdtempSync(join(tmpdir(), "wasp-api-"));
// one pool for the file (closed at the end), so that no test depends on the shared one
const workers = new WorkerPool({ size: 2 });
afterAll(async () => {
  await workers.close();
  rmSync(tmp, { recursive: true, force: true });
});

const load = (name: string, options: Parameters<typeof Virtine.load>[1] = {}) => Virtine.load(guest(name), { workers, ...options });

describe("results", () => {
  test("invokeSync and invoke compute the same, with number and bigint arguments", async () => {
    await using fib = await load("fib");
    expect(fib.invokeSync(20)).toBe(6765n);
    expect(await fib.invoke(20)).toBe(6765n);
    expect(await fib.invoke(30n)).toBe(832040n);
    for (const n of [0, 1, 2, 10, 25]) expect(await fib.invoke(n)).toBe(fibRef(n));
  });

  test("six arguments, negative ones as two's complement", async () => {
    await using sum = await load("sum6");
    expect(await sum.invoke(1, 2, 3, 4, 5, 6)).toBe(91n);
    expect(sum.invokeSync(-1, 0, 0, 0, 0, 0)).toBe((1n << 64n) - 1n);
    expect(await sum.invoke(-1n, 1, 0, 0, 0, 0)).toBe(1n); // -1 + 2 wraps to 1
  });

  test("run gives the value, the console, the exits", async () => {
    await using hello = await load("hello");
    const r = await hello.run();
    expect(r.console).toBe("hello from a virtine\n");
    expect(r.consoleTruncated).toBe(false);
    expect(r.exits).toBe(1);
    expect(hello.runSync().console).toBe("hello from a virtine\n");
  });

  test("load takes a path, a file URL, or an image's bytes", async () => {
    const path = guest("fib");
    await using a = await Virtine.load(pathToFileURL(path), { workers });
    await using b = await Virtine.load(new Uint8Array(readFileSync(path)), { workers });
    expect(await a.invoke(12)).toBe(144n);
    expect(await b.invoke(12)).toBe(144n);
    expect(b.invokeSync(11)).toBe(89n);
  });

  test("load takes a snapshot file by its path; its bytes are refused", async () => {
    const file = join(tmp, "snaptwice.snap");
    expect(wasp(["snapshot", guest("snaptwice"), "-o", file]).stderr).toBe("");
    await using v = await Virtine.load(file, { workers });
    // resumed after the first snapshot hypercall: counter 1 + 10, both hypercalls answered 1
    expect(await v.invoke()).toBe(1111n);
    expect(v.invokeSync()).toBe(1111n);
    await expect(Virtine.load(new Uint8Array(readFileSync(file)))).rejects.toBeInstanceOf(BadArgsError);
  });

  test("bad sources and options are refused at load with typed errors", async () => {
    await expect(Virtine.load(join(tmp, "missing.bin"))).rejects.toBeInstanceOf(BadImageError);
    await expect(Virtine.load(tmp)).rejects.toThrow(/is a directory/);
    await expect(Virtine.load(new Uint8Array(0))).rejects.toBeInstanceOf(BadImageError);
    await expect(load("fib", { memory: 4095 })).rejects.toBeInstanceOf(BadArgsError);
    await expect(load("fib", { allow: ["teleport"] })).rejects.toBeInstanceOf(BadArgsError);
    await expect(load("fib", { dataSize: 100 })).rejects.toBeInstanceOf(BadArgsError);
  });

  test("bad arguments: a rejected promise for invoke, a throw for invokeSync", async () => {
    await using fib = await load("fib");
    await expect(fib.invoke(1, 2, 3, 4, 5, 6, 7)).rejects.toBeInstanceOf(BadArgsError);
    await expect(fib.invoke(1.5)).rejects.toThrow(/not an integer/);
    await expect(fib.invoke(1n << 64n)).rejects.toThrow(/does not fit in 64 bits/);
    expect(() => fib.invokeSync(1.5)).toThrow(BadArgsError);
  });
});

describe("data in and out", () => {
  test("bytes give bytes, a string a string, JSON parsed JSON", async () => {
    await using echo = await load("echo");
    expect(await echo.call(new Uint8Array([1, 2, 3]))).toEqual(new Uint8Array([3, 2, 1]));
    expect(await echo.call("stressed")).toBe("desserts");
    expect(echo.callSync("drawer")).toBe("reward");
    await using stats = await load("jsonstats");
    expect(await stats.call({ values: [2, 4, 9] })).toEqual({ count: 3, sum: 15, min: 2, max: 9, mean: 5 });
    expect(stats.callSync({ values: [] })).toEqual({ count: 0, sum: 0, min: 0, max: 0, mean: 0 });
  });

  test("run and runSync take a string input as UTF-8, and refuse anything else that is not bytes (issue 12)", async () => {
    await using echo = await load("echo");
    expect(new TextDecoder().decode(echo.runSync({ input: "stressed" }).output)).toBe("desserts");
    expect(new TextDecoder().decode((await echo.run({ input: "drawer" })).output)).toBe("reward");
    const bad = { input: 42 } as unknown as { input: Uint8Array };
    expect(() => echo.runSync(bad)).toThrow(/^input is 42: give a Uint8Array or a string/);
    await expect(echo.run(bad)).rejects.toBeInstanceOf(BadArgsError);
    await expect(echo.run({ input: [1, 2] } as unknown as { input: Uint8Array })).rejects.toThrow(/input is a list/);
    await using fib = await load("fib");
    expect(() => fib.invokeSync("12" as unknown as number)).toThrow('argument 1 ("12") is not an integer');
    await expect(fib.run({ args: "12" } as unknown as { args: number[] })).rejects.toThrow('the arguments are "12", not a list of integers');
  });

  test("input and output larger than a slot travel whole (the port path)", async () => {
    await using echo = await load("echo");
    const input = new Uint8Array(300_000).map((_, i) => (i * 7) & 0xff);
    const out = await echo.call(input);
    expect(out.length).toBe(input.length);
    expect(out).toEqual(input.slice().reverse());
    const r = await echo.run({ input });
    expect(r.value).toBe(300_000n);
  });

  test("input beyond the data window is refused; a bigger window takes it", async () => {
    await using echo = await load("echo", { dataSize: 64 * 1024 });
    await expect(echo.call(new Uint8Array(64 * 1024 + 1))).rejects.toThrow("the input of 65537 bytes does not fit the virtine's data window of 65536 bytes (raise the data size: dataSize, or wasp invoke --data-size)");
    expect(() => echo.callSync(new Uint8Array(64 * 1024 + 1))).toThrow(BadArgsError);
    await using roomy = await load("echo", { dataSize: 4 * 1024 * 1024 });
    // the output room is what the input leaves: reversing 2 MiB needs 4 MiB
    expect((await roomy.call(new Uint8Array(2 * 1024 * 1024).fill(7))).length).toBe(2 * 1024 * 1024);
  });

  test("output that is not the JSON asked for is a BadOutputError", async () => {
    await using echo = await load("echo");
    const e = await echo.call({ a: 1 }).catch((x) => x);
    expect(e).toBeInstanceOf(BadOutputError);
    expect(e.code).toBe("WASP_BAD_OUTPUT");
    expect(e.message).toStartWith("the guest's output is not JSON (");
    expect(e.message).toEndWith(`: }1:"a"{`); // the guest's text, escaped (src/guest-text.ts)
  });

  test("a guest's panic on bad input comes back typed", async () => {
    await using stats = await load("jsonstats");
    const e = await stats.call("{not json").catch((x) => x);
    expect(e).toBeInstanceOf(GuestPanicError);
    expect(e.guestMessage).toBe("SyntaxError");
  });
});

describe("a hostile guest's output fields", () => {
  const liar = (field: string, value: string) => `const virtine = @import("virtine");
pub fn main() u64 {
    virtine.writeOutput("x") catch {};
    const p: *volatile u64 = @ptrFromInt(virtine.abi.Layout.INFO + virtine.abi.Info.${field});
    p.* = ${value};
    return 0;
}`;

  test("an output length past its capacity, or an output moved out of the window, is a MemoryFault", async () => {
    const cacheDir = join(tmp, "zig");
    for (const [field, value] of [["OUTPUT_LEN", "1 << 40"], ["OUTPUT_ADDR", "0x1000"], ["OUTPUT_CAP", "1 << 30"]]) {
      await using v = await Virtine.fromZig(liar(field, value), { cacheDir, workers });
      const e = await v.call("in").catch((x) => x);
      expect(e.code).toBe("WASP_MEMORY_FAULT");
      expect(e.message).toContain("outside its data window");
      expect(() => v.callSync("in")).toThrow(/outside its data window/);
    }
  }, slow(120_000));
});

describe("typed errors across the worker boundary", () => {
  test("each class arrives as itself, with its code and fields", async () => {
    await using panicker = await load("panicker");
    const panic = await panicker.invoke().catch((e) => e);
    expect(panic).toBeInstanceOf(GuestPanicError);
    expect(panic).toBeInstanceOf(WaspError);
    expect(panic).toBeInstanceOf(Error);
    expect(panic.code).toBe("WASP_GUEST_PANIC");
    expect(panic.guestMessage).toBe("guest gave up");
    expect(panic.stack).toStartWith("GuestPanicError: the guest panicked: guest gave up\n");

    await using spin = await load("spin", { timeoutMs: 30 });
    const timeout = await spin.invoke().catch((e) => e);
    expect(timeout).toBeInstanceOf(TimeoutError);
    expect(timeout.timeoutMs).toBe(30);

    await using time = await load("time");
    const policy = await time.invoke().catch((e) => e);
    expect(policy).toBeInstanceOf(PolicyViolationError);
    expect(policy.what).toBe("hypercall time");

    await using triple = await load("raw_triple");
    const fault = await triple.invoke().catch((e) => e);
    expect(fault).toBeInstanceOf(GuestFaultError);
    expect(typeof fault.rip).toBe("bigint");
    let local: GuestFaultError | undefined;
    try {
      triple.invokeSync();
    } catch (e) {
      local = e as GuestFaultError;
    }
    expect(fault.exitReason).toBe(local!.exitReason);
    expect(fault.rip).toBe(local!.rip);

    // the worker goes on after every one of them
    await using fib = await load("fib");
    expect(await fib.invoke(10)).toBe(55n);
  });

  test("the same error, sync and async", async () => {
    await using time = await load("time");
    let sync: unknown;
    try {
      time.invokeSync();
    } catch (e) {
      sync = e;
    }
    const async = await time.invoke().catch((e) => e);
    expect(async.constructor).toBe((sync as Error).constructor);
    expect(async.message).toBe((sync as Error).message);
  });
});

describe("concurrency", () => {
  test("1000 concurrent invokes, each with its own correct result", async () => {
    await using fib = await load("fib");
    const ns = Array.from({ length: 1000 }, (_, i) => (i * 7) % 23);
    const results = await Promise.all(ns.map((n) => fib.invoke(n)));
    expect(results).toEqual(ns.map(fibRef));
  });

  test("a full queue refuses the next call with QueueFullError; the rest complete", async () => {
    await using pool = new WorkerPool({ size: 1, maxQueue: 10 });
    await using fib = await Virtine.load(guest("fib"), { workers: pool });
    // the one worker holds slotsPerWorker calls, 10 wait: one more is one too many
    const capacity = pool.slotsPerWorker + 10;
    const accepted = Array.from({ length: capacity }, (_, i) => fib.invoke(i));
    expect(pool.stats.queued).toBe(10);
    const refused = await fib.invoke(99).catch((e) => e);
    expect(refused).toBeInstanceOf(QueueFullError);
    expect(refused.code).toBe("WASP_QUEUE_FULL");
    expect(refused.maxQueue).toBe(10);
    expect(refused.message).toBe("the worker pool's queue is full (10 calls waiting): wait for calls to finish, or raise maxQueue");
    expect(await Promise.all(accepted)).toEqual(Array.from({ length: capacity }, (_, i) => fibRef(i)));
    // room again once they are done
    expect(await fib.invoke(5)).toBe(5n);
  });

  test("bad pool options are refused", () => {
    expect(() => new WorkerPool({ size: 0 })).toThrow(BadArgsError);
    expect(() => new WorkerPool({ size: 0 })).toThrow("worker pool size 0 is not between 1 and 256");
    expect(() => new WorkerPool({ maxQueue: -1 })).toThrow("maxQueue -1 is not a count of calls");
  });
});

describe("cancellation", () => {
  test("an AbortSignal stops a spinning guest and rejects with its reason; the worker goes on", async () => {
    await using pool = new WorkerPool({ size: 1 });
    await using spin = await Virtine.load(guest("spin"), { workers: pool, timeoutMs: 0 });
    await using fib = await Virtine.load(guest("fib"), { workers: pool });
    const ac = new AbortController();
    const reason = new Error("enough");
    const t0 = performance.now();
    const p = spin.invoke({ signal: ac.signal });
    setTimeout(() => ac.abort(reason), 50);
    expect(await p.catch((e) => e)).toBe(reason);
    expect(performance.now() - t0).toBeLessThan(5000); // it did not run to a deadline: it has none
    expect(await fib.invoke(15)).toBe(610n);
    expect(pool.stats.running).toBe(0);
  });

  test("a queued call that is aborted never runs; an aborted signal rejects at once", async () => {
    await using pool = new WorkerPool({ size: 1 });
    await using spin = await Virtine.load(guest("spin"), { workers: pool, timeoutMs: 200 });
    await using fib = await Virtine.load(guest("fib"), { workers: pool });
    const running = Array.from({ length: pool.slotsPerWorker }, () => spin.invoke()); // every slot of the one worker
    const ac = new AbortController();
    const queued = fib.invoke(10, { signal: ac.signal });
    expect(pool.stats.queued).toBe(1);
    ac.abort("not needed");
    expect(await queued.catch((e) => e)).toBe("not needed");
    expect(pool.stats.queued).toBe(0);
    for (const r of running) expect(await r.catch((e) => e)).toBeInstanceOf(TimeoutError);
    expect(pool.stats.completed).toBe(pool.slotsPerWorker); // the aborted call never reached the worker
    expect(await fib.invoke(10, { signal: AbortSignal.abort("already") }).catch((e) => e)).toBe("already");
    expect(await fib.invoke(10, { signal: new AbortController().signal })).toBe(55n);
  });

  test("call and run take a signal too", async () => {
    await using spin = await load("spin", { timeoutMs: 0 });
    expect(await spin.run({ signal: AbortSignal.timeout(30) }).catch((e) => e.name)).toBe("TimeoutError");
    expect(await spin.call("x", { signal: AbortSignal.timeout(30) }).catch((e) => e.name)).toBe("TimeoutError");
  });
});

describe("closing", () => {
  test("closing: calls a worker holds finish, queued ones reject with ClosedError, later ones too", async () => {
    await using pool = new WorkerPool({ size: 1 });
    const spin = await Virtine.load(guest("spin"), { workers: pool, timeoutMs: 20 });
    // slotsPerWorker calls go to the one worker, the last waits in the queue
    const calls = Array.from({ length: pool.slotsPerWorker + 1 }, () => spin.invoke().catch((e) => e));
    expect(pool.stats.queued).toBe(1);
    await spin.closeAsync();
    const outcomes = await Promise.all(calls);
    for (const o of outcomes.slice(0, -1)) expect(o).toBeInstanceOf(TimeoutError); // they ran, to their deadline
    expect(outcomes.at(-1)).toBeInstanceOf(ClosedError); // never started
    expect(outcomes.at(-1).code).toBe("WASP_CLOSED");
    expect(outcomes.at(-1).message).toBe("the virtine is closed");
    expect(() => spin.invokeSync()).toThrow(ClosedError);
    expect(await spin.invoke().catch((e) => e)).toBeInstanceOf(ClosedError);
    expect(spin.closed).toBe(true);
  });

  test("`using` closes everything: the fd count is back where it started", async () => {
    // warm up what the process keeps for good (the /dev/kvm handle, the deadline timer)
    {
      await using pool = new WorkerPool({ size: 2 });
      await using v = await Virtine.load(guest("fib"), { workers: pool });
      v.invokeSync(1);
      await Promise.all([v.invoke(1), v.invoke(2), v.invoke(3)]);
    }
    // a stopped worker thread's own event loop descriptors close shortly after it ends
    // (without a count to reach: until it has not moved for half a second, scaled on slow machines)
    const settled = async (want?: number) => {
      let last = openFds();
      let still = 0;
      for (let i = 0; i < slow(200) && (want === undefined ? true : last !== want); i++) {
        await Bun.sleep(50);
        const now = openFds();
        still = now === last ? still + 1 : 0;
        if (want === undefined && still >= slow(10)) return now;
        last = now;
      }
      return last;
    };
    const before = await settled();
    {
      await using pool = new WorkerPool({ size: 2 });
      await using fib = await Virtine.load(guest("fib"), { workers: pool, poolSize: 4 });
      await using echo = await Virtine.load(guest("echo"), { workers: pool });
      expect(fib.invokeSync(10)).toBe(55n);
      expect(await Promise.all([fib.invoke(1), fib.invoke(2), fib.invoke(3), fib.invoke(4)])).toEqual([1n, 1n, 2n, 3n]);
      expect(await echo.call("ab")).toBe("ba");
      expect(openFds()).toBeGreaterThan(before);
    }
    expect(await settled(before)).toBe(before);
    {
      using v = await Virtine.load(guest("fib"), { workers });
      expect(v.invokeSync(10)).toBe(55n);
    }
    expect(openFds()).toBe(before);
  });

  test("a closed pool refuses calls", async () => {
    const pool = new WorkerPool({ size: 1 });
    await using fib = await Virtine.load(guest("fib"), { workers: pool });
    expect(await fib.invoke(3)).toBe(2n);
    await pool.close();
    const closed = await fib.invoke(3).catch((e) => e);
    expect(closed).toBeInstanceOf(ClosedError);
    expect(closed.message).toBe("the worker pool is closed");
    expect(fib.invokeSync(3)).toBe(2n); // the calling thread's engine is the virtine's own
  });
});
