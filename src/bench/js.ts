// JavaScript virtines in `wasp bench` (issue 14): the Wasp paper's fig. 14 — a JavaScript engine per
// call, with its workload, a base64 encoder over a fixed string — and Replayable Execution
// (Wang, Ho, Wu, EuroSys'19) measured on a real language runtime: many JS virtines restored from
// one snapshot file, sharing its pages; a fresh process started from the file against one that
// boots the engine; a first call on a runtime snapshotted before against after its warm-up.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseElf } from "../linux/elf.ts";
import { MAX_MEMORY } from "../image/image.ts";
import { LinuxProgram, type LinuxOptions, type LinuxRunResult } from "../virtine/linux.ts";
import { SnapshotFile } from "../snapshot/file.ts";
import { systemKvm } from "../kvm/system.ts";
import { encodeJsCall, enginePath, jsArgs, jsEngine, jsFiles, jsLimits, JS_LOAD_ONLY, JS_PROGRAM } from "../js/engine.ts";
import { executableFile } from "./guests.ts";
import { densityResult, memAvailableKiB, pssKiB, raiseFdLimit, startSeries } from "./density.ts";
import { WARM_CALLS, summarize, withPerCall, type SeriesResult } from "./stats.ts";
import type { Series } from "./suite.ts";

/** The paper's workload: a base64 encoder in JavaScript over a fixed string, one encoding per call. */
export const BASE64_MODULE = `const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const TEXT = "The quick brown fox jumps over the lazy dog; a virtine isolates one call of a function. ".repeat(6);
function encode(s) {
  let out = "";
  let i = 0;
  for (; i + 2 < s.length; i += 3) {
    const n = (s.charCodeAt(i) << 16) | (s.charCodeAt(i + 1) << 8) | s.charCodeAt(i + 2);
    out += ALPHABET[(n >> 18) & 63] + ALPHABET[(n >> 12) & 63] + ALPHABET[(n >> 6) & 63] + ALPHABET[n & 63];
  }
  if (i < s.length) {
    const two = i + 1 < s.length;
    const n = (s.charCodeAt(i) << 16) | (two ? s.charCodeAt(i + 1) << 8 : 0);
    out += ALPHABET[(n >> 18) & 63] + ALPHABET[(n >> 12) & 63] + (two ? ALPHABET[(n >> 6) & 63] : "=") + "=";
  }
  return out;
}
export default () => encode(TEXT);
`;

/** The expected result: the same encoding by the host. */
const TEXT = "The quick brown fox jumps over the lazy dog; a virtine isolates one call of a function. ".repeat(6);
const EXPECTED = JSON.stringify(Buffer.from(TEXT).toString("base64"));
const CALL = encodeJsCall([]);
const WARMUP_CALLS = 20;

let dir: string | undefined;
/** The run's scratch folder (modules, snapshot files, the engine's copy), removed at exit. */
export function workDir(): string {
  if (!dir) {
    const made = mkdtempSync(join(tmpdir(), "wasp-bench-js-"));
    dir = made;
    process.once("exit", () => rmSync(made, { recursive: true, force: true }));
  }
  return dir;
}

/** The workload's module as a file (for the native engine and the command line). */
function moduleFile(): string {
  const path = join(workDir(), "base64.js");
  writeFileSync(path, BASE64_MODULE);
  return path;
}

/** A module the engine runs: its source, its file name, its warm-up inputs. */
export interface BenchModule {
  source: string | Uint8Array;
  name: string;
  /** the inputs of n warm-up calls (each handed to the handler as its one argument) */
  warmup: (n: number) => unknown[];
}

const BASE64: BenchModule = { source: BASE64_MODULE, name: "base64.js", warmup: (n) => Array(n).fill(null) };

/** The engine running a module (the workload by default) as a Linux program on this thread. */
export function jsProgram(opts: LinuxOptions & { warmup?: number } = {}, module: BenchModule = BASE64): { program: LinuxProgram; args: string[] } {
  const { warmup, ...rest } = opts;
  const program = new LinuxProgram(parseElf(jsEngine(), JS_PROGRAM, MAX_MEMORY), { ...rest, files: jsFiles(module.source, warmup ? module.warmup(warmup) : undefined) });
  const limits = jsLimits(program.layout.memory, program.layout.stack[1] - program.layout.stack[0]);
  return { program, args: jsArgs(module.name, limits) };
}

