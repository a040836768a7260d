// The reports of `wasp bench` made without running it: reading a baseline, comparing a run with it
// (what fails a CI job), and the SVG chart beside the Wasp paper's figures.
import { describe, expect, test } from "bun:test";
import { BenchEmptyError, BenchRegressionError, checkCompared, compare, direction, formatComparison, parseBaseline } from "../src/bench/baseline.ts";
import { renderSvg } from "../src/bench/svg.ts";
import type { SeriesResult } from "../src/bench/stats.ts";
import { BadArgsError, WaspError } from "../src/errors.ts";

function series(name: string, median: number, unit = "us", p99 = median * 1.5): SeriesResult {
  return { name, unit, n: 100, median, p99 };
}

const jsonLines = (rs: SeriesResult[]) => rs.map((r) => JSON.stringify(r)).join("\n");

/** The error parseBaseline throws for `text`, which the test requires. */
function parseError(text: string): BadArgsError {
  try {
    parseBaseline(text, "base.json");
  } catch (e) {
    if (e instanceof BadArgsError) return e;
    throw e;
  }
  throw new Error("parseBaseline accepted a malformed baseline");
}

describe("parseBaseline", () => {
  test("reads every series of `wasp bench --json` output by name", () => {
    const m = parseBaseline(`${jsonLines([series("create", 1544), series("vmrun", 31.5), series("hypercall", 32.8)])}\n`, "base.json");
    expect([...m.keys()]).toEqual(["create", "vmrun", "hypercall"]);
    expect(m.get("vmrun")).toEqual(series("vmrun", 31.5));
  });

  test("skips blank lines and the kvm-floor's floor_ series", () => {
    const text = `\n${JSON.stringify(series("vmrun", 31.5))}\n   \n${JSON.stringify(series("floor_vmrun", 36.2))}\n\n${JSON.stringify(series("create", 1500))}\n\n`;
    const m = parseBaseline(text, "base.json");
    expect([...m.keys()]).toEqual(["vmrun", "create"]);
  });

  test("an empty file is an empty baseline", () => {
    expect(parseBaseline("", "base.json").size).toBe(0);
  });

  test("a line that is not JSON fails naming the file and the line", () => {
    const e = parseError(`${JSON.stringify(series("vmrun", 31.5))}\n\nvmrun 31.5\n`);
    expect(e.code).toBe("WASP_BAD_ARGS");
    expect(e.message).toContain("base.json");
    expect(e.message).toContain("line 3");
    expect(e.message).not.toContain("\n");
  });

  test("a JSON line that is not a result fails naming the line and what is wrong", () => {
    expect(parseError(`${JSON.stringify(series("vmrun", 31.5))}\n{"name":"create","unit":"us","n":5}`).message).toMatch(/line 2: "median" of create/);
    expect(parseError(`[1, 2]`).message).toMatch(/line 1: not an object/);
    expect(parseError(`{"unit":"us","n":1,"median":1,"p99":1}`).message).toMatch(/line 1: "name"/);
    expect(parseError(`{"name":"x","unit":"us","n":1,"median":"fast","p99":1}`).message).toMatch(/"median" of x/);
  });

  test("a series that appears twice fails, naming both lines", () => {
    const e = parseError(jsonLines([series("vmrun", 31.5), series("create", 1500), series("vmrun", 30)]));
    expect(e.message).toMatch(/line 3: series "vmrun" appears again \(first on line 1\)/);
  });
});

