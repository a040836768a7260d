// `wasp serve --program` with servers nobody wrote for wasp (issue 25): Debian's busybox httpd
// (busybox-static: it forks per connection, the virtine goes on as the child, files by sendfile),
// Python's http.server (dynamically linked, its standard library from a granted directory, polling
// its listener every half second), and a Rust server on std's TcpListener built with `wasp build`.
// Each is snapshotted where it waits for a connection and serves every connection in a virtine of
// its own: what one connection did, the next never sees.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findPython } from "../src/python/runtime.ts";
import { readLines, slow, wasp, waitFor, WASP, type Line } from "../tests/support.ts";

let tmp: string;
let www: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "wasp-serve-program-debian-"));
  www = join(tmp, "www");
  mkdirSync(www);
  writeFileSync(join(www, "index.html"), "<h1>served from a virtine</h1>\n");
  writeFileSync(join(www, "data.txt"), "x".repeat(200_000));
  mkdirSync(join(www, "sub"));
  writeFileSync(join(www, "sub", "a.txt"), "a\n");
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function serve(args: string[]): Promise<{ proc: ReturnType<typeof Bun.spawn>; lines: ReturnType<typeof readLines>; port: number }> {
  const proc = Bun.spawn([WASP, "serve", "--listen", "127.0.0.1:0", "--port", "0", "--workers", "2", ...args], { stderr: "pipe", stdout: "pipe" });
  const lines = readLines(proc.stderr as ReadableStream<Uint8Array>);
  const listening = await Promise.race([waitFor(lines, (l) => l.msg === "listening"), proc.exited.then((code) => ({ exited: code }) as Line)]);
  if ("exited" in listening) throw new Error(`wasp serve exited with ${listening.exited} before it listened`);
  await waitFor(lines, (l) => l.msg === "ready");
  return { proc, lines, port: Number(String(listening.serves).split(":")[1]) };
}

/** Requests on one connection, each after the previous answer (by Content-Length, or to the close). */
function talk(port: number, requests: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, "127.0.0.1");
    const answers: string[] = [];
    let buf = "";
    let next = 0;
    const send = () => (next < requests.length ? sock.write(requests[next++]) : sock.end());
    sock.on("connect", send);
    sock.on("data", (d) => {
      buf += d.toString("latin1");
      for (;;) {
        const head = buf.indexOf("\r\n\r\n");
        const m = head < 0 ? null : /content-length: *(\d+)/i.exec(buf.slice(0, head));
        if (!m || buf.length < head + 4 + Number(m[1])) return;
        answers.push(buf.slice(0, head + 4 + Number(m[1])));
        buf = buf.slice(head + 4 + Number(m[1]));
        send();
      }
    });
    sock.on("close", () => {
      if (buf.length > 0) answers.push(buf);
      resolve(answers);
    });
    sock.on("error", reject);
  });
}
const body = (a: string) => a.slice(a.indexOf("\r\n\r\n") + 4);