function check(name: string, r: { status: number; stdout: Uint8Array }): void {
  const text = new TextDecoder().decode(r.stdout);
  if (r.status !== 0 || text !== EXPECTED) throw new Error(`${name}: the engine returned status ${r.status}: ${text.slice(0, 120)}`);
}

/** Snapshot files of the workload's engine: compiled (and warmed up by `warmup` calls), one per kind per run. */
const files = new Map<number, string>();
function snapshotFile(warmup: number): string {
  let path = files.get(warmup);
  if (!path) {
    path = join(workDir(), `base64-warm${warmup}.snap`);
    const { program, args } = jsProgram({ poolSize: 1, timeoutMs: 120_000, warmup });
    using _ = program;
    const r = program.run(args, { input: JS_LOAD_ONLY });
    if (r.status !== 0 || !program.snapshotTaken) throw new Error(`the base64 engine's snapshot (warm-up ${warmup}) failed with status ${r.status}: ${new TextDecoder().decode(r.stdout).slice(0, 120)}`);
    program.writeSnapshot(path);
    files.set(warmup, path);
  }
  return path;
}

/** The engine as a file the host can execute (a copy, in the standalone binary, which embeds it). */
export function nativeEngine(): string {
  return executableFile(enginePath, workDir(), "js.elf");
}

/** The engine run natively by itself (`js.elf --bench`), timing its own calls: µs per call. */
function native(name: string, mode: "cold" | "warm", runs: number): SeriesResult {
  const p = Bun.spawnSync([nativeEngine(), "--bench", mode, String(runs), moduleFile(), "[]"], { env: {} });
  if (p.exitCode !== 0) throw new Error(`${name}: the native engine exited with ${p.exitCode}: ${p.stderr.toString()}`);
  const samples = p.stdout.toString().trim().split("\n").map((l) => Number(l) / 1000);
  if (samples.length !== runs || samples.some((s) => !Number.isFinite(s))) throw new Error(`${name}: the native engine gave ${samples.length} samples for ${runs}`);
  return summarize(name, "us", samples);
}

/** Calls of the workload on a pooled program, each reset in idle time outside the timed call. */
function pooled(name: string, runs: number, snapshot: boolean): SeriesResult {
  const { program, args } = jsProgram({ snapshot });
  using _ = program;
  const times: number[] = [];
  // resumed calls are short: warmed up as a server's, the host's code compiled by the JIT (WARM_CALLS)
  const warm = snapshot ? WARM_CALLS : 5;
  let last: LinuxRunResult | undefined;
  for (let i = 0; i < runs + warm; i++) {
    const t = Bun.nanoseconds();
    const r = program.run(args, { input: CALL });
    const us = (Bun.nanoseconds() - t) / 1000;
    check(name, r);
    program.cleanIdle();
    if (i >= warm) times.push(us);
    last = r;
  }
  if (snapshot && !program.snapshotTaken) throw new Error(`${name}: the engine took no snapshot`);
  const result = summarize(name, "us", times);
  return last ? withPerCall(result, last) : result;
}

/** N live JS virtines restored from one snapshot file, each having served a call: PSS and MemAvailable per virtine. */
async function density(n: number, privateMemory: boolean): Promise<SeriesResult[]> {
  const path = snapshotFile(WARMUP_CALLS);
  const limit = raiseFdLimit();
  if (limit < 2 * n + 64) throw new Error(`RLIMIT_NOFILE's hard limit ${limit} is too low for ${n} live VMs (each needs 2 fds)`);
  using file = new SnapshotFile(path, systemKvm());
  {
    using warm = LinuxProgram.fromSnapshotFile(file.loaded, { poolSize: 1, privateMemory });
    check("density", warm.run([], { input: CALL }));
  }
  Bun.gc(true);
  Bun.gc(true);
  const pss0 = pssKiB();
  const avail0 = memAvailableKiB();
  const live: LinuxProgram[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const p = LinuxProgram.fromSnapshotFile(file.loaded, { poolSize: 1, privateMemory });
      live.push(p);
      check("density", p.run([], { input: CALL }));
    }
    for (const p of live) p.cleanIdle();
    Bun.gc(true);
    const tag = privateMemory ? "js_density_private" : "js_density";
    return [densityResult(`${tag}_pss_kib_${n}`, n, (pssKiB() - pss0) / n), densityResult(`${tag}_memavail_kib_${n}`, n, (avail0 - memAvailableKiB()) / n)];
  } finally {
    for (const p of live) p.close();
  }
}

