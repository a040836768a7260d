// `wasp serve` without a VM (issue 15): the CGI answer parser takes any bytes a guest writes —
// fast-check: a response or a CgiError, never another exception, never a header the guest may not
// set, never a header value that could split the response; the meta-variables of RFC 3875; a
// JavaScript handler's Response-like result; the configuration's checks; routing.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { BadArgsError } from "../src/index.ts";
import { CgiError, cgiEnvironment, parseCgiResponse, MAX_CGI_HEADERS, type RequestInfo } from "../src/serve/cgi.ts";
import { checkRoute, serveConfig } from "../src/serve/config.ts";
import { encodeHttpRequest, jsRequest, jsResponse, type ServedFunction } from "../src/serve/functions.ts";
import { route, statusOf } from "../src/serve/server.ts";
import { JsError, QueueFullError, TimeoutError } from "../src/errors.ts";
import { thrown } from "./support.ts";

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe("parseCgiResponse", () => {
  test("status, headers and body; LF or CRLF; Location without Status is 302", () => {
    const r = parseCgiResponse(bytes("Status: 201 Created\r\nContent-Type: text/plain\r\nX-A: 1\r\n\r\nhello\n"));
    expect([r.status, r.headers, text(r.body)]).toEqual([201, [["Content-Type", "text/plain"], ["X-A", "1"]], "hello\n"]);
    const lf = parseCgiResponse(bytes("Content-Type: text/html\n\n<p>"));
    expect([lf.status, text(lf.body)]).toEqual([200, "<p>"]);
    expect(parseCgiResponse(bytes("Location: /elsewhere\n\n")).status).toBe(302);
    expect(parseCgiResponse(bytes("\n")).status).toBe(200); // no headers, no body
    expect(parseCgiResponse(bytes("Status: 204\n\n")).status).toBe(204);
  });

  test("headers that are the server's are dropped; a malformed answer is a CgiError", () => {
    const r = parseCgiResponse(bytes("Content-Type: a/b\nContent-Length: 999\nConnection: close\nTransfer-Encoding: chunked\nProxy-Authenticate: x\nServer: evil\n\nbody"));
    expect(r.headers).toEqual([["Content-Type", "a/b"]]);
    for (const bad of [
      "no blank line at all",
      "Content-Type: text/plain\nbody without a blank line",
      "Status: 99\n\n",
      "Status: 600\n\n",
      "Status: 200\nStatus: 201\n\n",
      "Status: 103 Early\n\n",
      "Status: abc\n\n",
      "Bad Header: x\n\n",
      "NoColon\n\n",
      ": novalue\n\n",
      "Content-Type: text/plain\rX-Injected: 1\n\nbody",
      "X-Null: a\0b\n\n",
      "\n\nbody without a type",
      "Status: 204\nContent-Type: a/b\n\nbody",
      `${"X-H: v\n".repeat(MAX_CGI_HEADERS + 1)}\n`,
      `X-Long: ${"v".repeat(70 * 1024)}\n\n`,
    ]) {
      expect(thrown(() => parseCgiResponse(bytes(bad)))).toBeInstanceOf(CgiError);
    }
  });

  test("property: any bytes give a response or a CgiError; headers never hold CR, LF or NUL, and never the server's", () => {
    const line = fc.oneof(
      fc.constantFrom("Status: 200 OK", "Status: 404", "Content-Type: text/plain", "Location: /x", "Connection: close", "Content-Length: 5", "X-A: b", ""),
      fc.string({ maxLength: 40 }),
      fc.uint8Array({ maxLength: 40 }).map((b) => String.fromCharCode(...b)),
    );
    const answer = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.tuple(fc.array(line, { maxLength: 8 }), fc.constantFrom("\n", "\r\n"), fc.string({ maxLength: 50 })).map(([ls, nl, body]) => bytes(`${ls.join(nl)}${nl}${nl}${body}`)),
    );
    fc.assert(
      fc.property(answer, (out) => {
        let r;
        try {
          r = parseCgiResponse(out);
        } catch (e) {
          if (!(e instanceof CgiError)) throw e;
          return;
        }
        expect(r.status).toBeGreaterThanOrEqual(200);
        expect(r.status).toBeLessThanOrEqual(599);
        for (const [k, v] of r.headers) {
          expect(/[\r\n\0]/.test(k + v)).toBe(false);
          expect(["content-length", "connection", "transfer-encoding", "status"]).not.toContain(k.toLowerCase());
        }
      }),
      { numRuns: Number(process.env.WASP_FUZZ_RUNS ?? 3000) },
    );
  });
});

