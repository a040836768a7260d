// Granted files for native guests (the `file` hypercall, virtine.readFile), on the real /dev/kvm: a
// Zig guest reads the files it was granted — whole, from an offset, in pieces, on this thread and on
// workers, from a snapshot file too — and nothing else: an ungranted path is FileNotGranted, and a
// hostile request (into the host's pages, a read-only page, an overlong path) ends the call with a
// typed error, nothing written. And the CLI's --file, and wasp serve's fig. 13 guest reading its page.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Virtine, WorkerPool } from "../src/index.ts";
import { BadArgsError, EXIT_STATUS, MemoryFaultError, PolicyViolationError } from "../src/errors.ts";
import { functionConfig } from "../src/serve/config.ts";
import { WaspServer } from "../src/serve/server.ts";
import { guest, slow, wasp } from "./support.ts";

const dir = mkdtempSync(join(tmpdir(), "wasp-file-read-"));
const cacheDir = join(dir, "cache");
const workers = new WorkerPool({ size: 2 });
afterAll(async () => {
  await workers.close();
  rmSync(dir, { recursive: true, force: true });
});

// input: the path; arg 0 the operation, arg 1 the offset, arg 2 the buffer's length. The output:
// what was read; the result: the file's size (0xdead when not granted).
const GUEST = `const std = @import("std");
const virtine = @import("virtine");
var buf: [256 * 1024]u8 = undefined;
pub fn main(path: []const u8) !u64 {
    const op = virtine.arg(0);
    const offset = virtine.arg(1);
    const len = @min(virtine.arg(2), buf.len);
    switch (op) {
        0 => { // one read
            const got = virtine.readFile(path, offset, buf[0..len]) catch |e| return if (e == error.FileNotGranted) 0xdead else 0xbad;
            try virtine.writeOutput(got);
            return virtine.fileLen(path) catch 0xbad;
        },
        1 => { // the whole file, in reads of 1000 bytes
            var at: u64 = 0;
            while (true) {
                const got = virtine.readFile(path, at, buf[0..1000]) catch return 0xdead;
                if (got.len == 0) break;
                try virtine.writeOutput(got);
                at += got.len;
            }
            return at;
        },
        2 => { // readWholeFile into a buffer of len bytes
            const got = virtine.readWholeFile(path, buf[0..len]) catch |e| return switch (e) {
                error.NoSpaceLeft => 0x5ace,
                error.FileNotGranted => 0xdead,
                else => 0xbad,
            };
            try virtine.writeOutput(got);
            return got.len;
        },
        3 => { // a request pointing into the host's page tables
            return virtine.hypercall(virtine.abi.HC_FILE, 0x1000, 0, 0, 0);
        },
        4 => { // a buffer over the entry trampoline (user read-only)
            var req = [5]u64{ @intFromPtr(path.ptr), path.len, 0, virtine.abi.Layout.TRAMPOLINE, 64 };
            return virtine.hypercall(virtine.abi.HC_FILE, @intFromPtr(&req), 0, 0, 0);
        },
        5 => { // a buffer over the host's GDT
            var req = [5]u64{ @intFromPtr(path.ptr), path.len, 0, 0x5000, 64 };
            return virtine.hypercall(virtine.abi.HC_FILE, @intFromPtr(&req), 0, 0, 0);
        },
        6 => { // a path longer than the limit
            var req = [5]u64{ @intFromPtr(&buf), virtine.abi.FileRead.MAX_PATH + 1, 0, @intFromPtr(&buf), 16 };
            return virtine.hypercall(virtine.abi.HC_FILE, @intFromPtr(&req), 0, 0, 0);
        },
        else => return 0,
    }
}`;

const page = new Uint8Array(70_000).map((_, i) => (i * 7 + (i >> 8)) & 0xff);
const text = new TextEncoder().encode("small file\n");
const enc = (s: string) => new TextEncoder().encode(s);

