// The Python series of `wasp bench` (src/bench/python.ts) with Debian's python3 (`.ci/run`
// installs it): each runs, checks the handler's result against the host's, and reports what it
// measured — a call from the snapshot in one exit, the density pair's figures. No timing is
// asserted (figures go in docs/benchmarks.md from `wasp bench`).
import { expect, test } from "bun:test";
import { benchPython, pySeries } from "../src/bench/python.ts";

const PY = "/usr/bin/python3";

test("every Python series runs and reports its figure (the density pair with 3 virtines)", async () => {
  const series = pySeries(() => benchPython("", [PY]), 3);
  const got = new Map<string, { n: number; median: number; perCall?: unknown; note?: string }>();
  for (const s of series) {
    const runs = s.name === "py_virtine_snapshot" ? 20 : 2;
    for (const r of [await s.run(runs)].flat()) got.set(r.name, r);
  }
  for (const name of ["py_native", "py_virtine", "py_virtine_snapshot", "py_start_snapshot_file"]) {
    const r = got.get(name);
    expect(r?.note).toBeUndefined();
    expect(r?.n).toBeGreaterThan(0);
    expect(r?.median).toBeGreaterThan(0);
  }
  // a call resumed from the snapshot leaves its VM once
  expect(got.get("py_virtine_snapshot")?.perCall).toMatchObject({ exits: 1 });
  for (const name of ["py_density_pss_kib_3", "py_density_private_pss_kib_3", "py_density_memavail_kib_3", "py_density_private_memavail_kib_3"]) {
    expect(got.get(name)?.n).toBe(3);
    expect(Number.isFinite(got.get(name)?.median)).toBe(true);
  }
  // private copies hold the stored pages each; shared ones do not
  expect(got.get("py_density_private_pss_kib_3")!.median).toBeGreaterThan(got.get("py_density_pss_kib_3")!.median);
}, 600_000);
