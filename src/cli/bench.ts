// `wasp bench`: the microbenchmark suite as a table or JSON lines, optionally beside kvm-floor.
import { BadArgsError } from "../errors.ts";
import { runSuite } from "../bench/suite.ts";
import type { SeriesResult } from "../bench/stats.ts";
import { parseCount } from "./parse.ts";

export interface BenchFlags {
  json?: boolean;
  runs?: string;
  filter?: string;
  floor?: string;
  rounds?: string;
}

export async function benchCommand(flags: BenchFlags): Promise<void> {
  const runs = flags.runs === undefined ? undefined : parseCount(flags.runs, "--runs");
  if (runs === 0) throw new BadArgsError("--runs must be at least 1");
  const rounds = flags.rounds === undefined ? 1 : parseCount(flags.rounds, "--rounds");
  if (rounds === 0) throw new BadArgsError("--rounds must be at least 1");
  let filter: RegExp | undefined;
  if (flags.filter !== undefined) {
    try {
      filter = new RegExp(flags.filter);
    } catch {
      throw new BadArgsError(`--filter "${flags.filter}" is not a regular expression`);
    }
  }
  // Each round runs the floor (if given) and then wasp's series right after it, so that both see
  // the same moment of a shared, noisy machine; several rounds report the median of the rounds.
  const ours = new Map<string, SeriesResult[]>();
  const floors = new Map<string, SeriesResult[]>();
  const add = (m: Map<string, SeriesResult[]>, r: SeriesResult) => m.set(r.name, [...(m.get(r.name) ?? []), r]);
  const printHeader = !flags.json;
  if (printHeader) {
    const f = flags.floor ? `  ${"floor".padStart(10)} ${"ratio".padStart(6)}` : "";
    process.stdout.write(`${"series".padEnd(22)} ${"unit".padEnd(6)} ${"n".padStart(6)} ${"median".padStart(10)} ${"p99".padStart(10)}${f}\n`);
  }
  for (let round = 0; round < rounds; round++) {
    if (flags.floor) for (const f of runFloor(flags.floor).values()) add(floors, f);
    for await (const r of runSuite({ runs, filter })) {
      add(ours, r);
      if (rounds === 1) emit(r, floors.get(r.name)?.[0], flags.json ?? false);
    }
  }
  if (rounds > 1) for (const list of ours.values()) emit(combine(list), floors.has(list[0].name) ? combine(floors.get(list[0].name) ?? []) : undefined, flags.json ?? false);
  if (flags.json) {
    for (const list of floors.values()) process.stdout.write(`${JSON.stringify({ ...combine(list), name: `floor_${list[0].name}` })}\n`);
  }
}

function emit(r: SeriesResult, floor: SeriesResult | undefined, json: boolean): void {
  if (json) {
    process.stdout.write(`${JSON.stringify(r)}\n`);
    return;
  }
  const cmp = floor ? `  ${floor.median.toFixed(2).padStart(10)} ${(r.median / floor.median).toFixed(2).padStart(6)}` : "";
  process.stdout.write(`${r.name.padEnd(22)} ${r.unit.padEnd(6)} ${String(r.n).padStart(6)} ${r.median.toFixed(2).padStart(10)} ${r.p99.toFixed(2).padStart(10)}${cmp}\n`);
}

/** Several rounds of one series: the median of their medians and of their p99s. */
function combine(list: SeriesResult[]): SeriesResult {
  const mid = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  return { ...list[0], n: list.reduce((s, r) => s + r.n, 0), median: mid(list.map((r) => r.median)), p99: mid(list.map((r) => r.p99)) };
}

/** Runs a kvm-floor binary and returns its series by name. */
function runFloor(path: string): Map<string, SeriesResult> {
  let p;
  try {
    p = Bun.spawnSync([path]);
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