describe("unmodified servers, a connection per virtine", () => {
  test("busybox httpd: forks per connection, serves files (sendfile), 404s", async () => {
    const busybox = join(tmp, "busybox");
    copyFileSync("/bin/busybox", busybox);
    const s = await serve(["--dir", `${www}=/www`, "--allow", "time", "--program", busybox, "--", "httpd", "-f", "-p", "127.0.0.1:80", "-h", "/www"]);
    try {
      expect((await waitFor(s.lines, (l) => l.msg === "snapshot")).at).toBe("accept");
      for (let i = 0; i < 3; i++) {
        const r = await fetch(`http://127.0.0.1:${s.port}/index.html`);
        expect(r.status).toBe(200);
        expect(await r.text()).toBe("<h1>served from a virtine</h1>\n");
      }
      const big = await fetch(`http://127.0.0.1:${s.port}/data.txt`);
      expect((await big.text()).length).toBe(200_000);
      expect((await fetch(`http://127.0.0.1:${s.port}/nothing-here`)).status).toBe(404);
      const parallel = await Promise.all(Array.from({ length: 10 }, () => fetch(`http://127.0.0.1:${s.port}/`).then((r) => r.text())));
      for (const t of parallel) expect(t).toBe("<h1>served from a virtine</h1>\n");
      s.proc.kill("SIGTERM");
      expect(await s.proc.exited).toBe(0);
    } finally {
      s.proc.kill("SIGKILL");
    }
  }, slow(120_000));

  test("Python's http.server (dynamically linked, its standard library granted): files and a handler's state per connection", async () => {
    const py = findPython();
    writeFileSync(
      join(tmp, "server.py"),
      [
        "import os, sys",
        "from http.server import HTTPServer, SimpleHTTPRequestHandler",
        "hits = []",
        "class Handler(SimpleHTTPRequestHandler):",
        "    protocol_version = 'HTTP/1.1'",
        "    def do_GET(self):",
        "        if self.path.startswith('/count'):",
        "            hits.append(self.path)",
        "            body = ('hits=%d %s\\n' % (len(hits), ','.join(hits))).encode()",
        "            self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers(); self.wfile.write(body)",
        "        else:",
        "            super().do_GET()",
        "os.chdir('/www')",
        "HTTPServer(('127.0.0.1', int(sys.argv[1])), Handler).serve_forever()",
        "",
      ].join("\n"),
    );
    const dirs = Object.entries(py.dirs).flatMap(([g, h]) => ["--dir", `${h}=${g}`]);
    const env = Object.entries(py.env).flatMap(([k, v]) => ["--env", `${k}=${v}`]);
    const s = await serve([...dirs, ...env, "--dir", `${www}=/www`, "--file", `/srv/server.py=${join(tmp, "server.py")}`, "--allow", "time", "--program", py.path, "/srv/server.py", "8000"]);
    try {
      expect((await waitFor(s.lines, (l) => l.msg === "snapshot")).at).toBe("poll");
      const r = await fetch(`http://127.0.0.1:${s.port}/index.html`);
      expect(r.status).toBe(200);
      expect(await r.text()).toBe("<h1>served from a virtine</h1>\n");
      const one = await talk(s.port, ["GET /count/a HTTP/1.1\r\nHost: x\r\n\r\n", "GET /count/b HTTP/1.1\r\nHost: x\r\n\r\n"]);
      expect(one.map(body)).toEqual(["hits=1 /count/a\n", "hits=2 /count/a,/count/b\n"]);
      const two = await talk(s.port, ["GET /count/c HTTP/1.1\r\nHost: x\r\n\r\n"]);
      expect(two.map(body)).toEqual(["hits=1 /count/c\n"]);
      expect((await fetch(`http://127.0.0.1:${s.port}/missing`)).status).toBe(404);
      s.proc.kill("SIGTERM");
      expect(await s.proc.exited).toBe(0);
    } finally {
      s.proc.kill("SIGKILL");
    }
  }, slow(180_000));

  test("python3 -m http.server: ThreadingHTTPServer, a thread per request, run in the connection's vCPU", async () => {
    const py = findPython();
    const dirs = Object.entries(py.dirs).flatMap(([g, h]) => ["--dir", `${h}=${g}`]);
    const env = Object.entries(py.env).flatMap(([k, v]) => ["--env", `${k}=${v}`]);
    // one malloc arena: glibc gives every new thread a 64 MiB reservation of its own otherwise, which
    // wasp maps page by page (docs/serve.md, "Programs")
    const s = await serve([...dirs, ...env, "--env", "MALLOC_ARENA_MAX=1", "--dir", `${www}=/www`, "--allow", "time", "--program", py.path, "--", "-m", "http.server", "--bind", "127.0.0.1", "--directory", "/www", "8000"]);
    try {
      for (let i = 0; i < 3; i++) {
        const r = await fetch(`http://127.0.0.1:${s.port}/index.html`);
        expect(r.status).toBe(200);
        expect(await r.text()).toBe("<h1>served from a virtine</h1>\n");
      }
      const listing = await (await fetch(`http://127.0.0.1:${s.port}/sub/`)).text();
      expect(listing).toContain('<a href="a.txt">a.txt</a>');
      const parallel = await Promise.all(Array.from({ length: 6 }, () => fetch(`http://127.0.0.1:${s.port}/index.html`).then((r) => r.status)));
      expect(parallel).toEqual([200, 200, 200, 200, 200, 200]);
      expect(s.lines.lines.filter((l) => l.outcome !== undefined && l.outcome !== "ok")).toEqual([]);
      s.proc.kill("SIGTERM");
      expect(await s.proc.exited).toBe(0);
    } finally {
      s.proc.kill("SIGKILL");
    }
  }, slow(180_000));

  test("a Rust server on std::net::TcpListener, built with wasp build: keep-alive within a connection, none of it in the next; a panic ends only its connection", async () => {
    const src = join(tmp, "rsrv.rs");
    writeFileSync(
      src,
      `use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

fn main() {
    let listener = TcpListener::bind("127.0.0.1:7878").expect("bind");
    let mut seen: HashMap<String, u32> = HashMap::new();
    for stream in listener.incoming() {
        let stream = match stream { Ok(s) => s, Err(_) => continue };
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut out = stream;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 { break; }
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\\r\\n" { break; }
            }
            if path == "/panic" { panic!("asked to"); }
            let n = { let e = seen.entry(path.clone()).or_insert(0); *e += 1; *e };
            let body = format!("rust path={} seen={} distinct={}\\n", path, n, seen.len());
            let _ = write!(out, "HTTP/1.1 200 OK\\r\\nContent-Length: {}\\r\\n\\r\\n{}", body.len(), body);
        }
    }
}
`,
    );
    const exe = join(tmp, "rsrv");
    const built = wasp(["build", src, "-o", exe], { WASP_CACHE_DIR: join(tmp, "cache") });
    expect(built.status).toBe(0);
    // std's HashMap seeds itself from getrandom: the grant
    const s = await serve(["--allow", "random", "--program", exe]);
    try {
      expect((await waitFor(s.lines, (l) => l.msg === "snapshot")).at).toBe("accept4");
      const one = await talk(s.port, ["GET /a HTTP/1.1\r\n\r\n", "GET /b HTTP/1.1\r\n\r\n", "GET /a HTTP/1.1\r\n\r\n"]);
      expect(one.map(body)).toEqual(["rust path=/a seen=1 distinct=1\n", "rust path=/b seen=1 distinct=2\n", "rust path=/a seen=2 distinct=2\n"]);
      const panic = await talk(s.port, ["GET /panic HTTP/1.1\r\n\r\n"]);
      expect(panic[0]).toStartWith("HTTP/1.1 502 Bad Gateway\r\n");
      const crashed = await waitFor(s.lines, (l) => l.outcome === "crash");
      expect(crashed.detail).toBe("EXIT: the program exited with status 101");
      const after = await talk(s.port, ["GET /a HTTP/1.1\r\n\r\n"]);
      expect(after.map(body)).toEqual(["rust path=/a seen=1 distinct=1\n"]);
      s.proc.kill("SIGTERM");
      expect(await s.proc.exited).toBe(0);
    } finally {
      s.proc.kill("SIGKILL");
    }
  }, slow(300_000));
});
