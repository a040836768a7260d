// `wasp bench --svg`: the run as a chart beside the Wasp paper's figures. Two panels: fig. 8
// (context creation, horizontal log-scale bars) and fig. 11 (fib(n) per call, log-scale lines).
// Plain SVG text, no dependencies; a series absent from the results is left out of the chart.
import type { SeriesResult } from "./stats.ts";

const WIDTH = 1200;
const HEIGHT = 560;
/** the plot areas' top and bottom (both panels), and where the legends start */
const PLOT_TOP = 86;
const PLOT_BOTTOM = 420;
const LEGEND_Y = 488;

/**
 * The paper's figures (Wasp paper data, AMD EPYC 7302P, bare metal; cycles converted at 3.0 GHz),
 * keyed by the wasp series that does the same work. `thread` has no wasp series: only kvm-floor's.
 */
const PAPER_FIG8: Record<string, { label: string; us: number }> = {
  create: { label: "wasp_create", us: 397 },
  vmrun: { label: "wasp_vmrun", us: 6.0 },
  pooled: { label: "wasp_create_cache", us: 11.4 },
  pooled_async: { label: "wasp_create_cache_async", us: 6.1 },
  process: { label: "linux_process", us: 92 },
  thread: { label: "linux_thread", us: 22 },
};

/** Fig. 8's rows, top to bottom. */
const FIG8_ROWS = ["create", "vmrun", "pooled", "pooled_async", "clean", "worker", "process", "thread"];

const FIB_N = [0, 5, 10, 15, 20, 25, 30];
/** fig. 11's series: fib_N_FAMILY, the family being how the call is made */
const FIB_NAME = /^fib_(\d+)_(boot|snapshot|direct|native)$/;

/** Fig. 11 of the paper: fib(n) per call through the whole invocation path, µs. */
const PAPER_FIG11: { label: string; family: FibFamily; us: number[] }[] = [
  { label: "paper: native", family: "native", us: [0.03, 0.06, 0.39, 4.1, 45.4, 502, 5579] },
  { label: "paper: virtine", family: "boot", us: [29.85, 29.91, 30.27, 34.03, 75.3, 533, 5615] },
  { label: "paper: virtine + snapshot", family: "snapshot", us: [10.0, 10.01, 10.38, 14.12, 55.4, 513, 5595] },
];

type FibFamily = "boot" | "snapshot" | "direct" | "native";
const FIB_FAMILIES: FibFamily[] = ["boot", "snapshot", "direct", "native"];
const FIB_LABEL: Record<FibFamily, string> = {
  boot: "boot (boots each call)",
  snapshot: "snapshot",
  direct: "direct",
  native: "native",
};

const COLOR = {
  wasp: "#1f6fb4",
  floor: "#8a8a8a",
  paper: "#f28e2b",
  boot: "#d62728",
  snapshot: "#1f6fb4",
  direct: "#9467bd",
  native: "#2ca02c",
  axis: "#333333",
  grid: "#e2e2e2",
  note: "#555555",
};

export interface SvgOptions {
  /** a line under the title, e.g. when and how the run was made */
  caption?: string;
}

/**
 * The chart of a run. `results` are wasp's series (any `floor_NAME` among them counts as the
 * floor's NAME, as in `--json` output); `floor` holds kvm-floor's series measured in the same run.
 */
