// Python virtines in `wasp bench` (issue 24.2): Replayable Execution's experiment on a real
// runtime, Debian's unmodified python3, beside the same runtime natively in the same run. The
// workload: a handler that imports what a small service does (json, re, collections, statistics)
// and summarizes a text. `py_native` starts python3 for one call, as a fresh process would serve a
// request; `py_virtine` boots the interpreter in a virtine for every call; `py_virtine_snapshot`
// resumes the warm interpreter (imported, warmed up) on a warm VM; `py_start_snapshot_file` is a
// fresh `wasp invoke h.snap` process; the density pair, N live virtines restored from one snapshot
// file sharing its pages against N with private copies. Without a python3 the series report
// nothing, with a note saying what to install: the bench runs on a machine with only node and npm.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseElf } from "../linux/elf.ts";
import { MAX_MEMORY } from "../image/image.ts";
import { LinuxProgram, type LinuxRunResult } from "../virtine/linux.ts";
import { SnapshotFile } from "../snapshot/file.ts";
import { systemKvm } from "../kvm/system.ts";
import { encodeJsCall, JS_LOAD_ONLY } from "../js/engine.ts";
import { decodePyReply, findPython, pyArgs, pyFiles, PY_DEFAULT_MEMORY, PY_DEFAULT_STACK, PY_PROGRAM, type PythonInstall } from "../python/runtime.ts";
import { densityResult, memAvailableKiB, pssKiB, raiseFdLimit, startSeries } from "./density.ts";
import { timeSync, WARM_CALLS, summarize, withPerCall, type SeriesResult } from "./stats.ts";
import type { Series } from "./suite.ts";

/** The workload: a module a small service might be, its imports made at load. */
export const PY_MODULE = `import json, re, collections, statistics
WORDS = re.compile(r"[a-z]+")
def handler(event):
    words = WORDS.findall(event["text"].lower())
    top = collections.Counter(words).most_common(3)
    return {"n": len(words), "top": top, "mean": statistics.mean(len(w) for w in words)}
`;
const EVENT = { text: "The quick brown fox jumps over the lazy dog; a virtine isolates one call of a function. ".repeat(6) };
const NAME = "words.py";
const CALL = encodeJsCall([EVENT]);
const WARMUP = [EVENT, EVENT];

/** The result the handler must give (computed here, as python3 would: the words, the top three, the mean length). */
function expected(): unknown {
  const words = EVENT.text.toLowerCase().match(/[a-z]+/g) ?? [];
  const counts = new Map<string, number>();
  for (const w of words) counts.set(w, (counts.get(w) ?? 0) + 1);
  // Counter.most_common: by count, ties in first-seen order (a stable sort of insertion order)
  const top = [...counts].sort((a, b) => b[1] - a[1]).slice(0, 3);
  return { n: words.length, top, mean: words.reduce((n, w) => n + w.length, 0) / words.length };
}
const EXPECTED = JSON.stringify(expected());

let dir: string | undefined;
/** The run's scratch folder (the module, its native wrapper, snapshot files), removed at exit. */
function workDir(): string {
  if (!dir) {
    const made = mkdtempSync(join(tmpdir(), "wasp-bench-py-"));
    dir = made;
    process.once("exit", () => rmSync(made, { recursive: true, force: true }));
  }
  return dir;
}

/**
 * The python3 the series run: PATH's, else one of `fallbacks` (PATH's may be a pyenv shim, which a
 * virtine cannot run; Debian's is /usr/bin/python3); or why there is none, in one line.
 */
export function benchPython(envPath = process.env.PATH ?? "", fallbacks: readonly string[] = ["/usr/bin/python3"]): PythonInstall | { missing: string } {
  try {
    return findPython(undefined, envPath);
  } catch (e) {
    for (const f of fallbacks.filter((f) => existsSync(f))) {
      try {
        return findPython(f);
      } catch {
        // the first reason is the one to give
      }
    }
    return { missing: `${e instanceof Error ? e.message : String(e)}` };
  }
}