describe("a native guest reads the files it was granted", () => {
  let v: Virtine;
  test("whole, from an offset, in pieces; past the end nothing; an ungranted path is FileNotGranted", async () => {
    const hostPath = join(dir, "small.txt");
    writeFileSync(hostPath, text);
    v = await Virtine.fromZig(GUEST, { cacheDir, workers, files: { "/srv/page.bin": page, "/etc/small.txt": hostPath } });
    const one = (path: string, offset: number, len: number) => v.runSync({ args: [0, offset, len], input: enc(path) });
    let r = one("/etc/small.txt", 0, 100);
    expect(r.value).toBe(BigInt(text.length));
    expect(r.output).toEqual(text);
    r = one("/srv/page.bin", 65_000, 10_000); // the last 5,000 bytes
    expect(r.value).toBe(70_000n);
    expect(r.output).toEqual(page.subarray(65_000));
    r = one("/srv/page.bin", 70_000, 10);
    expect(r.output.length).toBe(0);
    r = one("/srv/page.bin", 2 ** 40, 10);
    expect(r.output.length).toBe(0);
    expect(one("/srv/page.bin", 5, 0).value).toBe(70_000n); // its size alone
    for (const other of ["/srv/page.bi", "/srv/page.bin/", "srv/page.bin", "/srv/./page.bin", "", "/etc/passwd"]) expect(one(other, 0, 10).value).toBe(0xdeadn);
    r = v.runSync({ args: [1], input: enc("/srv/page.bin") });
    expect(r.value).toBe(70_000n);
    expect(r.output).toEqual(page);
    r = v.runSync({ args: [2, 0, 70_000], input: enc("/srv/page.bin") });
    expect(r.output).toEqual(page);
    expect(v.runSync({ args: [2, 0, 69_999], input: enc("/srv/page.bin") }).value).toBe(0x5acen);
    expect(v.runSync({ args: [2, 0, 10], input: enc("/nope") }).value).toBe(0xdeadn);
  }, slow(120_000));

  test("on workers the same bytes (read once, at load)", async () => {
    const rs = await Promise.all(Array.from({ length: 8 }, () => v.run({ args: [1], input: enc("/srv/page.bin") })));
    for (const r of rs) expect(r.output).toEqual(page);
  });

  test("a hostile request ends the call with a typed error and writes nothing; the virtine goes on", async () => {
    const path = enc("/srv/page.bin");
    expect(() => v.runSync({ args: [3], input: path })).toThrow(MemoryFaultError);
    expect(() => v.runSync({ args: [4], input: path })).toThrow(MemoryFaultError);
    expect(() => v.runSync({ args: [5], input: path })).toThrow(MemoryFaultError);
    expect(() => v.runSync({ args: [6], input: path })).toThrow(PolicyViolationError);
    await expect(v.run({ args: [5], input: path })).rejects.toThrow(MemoryFaultError);
    expect(v.runSync({ args: [0, 0, 4], input: path }).output).toEqual(page.subarray(0, 4));
    await v.closeAsync();
  });

  test("a virtine granted no file is not granted the hypercall; a raw image cannot be granted files; bad grants are refused", async () => {
    await using none = await Virtine.fromZig(GUEST, { cacheDir, workers });
    expect(() => none.runSync({ args: [0, 0, 10], input: enc("/srv/page.bin") })).toThrow(/made hypercall "file", which this virtine is not granted/);
    await expect(Virtine.load(guest("raw_hlt"), { files: { "/a": text } })).rejects.toThrow(/raw image: it cannot read files/);
    await expect(Virtine.fromZig(GUEST, { cacheDir, files: { "relative": text } })).rejects.toThrow(BadArgsError);
    await expect(Virtine.fromZig(GUEST, { cacheDir, files: { "/x": join(dir, "missing") } })).rejects.toThrow(/cannot read/);
  }, slow(60_000));
});

describe("wasp invoke --file and wasp snapshot --file for a native guest", () => {
  test("the page guest reads its granted page; a snapshot of it is granted again at invoke", () => {
    const pagePath = join(dir, "page.html");
    writeFileSync(pagePath, "<p>hi</p>\n");
    const req = join(dir, "req.http");
    writeFileSync(req, "GET /index.html HTTP/1.1\r\nhost: x\r\n\r\n");
    let r = wasp(["invoke", guest("httpstatic"), "-i", req, "--file", `/srv/page.html=${pagePath}`]);
    expect(r.status).toBe(0);
    expect(r.stdout).toStartWith("Status: 200");
    expect(r.stdout).toContain("<p>hi</p>\n");
    r = wasp(["invoke", guest("httpstatic"), "-i", req]); // granted no file: not the hypercall either
    expect(r.status).toBe(EXIT_STATUS.WASP_POLICY!);
    expect(r.stderr).toMatch(/^wasp: .*hypercall "file", which this virtine is not granted/);
    const snap = join(dir, "page.snap");
    expect(wasp(["snapshot", guest("httpstatic"), "-i", req, "--file", `/srv/page.html=${pagePath}`, "-o", snap]).status).toBe(0);
    r = wasp(["invoke", snap, "-i", req, "--file", `/srv/page.html=${pagePath}`]);
    expect(r.stdout).toContain("<p>hi</p>");
    r = wasp(["invoke", guest("raw_hlt"), "--file", `/a=${pagePath}`]);
    expect(r.status).toBe(EXIT_STATUS.WASP_BAD_ARGS!);
    expect(r.stderr).toMatch(/^wasp: raw_hlt.bin is a raw image: it cannot read files/);
    r = wasp(["invoke", guest("httpstatic"), "--file", `/srv/page.html=${join(dir, "missing")}`]);
    expect(r.status).toBe(EXIT_STATUS.WASP_BAD_ARGS!);
  }, slow(60_000));
});

test("wasp serve grants a function's files to a wasp image (the fig. 13 page)", async () => {
  const pagePath = join(dir, "index.html");
  writeFileSync(pagePath, "<h1>fig 13</h1>\n");
  const fn = (route: string, extra: Record<string, unknown>) => functionConfig({ route, image: guest("httpstatic"), ...extra }, route, dir, { timeoutMs: slow(2000), maxBody: 1024 });
  const server = new WaspServer(
    { host: "127.0.0.1", port: 0, functions: [fn("/page", { files: { "/srv/page.html": pagePath } }), fn("/none", {})], workers: 2, maxQueue: 64, graceMs: 1000, warmCalls: 2, accessLog: false },
    { log: () => {} },
  );
  await server.start();
  try {
    const r = await fetch(`http://127.0.0.1:${server.port}/page/index.html`);
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(await r.text()).toBe("<h1>fig 13</h1>\n");
    expect((await fetch(`http://127.0.0.1:${server.port}/none/index.html`)).status).toBe(502); // no file granted: a policy error
  } finally {
    await server.stop();
  }
}, slow(60_000));
