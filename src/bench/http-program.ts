// `wasp serve --program` in `wasp bench` (issue 25): one unmodified HTTP server — a small C program
// of the kind people write, blocking, one connection at a time, HTTP/1.1 keep-alive, the page read
// once at its start — served a connection per virtine by a ProgramServer in this process, beside
// the same executable run natively, both driven by the same wrk runs in alternating bursts:
//   http_program / http_program_native              keep-alive, one connection (an iterative
//                                                   server serves one at a time)
//   http_program_close / http_program_close_native  `Connection: close`, two connections: every
//                                                   request a connection, a virtine each
// each as requests/s and its latency's median and p99 (`_p50_us`, `_p99_us`).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compileC } from "../linux/c.ts";
import { ProgramServer } from "../serve/program.ts";
import { programConfig, type ServeConfig } from "../serve/config.ts";
import pageFile from "../../guests/httpstatic.page" with { type: "file" }; // an HTML page
import { burst, routeResults, wrkPath, type Burst } from "./http.ts";
import type { SeriesResult } from "./stats.ts";
import type { Series } from "./suite.ts";

const SLICE_SECONDS = 2;

/** The server (its port and its page's path as arguments): reads its page once, then answers every request on a connection with it (keep-alive until the client closes or says Connection: close). */
export const PROGRAM_SERVER = `
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static char page[16384];
static char head[256];

int main(int argc, char **argv) {
  const char *path = argc > 2 ? argv[2] : "/srv/page.html";
  FILE *f = fopen(path, "r");
  if (!f) { perror(path); return 1; }
  size_t n = fread(page, 1, sizeof page, f);
  fclose(f);
  int hl = snprintf(head, sizeof head, "HTTP/1.1 200 OK\\r\\nContent-Type: text/html; charset=utf-8\\r\\nContent-Length: %zu\\r\\n", n);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons(argc > 1 ? atoi(argv[1]) : 8080);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 128) < 0) { perror("listen"); return 1; }
  static char out[sizeof head + 64 + sizeof page];
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) continue;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char buf[8192];
    size_t have = 0;
    for (;;) {
      char *end;
      while ((end = strstr(buf, "\\r\\n\\r\\n")) == NULL || have == 0) {
        ssize_t r = read(c, buf + have, sizeof buf - 1 - have);
        if (r <= 0) goto done;
        have += r;
        buf[have] = 0;
      }
      *end = 0;
      int closing = strcasestr(buf, "\\r\\nconnection: close") != NULL;
      size_t ol = 0;
      memcpy(out, head, hl);
      ol = hl;
      if (closing) { memcpy(out + ol, "Connection: close\\r\\n", 19); ol += 19; }
      memcpy(out + ol, "\\r\\n", 2);
      ol += 2;
      memcpy(out + ol, page, n);
      ol += n;
      if (write(c, out, ol) < 0 || closing) goto done;
      size_t used = end + 4 - buf;
      memmove(buf, buf + used, have - used + 1);
      have -= used;
    }
  done:
    close(c);
  }
}`;

const PAIRS = [
  { name: "http_program", wrk: { connections: 1, threads: 1 } },
  { name: "http_program_close", wrk: { connections: 2, threads: 1, headers: ["Connection: close"] } },
] as const;

async function waitListening(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      // Connection: close: an iterative server serves one connection at a time, and fetch would keep this one
      await (await fetch(`http://127.0.0.1:${port}/`, { headers: { connection: "close" } })).arrayBuffer();
      return;
    } catch {
      await Bun.sleep(25);
    }
  }
  throw new Error(`http_program_native: the native server did not answer on port ${port}`);
}

async function programBench(runs: number): Promise<SeriesResult[]> {
  wrkPath();
  const dir = mkdtempSync(join(tmpdir(), "wasp-bench-program-"));
  let native: ReturnType<typeof Bun.spawn> | undefined;
  let server: ProgramServer | undefined;
  try {
    const pagePath = join(dir, "page.html");
    writeFileSync(pagePath, readFileSync(pageFile));
    const exe = (await compileC(PROGRAM_SERVER, { name: "page-server", optimize: "fast" })).path;
    const nativePort = 20000 + Math.floor(Math.random() * 20000);
    // the same executable natively: its port and the page's path on the host as its arguments
    native = Bun.spawn([exe, String(nativePort), pagePath], { stdout: "ignore", stderr: "ignore" });
    await waitListening(nativePort);
    const config: ServeConfig = {
      host: "127.0.0.1",
      port: 0,
      functions: [],
      // max_requests 1000 (default 100): a keep-alive connection's reconnect at the cap (its next
      // request sent, then the end seen, then sent again) is then 0.1% of the requests, below the p99
      program: programConfig({ path: exe, args: ["8080", "/srv/page.html"], listen: "127.0.0.1:0", files: { "/srv/page.html": pagePath }, max_requests: 1000 }, "http_program", dir, { timeoutMs: 10_000 }),
      maxQueue: 1024,
      graceMs: 1000,
      warmCalls: 0,
      accessLog: false,
    };
    server = new ProgramServer(config, { log: process.env.WASP_BENCH_LOG ? (l) => console.error(l) : () => {} });
    await server.start();
    const base = { wasp: `http://127.0.0.1:${server.listen.port}/index.html`, native: `http://127.0.0.1:${nativePort}/index.html` };
    // a warm-up burst each (the first connections' sites rewritten, the workers' code compiled)
    for (const p of PAIRS) {
      await burst(p.name, base.wasp, 1, p.wrk);
      await burst(p.name, base.native, 1, p.wrk);
    }
    const seconds = Math.max(1, Math.min(60, runs));
    const slices = Math.max(1, Math.round(seconds / SLICE_SECONDS));
    const bursts = new Map<string, Burst[]>();
    for (let i = 0; i < slices; i++) {
      for (const p of PAIRS) {
        for (const [who, url] of [["", base.wasp], ["_native", base.native]] as const) {
          const name = `${p.name}${who}`;
          const list = bursts.get(name) ?? [];
          list.push(await burst(name, url, SLICE_SECONDS, p.wrk));
          bursts.set(name, list);
        }
      }
    }
    return [...bursts].flatMap(([name, list]) => routeResults(name, list));
  } finally {
    await server?.stop();
    native?.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

const NAMES = PAIRS.flatMap((p) => [p.name, `${p.name}_native`]);

export const HTTP_PROGRAM_SERIES: Series[] = [
  {
    // runs: seconds of wrk per route (default 10)
    name: "http_program",
    reports: NAMES.flatMap((k) => [k, `${k}_p50_us`, `${k}_p99_us`]),
    defaultRuns: 10,
    run: (runs) => programBench(runs),
  },
];

export const HTTP_PROGRAM_BESIDE: Readonly<Record<string, string>> = Object.fromEntries(
  PAIRS.flatMap((p) => [
    [p.name, `${p.name}_native`],
    [`${p.name}_p99_us`, `${p.name}_native_p99_us`],
  ]),
);