/** The first call of a runtime restored from a file snapshotted after `warmup` calls (its VM made beforehand). */
function firstCall(name: string, warmup: number, runs: number): SeriesResult {
  const path = snapshotFile(warmup);
  using file = new SnapshotFile(path, systemKvm());
  const times: number[] = [];
  for (let i = 0; i < runs + 2; i++) {
    using p = LinuxProgram.fromSnapshotFile(file.loaded, { poolSize: 1 });
    p.ensure(1);
    const t = Bun.nanoseconds();
    const r = p.run([], { input: CALL });
    const us = (Bun.nanoseconds() - t) / 1000;
    check(name, r);
    if (i >= 2) times.push(us);
  }
  return summarize(name, "us", times);
}

export const JS_SERIES: Series[] = [
  {
    // the engine built for the host, natively: runtime and context made, module evaluated, the
    // handler called, everything freed — per call, timed inside the program
    name: "js_native",
    defaultRuns: 200,
    async run(runs) {
      return native("js_native", "cold", runs);
    },
  },
  {
    // the same with the context reused: the call alone
    name: "js_native_warm",
    defaultRuns: 1000,
    async run(runs) {
      return native("js_native_warm", "warm", runs);
    },
  },
  {
    // a virtine per call, the engine started and the module compiled in it every call (no snapshot)
    name: "js_virtine",
    defaultRuns: 100,
    async run(runs) {
      return pooled("js_virtine", runs, false);
    },
  },
  {
    // a virtine per call resumed from the engine's snapshot (module compiled), on a warm shell
    name: "js_virtine_snapshot",
    defaultRuns: 1000,
    async run(runs) {
      return pooled("js_virtine_snapshot", runs, true);
    },
  },
  // private copies first: the shared figure is set beside them
  ...[1, 100, 1000].flatMap((n): Series[] => [
    {
      name: `js_density_private_pss_kib_${n}`,
      reports: [`js_density_private_pss_kib_${n}`, `js_density_private_memavail_kib_${n}`],
      defaultRuns: 1,
      run: () => density(n, true),
    },
    { name: `js_density_pss_kib_${n}`, reports: [`js_density_pss_kib_${n}`, `js_density_memavail_kib_${n}`], defaultRuns: 1, run: () => density(n, false) },
  ]),
  {
    // a fresh `wasp invoke base64.js` process: the engine started, the module compiled, one call
    name: "js_start_boot",
    defaultRuns: 10,
    async run(runs) {
      const path = moduleFile();
      return startSeries("js_start_boot", () => ["invoke", path], runs);
    },
  },
  {
    // the same from the warmed-up snapshot file
    name: "js_start_snapshot_file",
    defaultRuns: 10,
    async run(runs) {
      const path = snapshotFile(WARMUP_CALLS);
      return startSeries("js_start_snapshot_file", () => ["invoke", path], runs);
    },
  },
  {
    // the first call of a runtime snapshotted right after compiling the module
    name: "js_first_call_cold",
    defaultRuns: 30,
    async run(runs) {
      return firstCall("js_first_call_cold", 0, runs);
    },
  },
  {
    // the first call of a runtime snapshotted after WARMUP_CALLS calls of the handler
    name: "js_first_call_warm",
    defaultRuns: 30,
    async run(runs) {
      return firstCall("js_first_call_warm", WARMUP_CALLS, runs);
    },
  },
];

/** Where the JS series' targets are ratios: beside what. */
export const JS_BESIDE: Readonly<Record<string, string>> = {
  js_native_warm: "js_native",
  js_virtine: "js_native",
  js_virtine_snapshot: "js_native",
  ...Object.fromEntries([1, 100, 1000].map((n) => [`js_density_pss_kib_${n}`, `js_density_private_pss_kib_${n}`])),
  js_start_snapshot_file: "js_start_boot",
  js_first_call_warm: "js_first_call_cold",
};