describe("compare", () => {
  const base = new Map([series("create", 1000), series("vmrun", 30), series("hypercall", 30)].map((r): [string, SeriesResult] => [r.name, r]));

  test("a faster series is not a regression", () => {
    const c = compare([series("vmrun", 15)], new Map([["vmrun", series("vmrun", 30)]]), 20);
    expect(c.rows).toEqual([{ name: "vmrun", unit: "us", baseline: 30, current: 15, ratio: 0.5, verdict: "better" }]);
    expect(c.regressed).toEqual([]);
  });

  test("a time beyond the threshold regresses; within it, it does not", () => {
    const c = compare([series("create", 1250), series("vmrun", 35.9), series("hypercall", 36.1)], base, 20);
    expect(c.rows.map((r) => [r.name, r.verdict])).toEqual([
      ["create", "regressed"],
      ["vmrun", "ok"],
      ["hypercall", "regressed"],
    ]);
    expect(c.regressed.map((r) => r.name)).toEqual(["create", "hypercall"]);
    expect(c.rows[0].ratio).toBeCloseTo(1.25, 10);
  });

  test("the threshold is a percentage: 0 flags any slowdown, 50 tolerates 1.4x", () => {
    expect(compare([series("vmrun", 30.3)], base, 0).regressed.length).toBe(1);
    expect(compare([series("vmrun", 42)], base, 50).regressed.length).toBe(0);
    expect(compare([series("vmrun", 46)], base, 50).regressed.length).toBe(1);
  });

  test("cycles and KiB regress when they grow, like times", () => {
    const b = new Map([["boot", series("boot", 22500, "cycles")], ["rss", series("rss", 1000, "KiB")]]);
    const c = compare([series("boot", 30000, "cycles"), series("rss", 1300, "KiB")], b, 20);
    expect(c.regressed.map((r) => r.name)).toEqual(["boot", "rss"]);
    expect(formatComparison(c, "base.json", 20)).toMatch(/rss .* LARGER/);
  });

  test("a throughput regresses when it drops below 1/(1 + t), and not when it grows", () => {
    const b = new Map([["calls", series("calls", 10000, "calls/s")]]);
    expect(compare([series("calls", 5000, "calls/s")], b, 20).regressed.map((r) => r.name)).toEqual(["calls"]);
    expect(compare([series("calls", 8400, "calls/s")], b, 20).regressed).toEqual([]); // 0.84 > 1/1.2
    expect(compare([series("calls", 8300, "calls/s")], b, 20).regressed.length).toBe(1); // 0.83 < 1/1.2
    const up = compare([series("calls", 30000, "calls/s")], b, 20);
    expect(up.regressed).toEqual([]);
    expect(up.rows[0].verdict).toBe("better");
    expect(direction("calls/s")).toBe("higher");
    expect(direction("us")).toBe("lower");
  });

  test("series in only one of the two are listed as new or missing without failing", () => {
    const c = compare([series("vmrun", 30), series("fib_20_boot", 300)], base, 20);
    expect(c.rows.map((r) => [r.name, r.verdict])).toEqual([
      ["vmrun", "ok"],
      ["fib_20_boot", "new"],
      ["create", "missing"],
      ["hypercall", "missing"],
    ]);
    expect(c.regressed).toEqual([]);
  });

  test("a series whose unit changed, or is unknown, is listed but not judged", () => {
    const b = new Map([["vmrun", series("vmrun", 30)], ["odd", series("odd", 1, "widgets")]]);
    const c = compare([series("vmrun", 90000, "cycles"), series("odd", 100, "widgets")], b, 20);
    expect(c.rows.map((r) => r.verdict)).toEqual(["not compared", "not compared"]);
    expect(c.regressed).toEqual([]);
  });

  test("a comparison that judged nothing fails with WASP_BENCH_EMPTY; one judged series is enough", () => {
    const none = compare([series("create", 1000)], new Map([["vmrun", series("vmrun", 30)]]), 20);
    expect(() => checkCompared(none, "base.json")).toThrow(BenchEmptyError);
    expect(() => checkCompared(none, "base.json")).toThrow("no series of the run was compared with base.json (none in both, or none comparable): the job checked nothing");
    const unitChanged = compare([series("create", 1000, "us")], new Map([["create", series("create", 1000, "cycles")]]), 20);
    expect(() => checkCompared(unitChanged, "base.json")).toThrow(BenchEmptyError);
    const one = compare([series("create", 1000), series("x", 1)], new Map([["create", series("create", 900)]]), 20);
    expect(() => checkCompared(one, "base.json")).not.toThrow();
  });

  test("the table prints SLOWER beside a regression, and the error lists the regressed series", () => {
    const c = compare([series("create", 2000), series("vmrun", 30)], base, 20);
    const table = formatComparison(c, "base.json", 20);
    expect(table).toMatch(/^create\s+us\s+1000\.00\s+2000\.00\s+2\.00\s+SLOWER$/m);
    expect(table).toMatch(/^vmrun\s+us\s+30\.00\s+30\.00\s+1\.00$/m);
    expect(table).toMatch(/^hypercall\s+us\s+30\.00\s+—\s+—\s+missing$/m);
    const e = new BenchRegressionError(c.regressed, 20, "base.json");
    expect(e).toBeInstanceOf(WaspError);
    expect(e.code).toBe("WASP_BENCH_REGRESSION");
    expect(e.series).toEqual(["create"]);
    expect(e.message).toBe("1 series regressed by more than 20% against base.json: create 2.00x");
  });
});

