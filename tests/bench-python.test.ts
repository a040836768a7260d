// The Python series of `wasp bench` (src/bench/python.ts) on a machine without python3: skipped
// with a note saying what to install, never a failure of the bench. (With it,
// tests-debian/bench-python.test.ts runs them.)
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { benchPython, pySeries, PY_SERIES } from "../src/bench/python.ts";

const dir = mkdtempSync(join(tmpdir(), "wasp-bench-python-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("without a python3 on PATH (and none where Debian puts it) why is one line", () => {
  expect(benchPython(join(dir, "empty"), [])).toEqual({ missing: "no python3 on PATH: install it (Debian: apt install python3) or give --python PATH" });
  // a pyenv shim on PATH is no python3 a virtine can run
  const shims = join(dir, "shims");
  mkdirSync(shims);
  writeFileSync(join(shims, "python3"), "#!/bin/sh\nexec pyenv exec python3 \"$@\"\n", { mode: 0o755 });
  const shim = benchPython(shims, [join(dir, "nowhere", "python3")]);
  expect(shim).toEqual({ missing: expect.stringMatching(/python3 is a script \(a pyenv shim\?\)/) });
});

test("without python3 every Python series is reported empty with that note", async () => {
  const none = () => benchPython(join(dir, "empty"), []);
  const series = pySeries(none, 3);
  expect(series.flatMap((s) => s.reports ?? [s.name])).toEqual(PY_SERIES.flatMap((s) => s.reports ?? [s.name]).map((n) => n.replace(/_1000$/, "_3")));
  for (const s of series) {
    const results = [await s.run(1)].flat();
    expect(results.map((r) => r.name)).toEqual([...(s.reports ?? [s.name])]);
    for (const r of results) expect(r).toEqual({ name: r.name, unit: r.name.includes("_kib_") ? "KiB" : "us", n: 0, median: 0, p99: 0, note: "skipped: no python3 on PATH: install it (Debian: apt install python3) or give --python PATH" });
  }
});