function program(py: PythonInstall, opts: { snapshot?: boolean; warmup?: unknown[]; poolSize?: number; timeoutMs?: number } = {}): LinuxProgram {
  const { warmup, ...rest } = opts;
  return new LinuxProgram(parseElf(py.bytes, PY_PROGRAM, MAX_MEMORY), { memory: PY_DEFAULT_MEMORY, stackSize: PY_DEFAULT_STACK, ...rest, files: pyFiles(PY_MODULE, warmup), dirs: py.dirs, env: py.env, origin: py.path });
}

function check(name: string, r: LinuxRunResult): void {
  const value = decodePyReply(r, { maxOutput: 1 << 20, fileName: NAME, stderr: r.stderr });
  if (JSON.stringify(value) !== EXPECTED) throw new Error(`${name}: the handler returned ${JSON.stringify(value).slice(0, 120)}, not ${EXPECTED.slice(0, 120)}`);
}

/** The module's snapshot file: imported and warmed up, made once per run. */
let snapshotPath: string | undefined;
function snapshotFile(py: PythonInstall): string {
  if (!snapshotPath) {
    const path = join(workDir(), "words.snap");
    using p = program(py, { poolSize: 1, timeoutMs: 120_000, warmup: WARMUP });
    const r = p.run(pyArgs(NAME), { input: JS_LOAD_ONLY });
    if (r.status !== 0 || !p.snapshotTaken) throw new Error(`the Python module's snapshot failed with status ${r.status}: ${new TextDecoder().decode(r.stderr).slice(-200)}`);
    p.writeSnapshot(path);
    snapshotPath = path;
  }
  return snapshotPath;
}

/** python3 started for one call of the handler, as a fresh process: the interpreter, the imports, the call, the result printed. */
function native(py: PythonInstall, runs: number): SeriesResult {
  const script = join(workDir(), "words_native.py");
  writeFileSync(script, `${PY_MODULE}\nimport sys\nsys.stdout.write(json.dumps(handler(json.loads(sys.argv[1]))))\n`);
  const argv = [py.path, "-s", "-B", script, JSON.stringify(EVENT)];
  // the same environment as the virtine's interpreter (PYTHONHOME, PYTHONHASHSEED=0)
  const env = py.env;
  return summarize(
    "py_native",
    "us",
    timeSync(runs, 1, () => {
      const p = Bun.spawnSync(argv, { env });
      if (p.exitCode !== 0 || JSON.stringify(JSON.parse(p.stdout.toString() || "null")) !== EXPECTED) throw new Error(`py_native: python3 exited with ${p.exitCode}: ${p.stdout.toString().slice(0, 120)}${p.stderr.toString().slice(-200)}`);
    }),
  );
}

/** Calls of the handler on a pooled program, each reset in idle time outside the timed call. */
function pooled(py: PythonInstall, name: string, runs: number, snapshot: boolean): SeriesResult {
  using p = program(py, { snapshot, warmup: snapshot ? WARMUP : undefined, poolSize: 1, timeoutMs: 120_000 });
  const args = pyArgs(NAME);
  const times: number[] = [];
  const warm = snapshot ? WARM_CALLS : 1;
  let last: LinuxRunResult | undefined;
  for (let i = 0; i < runs + warm; i++) {
    const t = Bun.nanoseconds();
    const r = p.run(args, { input: CALL });
    const us = (Bun.nanoseconds() - t) / 1000;
    check(name, r);
    p.cleanIdle();
    if (i >= warm) times.push(us);
    last = r;
  }
  if (snapshot && !p.snapshotTaken) throw new Error(`${name}: the interpreter took no snapshot`);
  const result = summarize(name, "us", times);
  return last ? withPerCall(result, last) : result;
}

