// Comparing a `wasp bench` run with a baseline: a previous run's `--json` output (one SeriesResult
// per line). A CI job keeps a baseline and fails when a series got slower than the threshold allows.
import { BadArgsError, WaspError } from "../errors.ts";
import type { SeriesResult } from "./stats.ts";

/** Some series regressed beyond the threshold against the baseline; the run itself succeeded. */
/**
 * A benchmark run that measured or compared nothing: a --filter that selects no series, or a
 * --baseline that shares none with the run. A CI job must not pass on a typo.
 */
export class BenchEmptyError extends WaspError {
  constructor(message: string) {
    super("WASP_BENCH_EMPTY", message);
  }
}

export class BenchRegressionError extends WaspError {
  /** the names of the regressed series */
  readonly series: string[];
  constructor(regressed: ComparisonRow[], thresholdPct: number, baselineFile: string) {
    const list = regressed.map((r) => `${r.name} ${r.ratio === undefined ? "?" : r.ratio.toFixed(2)}x`).join(", ");
    super(
      "WASP_BENCH_REGRESSION",
      `${regressed.length} series regressed by more than ${thresholdPct}% against ${baselineFile}: ${list}`,
    );
    this.series = regressed.map((r) => r.name);
  }
}

/**
 * Parses a baseline: JSON lines of {name, unit, n, median, p99}. Blank lines and the kvm-floor's
 * series (`floor_NAME`) are skipped: the floor is a yardstick measured beside the run, not a result.
 * `file` only names the file in error messages.
 */
export function parseBaseline(text: string, file: string): Map<string, SeriesResult> {
  const out = new Map<string, SeriesResult>();
  const firstLine = new Map<string, number>();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "") continue;
    const where = `--baseline ${file}, line ${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw new BadArgsError(`${where}: not JSON (expected one \`wasp bench --json\` result per line)`);
    }
    const r = asSeriesResult(value);
    if (typeof r === "string") throw new BadArgsError(`${where}: ${r}`);
    if (r.name.startsWith("floor_")) continue;
    const first = firstLine.get(r.name);
    if (first !== undefined) throw new BadArgsError(`${where}: series "${r.name}" appears again (first on line ${first})`);
    firstLine.set(r.name, i + 1);
    out.set(r.name, r);
  }
  return out;
}

/** The value as a SeriesResult, or what is wrong with it. */
function asSeriesResult(v: unknown): SeriesResult | string {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return "not an object {name, unit, n, median, p99}";
  const o = v as Record<string, unknown>;
  if (typeof o.name !== "string" || o.name === "") return `"name" is missing or not a string`;
  if (typeof o.unit !== "string" || o.unit === "") return `"unit" of ${o.name} is missing or not a string`;
  for (const k of ["n", "median", "p99"]) {
    const x = o[k];
    if (typeof x !== "number" || !Number.isFinite(x) || x < 0) return `"${k}" of ${o.name} is missing or not a non-negative number`;
  }
  return { name: o.name, unit: o.unit, n: Number(o.n), median: Number(o.median), p99: Number(o.p99), ...(typeof o.note === "string" && { note: o.note }) };
}

/** Which way a unit is better: a time or a size should shrink, a rate should grow. */
export type Direction = "lower" | "higher" | "unknown";

const LOWER_IS_BETTER = new Set(["us", "µs", "ns", "ms", "s", "cycles", "B", "bytes", "KiB", "MiB", "GiB"]);

export function direction(unit: string): Direction {
  if (LOWER_IS_BETTER.has(unit)) return "lower";
  // throughput: calls/s, requests/s, B/s, ops...
  if (unit.endsWith("/s") || unit === "ops") return "higher";
  return "unknown";
}

export type Verdict =
  | "ok" // within the threshold
  | "better" // improved beyond the threshold
  | "regressed" // worse beyond the threshold: fails the run
  | "new" // only in the current run
  | "missing" // only in the baseline
  | "not compared"; // units differ or unknown, or the baseline median is 0

