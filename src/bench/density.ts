// Replayable execution (Wang, Ho, Wu, EuroSys'19) measured: many virtines restored from one
// `inittable` snapshot file, sharing the file's pages, against the same with private copies; the
// start of a fresh `wasp invoke` process that boots and initializes against one that starts from
// the file, and wasp's own process start beside a compiled Bun hello world's; and calls of a
// file-restored virtine that dirty K pages.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import * as libc from "../../ffi/libc.ts";
import { Runner } from "../virtine/runner.ts";
import { SnapshotFile, writeSnapshotFile } from "../snapshot/file.ts";
import { systemKvm } from "../kvm/system.ts";
import { benchImage as image, embeddedBench } from "./guests.ts";
import { summarize, timeSync, type SeriesResult } from "./stats.ts";
import bunKvmSource from "./bun-kvm.js" with { type: "file" };
import type { Series } from "./suite.ts";

const idle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** One inittable snapshot file per bench run, made on first use (its initialization takes ~1 s). */
let made: { dir: string; path: string } | undefined;
function snapshotFile(): string {
  if (!made) {
    const dir = mkdtempSync(join(tmpdir(), "wasp-bench-"));
    const path = join(dir, "inittable.snap");
    const img = image("inittable");
    using v = new Runner(img, { poolSize: 1, timeoutMs: 120_000 });
    v.run([0]);
    if (!v.snapshotTaken) throw new Error("inittable took no snapshot");
    writeSnapshotFile(path, v.pool.snapshot, img.bytes, systemKvm());
    made = { dir, path };
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  }
  return made.path;
}

function kib(field: RegExp, text: string): number {
  const m = field.exec(text);
  if (!m) throw new Error(`no ${field} in /proc`);
  return Number(m[1]);
}
export const pssKiB = () => kib(/^Pss:\s+(\d+) kB/m, readFileSync("/proc/self/smaps_rollup", "utf8"));
export const memAvailableKiB = () => kib(/^MemAvailable:\s+(\d+) kB/m, readFileSync("/proc/meminfo", "utf8"));

/** Raises RLIMIT_NOFILE as far as the hard limit allows; returns the soft limit in force. */
export function raiseFdLimit(): number {
  const { hard } = libc.getrlimit(libc.RLIMIT_NOFILE);
  libc.setrlimit(libc.RLIMIT_NOFILE, hard, hard);
  return Number(hard);
}

/**
 * N live virtines restored from the file, each having served one call (and been reset): the
 * process's PSS and the system's MemAvailable, per virtine.
 */
async function density(n: number, privateMemory: boolean): Promise<SeriesResult[]> {
  const path = snapshotFile();
  const limit = raiseFdLimit();
  if (limit < 2 * n + 64) throw new Error(`RLIMIT_NOFILE's hard limit ${limit} is too low for ${n} live VMs (each needs 2 fds)`);
  using file = new SnapshotFile(path, systemKvm());
  // one virtine made and closed first, so that one-time costs (code, caches) are not counted
  {
    using warm = new Runner(file.restore(), { poolSize: 1, privateMemory });
    warm.run([0, 1]);
  }
  Bun.gc(true);
  Bun.gc(true);
  const pss0 = pssKiB();
  const avail0 = memAvailableKiB();
  const virtines: Runner[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const v = new Runner(file.restore(), { poolSize: 1, privateMemory });
      virtines.push(v);
      v.run([i, 1]);
    }
    await idle(); // the resets, in idle time
    Bun.gc(true);
    const pss = (pssKiB() - pss0) / n;
    const avail = (avail0 - memAvailableKiB()) / n;
    const tag = privateMemory ? "density_private" : "density";
    const one = (name: string, v: number): SeriesResult => densityResult(name, n, v);
    return [one(`${tag}_pss_kib_${n}`, pss), one(`${tag}_memavail_kib_${n}`, avail)];
  } finally {
    for (const v of virtines) v.close();
  }
}

/**
 * One density figure: KiB per virtine, measured as a difference of whole-process figures. A
 * difference below zero is the machine's noise, not a negative size (seen at N = 1): it is reported
 * as 0 KiB, "below noise".
 */
export function densityResult(name: string, n: number, kib: number): SeriesResult {
  const v = Math.round(kib * 10) / 10;
  return v < 0 ? { name, unit: "KiB", n, median: 0, p99: 0, note: "below noise" } : { name, unit: "KiB", n, median: v, p99: v };
}

/** The command that starts this wasp: the compiled binary itself, or bun with the CLI's source. */
function waspCommand(): string[] {
  return Bun.main.startsWith("/$bunfs") ? [process.execPath] : [process.execPath, join(import.meta.dir, "../cli/main.ts")];
}

export function startSeries(name: string, args: () => string[], runs: number): SeriesResult {
  const cmd = waspCommand();
  return spawnSeries(name, () => [...cmd, ...args()], runs);
}

/** A process spawned and waited for, `runs` times (one untimed first): wall time per start. */
function spawnSeries(name: string, argv: () => string[], runs: number): SeriesResult {
  return summarize(name, "us", timeSync(runs, 1, () => {
    const p = Bun.spawnSync(argv());
    if (p.exitCode !== 0) throw new Error(`${name}: ${argv()[0]} exited with ${p.exitCode}: ${p.stderr.toString()}`);
  }));
}

