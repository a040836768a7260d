// `wasp serve` (issue 15) on the real /dev/kvm, with Bun's own fetch as the client: a Zig SDK guest
// (virtine.http), a JavaScript handler and a C program as CGI behind their routes; errors as
// statuses with a short JSON body; the server's own endpoints; the concurrency limit; a reload; a
// drain; and the command line (SIGTERM, SIGHUP).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compileC } from "../src/linux/c.ts";
import { functionConfig, type ServeConfig } from "../src/serve/config.ts";
import { WaspServer } from "../src/serve/server.ts";
import { guest, readLines, slow, waitFor, WASP } from "./support.ts";

const tmp = mkdtempSync(join(tmpdir(), "wasp-serve-"));
const logs: string[] = [];
let server: WaspServer;
let base = "";

const CGI = `#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
  const char *path = getenv("PATH_INFO");
  if (path && strcmp(path, "/fail") == 0) return 3;            /* no response at all */
  if (path && strcmp(path, "/garbage") == 0) { printf("not a header line\\n\\nbody"); return 0; }
  char body[256] = {0};
  size_t n = fread(body, 1, sizeof body - 1, stdin);
  printf("Status: 201 Created\\r\\nContent-Type: text/plain\\r\\nX-Cgi: yes\\r\\n\\r\\n");
  printf("%s|%s|%s|%s|%s|%s|%s|%zu:%s\\n", getenv("REQUEST_METHOD"), getenv("SCRIPT_NAME"), path ? path : "", getenv("QUERY_STRING"),
         getenv("HTTP_X_TEST") ? getenv("HTTP_X_TEST") : "-", getenv("HTTP_PROXY") ? "PROXY!" : "no-proxy", getenv("CONTENT_TYPE") ? getenv("CONTENT_TYPE") : "-", n, body);
  return 0;
}`;

const JS = `export default (req) => {
  if (req.path === "/throw") throw new Error("handler failed");
  if (req.path === "/plain") return { got: req.method, query: req.query, body: req.body ? JSON.parse(req.body) : null };
  return { status: 202, headers: { "x-js": "1" }, body: req.method + " " + req.url };
};`;

function config(functions: ServeConfig["functions"]): ServeConfig {
  return { host: "127.0.0.1", port: 0, functions, workers: 2, maxQueue: 64, graceMs: slow(5000), warmCalls: 2, accessLog: true };
}

const fn = (route: string, image: string, extra: Record<string, unknown> = {}) => functionConfig({ route, image, ...extra }, route, tmp, { timeoutMs: slow(2000), maxBody: 1024 });

beforeAll(async () => {
  const cgi = (await compileC(CGI, { name: "cgi", cacheDir: join(tmp, "cache") })).path;
  writeFileSync(join(tmp, "h.js"), JS);
  server = new WaspServer(
    config([
      fn("/hello", guest("httphello"), { methods: ["GET", "POST"] }),
      fn("/js", join(tmp, "h.js")),
      fn("/cgi", cgi),
      fn("/one", guest("httphello"), { concurrency: 1 }),
    ]),
    { log: (l) => logs.push(l) },
  );
  await server.start();
  base = `http://127.0.0.1:${server.port}`;
}, slow(600_000));