/** N live Python virtines restored from one snapshot file, each having served a call: PSS and MemAvailable per virtine. */
async function density(py: PythonInstall, n: number, privateMemory: boolean): Promise<SeriesResult[]> {
  const tag = privateMemory ? "py_density_private" : "py_density";
  const names = [`${tag}_pss_kib_${n}`, `${tag}_memavail_kib_${n}`];
  const path = snapshotFile(py);
  const limit = raiseFdLimit();
  if (limit < 2 * n + 64) throw new Error(`RLIMIT_NOFILE's hard limit ${limit} is too low for ${n} live VMs (each needs 2 fds)`);
  using file = new SnapshotFile(path, systemKvm());
  // private copies hold the file's stored pages each (measured: MemAvailable falls by ~1.05x
  // them a virtine): refused up front where they would not fit — a figure the machine cannot give
  // is a note, not an OOM kill of the bench. (The kernel is slow to give back what 1,000 VMs'
  // shadow tables took: a second round in one process may find less; run the pair by itself.)
  const need = privateMemory ? (n * file.info.populatedPages * 4096 * 1.1) / 1024 : 0;
  if (need > memAvailableKiB()) return names.map((name) => ({ name, unit: "KiB", n: 0, median: 0, p99: 0, note: `skipped: ${n} private copies need ~${Math.ceil(need / 1024)} MiB, more than the ${Math.floor(memAvailableKiB() / 1024)} MiB available` }));
  const dirs = py.dirs;
  {
    using warm = LinuxProgram.fromSnapshotFile(file.loaded, { poolSize: 1, privateMemory, dirs });
    check("density", warm.run([], { input: CALL }));
  }
  Bun.gc(true);
  Bun.gc(true);
  const pss0 = pssKiB();
  const avail0 = memAvailableKiB();
  const live: LinuxProgram[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const p = LinuxProgram.fromSnapshotFile(file.loaded, { poolSize: 1, privateMemory, dirs });
      live.push(p);
      check("density", p.run([], { input: CALL }));
    }
    for (const p of live) p.cleanIdle();
    Bun.gc(true);
    return [densityResult(names[0], n, (pssKiB() - pss0) / n), densityResult(names[1], n, (avail0 - memAvailableKiB()) / n)];
  } finally {
    for (const p of live) p.close();
  }
}

/** Finds the python3 the series run (benchPython, or a test's). */
type FindPython = () => PythonInstall | { missing: string };

/** A series that needs python3: its note says what to install where there is none. */
function withPython(find: FindPython, name: string, reports: string[] | undefined, defaultRuns: number, run: (py: PythonInstall, runs: number) => SeriesResult | Promise<SeriesResult | SeriesResult[]>): Series {
  return {
    name,
    ...(reports && { reports }),
    defaultRuns,
    async run(runs) {
      const py = find();
      if ("missing" in py) return (reports ?? [name]).map((n) => ({ name: n, unit: n.includes("_kib_") ? "KiB" : "us", n: 0, median: 0, p99: 0, note: `skipped: ${py.missing}` }));
      return run(py, runs);
    },
  };
}

/** The Python series, the density pair for `n` live virtines (private copies first: the shared figure is set beside them). */
export function pySeries(find: FindPython = () => benchPython(), n = 1000): Series[] {
  return [
    withPython(find, "py_native", undefined, 20, native),
    withPython(find, "py_virtine", undefined, 10, (py, runs) => pooled(py, "py_virtine", runs, false)),
    withPython(find, "py_virtine_snapshot", undefined, 300, (py, runs) => pooled(py, "py_virtine_snapshot", runs, true)),
    // a fresh `wasp invoke words.snap` process: the file loaded, one call from it
    withPython(find, "py_start_snapshot_file", undefined, 10, (py, runs) => {
      const path = snapshotFile(py);
      return startSeries("py_start_snapshot_file", () => ["invoke", path, "--python", py.path, JSON.stringify(EVENT)], runs);
    }),
    withPython(find, `py_density_private_pss_kib_${n}`, [`py_density_private_pss_kib_${n}`, `py_density_private_memavail_kib_${n}`], 1, (py) => density(py, n, true)),
    withPython(find, `py_density_pss_kib_${n}`, [`py_density_pss_kib_${n}`, `py_density_memavail_kib_${n}`], 1, (py) => density(py, n, false)),
  ];
}

const DENSITY_N = 1000;
export const PY_SERIES: Series[] = pySeries(undefined, DENSITY_N);

/** Where the Python series' targets are ratios: beside what. */
export const PY_BESIDE: Readonly<Record<string, string>> = {
  py_virtine: "py_native",
  py_virtine_snapshot: "py_native",
  py_start_snapshot_file: "py_native",
  [`py_density_pss_kib_${DENSITY_N}`]: `py_density_private_pss_kib_${DENSITY_N}`,
};
