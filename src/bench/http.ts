// The Wasp paper's fig. 13 in `wasp bench` (issue 15): an HTTP server where every request runs in a
// virtine, driven by wrk (a real HTTP client, Debian's `wrk`) over loopback at fixed connections.
// One `wasp serve` server (src/serve/) in this process serves the same static page five ways:
//   http_native            a Bun function in the same server (the baseline)
//   http_virtine           the Zig SDK guest guests/httpstatic.zig reading the page from a granted
//                          file, a VM per request, no snapshot
//   http_virtine_snapshot  the same resumed from its snapshot (the response's head made before it)
//   http_cgi               a static C program as CGI, reading the page from a granted file
//   http_js                a JavaScript handler returning the page
// each as requests/s, and its latency's median and p99 (`_p50_us`, `_p99_us`) from wrk's.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compileC } from "../linux/c.ts";
import { WaspServer } from "../serve/server.ts";
import { functionConfig, type ServeConfig } from "../serve/config.ts";
import type { ServedFunction } from "../serve/functions.ts";
import { BadArgsError } from "../errors.ts";
import { embeddedBench } from "./guests.ts";
import pageFile from "../../guests/httpstatic.page" with { type: "file" }; // an HTML page
import type { SeriesResult } from "./stats.ts";
import type { Series } from "./suite.ts";

/** wrk's connections and threads (the paper's figure is at fixed connections). */
const CONNECTIONS = 8;
const THREADS = 2;

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

function wrkPath(): string {
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

/**
 * One route driven by wrk for `seconds`: requests/s and the latency's median and p99. wrk runs as
 * a child process awaited asynchronously: the server it drives is this process's event loop.
 */
async function drive(name: string, url: string, seconds: number): Promise<SeriesResult[]> {
  const p = Bun.spawn([wrkPath(), `-t${THREADS}`, `-c${CONNECTIONS}`, `-d${seconds}s`, "--timeout", "10s", "--latency", url], { stdout: "pipe", stderr: "pipe" });
  const [report, errors, exit] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (exit !== 0) throw new Error(`${name}: wrk exited with ${exit}: ${errors}`);
  if (/Non-2xx or 3xx responses: (\d+)/.test(report)) throw new Error(`${name}: the server answered errors:\n${report}`);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(report)?.[1]);
  const n = Number(/(\d+) requests in/.exec(report)?.[1]);
  if (!(n > 0) || !(rps > 0)) throw new Error(`${name}: wrk completed no request in ${seconds} s:\n${report}`);
  return [
    { name, unit: "req/s", n, median: Math.round(rps), p99: Math.round(rps) },
    { name: `${name}_p50_us`, unit: "us", n, median: latencyUs(report, "50"), p99: latencyUs(report, "50") },
    { name: `${name}_p99_us`, unit: "us", n, median: latencyUs(report, "99"), p99: latencyUs(report, "99") },
  ];
}

const KINDS = ["http_native", "http_virtine", "http_virtine_snapshot", "http_cgi", "http_js"] as const;

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
    await server.start();
    try {
      const base = `http://127.0.0.1:${server.port}`;
      const seconds = Math.max(1, Math.min(60, runs));
      const routes: Record<(typeof KINDS)[number], string> = { http_native: "/native", http_virtine: "/virtine", http_virtine_snapshot: "/snapshot", http_cgi: "/cgi", http_js: "/js" };
      const results: SeriesResult[] = [];
      for (const k of KINDS) results.push(...(await drive(k, `${base}${routes[k]}/index.html`, seconds)));
      return results;
    } finally {
      await server.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const HTTP_SERIES: Series[] = [
  {
    // runs: seconds of wrk per route (default 10)
    name: "http",
    reports: KINDS.flatMap((k) => [k, `${k}_p50_us`, `${k}_p99_us`]),
    defaultRuns: 10,
    run: (runs) => fig13(runs),
  },
];

export const HTTP_BESIDE: Readonly<Record<string, string>> = Object.fromEntries(
  KINDS.filter((k) => k !== "http_native").flatMap((k) => [
    [k, "http_native"],
    [`${k}_p99_us`, "http_native_p99_us"],
  ]),
);