const request: RequestInfo = {
  method: "POST",
  path: "/app/x/y",
  query: "a=1&b=%20",
  scriptName: "/app",
  pathInfo: "/x/y",
  headers: [["content-type", "application/json"], ["content-length", "2"], ["user-agent", "t"], ["x-multi-word", "v"], ["proxy", "http://evil"], ["host", "h:1"]],
  body: bytes("{}"),
  remoteAddr: "10.0.0.1",
  serverName: "h",
  serverPort: 1,
};

describe("the request as each kind sees it", () => {
  test("CGI meta-variables (RFC 3875, 4.1); no HTTP_PROXY (httpoxy)", () => {
    const env = cgiEnvironment(request);
    expect(env).toMatchObject({
      GATEWAY_INTERFACE: "CGI/1.1",
      REQUEST_METHOD: "POST",
      SCRIPT_NAME: "/app",
      PATH_INFO: "/x/y",
      QUERY_STRING: "a=1&b=%20",
      CONTENT_TYPE: "application/json",
      CONTENT_LENGTH: "2",
      REMOTE_ADDR: "10.0.0.1",
      SERVER_NAME: "h",
      SERVER_PORT: "1",
      SERVER_PROTOCOL: "HTTP/1.1",
      HTTP_USER_AGENT: "t",
      HTTP_X_MULTI_WORD: "v",
      HTTP_HOST: "h:1",
    });
    expect(env.HTTP_PROXY).toBeUndefined();
    expect(env.HTTP_CONTENT_TYPE).toBeUndefined();
    expect(cgiEnvironment({ ...request, body: new Uint8Array(0) }).CONTENT_LENGTH).toBeUndefined();
  });

  test("an HTTP/1.1 message for wasp images; a Request-like object for JavaScript", () => {
    const msg = text(encodeHttpRequest(request));
    expect(msg.startsWith("POST /app/x/y?a=1&b=%20 HTTP/1.1\r\n")).toBe(true);
    expect(msg).toContain("\r\ncontent-length: 2\r\n\r\n{}");
    expect(msg.match(/content-length/g)).toHaveLength(1);
    expect(jsRequest(request)).toEqual({ method: "POST", url: "/app/x/y?a=1&b=%20", path: "/x/y", query: "a=1&b=%20", headers: Object.fromEntries(request.headers), body: "{}" });
  });

  test("a JavaScript result: a Response-like object, or any value as JSON", () => {
    const r = jsResponse({ status: 201, headers: { "x-a": "1" }, body: "made" });
    expect([r.status, r.headers, text(r.body)]).toEqual([201, [["Content-Type", "text/plain; charset=utf-8"], ["x-a", "1"]], "made"]);
    const j = jsResponse({ status: 200, body: { ok: true } });
    expect([j.headers, text(j.body)]).toEqual([[["Content-Type", "application/json"]], `{"ok":true}`]);
    const plain = jsResponse({ status: 200, other: 1 }); // not Response-like: sent as JSON
    expect(text(plain.body)).toBe(`{"status":200,"other":1}`);
    expect(text(jsResponse([1, 2]).body)).toBe("[1,2]");
    expect(text(jsResponse(undefined).body)).toBe("null");
    for (const bad of [{ status: 99 }, { status: 200.5 }, { status: "200" }, { status: 200, headers: { a: 1 } }, { status: 200, headers: { "bad name": "v" } }, { status: 200, headers: { a: "x\ny" } }]) {
      expect(thrown(() => jsResponse(bad))).toBeInstanceOf(CgiError);
    }
  });
});