export function renderSvg(results: SeriesResult[], floor?: ReadonlyMap<string, SeriesResult>, options: SvgOptions = {}): string {
  const ours = new Map<string, SeriesResult>();
  const floors = new Map<string, SeriesResult>(floor ?? []);
  for (const r of results) {
    if (r.name.startsWith("floor_")) floors.set(r.name.slice("floor_".length), r);
    else ours.set(r.name, r);
  }
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect x="0" y="0" width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    text(WIDTH / 2, 26, "wasp bench beside the Wasp paper (EuroSys'22)", { size: 18, anchor: "middle", weight: "bold" }),
  );
  if (options.caption) out.push(text(WIDTH / 2, 44, options.caption, { size: 11, anchor: "middle", fill: COLOR.note }));
  out.push(...contextPanel(ours, floors), ...fibPanel(ours));
  // the series neither panel draws (hypercall, ...) still get a line, so the chart shows the whole run
  const others = [...ours.values()].filter((r) => !charted(r));
  if (others.length > 0) {
    const list = others.map((r) => `${r.name} ${fmt(r.median)} ${r.unit === "us" ? "µs" : r.unit}`).join(", ");
    out.push(text(20, LEGEND_Y + 18, clip(`not charted (median): ${list}`, 92), { size: 11, fill: COLOR.note }));
  }
  out.push(
    text(20, HEIGHT - 24, "This machine: KVM on PVM (nested virtualization by shadow paging: a VM exit costs ~25-35 µs, ~1-2 µs on bare metal); boot guests run in emulated real/protected mode.", { size: 11, fill: COLOR.note }),
    text(20, HEIGHT - 8, "paper: Wasp paper data, AMD EPYC 7302P, bare metal (figs. 8 and 11; cycles at 3.0 GHz). Compare ratios, not absolute times. Bars and points: medians; whiskers: p99.", { size: 11, fill: COLOR.note }),
    "</svg>",
  );
  return `${out.join("\n")}\n`;
}

/** Whether a series has a place in one of the panels. */
function charted(r: SeriesResult): boolean {
  return r.unit === "us" && (FIG8_ROWS.includes(r.name) || FIB_NAME.test(r.name));
}

// ---- fig. 8: context creation ----

function contextPanel(ours: ReadonlyMap<string, SeriesResult>, floors: ReadonlyMap<string, SeriesResult>): string[] {
  const left = 170;
  const right = 540;
  const top = PLOT_TOP;
  const bottom = PLOT_BOTTOM;
  const out = [`<g id="fig8">`, text(20, 72, "Context creation (cf. paper fig. 8)", { size: 14, weight: "bold" })];
  const isTime = (r: SeriesResult | undefined): r is SeriesResult => r !== undefined && r.unit === "us";
  const rows = FIG8_ROWS.filter((name) => isTime(ours.get(name)) || isTime(floors.get(name)));
  if (rows.length === 0) {
    out.push(text((left + right) / 2, (top + bottom) / 2, "no context-creation series in these results", { anchor: "middle", fill: COLOR.note }), "</g>");
    return out;
  }
  const values: number[] = [];
  for (const name of rows) {
    const o = ours.get(name);
    const f = floors.get(name);
    if (isTime(o)) values.push(o.median, o.p99);
    if (isTime(f)) values.push(f.median);
    const p = PAPER_FIG8[name];
    if (p) values.push(p.us);
  }
  const scale = logScale(values, left, right);
  out.push(...xAxisLog(scale, top, bottom, "time per operation (µs, log scale)"));

  // rows of up to three bars (wasp, floor, paper), the block centred when there are few rows
  const rowH = Math.min(56, (bottom - top) / rows.length);
  const barH = Math.min(12, (rowH - 8) / 3);
  const blockTop = top + (bottom - top - rows.length * rowH) / 2;
  rows.forEach((name, i) => {
    const y0 = blockTop + i * rowH + (rowH - 3 * barH) / 2;
    const o = ours.get(name);
    const f = floors.get(name);
    const p = PAPER_FIG8[name];
    const mid = y0 + (3 * barH) / 2;
    out.push(text(left - 8, p ? mid - 1 : mid + 4, name, { anchor: "end", size: 12, weight: "bold" }));
    if (p) out.push(text(left - 8, mid + 12, `≙ ${p.label}`, { anchor: "end", size: 9, fill: COLOR.note }));
    if (isTime(o)) out.push(...bar(scale, y0, barH, o.median, COLOR.wasp, `${name}: median ${fmt(o.median)} µs, p99 ${fmt(o.p99)} µs, n ${o.n}`, o.p99));
    if (isTime(f)) out.push(...bar(scale, y0 + barH, barH, f.median, COLOR.floor, `kvm-floor ${name}: median ${fmt(f.median)} µs`));
    if (p) out.push(...bar(scale, y0 + 2 * barH, barH, p.us, COLOR.paper, `paper ${p.label}: ${fmt(p.us)} µs`));
  });
  const entries: LegendEntry[] = [{ kind: "box", color: COLOR.wasp, label: "wasp, this run (whisker: p99)" }];
  if (rows.some((name) => isTime(floors.get(name)))) entries.push({ kind: "box", color: COLOR.floor, label: "kvm-floor (C), same run" });
  entries.push({ kind: "box", color: COLOR.paper, label: "paper, bare metal" });
  out.push(...legend(20, LEGEND_Y, entries), "</g>");
  return out;
}

