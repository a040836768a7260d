// `wasp bench`: the microbenchmark suite as a table or JSON lines, optionally beside kvm-floor,
// drawn as a chart (--svg) and compared with a previous run (--baseline, for CI).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import floorBin from "../../dist/floor.bin" with { type: "file" };
import { BadArgsError } from "../errors.ts";
import { BESIDE, runSuite, selectSeries } from "../bench/suite.ts";
import type { SeriesResult } from "../bench/stats.ts";
import { BenchEmptyError, BenchRegressionError, checkCompared, compare, formatComparison, parseBaseline } from "../bench/baseline.ts";
import { renderSvg } from "../bench/svg.ts";
import { checkWritable, parseCount } from "./parse.ts";
import { err, out } from "./output.ts";

export interface BenchFlags {
  json?: boolean;
  /** print the series names (those --filter selects) and run nothing */
  list?: boolean;
  runs?: string;
  filter?: string;
  /** true: the yardstick wasp carries (tools/floor.c); a path: another floor binary */
  floor?: string | boolean;
  rounds?: string;
  /** write a chart of the run to this file */
  svg?: string;
  /** a previous `--json` output to compare the run with */
  baseline?: string;
  /** how much worse than the baseline (percent) a series may get before it counts as a regression */
  threshold?: string;
}

const DEFAULT_THRESHOLD_PCT = 20;
/** Rounds with --baseline when --rounds is not given. */
const BASELINE_ROUNDS = 3;

export async function benchCommand(flags: BenchFlags): Promise<void> {
  const runs = flags.runs === undefined ? undefined : parseCount(flags.runs, "--runs");
  if (runs === 0) throw new BadArgsError("--runs must be at least 1");
  // against a baseline a single round flapped (once in seven runs): the median of three by default
  const rounds = flags.rounds === undefined ? (flags.baseline === undefined ? 1 : BASELINE_ROUNDS) : parseCount(flags.rounds, "--rounds");
  if (rounds === 0) throw new BadArgsError("--rounds must be at least 1");
  let filter: RegExp | undefined;
  if (flags.filter !== undefined) {
    try {
      filter = new RegExp(flags.filter);
    } catch {
      throw new BadArgsError(`--filter "${flags.filter}" is not a regular expression`);
    }
  }
  const selected = selectSeries(filter);
  if (selected.length === 0) throw new BenchEmptyError(`--filter "${flags.filter}" selects no series (wasp bench --list shows their names)`);
  if (flags.list) {
    out(`${selected.join("\n")}\n`);
    return;
  }
  const threshold = flags.threshold === undefined ? DEFAULT_THRESHOLD_PCT : parseThreshold(flags.threshold);
  if (flags.threshold !== undefined && flags.baseline === undefined) throw new BadArgsError("--threshold needs --baseline");
  const floor = flags.floor === undefined || flags.floor === false ? undefined : flags.floor === true ? bundledFloor() : flags.floor;
  // --runs N shortens wasp's own floor alike (its vmrun series makes 1000 runs; floor.bin [D] makes
  // 1/D of each series' runs); another floor binary runs as it is
  const floorArgs = flags.floor === true && runs !== undefined ? [String(Math.max(1, Math.floor(1000 / Math.max(1, runs))))] : [];
  // Both files are checked before the run, which can take minutes: a typo fails at once.
  const baseline = flags.baseline === undefined ? undefined : readBaseline(flags.baseline, filter);
  if (flags.svg !== undefined) checkWritable(flags.svg, "--svg");
  // Each round runs the floor (if given) and then wasp's series right after it, so that both see
  // the same moment of a shared, noisy machine; several rounds report the median of the rounds.
  const ours = new Map<string, SeriesResult[]>();
  const floors = new Map<string, SeriesResult[]>();
  const add = (m: Map<string, SeriesResult[]>, r: SeriesResult) => m.set(r.name, [...(m.get(r.name) ?? []), r]);
  const json = flags.json ?? false;
  if (!json) {
    const row = ["series".padEnd(COL), "unit".padEnd(7), "n".padStart(6), "median".padStart(10), "p99".padStart(10)];
    out(`${row.join(" ")}  ${"beside".padEnd(COL)} ${"median".padStart(10)} ${"ratio".padStart(6)}\n`);
  }
  for (let round = 0; round < rounds; round++) {
    if (floor) for (const f of runFloor(floor, floorArgs).values()) add(floors, f);
    for await (const r of runSuite({ runs, filter })) {
      add(ours, r);
      if (rounds === 1) emit(r, beside(r.name, latest(ours), latest(floors)), json);
    }
  }
  // the run's result: one round's series, or the median round of each
  const results = [...ours.values()].map(combine);
  const floorResults = new Map([...floors].map(([name, list]): [string, SeriesResult] => [name, combine(list)]));
  if (rounds > 1) {
    const combined = new Map(results.map((r) => [r.name, r]));
    for (const r of results) emit(r, beside(r.name, combined, floorResults), json);
  }
  if (flags.json) {
    for (const f of floorResults.values()) out(`${JSON.stringify({ ...f, name: `floor_${f.name}` })}\n`);
  }
  // with --json, stdout holds only JSON lines: the rest goes to stderr
  const say = (s: string) => (flags.json ? err(s) : out(s));
  if (flags.svg !== undefined) {
    const caption = [
      `${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC`,
      runs === undefined ? "default runs per series" : `${runs} runs per series`,
      `${rounds} round${rounds > 1 ? "s" : ""} (median round)`,
      ...(floor ? ["kvm-floor in the same run"] : []),
    ].join(" · ");
    try {
      writeFileSync(flags.svg, renderSvg(results, floorResults, { caption }));
    } catch (e) {
      throw new BadArgsError(`--svg ${flags.svg}: cannot write it (${e instanceof Error ? e.message : String(e)})`);
    }
    say(`chart written to ${flags.svg}\n`);
  }
  if (flags.baseline !== undefined && baseline !== undefined) {
    const c = compare(results, baseline, threshold);
    say(`${flags.json ? "" : "\n"}${formatComparison(c, flags.baseline, threshold)}`);
    if (c.regressed.length > 0) throw new BenchRegressionError(c.regressed, threshold, flags.baseline);
    checkCompared(c, flags.baseline);
  }
}

