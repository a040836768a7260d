// wasp's microbenchmark series. Names are stable: CI jobs compare them against a baseline, and
// docs/benchmarks.md sets them beside kvm-floor's series of the same name.
import { Runner } from "../virtine/runner.ts";
import { benchImage as image } from "./guests.ts";
import { Shell } from "../shell/shell.ts";
import { Snapshot } from "../snapshot/snapshot.ts";
import { systemKvm } from "../kvm/system.ts";
import { KVM_EXIT } from "../../ffi/kvm.ts";
import { Port } from "../abi/guest-abi.ts";
import { MIB, imageFootprint } from "../image/image.ts";
import { summarize, timeAsync, timeSync, type SeriesResult } from "./stats.ts";
import { PAPER_SERIES, exitImage } from "./paper.ts";
import { DENSITY_SERIES } from "./density.ts";
import { API_SERIES } from "./api.ts";
import { LINUX_SERIES } from "./linux.ts";
import { HOST_SERIES } from "./host.ts";
import { JS_BESIDE, JS_SERIES } from "./js.ts";
import { JS_HEAVY_BESIDE, JS_HEAVY_SERIES } from "./js-heavy.ts";
import { HTTP_BESIDE, HTTP_SERIES } from "./http.ts";
import { HTTP_PROGRAM_BESIDE, HTTP_PROGRAM_SERIES } from "./http-program.ts";
import { AES_BESIDE, AES_SERIES } from "./aes.ts";
import { AES_OPENSSL_BESIDE, AES_OPENSSL_SERIES } from "./openssl.ts";
import { PY_BESIDE, PY_SERIES } from "./python.ts";

export interface BenchOptions {
  /** iterations per series; each series has its own default */
  runs?: number;
  filter?: RegExp;
}

export interface Series {
  name: string;
  /** the names of the results it reports, when not just `name` (--filter and --list see these) */
  reports?: readonly string[];
  defaultRuns: number;
  /** one series may report several results (e.g. the boot milestones) */
  run(runs: number): Promise<SeriesResult | SeriesResult[]>;
}

const HYPERCALLS_PER_RUN = 100;

const SERIES: Series[] = [
  {
    // a fresh VM with its memory, vCPU and CPUID, a native image that exits at once, run to its exit and torn down
    name: "create",
    defaultRuns: 200,
    async run(runs) {
      const noop = exitImage();
      return summarize("create", "us", timeSync(runs, 5, () => {
        using v = new Runner(noop, { oneShot: true });
        v.run();
      }));
    },
  },
  {
    // a warm VM: the image reloaded, the info page and every general register reset, run to its
    // exit — kvm-floor's vmrun step by step (no memory reset: that is `pooled`)
    name: "vmrun",
    defaultRuns: 1000,
    async run(runs) {
      const noop = exitImage();
      const kvm = systemKvm();
      using snap = Snapshot.entry(noop, 16 * MIB, kvm.vcpuResetState());
      using shell = new Shell(kvm, snap, { oneShot: true }); // no dirty log: kvm-floor's vmrun has none
      return summarize("vmrun", "us", timeSync(runs, 20, () => {
        shell.mem.write(noop.loadAddr, noop.bytes);
        shell.writeInfo([], imageFootprint(noop));
        shell.loadRegisters([]);
        if (shell.vcpu.enter() !== KVM_EXIT.IO || shell.vcpu.ioPort() !== Port.EXIT) throw new Error("vmrun: noop did not exit");
      }));
    },
  },
  {
    // one hypercall round trip, from a run that makes HYPERCALLS_PER_RUN of them
    name: "hypercall",
    defaultRuns: 300,
    async run(runs) {
      using v = new Runner(image("calls"));
      const per = timeSync(runs, 5, () => {
        const r = v.run([HYPERCALLS_PER_RUN]);
        if (r.exits !== HYPERCALLS_PER_RUN + 1) throw new Error(`calls guest took ${r.exits} exits`);
      });
      return summarize("hypercall", "us", per.map((t) => t / HYPERCALLS_PER_RUN));
    },
  },
  {
    // what a TypeScript user would use instead: a Bun Worker to its first message, terminated
    name: "worker",
    defaultRuns: 50,
    async run(runs) {
      const url = URL.createObjectURL(new Blob(["self.postMessage(0)"], { type: "application/javascript" }));
      try {
        return summarize("worker", "us", await timeAsync(runs, 2, async () => {
          const w = new Worker(url);
          await new Promise((resolve) => (w.onmessage = resolve));
          w.terminate();
        }));
      } finally {
        URL.revokeObjectURL(url);
      }
    },
  },
  {
    // a process: spawn /bin/true and wait for its exit
    name: "process",
    defaultRuns: 50,
    async run(runs) {
      return summarize("process", "us", timeSync(runs, 2, () => {
        const p = Bun.spawnSync(["/bin/true"]);
        if (p.exitCode !== 0) throw new Error("/bin/true failed");
      }));
    },
  },
];