/**
 * The Bun that runs this wasp, as a command: process.execPath under `bun run`; in the standalone
 * binary (which embeds Bun's runtime, so execPath is wasp itself) the repository's
 * node_modules/.bin/bun beside dist/, else the first bun on PATH — either only if its version is
 * this process's Bun.version. Otherwise why not.
 */
function sameBun(): { path: string } | { missing: string } {
  if (!Bun.main.startsWith("/$bunfs")) return { path: process.execPath };
  const candidates = [join(dirname(process.execPath), "../node_modules/.bin/bun"), Bun.which("bun")].filter((p): p is string => p !== null && existsSync(p));
  const seen: string[] = [];
  for (const path of candidates) {
    const p = Bun.spawnSync([path, "--version"]);
    const version = p.exitCode === 0 ? p.stdout.toString().trim() : `exit ${p.exitCode}`;
    if (version === Bun.version) return { path };
    seen.push(`${path} is ${version}`);
  }
  return { missing: `no bun ${Bun.version} to build it with (${seen.length ? seen.join("; ") : "none beside dist/ or on PATH"})` };
}

/**
 * A program compiled with `bun build --compile` by the Bun that runs this wasp (each built once per
 * bench run, in a temporary folder removed at exit): the hello world, the floor of any standalone
 * Bun program's start; bun-kvm.js, the floor of one that runs a VM through bun:ffi.
 */
const compiled = new Map<string, { path: string } | { missing: string }>();
function compiledBun(name: string, source: string): { path: string } | { missing: string } {
  const done = compiled.get(name);
  if (done) return done;
  const bun = sameBun();
  if ("missing" in bun) {
    compiled.set(name, bun);
    return bun;
  }
  const dir = mkdtempSync(join(tmpdir(), `wasp-bench-${name}-`));
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, `${name}.js`), source);
  const out = join(dir, name);
  const p = Bun.spawnSync([bun.path, "build", "--compile", join(dir, `${name}.js`), "--outfile", out], { cwd: dir });
  const result = p.exitCode === 0 ? { path: out } : { missing: `bun build --compile failed (exit ${p.exitCode}): ${p.stderr.toString().trim().split("\n").pop()}` };
  compiled.set(name, result);
  return result;
}

/** A start series of a compiled Bun program (its note instead when there is no same Bun to build it). */
function compiledSeries(name: string, program: string, source: () => string, runs: number): SeriesResult {
  const bin = compiledBun(program, source());
  if ("missing" in bin) return { name, unit: "us", n: 0, median: 0, p99: 0, note: bin.missing };
  return spawnSeries(name, () => [bin.path], runs);
}

export const DENSITY_SERIES: Series[] = [
  ...[1, 10, 100, 1000].flatMap((n): Series[] => [
    { name: `density_pss_kib_${n}`, reports: [`density_pss_kib_${n}`, `density_memavail_kib_${n}`], defaultRuns: 1, run: () => density(n, false) },
    {
      name: `density_private_pss_kib_${n}`,
      reports: [`density_private_pss_kib_${n}`, `density_private_memavail_kib_${n}`],
      defaultRuns: 1,
      run: () => density(n, true),
    },
  ]),
  {
    // a fresh `wasp invoke` process for inittable that boots and initializes (~1 s of computation)
    name: "start_boot",
    defaultRuns: 5,
    async run(runs) {
      return startSeries("start_boot", () => ["invoke", embeddedBench("inittable"), "5"], runs);
    },
  },
  {
    // the same from the snapshot file: no initialization
    name: "start_snapshot_file",
    defaultRuns: 20,
    async run(runs) {
      const path = snapshotFile();
      return startSeries("start_snapshot_file", () => ["invoke", path, "5"], runs);
    },
  },
  {
    // the yardstick of start_noop: a hello world compiled by the same Bun, spawned the same way
    name: "start_bun_hello",
    defaultRuns: 20,
    async run(runs) {
      return compiledSeries("start_bun_hello", "hello", () => 'console.log("hello, world");\n', runs);
    },
  },
  {
    // the floor under start_noop: the least a compiled Bun program does to run one call in a VM
    // through bun:ffi (src/bench/bun-kvm.js: libc, /dev/kvm, a VM, a vCPU, one KVM_RUN to an OUT)
    name: "start_bun_kvm",
    defaultRuns: 20,
    async run(runs) {
      return compiledSeries("start_bun_kvm", "bun-kvm", () => readFileSync(bunKvmSource, "utf8"), runs);
    },
  },
  {
    // what a `wasp invoke` process costs by itself: start-up, a trivial virtine, exit
    name: "start_noop",
    defaultRuns: 20,
    async run(runs) {
      return startSeries("start_noop", () => ["invoke", "noop"], runs);
    },
  },
  ...[1, 16, 64].map((k): Series => ({
    // one call of a virtine restored from the file, dirtying k pages, its reset included
    name: `restore_file_${k}`,
    defaultRuns: 300,
    async run(runs) {
      using v = Runner.fromSnapshotFile(snapshotFile(), { poolSize: 1 });
      let i = 0;
      return summarize(`restore_file_${k}`, "us", timeSync(runs, 5, () => {
        v.pool.cleanAll();
        v.run([i++, k]);
      }));
    },
  })),
];
