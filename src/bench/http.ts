// The Wasp paper's fig. 13 in `wasp bench` (issue 15): an HTTP server where every request runs in a
// virtine, driven by wrk (a real HTTP client, Debian's `wrk`) over loopback at fixed connections.
// One `wasp serve` server (src/serve/) in this process serves the same static page five ways:
//   http_native            a Bun function in the same server (the baseline)
//   http_virtine           the Zig SDK guest guests/httpstatic.zig reading the page from a granted
//                          file, a VM per request, no snapshot
//   http_virtine_snapshot  the same resumed from its snapshot (the response's head made before it)
//   http_cgi               a static C program as CGI, reading the page from a granted file
//   http_js                a JavaScript handler returning the page
//   http_virtine_snapshot_recorded  http_virtine_snapshot in a second server of the same process
//                          with --record-failures (every call recorded and encoded, the failures'
//                          kept: what recording costs; beside http_virtine_snapshot)
// each as requests/s, and its latency's median and p99 (`_p50_us`, `_p99_us`) from wrk's. Then
// where a request's time goes (`http_stage_*_us`): the snapshot route's requests one at a time,
// each's Server-Timing stages (route, body, prepare, dispatch, vm) beside the whole round trip.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compileC } from "../linux/c.ts";
import { WaspServer } from "../serve/server.ts";
import { functionConfig, recordFailures, type ServeConfig } from "../serve/config.ts";
import type { ServedFunction } from "../serve/functions.ts";
import { BadArgsError } from "../errors.ts";
import { embeddedBench } from "./guests.ts";
import pageFile from "../../guests/httpstatic.page" with { type: "file" }; // an HTML page
import { summarize, type SeriesResult } from "./stats.ts";
import type { Series } from "./suite.ts";

/** wrk's connections and threads (the paper's figure is at fixed connections). */
const CONNECTIONS = 8;
const THREADS = 2;
/** Seconds of one wrk burst: the routes take turns in bursts of this length. */
const SLICE_SECONDS = 2;

const CGI = `#include <stdio.h>
int main(void) {
  FILE *f = fopen("/srv/page.html", "r");
  if (!f) { printf("Status: 500\\r\\nContent-Type: text/plain\\r\\n\\r\\nno page\\n"); return 0; }
  static char page[8192];
  size_t n = fread(page, 1, sizeof page, f);
  fclose(f);
  printf("Status: 200\\r\\nContent-Type: text/html; charset=utf-8\\r\\n\\r\\n");
  fwrite(page, 1, n, stdout);
  return 0;
}`;

export function wrkPath(): string {
  const found = ["/usr/bin/wrk", "/usr/local/bin/wrk"].find(existsSync);
  if (!found) throw new BadArgsError("the http_* series need wrk, a real HTTP client (Debian: apt install wrk); select others with --filter");
  return found;
}

/** wrk's latency line ("50%  1.23ms") in µs. */
function latencyUs(report: string, pct: string): number {
  const m = new RegExp(`^\\s*${pct}%\\s+([\\d.]+)(us|ms|s)\\s*$`, "m").exec(report);
  if (!m) throw new Error(`no ${pct}% latency in wrk's report`);
  const v = Number(m[1]);
  return m[2] === "us" ? v : m[2] === "ms" ? v * 1000 : v * 1e6;
}

/** One burst of wrk on a route: the requests it completed, its length, its latency's median and p99 (µs). */
export interface Burst {
  requests: number;
  seconds: number;
  p50: number;
  p99: number;
}

/**
 * One route driven by wrk for `seconds`. wrk runs as a child process awaited asynchronously: the
 * server it drives is this process's event loop.
 */
