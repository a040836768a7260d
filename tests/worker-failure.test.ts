// A worker thread that dies (an uncaught error in it: it should not happen, but a bug or a runtime
// failure could) fails the calls it held with WASP_INTERNAL; the pool starts another in its place,
// so queued and later calls still run. The failure is injected at the one seam there is: the
// Worker constructor, swapped for the test so that the pool's first thread runs a script that
// takes its mailbox and then throws.
import { afterAll, expect, test } from "bun:test";
import { Virtine, WaspError, WorkerPool } from "../src/index.ts";
import { slow, guest } from "./support.ts";
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

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
}, slow(20_000));

/** fds and mappings that belong to VMs: /dev/kvm, VM and vCPU fds, kvm_run, snapshot memfds. */
function vmResources(): { fds: number; maps: number } {
  const fds = readdirSync("/proc/self/fd").filter((f) => {
    try {
      return /kvm|wasp-snapshot/.test(readlinkSync(`/proc/self/fd/${f}`));
    } catch {
      return false; // the directory's own fd, closed by now
    }
  }).length;
  const maps = readFileSync("/proc/self/maps", "utf8").split("\n").filter((l) => /kvm|wasp-snapshot/.test(l)).length;
  return { fds, maps };
}

test("a worker that dies after running calls closes every VM, mapping and fd it had", async () => {
  // the real worker, with Atomics.wait made to throw once a file exists: the worker dies the next
  // time it goes idle, after it has served calls and holds warm shells
  const dir = mkdtempSync(join(tmpdir(), "wasp-dying-"));
  const trigger = join(dir, "die");
  const wrapper = join(dir, "dying-worker.ts");
  writeFileSync(
    wrapper,
    `import ${JSON.stringify(join(import.meta.dir, "../src/api/worker.ts"))};
import { existsSync } from "node:fs";
const wait = Atomics.wait;
Atomics.wait = ((...a: Parameters<typeof Atomics.wait>) => {
  if (existsSync(${JSON.stringify(trigger)})) throw new Error("injected failure after calls");
  return wait.apply(Atomics, a);
}) as typeof Atomics.wait;
`,
  );
  let created = 0;
  globalThis.Worker = class extends RealWorker {
    constructor(url: string | URL, options?: WorkerOptions) {
      super(created++ === 0 ? wrapper : url, options);
    }
  } as typeof Worker;
  try {
    await using workers = new WorkerPool({ size: 1 });
    await using fib = await Virtine.load(guest("fib"), { workers, poolSize: 2 });
    const before = vmResources(); // this thread's share (its /dev/kvm handle) stays as it is
    const results = await Promise.all([10, 11, 12, 13].map((n) => fib.invoke(n)));
    expect(results).toEqual([55n, 89n, 144n, 233n]);
    const running = vmResources();
    expect(running.fds).toBeGreaterThan(before.fds); // the worker holds VMs
    expect(running.maps).toBeGreaterThan(before.maps);
    writeFileSync(trigger, "");
    // the worker dies the next time it goes idle: after serving this call, or (on a slow machine,
    // where its idle wait times out first) before it, and then the call fails as the worker's does
    const last = await fib.invoke(20).catch((e) => e);
    if (typeof last === "bigint") expect(last).toBe(6765n);
    else expect(last.code).toBe("WASP_INTERNAL");
    let after = vmResources();
    for (let i = 0; i < 100 && (after.fds !== before.fds || after.maps !== before.maps); i++) {
      await Bun.sleep(20);
      after = vmResources();
    }
    expect(after).toEqual(before);
    rmSync(trigger);
    // the pool goes on with a new worker (once it has seen the old one's error event)
    for (let i = 0; i < 500 && created < 2; i++) await Bun.sleep(20);
    expect(await fib.invoke(21)).toBe(10946n);
    expect(created).toBe(2);
  } finally {
    globalThis.Worker = RealWorker;
    rmSync(dir, { recursive: true, force: true });
  }
}, slow(30_000));