afterAll(async () => {
  await server?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

async function json(r: Response): Promise<Record<string, unknown>> {
  expect(r.headers.get("content-type")).toBe("application/json");
  return (await r.json()) as Record<string, unknown>;
}

describe("requests", () => {
  test("a Zig SDK guest: the request in, its response out, with the request's id", async () => {
    const r = await fetch(`${base}/hello/x?a=1&b=two`, { headers: { "user-agent": "bun-test" } });
    expect(r.status).toBe(200);
    expect(await r.text()).toBe("GET /hello/x q=a=1&b=two agent=bun-test body=\n");
    expect(r.headers.get("x-guest")).toBe("httphello");
    expect(r.headers.get("x-request-id")).toMatch(/^[0-9a-f]{8}-[0-9a-z]+$/);
    const timing = r.headers.get("server-timing") ?? "";
    expect(timing).toMatch(/^route;dur=[\d.]+, body;dur=[\d.]+, prepare;dur=[\d.]+, dispatch;dur=[\d.]+, vm;dur=[\d.]+$/);
    expect(Number(/vm;dur=([\d.]+)/.exec(timing)?.[1])).toBeGreaterThan(0); // the worker timed the guest's run
    const p = await fetch(`${base}/hello`, { method: "POST", body: "payload" });
    expect(await p.text()).toBe("POST /hello q= agent=Bun/" + Bun.version + " body=payload\n");
    expect((await fetch(`${base}/hello/missing`)).status).toBe(404); // the guest's own 404
  }, slow(60_000));

  test("a JavaScript handler: a Response-like result, or a value as JSON", async () => {
    const r = await fetch(`${base}/js/a?b=1`, { method: "PUT" });
    expect([r.status, await r.text(), r.headers.get("x-js")]).toEqual([202, "PUT /js/a?b=1", "1"]);
    const p = await fetch(`${base}/js/plain?x=y`, { method: "POST", body: JSON.stringify({ n: 1 }) });
    expect(await json(p)).toEqual({ got: "POST", query: "x=y", body: { n: 1 } });
  }, slow(60_000));

  test("a C program as CGI: meta-variables, the body on stdin, its Status and headers; no HTTP_PROXY", async () => {
    const r = await fetch(`${base}/cgi/p/q?k=v`, { method: "POST", body: "abc", headers: { "x-test": "T", proxy: "http://evil", "content-type": "text/x" } });
    expect(r.status).toBe(201);
    expect(r.headers.get("x-cgi")).toBe("yes");
    expect(await r.text()).toBe("POST|/cgi|/p/q|k=v|T|no-proxy|text/x|3:abc\n");
  }, slow(60_000));
});

describe("errors are statuses, never internals", () => {
  test("no route 404, a method not allowed 405, a body over the limit 413", async () => {
    const none = await fetch(`${base}/elsewhere`);
    expect(none.status).toBe(404);
    const body = await json(none);
    expect(body.error).toBe("not_found");
    expect(body.request_id).toBe(none.headers.get("x-request-id")!);
    const m = await fetch(`${base}/hello`, { method: "DELETE" });
    expect([m.status, m.headers.get("allow")]).toEqual([405, "GET, POST"]);
    expect((await fetch(`${base}/hello`, { method: "POST", body: "x".repeat(2000) })).status).toBe(413);
  }, slow(60_000));

  test("a guest that panics, writes garbage, exits without a response or throws: 502; one past its deadline: 504", async () => {
    for (const path of ["/hello/panic", "/hello/bad", "/cgi/fail", "/cgi/garbage", "/js/throw"]) {
      const r = await fetch(`${base}${path}`);
      expect([path, r.status]).toEqual([path, 502]);
      const body = await json(r);
      expect(Object.keys(body).sort()).toEqual(["error", "request_id"]);
      expect(body.error).toBe("bad_gateway");
    }
    const t = await fetch(`${base}/hello/spin`);
    expect(t.status).toBe(504);
    expect((await json(t)).error).toBe("timeout");
    // the detail is in the log, with the request's id
    const id = t.headers.get("x-request-id")!;
    const line = logs.map((l) => JSON.parse(l)).find((l) => l.request_id === id);
    expect(line).toMatchObject({ status: 504, function: "httphello.bin", path: "/hello/spin" });
    expect(line.detail).toMatch(/^WASP_TIMEOUT: the guest ran past its deadline/);
    // and the server is fine
    expect((await fetch(`${base}/hello/x`)).status).toBe(200);
  }, slow(120_000));

  test("past a function's concurrency 503 with Retry-After", async () => {
    const spinning = fetch(`${base}/one/spin`);
    await Bun.sleep(slow(200));
    const r = await fetch(`${base}/one/x`);
    expect([r.status, r.headers.get("retry-after")]).toEqual([503, "1"]);
    expect((await spinning).status).toBe(504);
  }, slow(60_000));
});

describe("operations", () => {
  test("a request without a Host header (HTTP/1.0, a balancer's health check) is served", async () => {
    const socket = await Bun.connect({
      hostname: "127.0.0.1",
      port: server.port,
      socket: {
        data(s, d) {
          (s.data as { got: string }).got += new TextDecoder().decode(d);
        },
      },
      data: { got: "" },
    });
    socket.write("GET /readyz HTTP/1.0\r\n\r\n");
    for (let i = 0; i < 100 && !(socket.data as { got: string }).got.includes("ready"); i++) await Bun.sleep(slow(20));
    expect((socket.data as { got: string }).got).toStartWith("HTTP/1.1 200");
    socket.end();
  }, slow(60_000));

  test("/healthz, /readyz, /metrics", async () => {
    expect(await (await fetch(`${base}/healthz`)).text()).toBe("ok\n");
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const m = await (await fetch(`${base}/metrics`)).text();
    expect(m).toContain('wasp_requests_total{function="httphello.bin",status="200"}');
    expect(m).toContain("wasp_request_duration_seconds_bucket");
    expect(m).toContain("wasp_requests_in_flight");
    expect(m).toContain("wasp_queue_depth");
    expect(m).toContain('wasp_request_stage_seconds_count{function="httphello.bin",stage="vm"}');
  }, slow(60_000));

  test("a reload swaps the functions without dropping a request in flight", async () => {
    const slowCall = fetch(`${base}/hello/spin`); // in flight across the reload: finishes (504), not dropped
    await Bun.sleep(slow(100));
    await server.reload([fn("/renamed", guest("httphello")), fn("/js", join(tmp, "h.js"))]);
    expect((await fetch(`${base}/renamed/x`)).status).toBe(200);
    expect((await fetch(`${base}/hello/x`)).status).toBe(404);
    expect((await slowCall).status).toBe(504);
  }, slow(120_000));
});

describe("the command line", () => {
  test("wasp serve --route: serves, then SIGTERM drains and exits 0", async () => {
    const p = Bun.spawn([WASP, "serve", "--route", `/h=${guest("httphello")}`, "--port", "0", "--warm-calls", "1", "--timeout", String(slow(500))], { stderr: "pipe", stdout: "pipe" });
    const url = await listeningUrl(p.stderr);
    expect((await fetch(`${url}h/y`)).status).toBe(200);
    // errors cross from the workers by their code: the standalone binary's classes are minified
    expect((await fetch(`${url}h/panic`)).status).toBe(502);
    expect((await fetch(`${url}h/spin`)).status).toBe(504);
    p.kill("SIGTERM");
    expect(await p.exited).toBe(0);
  }, slow(120_000));

  test("wasp serve --config: SIGHUP reloads the file; a bad file keeps the old one", async () => {
    const file = join(tmp, "wasp.toml");
    writeFileSync(file, `port = 0\nwarm_calls = 1\n[[function]]\nroute = "/a"\nimage = "${guest("httphello")}"\n`);
    const p = Bun.spawn([WASP, "serve", "--config", file], { stderr: "pipe", stdout: "pipe" });
    const lines = readLines(p.stderr);
    const url = await waitFor(lines, (l) => l.msg === "listening").then((l) => l.url as string);
    await waitFor(lines, (l) => l.msg === "ready");
    expect((await fetch(`${url}a/x`)).status).toBe(200);
    writeFileSync(file, `port = 0\nwarm_calls = 1\n[[function]]\nroute = "/b"\nimage = "${guest("httphello")}"\n`);
    p.kill("SIGHUP");
    await waitFor(lines, (l) => l.msg === "reloaded");
    expect((await fetch(`${url}b/x`)).status).toBe(200);
    expect((await fetch(`${url}a/x`)).status).toBe(404);
    writeFileSync(file, `this is not toml = = =`);
    p.kill("SIGHUP");
    await waitFor(lines, (l) => l.msg === "reload failed; the previous configuration keeps serving");
    expect((await fetch(`${url}b/x`)).status).toBe(200);
    p.kill("SIGINT");
    expect(await p.exited).toBe(0);
  }, slow(120_000));

  test("a bad route or image is one wasp: line before anything is served", () => {
    const r = Bun.spawnSync([WASP, "serve", "--route", "nope"]);
    expect([r.exitCode, r.stderr.toString()]).toEqual([2, "wasp: --route nope: not PREFIX=IMAGE (e.g. --route /hello=./hello.js)\n"]);
    const missing = Bun.spawnSync([WASP, "serve", "--route", `/x=${join(tmp, "missing.bin")}`, "--port", "0"]);
    expect(missing.exitCode).toBe(3);
    expect(missing.stderr.toString()).toStartWith("wasp: function missing.bin");
  });
});

async function listeningUrl(stream: ReadableStream<Uint8Array>): Promise<string> {
  const s = readLines(stream);
  const l = await waitFor(s, (x) => x.msg === "listening");
  await waitFor(s, (x) => x.msg === "ready");
  return l.url as string;
}