/** A horizontal bar from the axis to `value`, labelled with its value, with an optional whisker to `whisker`. */
function bar(scale: Scale, y: number, h: number, value: number, color: string, tip: string, whisker?: number): string[] {
  const x0 = scale.lo;
  const x1 = scale.at(value);
  const out = [`<rect x="${r1(x0)}" y="${r1(y + 0.5)}" width="${r1(Math.max(1, x1 - x0))}" height="${r1(h - 1)}" fill="${color}"><title>${esc(tip)}</title></rect>`];
  let end = x1;
  if (whisker !== undefined && whisker > value) {
    const xw = scale.at(whisker);
    const cy = y + h / 2;
    out.push(
      `<line x1="${r1(x1)}" y1="${r1(cy)}" x2="${r1(xw)}" y2="${r1(cy)}" stroke="${COLOR.axis}" stroke-width="1"/>`,
      `<line x1="${r1(xw)}" y1="${r1(y + 1)}" x2="${r1(xw)}" y2="${r1(y + h - 1)}" stroke="${COLOR.axis}" stroke-width="1"/>`,
    );
    end = xw;
  }
  out.push(text(end + 4, y + h - 2, fmt(value), { size: 10 }));
  return out;
}

// ---- fig. 11: fib(n) per call ----

function fibPanel(ours: ReadonlyMap<string, SeriesResult>): string[] {
  const left = 690;
  const right = 1170;
  const top = PLOT_TOP;
  const bottom = PLOT_BOTTOM;
  const out = [`<g id="fig11">`, text(620, 72, "fib(n) per call (cf. paper fig. 11)", { size: 14, weight: "bold" })];
  const lines = new Map<FibFamily, { n: number; r: SeriesResult }[]>();
  for (const r of ours.values()) {
    const m = FIB_NAME.exec(r.name);
    if (!m || r.unit !== "us") continue;
    const family = m[2] as FibFamily;
    lines.set(family, [...(lines.get(family) ?? []), { n: Number(m[1]), r }]);
  }
  for (const pts of lines.values()) pts.sort((a, b) => a.n - b.n);

  const values = PAPER_FIG11.flatMap((p) => p.us);
  let maxN = FIB_N[FIB_N.length - 1];
  for (const pts of lines.values()) {
    for (const { n, r } of pts) {
      values.push(r.median, r.p99);
      maxN = Math.max(maxN, n);
    }
  }
  maxN = Math.ceil(maxN / 5) * 5;
  const y = logScale(values, bottom, top);
  const x = (n: number) => left + (n / maxN) * (right - left);

  // axes: log y with decade grid lines, linear x at every 5
  for (const d of y.decades) {
    out.push(
      `<line x1="${left}" y1="${r1(y.at(d))}" x2="${right}" y2="${r1(y.at(d))}" stroke="${COLOR.grid}"/>`,
      text(left - 6, y.at(d) + 4, fmtDecade(d), { anchor: "end", size: 11 }),
    );
  }
  for (let n = 0; n <= maxN; n += 5) {
    out.push(
      `<line x1="${r1(x(n))}" y1="${bottom}" x2="${r1(x(n))}" y2="${bottom + 5}" stroke="${COLOR.axis}"/>`,
      text(x(n), bottom + 18, String(n), { anchor: "middle", size: 11 }),
    );
  }
  out.push(
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${bottom}" stroke="${COLOR.axis}"/>`,
    `<line x1="${left}" y1="${bottom}" x2="${right}" y2="${bottom}" stroke="${COLOR.axis}"/>`,
    text((left + right) / 2, bottom + 36, "n (fib(n) computed by the guest)", { anchor: "middle", size: 12 }),
    `<text x="${left - 50}" y="${(top + bottom) / 2}" transform="rotate(-90 ${left - 50} ${(top + bottom) / 2})" text-anchor="middle" font-size="12" fill="${COLOR.axis}">time per call (µs, log scale)</text>`,
  );

  const waspEntries: LegendEntry[] = [];
  const paperEntries: LegendEntry[] = [];
  for (const p of PAPER_FIG11) {
    const pts = FIB_N.map((n, i) => `${r1(x(n))},${r1(y.at(p.us[i]))}`).join(" ");
    out.push(`<polyline points="${pts}" fill="none" stroke="${COLOR[p.family]}" stroke-width="1.5" stroke-dasharray="6 4" opacity="0.8"><title>${esc(p.label)}</title></polyline>`);
    paperEntries.push({ kind: "dash", color: COLOR[p.family], label: p.label });
  }
  for (const family of FIB_FAMILIES) {
    const pts = lines.get(family);
    if (!pts) continue;
    const color = COLOR[family];
    out.push(`<polyline points="${pts.map((p) => `${r1(x(p.n))},${r1(y.at(p.r.median))}`).join(" ")}" fill="none" stroke="${color}" stroke-width="2.2"/>`);
    for (const { n, r } of pts) {
      if (r.p99 > r.median) out.push(`<line x1="${r1(x(n))}" y1="${r1(y.at(r.median))}" x2="${r1(x(n))}" y2="${r1(y.at(r.p99))}" stroke="${color}" stroke-width="1" opacity="0.6"/>`);
      out.push(`<circle cx="${r1(x(n))}" cy="${r1(y.at(r.median))}" r="3.5" fill="${color}"><title>${esc(`${r.name}: median ${fmt(r.median)} µs, p99 ${fmt(r.p99)} µs, n ${r.n}`)}</title></circle>`);
    }
    waspEntries.push({ kind: "line", color, label: `wasp: ${FIB_LABEL[family]}` });
  }
  if (lines.size === 0) out.push(text((left + right) / 2, top + 16, "no fib_N_* series in these results: the paper's lines only", { anchor: "middle", fill: COLOR.note, size: 11 }));
  out.push(...legend(620, LEGEND_Y, waspEntries), ...legend(620, LEGEND_Y + 18, paperEntries), "</g>");
  return out;
}