export async function burst(name: string, url: string, seconds: number, opts: { connections?: number; threads?: number; headers?: readonly string[] } = {}): Promise<Burst> {
  const headers = (opts.headers ?? []).flatMap((h) => ["-H", h]);
  const p = Bun.spawn([wrkPath(), `-t${opts.threads ?? THREADS}`, `-c${opts.connections ?? CONNECTIONS}`, `-d${seconds}s`, "--timeout", "10s", "--latency", ...headers, url], { stdout: "pipe", stderr: "pipe" });
  const [report, errors, exit] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (exit !== 0) throw new Error(`${name}: wrk exited with ${exit}: ${errors}`);
  if (/Non-2xx or 3xx responses: (\d+)/.test(report)) throw new Error(`${name}: the server answered errors:\n${report}`);
  const took = /(\d+) requests in ([\d.]+)(ms|s|m),/.exec(report);
  const requests = Number(took?.[1]);
  const actual = took ? Number(took[2]) * (took[3] === "ms" ? 1e-3 : took[3] === "m" ? 60 : 1) : NaN;
  if (!(requests > 0) || !(actual > 0)) throw new Error(`${name}: wrk completed no request in ${seconds} s:\n${report}`);
  return { requests, seconds: actual, p50: latencyUs(report, "50"), p99: latencyUs(report, "99") };
}

/** A route's bursts as its three series: requests/s over all of them; the median burst's p50 and p99. */
export function routeResults(name: string, bursts: Burst[]): SeriesResult[] {
  const n = bursts.reduce((a, b) => a + b.requests, 0);
  const rps = Math.round(n / bursts.reduce((a, b) => a + b.seconds, 0));
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const p50 = med(bursts.map((b) => b.p50));
  const p99 = med(bursts.map((b) => b.p99));
  return [
    { name, unit: "req/s", n, median: rps, p99: rps },
    { name: `${name}_p50_us`, unit: "us", n, median: p50, p99: p50 },
    { name: `${name}_p99_us`, unit: "us", n, median: p99, p99: p99 },
  ];
}

const KINDS = ["http_native", "http_virtine", "http_virtine_snapshot", "http_cgi", "http_js", "http_virtine_snapshot_recorded"] as const;
/** Where a request's time goes (the snapshot route, requests one at a time): the server's stages, and the whole round trip. */
const STAGES = ["route", "body", "prepare", "dispatch", "vm"] as const;
const STAGE_NAMES = [...STAGES.map((s) => `http_stage_${s}_us`), "http_stage_total_us"];

/**
 * `n` requests one after another on one connection, each's Server-Timing read: the median and p99
 * of every stage and of the round trip as the client saw it (µs). What the stages do not cover is
 * Bun's HTTP work (parsing the request, writing the response) and loopback.
 */
async function stages(url: string, n: number): Promise<SeriesResult[]> {
  const per: Record<string, number[]> = Object.fromEntries([...STAGES, "total"].map((s) => [s, []]));
  for (let i = 0; i < n; i++) {
    const t = Bun.nanoseconds();
    const r = await fetch(url);
    await r.arrayBuffer();
    per.total.push((Bun.nanoseconds() - t) / 1000);
    if (r.status !== 200) throw new Error(`http_stage: the server answered ${r.status}`);
    const timing = r.headers.get("server-timing") ?? "";
    for (const s of STAGES) {
      const m = new RegExp(`(?:^|, )${s};dur=([\\d.]+)`).exec(timing);
      if (!m) throw new Error(`http_stage: no ${s} in Server-Timing "${timing}"`);
      per[s].push(Number(m[1]) * 1000);
    }
  }
  return [...STAGES.map((s) => summarize(`http_stage_${s}_us`, "us", per[s])), summarize("http_stage_total_us", "us", per.total)];
}