/** A minimal well-formedness check: one root <svg>, every element closed in order. */
function checkXml(svg: string): void {
  expect(svg.startsWith("<svg ")).toBe(true);
  expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z][\w:-]*)[^>]*?(\/?)>/g)) {
    const [, closing, name, selfClosing] = m;
    if (selfClosing) continue;
    if (closing) expect(stack.pop()).toBe(name);
    else stack.push(name);
  }
  expect(stack).toEqual([]);
  // text never carries a raw & or < (only entities)
  expect(svg).not.toMatch(/&(?!(amp|lt|gt|quot|apos);)/);
  for (const t of svg.matchAll(/>([^<]*)</g)) expect(t[1]).not.toContain(">");
}

const count = (s: string, sub: string) => s.split(sub).length - 1;

describe("renderSvg", () => {
  test("today's series alone (create, vmrun, hypercall) make a valid chart with the paper beside them", () => {
    const svg = renderSvg([series("create", 1544), series("vmrun", 31.5), series("hypercall", 32.8)]);
    checkXml(svg);
    expect(svg).toContain(`width="1200" height="560"`);
    expect(count(svg, "<g")).toBe(count(svg, "</g>"));
    for (const s of [">create<", ">vmrun<", "wasp_create", "wasp_vmrun", "paper: native", "paper: virtine + snapshot"]) expect(svg).toContain(s);
    // hypercall has no panel: it is listed, not drawn
    expect(svg).toContain("not charted (median): hypercall 32.8 µs");
    // series absent from the results are left out
    for (const s of [">pooled<", ">worker<", "wasp_create_cache", "wasp: boot"]) expect(svg).not.toContain(s);
    expect(svg).toContain("Wasp paper data, AMD EPYC 7302P, bare metal");
    expect(svg).toContain("KVM on PVM");
    expect(svg).toContain("time per operation (µs, log scale)");
  });

  test("every series of both figures, the floor and the paper are drawn", () => {
    const rs = ["create", "vmrun", "pooled", "pooled_async", "clean", "worker", "process"].map((n, i) => series(n, 10 * (i + 1)));
    for (const family of ["boot", "snapshot", "direct", "native"]) for (const n of [0, 5, 10, 15, 20, 25, 30]) rs.push(series(`fib_${n}_${family}`, 1 + n * n));
    const floor = new Map([["create", series("create", 1500)], ["thread", series("thread", 80)]]);
    const svg = renderSvg(rs, floor, { caption: "3 rounds" });
    checkXml(svg);
    for (const s of [">pooled_async<", ">clean<", ">worker<", ">process<", ">thread<", "wasp_create_cache_async", "linux_thread", "linux_process", "kvm-floor"]) expect(svg).toContain(s);
    for (const s of ["wasp: boot", "wasp: snapshot", "wasp: direct", "wasp: native", "paper: virtine"]) expect(svg).toContain(s);
    expect(svg).toContain("fib_20_direct: median 401 µs");
    expect(svg).toContain("kvm-floor create: median 1,500 µs");
    expect(svg).toContain(">3 rounds<");
    expect(svg).not.toContain("not charted");
  });

  test("floor_NAME results count as the floor's series", () => {
    const svg = renderSvg([series("vmrun", 31.5), series("floor_vmrun", 36.2)]);
    checkXml(svg);
    expect(svg).toContain("kvm-floor vmrun: median 36.2 µs");
    expect(svg).not.toContain(">floor_vmrun<");
  });

  test("no results still make a valid chart, with the paper's lines", () => {
    const svg = renderSvg([]);
    checkXml(svg);
    expect(svg).toContain("no context-creation series in these results");
    expect(svg).toContain("paper: native");
  });

  test("names and captions are escaped", () => {
    const svg = renderSvg([series("a<b&c", 5, "calls/s"), series("vmrun", 31.5)], undefined, { caption: `run "x" <y> & 'z'` });
    checkXml(svg);
    expect(svg).toContain("a&lt;b&amp;c 5.0 calls/s");
    expect(svg).toContain("run &quot;x&quot; &lt;y&gt; &amp; &apos;z&apos;");
    expect(svg).not.toContain("a<b");
  });
});

describe("density figures", () => {
  test("a difference below zero is reported as 0 KiB below noise, never as a negative size", async () => {
    const { densityResult } = await import("../src/bench/density.ts");
    expect(densityResult("density_pss_kib_1", 1, -12.34)).toEqual({ name: "density_pss_kib_1", unit: "KiB", n: 1, median: 0, p99: 0, note: "below noise" });
    expect(densityResult("density_pss_kib_64", 64, 123.456)).toEqual({ name: "density_pss_kib_64", unit: "KiB", n: 64, median: 123.5, p99: 123.5 });
  });
});