// ---- scales, axes, legend, text ----

interface Scale {
  /** pixel position of a value */
  at(v: number): number;
  /** the pixel at the low end of the domain */
  lo: number;
  /** the powers of ten of the domain, low to high */
  decades: number[];
}

/** A log10 scale over whole decades covering `values` (values ≤ 0 are ignored), onto [p0, p1]. */
function logScale(values: number[], p0: number, p1: number): Scale {
  const pos = values.filter((v) => v > 0 && Number.isFinite(v));
  let lo = Math.floor(Math.log10(pos.length ? Math.min(...pos) : 1));
  let hi = Math.ceil(Math.log10(pos.length ? Math.max(...pos) : 10));
  if (hi <= lo) hi = lo + 1;
  if (hi - lo > 12) lo = hi - 12;
  const decades: number[] = [];
  for (let e = lo; e <= hi; e++) decades.push(10 ** e);
  const at = (v: number) => {
    const e = Math.min(hi, Math.max(lo, Math.log10(v > 0 ? v : 10 ** lo)));
    return p0 + ((e - lo) / (hi - lo)) * (p1 - p0);
  };
  return { at, lo: p0, decades };
}

function xAxisLog(scale: Scale, top: number, bottom: number, title: string): string[] {
  const out: string[] = [];
  for (const d of scale.decades) {
    const x = r1(scale.at(d));
    out.push(
      `<line x1="${x}" y1="${top}" x2="${x}" y2="${bottom}" stroke="${COLOR.grid}"/>`,
      text(scale.at(d), bottom + 18, fmtDecade(d), { anchor: "middle", size: 11 }),
    );
  }
  const left = r1(scale.lo);
  const right = r1(scale.at(scale.decades[scale.decades.length - 1]));
  out.push(
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${bottom}" stroke="${COLOR.axis}"/>`,
    `<line x1="${left}" y1="${bottom}" x2="${right}" y2="${bottom}" stroke="${COLOR.axis}"/>`,
    text((scale.lo + scale.at(scale.decades[scale.decades.length - 1])) / 2, bottom + 36, title, { anchor: "middle", size: 12 }),
  );
  return out;
}