SERIES.splice(3, 0, ...PAPER_SERIES, ...DENSITY_SERIES, ...API_SERIES, ...LINUX_SERIES, ...HOST_SERIES, ...JS_SERIES, ...JS_HEAVY_SERIES, ...PY_SERIES, ...HTTP_SERIES, ...HTTP_PROGRAM_SERIES, ...AES_SERIES, ...AES_OPENSSL_SERIES);

/** Every result name the suite reports, in order: what --filter matches and --list prints. */
export const SERIES_NAMES = SERIES.flatMap(reportsOf);

function reportsOf(s: Series): readonly string[] {
  return s.reports ?? [s.name];
}

/** The result names a filter selects. */
export function selectSeries(filter: RegExp | undefined): string[] {
  return filter ? SERIES_NAMES.filter((n) => filter.test(n)) : SERIES_NAMES;
}

/**
 * What the table sets a series beside, where its target is a ratio: a kvm-floor series of the same
 * run ("floor:NAME"; a series with a floor namesake is set beside it without being listed here) or
 * another wasp series run before it.
 */
export const BESIDE: Readonly<Record<string, string>> = {
  pooled: "floor:vmrun",
  pooled_async: "floor:vmrun",
  fib_0_snapshot: "floor:vmrun",
  fib_0_direct: "floor:vmrun",
  ...Object.fromEntries([1, 16, 64].flatMap((k) => [
    [`reset_dirty_${k}`, `floor:dirty_reset_${k}`],
    [`reset_cow_${k}`, `floor:cow_reset_${k}`],
    [`restore_file_${k}`, `floor:dirty_reset_${k}`],
  ])),
  ...Object.fromEntries([1, 16, 64, 256].map((k) => [`reset_dirty_${k}_256m`, `reset_dirty_${k}`])),
  start_snapshot_file: "start_boot",
  start_noop: "start_bun_hello",
  start_bun_kvm: "start_bun_hello",
  invoke_sync: "floor:vmrun",
  invoke_async: "invoke_sync",
  invoke_record: "invoke_hypercalls",
  linux_call_record: "linux_call",
  invoke_async_throughput: "invoke_async_throughput_1",
  thread_throughput: "thread_throughput_1",
  handoff_postmessage: "handoff_atomics",
  linux_syscall: "floor:syscall",
  linux_boot: "linux_spawn_native",
  linux_call_snapshot: "linux_spawn_native",
  host_function: "hypercall",
  host_function_worker: "host_function",
  ...JS_BESIDE,
  ...JS_HEAVY_BESIDE,
  ...PY_BESIDE,
  ...HTTP_BESIDE,
  ...HTTP_PROGRAM_BESIDE,
  ...AES_BESIDE,
  ...AES_OPENSSL_BESIDE,
};

/**
 * Runs every series that reports a result the filter selects, and yields those results only (a
 * series measuring several things runs once for any of them).
 */
export async function* runSuite(opts: BenchOptions = {}): AsyncGenerator<SeriesResult> {
  const wanted = new Set(selectSeries(opts.filter));
  for (const s of SERIES) {
    if (!reportsOf(s).some((n) => wanted.has(n))) continue;
    const r = await s.run(opts.runs ?? s.defaultRuns);
    for (const one of Array.isArray(r) ? r : [r]) {
      if (!reportsOf(s).includes(one.name)) throw new Error(`bench series ${s.name} reported ${one.name}, which it does not declare`);
      if (wanted.has(one.name)) yield one;
    }
  }
}