export interface ComparisonRow {
  name: string;
  unit: string;
  baseline?: number;
  current?: number;
  /** current median / baseline median */
  ratio?: number;
  verdict: Verdict;
  /** why a row was not compared */
  note?: string;
}

export interface Comparison {
  rows: ComparisonRow[];
  regressed: ComparisonRow[];
}

/**
 * Sets each current series beside the baseline's of the same name. A lower-is-better series
 * regresses when current/baseline > 1 + t/100; a higher-is-better one when it is < 1/(1 + t/100).
 * Rows follow the current run's order, then the series missing from it in the baseline's order.
 */
export function compare(current: SeriesResult[], baseline: ReadonlyMap<string, SeriesResult>, thresholdPct: number): Comparison {
  const limit = 1 + thresholdPct / 100;
  const rows: ComparisonRow[] = [];
  const seen = new Set<string>();
  for (const c of current) {
    seen.add(c.name);
    const b = baseline.get(c.name);
    if (b === undefined) {
      rows.push({ name: c.name, unit: c.unit, current: c.median, verdict: "new" });
      continue;
    }
    const row: ComparisonRow = { name: c.name, unit: c.unit, baseline: b.median, current: c.median, verdict: "ok" };
    const dir = direction(c.unit);
    if (b.unit !== c.unit) {
      row.verdict = "not compared";
      row.note = `unit changed from ${b.unit}`;
    } else if (dir === "unknown") {
      row.verdict = "not compared";
      row.note = `unknown unit ${c.unit}`;
    } else if (b.median <= 0) {
      row.verdict = "not compared";
      row.note = "baseline median is 0";
    } else {
      const ratio = c.median / b.median;
      row.ratio = ratio;
      const worse = dir === "lower" ? ratio > limit : ratio < 1 / limit;
      const better = dir === "lower" ? ratio < 1 / limit : ratio > limit;
      row.verdict = worse ? "regressed" : better ? "better" : "ok";
    }
    rows.push(row);
  }
  for (const b of baseline.values()) {
    if (!seen.has(b.name)) rows.push({ name: b.name, unit: b.unit, baseline: b.median, verdict: "missing" });
  }
  return { rows, regressed: rows.filter((r) => r.verdict === "regressed") };
}

/** Fails when the comparison judged no series at all (none in both, or none comparable): a CI job would check nothing. */
export function checkCompared(c: Comparison, baselineFile: string): void {
  if (c.rows.some((r) => r.ratio !== undefined)) return;
  throw new BenchEmptyError(`no series of the run was compared with ${baselineFile} (none in both, or none comparable): the job checked nothing`);
}

/** The word printed beside a row: SLOWER for a regressed time or rate, LARGER for a size. */
export function verdictLabel(row: ComparisonRow): string {
  const size = /^(B|bytes|KiB|MiB|GiB)$/.test(row.unit);
  switch (row.verdict) {
    case "regressed":
      return size ? "LARGER" : "SLOWER";
    case "better":
      return size ? "smaller" : "faster";
    case "ok":
      return "";
    case "not compared":
      return `not compared (${row.note ?? "?"})`;
    default:
      return row.verdict;
  }
}

/** The comparison as a text table, one row per series, ending with a newline. */
export function formatComparison(c: Comparison, baselineFile: string, thresholdPct: number): string {
  const num = (v: number | undefined) => (v === undefined ? "—" : v.toFixed(2)).padStart(10);
  const lines = [
    `against ${baselineFile} (threshold ${thresholdPct}%):`,
    `${"series".padEnd(22)} ${"unit".padEnd(7)} ${"baseline".padStart(10)} ${"current".padStart(10)} ${"ratio".padStart(6)}`,
  ];
  for (const r of c.rows) {
    const ratio = (r.ratio === undefined ? "—" : r.ratio.toFixed(2)).padStart(6);
    const label = verdictLabel(r);
    lines.push(`${r.name.padEnd(22)} ${r.unit.padEnd(7)} ${num(r.baseline)} ${num(r.current)} ${ratio}${label ? `  ${label}` : ""}`);
  }
  return `${lines.join("\n")}\n`;
}