async function fig13(runs: number): Promise<SeriesResult[]> {
  wrkPath(); // said before anything starts
  const dir = mkdtempSync(join(tmpdir(), "wasp-bench-http-"));
  try {
    const page = readFileSync(pageFile);
    const pagePath = join(dir, "page.html");
    writeFileSync(pagePath, page);
    const js = join(dir, "page.js");
    writeFileSync(js, `const page = ${JSON.stringify(page.toString())};\nexport default () => ({ status: 200, headers: { "content-type": "text/html; charset=utf-8" }, body: page });\n`);
    const cgi = (await compileC(CGI, { name: "page-cgi", optimize: "fast" })).path;
    const guest = embeddedBench("httpstatic");
    const granted = { "/srv/page.html": pagePath }; // the page the guests read, granted at the paper's path
    const defaults = { timeoutMs: 10_000, maxBody: 1 << 20 };
    const fn = (route: string, image: string, extra: Record<string, unknown> = {}) => functionConfig({ route, image, ...extra }, route, dir, defaults);
    // the baseline: the same page from a TypeScript function in the same server
    const native: ServedFunction = {
      config: { ...fn("/native", guest), name: "native" },
      kind: "image",
      inflight: 0,
      handle: async () => ({ status: 200, headers: [["Content-Type", "text/html; charset=utf-8"]], body: page }),
      close: async () => {},
    };
    const config: ServeConfig = {
      host: "127.0.0.1",
      port: 0,
      // http_virtine: no snapshot (every request starts the guest at its entry and builds the response)
      functions: [
        fn("/virtine", guest, { name: "virtine", snapshot: false, files: granted }),
        fn("/snapshot", guest, { name: "snapshot", files: granted }),
        fn("/cgi", cgi, { name: "cgi", files: granted }),
        fn("/js", js, { name: "js" }),
      ],
      maxQueue: 4096,
      graceMs: 1000,
      warmCalls: Math.min(2000, runs * 200), // the workers' call paths settled before wrk starts
      accessLog: false,
    };
    const server = new WaspServer(config, { log: () => {}, extra: [native] });
    // the snapshot route again, every call recorded (--record-failures): the page never fails, so
    // what it costs is the recording and its encoding of every call
    const recorded = new WaspServer({ ...config, functions: [fn("/snapshot", guest, { name: "snapshot", files: granted })], recordFailures: recordFailures(join(dir, "recordings")) }, { log: () => {} });
    await server.start();
    await recorded.start();
    try {
      const base = `http://127.0.0.1:${server.port}`;
      // the routes take turns, 2-second bursts each, so that every route sees the same moments of
      // a noisy machine (one route after another, the native baseline alone moved 18-34k req/s
      // between runs here)
      const seconds = Math.max(1, Math.min(60, runs));
      const slices = Math.max(1, Math.round(seconds / SLICE_SECONDS));
      const routes: Record<(typeof KINDS)[number], string> = {
        http_native: `${base}/native`,
        http_virtine: `${base}/virtine`,
        http_virtine_snapshot: `${base}/snapshot`,
        http_cgi: `${base}/cgi`,
        http_js: `${base}/js`,
        http_virtine_snapshot_recorded: `http://127.0.0.1:${recorded.port}/snapshot`,
      };
      const results: SeriesResult[] = [];
      const bursts = new Map<string, Burst[]>(KINDS.map((k) => [k, []]));
      for (let i = 0; i < slices; i++) for (const k of KINDS) bursts.get(k)!.push(await burst(k, `${routes[k]}/index.html`, SLICE_SECONDS));
      for (const k of KINDS) results.push(...routeResults(k, bursts.get(k)!));
      results.push(...(await stages(`${base}/snapshot/index.html`, Math.min(5000, runs * 200))));
      return results;
    } finally {
      await server.stop();
      await recorded.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const HTTP_SERIES: Series[] = [
  {
    // runs: seconds of wrk per route (default 10)
    name: "http",
    reports: [...KINDS.flatMap((k) => [k, `${k}_p50_us`, `${k}_p99_us`]), ...STAGE_NAMES],
    defaultRuns: 10,
    run: (runs) => fig13(runs),
  },
];

export const HTTP_BESIDE: Readonly<Record<string, string>> = Object.fromEntries(
  KINDS.filter((k) => k !== "http_native").flatMap((k) => {
    const beside = k === "http_virtine_snapshot_recorded" ? "http_virtine_snapshot" : "http_native";
    return [
      [k, beside],
      [`${k}_p99_us`, `${beside}_p99_us`],
    ];
  }),
);