describe("configuration and routing", () => {
  test("a TOML file's functions, defaults and checks", () => {
    const doc = Bun.TOML.parse(`
port = 9000
timeout_ms = 500
[[function]]
route = "/api/"
image = "h.js"
methods = ["get", "POST"]
max_body = "2M"
[[function]]
name = "cgi"
route = "/"
image = "/abs/prog"
env = { A = "b" }
files = { "/etc/page.html" = "page.html" }
`);
    const c = serveConfig(doc, "/srv/wasp.toml");
    expect(c.port).toBe(9000);
    expect(c.functions[0]).toMatchObject({ name: "h.js", route: "/api", image: "/srv/h.js", methods: ["GET", "POST"], maxBody: 2 << 20, timeoutMs: 500 });
    expect(c.functions[1]).toMatchObject({ name: "cgi", route: "/", image: "/abs/prog", env: { A: "b" }, files: { "/etc/page.html": "/srv/page.html" } });
    for (const bad of [
      `[[function]]\nroute = "x"\nimage = "a"`,
      `[[function]]\nroute = "/metrics"\nimage = "a"`,
      `[[function]]\nroute = "/a/../b"\nimage = "a"`,
      `[[function]]\nroute = "/a"`,
      `[[function]]\nroute = "/a"\nimage = "a"\nmethods = ["BREW"]`,
      `[[function]]\nroute = "/a"\nimage = "a"\nunknown = 1`,
      `port = 70000\n[[function]]\nroute = "/a"\nimage = "a"`,
      `[[function]]\nroute = "/a"\nimage = "a"\n[[function]]\nroute = "/a"\nimage = "b"`,
      `[[function]]\nroute = "/a"\nimage = "a"\nfiles = { "rel" = "x" }`,
      `colour = "blue"\n[[function]]\nroute = "/a"\nimage = "a"`,
      ``,
    ]) {
      expect(thrown(() => serveConfig(Bun.TOML.parse(bad), "/srv/w.toml"))).toBeInstanceOf(BadArgsError);
    }
    expect(checkRoute("/", "x")).toBe("/");
  });

  test("a [program] table: the served program, its paths from the file's folder, its defaults; what it may not be", () => {
    const c = serveConfig(
      Bun.TOML.parse(`port = 9090
workers = 3
[program]
path = "bin/server"
args = ["8080", "-v"]
listen = "127.0.0.1:8080"
max_requests = 7
files = { "/etc/s.conf" = "s.conf" }
dirs = { "/www" = "www" }
`),
      "/srv/wasp.toml",
    );
    expect(c.functions).toEqual([]);
    expect(c.workers).toBe(3);
    expect(c.program).toEqual({
      name: "server",
      path: "/srv/bin/server",
      args: ["8080", "-v"],
      listen: { host: "127.0.0.1", port: 8080 },
      timeoutMs: 10_000,
      keepAliveMs: 5000,
      maxRequests: 7,
      memory: undefined,
      allow: [],
      env: {},
      files: { "/etc/s.conf": "/srv/s.conf" },
      dirs: { "/www": "/srv/www" },
      warmRequests: ["GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: wasp-warmup\r\nConnection: close\r\n\r\n"],
    });
    expect(serveConfig(Bun.TOML.parse(`[program]\npath = "s"\nlisten = "9000"\nwarm_requests = []`), "/srv/w.toml").program).toMatchObject({ listen: { host: "127.0.0.1", port: 9000 }, warmRequests: [] });
    for (const bad of [
      `[program]\nlisten = "127.0.0.1:80"`, // no path
      `[program]\npath = "s"`, // no listen
      `[program]\npath = "s"\nlisten = "[::1]:80"`, // IPv6
      `[program]\npath = "s"\nlisten = "1.2.3.400:80"`,
      `[program]\npath = "s"\nlisten = "127.0.0.1:70000"`,
      `[program]\npath = "s"\nlisten = "80"\nmax_requests = 0`,
      `[program]\npath = "s"\nlisten = "80"\nroute = "/"`, // a function's key
      `[program]\npath = "s"\nlisten = "80"\nargs = "a b"`,
      `[program]\npath = "s"\nlisten = "80"\ndirs = { "rel" = "x" }`,
      `[program]\npath = "s"\nlisten = "80"\n[[function]]\nroute = "/a"\nimage = "a"`, // both
    ]) {
      expect(thrown(() => serveConfig(Bun.TOML.parse(bad), "/srv/w.toml"))).toBeInstanceOf(BadArgsError);
    }
  });

  test("the longest prefix on a segment boundary", () => {
    const fn = (r: string) => ({ config: { route: r } }) as unknown as ServedFunction;
    const fs = [fn("/api/v2"), fn("/api"), fn("/")].sort((a, b) => b.config.route.length - a.config.route.length);
    expect(route(fs, "/api/v2/x")?.config.route).toBe("/api/v2");
    expect(route(fs, "/api/v2")?.config.route).toBe("/api/v2");
    expect(route(fs, "/api/v20")?.config.route).toBe("/api");
    expect(route(fs, "/apix")?.config.route).toBe("/");
    expect(route([fn("/a")], "/b")).toBeUndefined();
  });

  test("errors become statuses", () => {
    expect(statusOf(new TimeoutError(5))).toBe(504);
    expect(statusOf(new QueueFullError(1))).toBe(503);
    expect(statusOf(new JsError("E", "m", "", "call"))).toBe(502);
    expect(statusOf(new CgiError("x"))).toBe(502);
    expect(statusOf(new Error("?"))).toBe(500);
  });
});
