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
}

export async function benchCommand(flags: BenchFlags): Promise<void> {
  const runs = flags.runs === undefined ? undefined : parseCount(flags.runs, "--runs");
  if (runs === 0) throw new BadArgsError("--runs must be at least 1");
  let filter: RegExp | undefined;
  if (flags.filter !== undefined) {
    try {
      filter = new RegExp(flags.filter);
    } catch {
      throw new BadArgsError(`--filter "${flags.filter}" is not a regular expression`);
    }
  }
  const floor = flags.floor === undefined ? new Map<string, SeriesResult>() : runFloor(flags.floor);
  if (flags.json) {
    for (const f of floor.values()) process.stdout.write(`${JSON.stringify({ ...f, name: `floor_${f.name}` })}\n`);
    for await (const r of runSuite({ runs, filter })) process.stdout.write(`${JSON.stringify(r)}\n`);
    return;
  }
  process.stdout.write(`${"series".padEnd(22)} ${"unit".padEnd(6)} ${"n".padStart(6)} ${"median".padStart(10)} ${"p99".padStart(10)}${floor.size ? `  ${"floor".padStart(10)} ${"ratio".padStart(6)}` : ""}\n`);
  for await (const r of runSuite({ runs, filter })) {
    const f = floor.get(r.name);
    const cmp = f ? `  ${f.median.toFixed(2).padStart(10)} ${(r.median / f.median).toFixed(2).padStart(6)}` : "";
    process.stdout.write(`${r.name.padEnd(22)} ${r.unit.padEnd(6)} ${String(r.n).padStart(6)} ${r.median.toFixed(2).padStart(10)} ${r.p99.toFixed(2).padStart(10)}${cmp}\n`);
  }
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
