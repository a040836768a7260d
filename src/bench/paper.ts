// The Wasp paper's experiments (EuroSys'22): fig. 8 (pooled shells and their cleaning), fig. 11
// (fib through the invocation path), table 1 (boot milestones), fig. 3 (fib by mode), fig. 12
// (cold start by image size), and the reset-cost series that chose wasp's reset strategy.
import { Runner } from "../virtine/runner.ts";
import { Shell, type ResetStrategy } from "../shell/shell.ts";
import { Snapshot } from "../snapshot/snapshot.ts";
import { systemKvm } from "../kvm/system.ts";
import { KVM_EXIT } from "../../ffi/kvm.ts";
import { Layout, Port } from "../abi/guest-abi.ts";
import { buildNativeImage, parseImage, MIB } from "../image/image.ts";
import { Header } from "../abi/guest-abi.ts";
import { benchImage as image } from "./guests.ts";
import { summarize, timeSync } from "./stats.ts";
import type { Series } from "./suite.ts";

const idle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The milestone table the self-booting guests fill (docs/guests.md): count at 0x70f8, slots at 0x7100. */
const MILESTONE_COUNT = Layout.INFO + 0xf8;
const MILESTONES = Layout.INFO + 0x100;
const BOOT_STEPS = ["boot_lgdt", "boot_cr0_pe", "boot_jump32", "boot_paging", "boot_lgdt64", "boot_jump64"] as const;

const FIB_N = [0, 5, 10, 15, 20, 25, 30];
/** Emulated (real/protected/CPL0) fib is ~1 µs per instruction here: fewer runs for large n. */
const emulatedRuns = (n: number, runs: number) => (n >= 30 ? 1 : n >= 25 ? Math.min(runs, 2) : n >= 20 ? Math.min(runs, 5) : runs);

function fibTs(n: number): number {
  return n < 2 ? n : fibTs(n - 1) + fibTs(n - 2);
}

/**
 * Runs a raw self-booting guest on a bare shell (not the public path: the milestones are read from
 * its memory) until its exit, passing over its snapshot hypercall; returns the milestone slots.
 */
function runForMilestones(shell: Shell, n: bigint): bigint[] {
  shell.writeInfo([n], 0);
  shell.loadRegisters([n]);
  for (;;) {
    const reason = shell.vcpu.enter();
    if (reason !== KVM_EXIT.IO) throw new Error(`boot guest stopped with exit ${reason}`);
    const port = shell.vcpu.ioPort();
    if (port === Port.EXIT) break;
    if (port !== Port.HYPERCALL) throw new Error(`boot guest used port ${port}`);
    shell.vcpu.setReg("rax", 0n);
    shell.vcpu.markRegsDirty(false);
  }
  const count = Number(shell.mem.readU64(MILESTONE_COUNT));
  const out: bigint[] = [];
  for (let i = 0; i < Math.min(count, 16); i++) out.push(shell.mem.readU64(MILESTONES + i * 8));
  shell.reset();
  return out;
}

/**
 * A native image of `bytes` bytes whose code is one `out 0xfa, al`: it exits at once, touching no
 * memory (no stack), like kvm-floor's image and the paper's 1-byte HLT image. The rest is data.
 */
export function sizedImage(bytes: number) {
  const img = buildNativeImage([0xe6, Port.EXIT], { size: bytes }); // out 0xfa, al
  for (let i = Header.SIZE + 2; i < bytes; i += 64) img[i] = i & 0xff; // populate every page
  return parseImage(img, `size-${bytes}`);
}

/** The smallest native image that exits at once (the header and one `out`). */
export function exitImage() {
  return sizedImage(Header.SIZE + 2);
}

/**
 * kvm-floor's `touch`: writes one byte into each of RDI pages from 4 MiB up, with no stack, so a
 * call dirties exactly that many pages.
 */