/** --threshold: a percentage, a non-negative number. */
function parseThreshold(text: string): number {
  if (!/^\d+(\.\d+)?$/.test(text.trim())) throw new BadArgsError(`--threshold "${text}" is not a non-negative number (a percentage, e.g. 20)`);
  return Number(text);
}

/**
 * Reads a baseline file. Its series that --filter excludes are dropped, so that a filtered run
 * does not list the rest of the baseline as missing.
 */
function readBaseline(path: string, filter: RegExp | undefined): Map<string, SeriesResult> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new BadArgsError(`--baseline ${path}: cannot read it (${e instanceof Error ? e.message : String(e)})`);
  }
  const all = parseBaseline(text, path);
  if (filter === undefined) return all;
  const keep = filter;
  return new Map([...all].filter(([name]) => keep.test(name)));
}

/** Width of the table's name columns. */
const COL = 25;

/** The newest result of each series. */
function latest(m: Map<string, SeriesResult[]>): Map<string, SeriesResult> {
  return new Map([...m].map(([name, list]) => [name, list[list.length - 1]]));
}

/** What a series is set beside in the table (BESIDE, or its kvm-floor namesake), if it ran. */
function beside(name: string, ours: Map<string, SeriesResult>, floors: Map<string, SeriesResult>): { label: string; result: SeriesResult } | undefined {
  const ref = BESIDE[name] ?? `floor:${name}`;
  const result = ref.startsWith("floor:") ? floors.get(ref.slice("floor:".length)) : ours.get(ref);
  // a reference that measured nothing (0, with a note saying why) gives no ratio
  return result && result.median > 0 ? { label: ref.replace(":", " "), result } : undefined;
}

function emit(r: SeriesResult, ref: { label: string; result: SeriesResult } | undefined, json: boolean): void {
  if (json) {
    out(`${JSON.stringify(r)}\n`);
    return;
  }
  const cmp = ref ? `  ${ref.label.padEnd(COL)} ${ref.result.median.toFixed(2).padStart(10)} ${(r.median / ref.result.median).toFixed(2).padStart(6)}` : "";
  const note = r.note ? `  (${r.note})` : "";
  out(`${r.name.padEnd(COL)} ${r.unit.padEnd(7)} ${String(r.n).padStart(6)} ${r.median.toFixed(2).padStart(10)} ${r.p99.toFixed(2).padStart(10)}${cmp}${note}${perCallText(r)}\n`);
}

/** "  [1 exit a call; 5 system calls, 5 in the VM]": what one call of the series cost, where it says so. */
function perCallText(r: SeriesResult): string {
  const c = r.perCall;
  if (!c) return "";
  const calls = c.syscalls === undefined ? "" : `; ${c.syscalls} system call${c.syscalls === 1 ? "" : "s"}${c.syscallsInVm === undefined ? "" : `, ${c.syscallsInVm} in the VM`}`;
  return `  [${c.exits} exit${c.exits === 1 ? "" : "s"} a call${calls}]`;
}

/** Several rounds of one series: the median of their medians and of their p99s. */
function combine(list: SeriesResult[]): SeriesResult {
  const mid = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const median = mid(list.map((r) => r.median));
  const note = median === 0 ? list.find((r) => r.note)?.note : undefined;
  const { note: _, ...first } = list[0];
  return { ...first, n: list.reduce((s, r) => s + r.n, 0), median, p99: mid(list.map((r) => r.p99)), ...(note && { note }) };
}

/**
 * The C yardstick built with wasp (tools/floor.c, dist/floor.bin): run from where it is, or — in
 * the standalone binary, which embeds it — from a copy in a temporary folder (removed at exit).
 */
function bundledFloor(): string {
  if (!floorBin.startsWith("/$bunfs")) {
    if (!existsSync(floorBin)) throw new BadArgsError(`the C yardstick is not built (${floorBin}): run npm run build:floor`);
    return floorBin;
  }
  const dir = mkdtempSync(join(tmpdir(), "wasp-floor-"));
  const path = join(dir, "floor");
  writeFileSync(path, readFileSync(floorBin), { mode: 0o755 });
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  return path;
}

/** Runs a kvm-floor binary and returns its series by name. */
function runFloor(path: string, args: readonly string[]): Map<string, SeriesResult> {
  let p;
  try {
    p = Bun.spawnSync([path, ...args]);
  } catch (e) {
    throw new BadArgsError(`--floor ${path}: cannot run it (${e instanceof Error ? e.message : String(e)})`);
  }
  if (p.exitCode !== 0) throw new BadArgsError(`--floor ${path}: exited with status ${p.exitCode}: ${p.stderr.toString().trim()}`);
  const out = new Map<string, SeriesResult>();
  for (const line of p.stdout.toString().split("\n")) {
    if (!line.trim()) continue;
    const r = JSON.parse(line) as SeriesResult;
    out.set(r.name, r);
  }
  return out;
}