interface LegendEntry {
  kind: "box" | "line" | "dash";
  color: string;
  label: string;
}

/** A row of legend entries from (x, y), each as wide as its label (estimated: no font metrics here). */
function legend(x: number, y: number, entries: LegendEntry[]): string[] {
  const out: string[] = [];
  let ex = x;
  for (const e of entries) {
    if (e.kind === "box") out.push(`<rect x="${ex}" y="${y - 9}" width="14" height="10" fill="${e.color}"/>`);
    else out.push(`<line x1="${ex}" y1="${y - 4}" x2="${ex + 18}" y2="${y - 4}" stroke="${e.color}" stroke-width="${e.kind === "line" ? 2.2 : 1.5}"${e.kind === "dash" ? ` stroke-dasharray="6 4"` : ""}/>`);
    out.push(text(ex + 22, y, e.label, { size: 11 }));
    ex += 22 + e.label.length * 6.2 + 18;
  }
  return out;
}

interface TextStyle {
  size?: number;
  anchor?: "start" | "middle" | "end";
  weight?: "bold";
  fill?: string;
}

function text(x: number, y: number, s: string, style: TextStyle = {}): string {
  const attrs = [`x="${r1(x)}"`, `y="${r1(y)}"`, `font-size="${style.size ?? 12}"`, `fill="${style.fill ?? COLOR.axis}"`];
  if (style.anchor && style.anchor !== "start") attrs.push(`text-anchor="${style.anchor}"`);
  if (style.weight) attrs.push(`font-weight="${style.weight}"`);
  return `<text ${attrs.join(" ")}>${esc(s)}</text>`;
}

/** Escapes text for SVG content and attribute values. */
export function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&apos;");
}

/** A value for a label: three significant figures or so, thousands separated. */
function fmt(v: number): string {
  if (v >= 1000) return Math.round(v).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  if (v >= 100) return v.toFixed(0);
  if (v >= 1) return v.toFixed(1);
  return v.toPrecision(2);
}

/** A power of ten for a tick: 0.01, 0.1, 1, 10, 100, 1k, 10k, 100k, 1M... */
function fmtDecade(d: number): string {
  if (d >= 1e6) return `${Math.round(d / 1e6)}M`;
  if (d >= 1e3) return `${Math.round(d / 1e3)}k`;
  if (d >= 1) return String(Math.round(d));
  return String(Number(d.toPrecision(1)));
}

/** At most `max` characters, with an ellipsis when cut. */
function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

function r1(v: number): string {
  return String(Math.round(v * 10) / 10);
}