function touchImage() {
  // mov rbx, 0x400000 ; l: mov [rbx], dil ; add rbx, 0x1000 ; dec rdi ; jnz l ; out 0xfa, al
  const code = [0x48, 0xc7, 0xc3, 0x00, 0x00, 0x40, 0x00, 0x40, 0x88, 0x3b, 0x48, 0x81, 0xc3, 0x00, 0x10, 0x00, 0x00, 0x48, 0xff, 0xcf, 0x75, 0xf1, 0xe6, Port.EXIT];
  return parseImage(buildNativeImage(code), "touch");
}

function resetSeries(name: string, pages: number, memory: number, strategy: ResetStrategy): Series {
  return {
    name,
    defaultRuns: 300,
    async run(runs) {
      using v = new Runner(touchImage(), { memory, poolSize: 1, resetStrategy: strategy });
      return summarize(name, "us", timeSync(runs, 5, () => {
        v.pool.cleanAll(); // the reset of the previous call...
        v.run([pages]); // ...then a call dirtying `pages` pages, as kvm-floor's *_reset_K
      }));
    },
  };
}

export const PAPER_SERIES: Series[] = [
  {
    // fig. 8 wasp_create_cache: take a pooled shell, run a native image that exits at once, give it back including its reset
    name: "pooled",
    defaultRuns: 1000,
    async run(runs) {
      using v = new Runner(exitImage(), { poolSize: 2 });
      v.ensure(2);
      return summarize("pooled", "us", timeSync(runs, 20, () => {
        v.run();
        v.pool.cleanAll();
      }));
    },
  },
  {
    // the same as the caller sees it: the reset runs afterwards, in idle time, off the caller's path
    name: "pooled_async",
    defaultRuns: 1000,
    async run(runs) {
      using v = new Runner(exitImage(), { poolSize: 2 });
      v.ensure(2);
      const samples: number[] = [];
      for (let i = 0; i < runs + 20; i++) {
        const t = Bun.nanoseconds();
        v.run();
        if (i >= 20) samples.push((Bun.nanoseconds() - t) / 1000);
        await idle();
      }
      if (v.poolStats.cleanedIdle < runs) throw new Error("pooled_async: the shells were not cleaned in idle time");
      return summarize("pooled_async", "us", samples);
    },
  },
  {
    // one reset alone (after a call of the exit-at-once image), and what it allows: resets per second on one thread
    name: "clean",
    reports: ["clean", "clean_throughput"],
    defaultRuns: 1000,
    async run(runs) {
      using v = new Runner(exitImage(), { poolSize: 1 });
      const samples: number[] = [];
      for (let i = 0; i < runs + 20; i++) {
        v.run();
        const t = Bun.nanoseconds();
        v.pool.cleanAll();
        if (i >= 20) samples.push((Bun.nanoseconds() - t) / 1000);
      }
      const clean = summarize("clean", "us", samples);
      const rate = { name: "clean_throughput", unit: "resets/s", n: clean.n, median: Math.round(1e6 / clean.median), p99: Math.round(1e6 / clean.p99) };
      return [clean, rate];
    },
  },
  ...FIB_N.map((n): Series => ({
    // fig. 11 "virtine": a guest that boots itself from real mode to long mode on every call (emulated here)
    name: `fib_${n}_boot`,
    defaultRuns: 20,
    async run(runs) {
      using v = new Runner(image("boot_fib"), { snapshot: false, timeoutMs: 120_000 });
      return summarize(`fib_${n}_boot`, "us", timeSync(emulatedRuns(n, runs), 1, () => void v.run([n])));
    },
  })),
  ...FIB_N.map((n): Series => ({
    // fig. 11 "virtine + snapshot": the same guest, every call resumed from its snapshot taken after boot
    name: `fib_${n}_snapshot`,
    defaultRuns: 20,
    async run(runs) {
      using v = new Runner(image("boot_fib"), { timeoutMs: 120_000 });
      v.run([0]); // the first call boots and takes the snapshot
      return summarize(`fib_${n}_snapshot`, "us", timeSync(emulatedRuns(n, runs), 1, () => void v.run([n])));
    },
  })),
  ...FIB_N.map((n): Series => ({
    // wasp's own: the native fib image in host-built long mode at CPL3, pooled, no snapshot
    name: `fib_${n}_direct`,
    defaultRuns: n >= 30 ? 20 : 200,
    async run(runs) {
      using v = new Runner(image("fib"), { poolSize: 2 });
      v.ensure(1);
      return summarize(`fib_${n}_direct`, "us", timeSync(runs, 3, () => void v.run([n])));
    },
  })),
  ...FIB_N.map((n): Series => ({
    // fig. 11 "native": the same recursive fib in TypeScript, no isolation
    name: `fib_${n}_native`,
    defaultRuns: n >= 30 ? 20 : 200,
    async run(runs) {
      let sink = 0;
      const r = summarize(`fib_${n}_native`, "us", timeSync(runs, 3, () => void (sink += fibTs(n))));
      if (sink < 0) throw new Error("unreachable");
      return r;
    },
  })),
  {
    // table 1: the boot of a self-booting virtine, step by step, in guest rdtsc cycles (emulated modes here)
    name: "boot",
    reports: [...BOOT_STEPS, "boot_total"],
    defaultRuns: 30,
    async run(runs) {
      const kvm = systemKvm();
      using snap = Snapshot.entry(image("boot_fib"), 16 * MIB, kvm.vcpuResetState());
      using shell = new Shell(kvm, snap);
      const steps: number[][] = BOOT_STEPS.map(() => []);
      const totals: number[] = [];
      for (let i = 0; i < runs + 1; i++) {
        const m = runForMilestones(shell, 0n);
        if (i === 0) continue; // warm-up
        for (let s = 0; s < BOOT_STEPS.length; s++) steps[s].push(Number(m[s + 1] - m[s]));
        totals.push(Number(m[6] - m[0]));
      }
      return [...BOOT_STEPS.map((name, s) => summarize(name, "cycles", steps[s])), summarize("boot_total", "cycles", totals)];
    },
  },
  ...([16, 32, 64] as const).map((bits): Series => ({
    // fig. 3: fib(20) by the mode the guest runs in, guest rdtsc cycles (all emulated here)
    name: `mode_${bits}`,
    defaultRuns: 5,
    async run(runs) {
      const kvm = systemKvm();
      using snap = Snapshot.entry(image(`mode${bits}_fib`), 16 * MIB, kvm.vcpuResetState());
      using shell = new Shell(kvm, snap);
      const cycles: number[] = [];
      for (let i = 0; i < runs; i++) {
        const m = runForMilestones(shell, 20n);
        cycles.push(Number(m[1] - m[0]));
      }
      return summarize(`mode_${bits}`, "cycles", cycles);
    },
  })),
  ...[4, 64, 1024, 4096, 16384].map((k): Series => ({
    // fig. 12: cold start by image size (new snapshot, VM, memory, image copy, first run: the pool's miss path)
    name: `image_size_${k}`,
    defaultRuns: k >= 4096 ? 20 : 50,
    async run(runs) {
      const img = sizedImage(k * 1024);
      return summarize(`image_size_${k}`, "us", timeSync(runs, 2, () => {
        using v = new Runner(img, { memory: 32 * MIB });
        v.run();
      }));
    },
  })),
  ...[1, 16, 64, 256].map((k) => resetSeries(`reset_dirty_${k}`, k, 16 * MIB, "dirty-log")),
  ...[1, 16, 64, 256].map((k) => resetSeries(`reset_dirty_${k}_256m`, k, 256 * MIB, "dirty-log")),
  ...[1, 16, 64].map((k) => resetSeries(`reset_cow_${k}`, k, 16 * MIB, "cow")),
];
