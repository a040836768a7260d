// Debian's gdb, in batch mode, attached to wasp's calls (issue 16, part 4): a Zig guest and a C
// program built by `wasp build` (their symbols and sources found), and the whole story — a request
// that failed in `wasp serve --record-failures`, replayed under gdb to the same failure and stepped
// through. Needs the Debian package gdb (`.ci/run` installs it).
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WASP, recordingServer, slow, wasp } from "../tests/support.ts";

const dir = mkdtempSync(join(tmpdir(), "wasp-gdb-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function gdbPath(): string {
  for (const d of ["/usr/bin", "/bin", "/usr/local/bin"]) if (existsSync(join(d, "gdb"))) return join(d, "gdb");
  throw new Error("gdb is missing: install the Debian package gdb (apt install gdb)");
}

/**
 * Runs `wasp ARGS` (listening for gdb on a free port), then `gdb -batch SYMBOLS` with `commands`
 * after `target remote`; both outputs and wasp's status.
 */
async function debug(args: string[], symbols: string, commands: string[]) {
  const gdb = gdbPath();
  const proc = Bun.spawn([WASP, ...args, "--gdb", "127.0.0.1:0"], { stdout: "pipe", stderr: "pipe" });
  const reader = proc.stderr.getReader();
  let stderr = "";
  while (!/waiting for gdb on 127\.0\.0\.1:(\d+)/.test(stderr)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`wasp ended before it listened: ${stderr}`);
    stderr += new TextDecoder().decode(value);
  }
  const port = /waiting for gdb on 127\.0\.0\.1:(\d+)/.exec(stderr)![1];
  const script = join(dir, `s${port}.gdb`);
  writeFileSync(script, ["set pagination off", "set confirm off", `target remote 127.0.0.1:${port}`, ...commands, ""].join("\n"));
  const g = Bun.spawn([gdb, "-batch", "-nx", "-x", script, symbols], { stdout: "pipe", stderr: "pipe" });
  const [gout, gerr] = await Promise.all([new Response(g.stdout).text(), new Response(g.stderr).text(), g.exited]);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    stderr += new TextDecoder().decode(value);
  }
  const [status, stdout] = await Promise.all([proc.exited, new Response(proc.stdout).text()]);
  return { gdb: gout + gerr, status, stdout, stderr };
}

describe("gdb -batch against wasp --gdb", () => {
  test("a Zig guest: break in a function, step, print variables, continue to the end", async () => {
    const src = join(dir, "walk.zig");
    writeFileSync(
      src,
      `const virtine = @import("virtine");

fn step(total: u64, i: u64) u64 {
    const next = total + i * i;
    return next;
}

pub fn main(n: u64) u64 {
    var total: u64 = 0;
    var i: u64 = 0;
    while (i < n) : (i += 1) {
        total = step(total, i);
    }
    return total;
}
`,
    );
    const b = wasp(["build", src, "--optimize", "debug"]);
    expect(b.stderr).toBe("");
    expect(b.status).toBe(0);
    const r = await debug(["invoke", join(dir, "walk.bin"), "4"], join(dir, "walk.debug"), [
      "break walk.step",
      "continue",
      "print i",
      "continue",
      "print i",
      "print total",
      "next",
      "print next",
      "delete",
      "continue",
    ]);
    expect(r.gdb).toMatch(/Breakpoint 1, walk\.step \(total=0, i=0\) at .*walk\.zig:4/);
    expect(r.gdb).toContain("$2 = 1"); // the second call: i = 1
    expect(r.gdb).toContain("$3 = 0"); // total before it
    expect(r.gdb).toMatch(/5\s+return next;/); // next: the following line
    expect(r.gdb).toContain("$4 = 1"); // next = 0 + 1*1
    expect(r.gdb).toContain("exited with code 016"); // 0+1+4+9 = 14
    expect(r.stdout).toBe("14\n");
    expect(r.status).toBe(0);
  }, slow(120_000));

  test("a C program: break in main, step into a function, print a struct, finish, continue to the end", async () => {
    const src = join(dir, "acc.c");
    writeFileSync(
      src,
      `#include <stdio.h>
#include <stdlib.h>

struct acc { long total; int count; };

static void add(struct acc *a, long v) {
  a->total += v;
  a->count++;
}

int main(int argc, char **argv) {
  struct acc a = {0, 0};
  for (int i = 1; i < argc; i++) add(&a, strtol(argv[i], NULL, 10));
  printf("%d numbers, total %ld\\n", a.count, a.total);
  return a.count;
}
`,
    );
    const b = wasp(["build", src, "--optimize", "debug"]);
    expect(b.status).toBe(0);
    const r = await debug(["invoke", join(dir, "acc"), "4", "5", "6"], join(dir, "acc"), [
      "break main",
      "continue",
      "print argc",
      "break add",
      "continue",
      "print v",
      "finish",
      "print a",
      "delete",
      "watch a.count",
      "continue",
      "delete",
      "continue",
    ]);
    expect(r.gdb).toMatch(/Breakpoint 1, main \(argc=4, argv=0x[0-9a-f]+\) at .*acc\.c:12/);
    expect(r.gdb).toContain("$1 = 4");
    expect(r.gdb).toMatch(/Breakpoint 2, add \(a=0x[0-9a-f]+, v=4\) at .*acc\.c:7/);
    expect(r.gdb).toContain("$2 = 4");
    expect(r.gdb).toContain("$3 = {total = 4, count = 1}");
    // a write watchpoint (the stub steps the guest itself): the next add's count++
    expect(r.gdb).toMatch(/watchpoint 3: a\.count\s+Old value = 1\s+New value = 2/);
    expect(r.gdb).toContain("exited with code 03");
    expect(r.stdout).toBe("3 numbers, total 15\n");
    expect(r.status).toBe(3);
  }, slow(180_000));

  test("a request that failed in wasp serve replays under gdb to the same failure, stepped through", async () => {
    const src = join(dir, "sumq.zig");
    writeFileSync(
      src,
      `const std = @import("std");
const virtine = @import("virtine");

fn total(counts: []const u8, upto: usize) u64 {
    var sum: u64 = 0;
    var i: usize = 0;
    while (i <= upto) : (i += 1) sum += counts[i];
    return sum;
}

pub fn main(input: []const u8) ![]const u8 {
    const req = try virtine.http.parse(input);
    const upto = std.fmt.parseInt(usize, req.query, 10) catch 0;
    const s = total(req.body, upto);
    var buf: [32]u8 = undefined;
    return virtine.http.respond(200, "text/plain", try std.fmt.bufPrint(&buf, "{d}\\n", .{s}));
}
`,
    );
    expect(wasp(["build", src, "--optimize", "debug"]).status).toBe(0);
    const rdir = join(dir, "failures");
    const server = await recordingServer("/sum", join(dir, "sumq.bin"), rdir);
    let id: string;
    try {
      const ok = await fetch(`http://127.0.0.1:${server.port}/sum?1`, { method: "POST", body: "\x01\x02\x03" });
      expect(await ok.text()).toBe("3\n");
      const bad = await fetch(`http://127.0.0.1:${server.port}/sum?5`, { method: "POST", body: "\x01\x02\x03" });
      expect(bad.status).toBe(502);
      id = bad.headers.get("x-request-id")!;
    } finally {
      await server.stop();
    }
    expect(readdirSync(rdir)).toEqual([`${id}.rec`]);
    const r = await debug(["replay", join(rdir, `${id}.rec`)], join(dir, "sumq.debug"), [
      "break sumq.total",
      "continue",
      "print upto",
      "print counts.len",
      "delete",
      "break sumq.zig:7 if i == 3",
      "continue",
      "print i",
      "print sum",
      "continue",
    ]);
    expect(r.gdb).toMatch(/Breakpoint 1, sumq\.total \(counts=.*upto=5\) at .*sumq\.zig:5/);
    expect(r.gdb).toContain("$1 = 5");
    expect(r.gdb).toContain("$2 = 3");
    expect(r.gdb).toContain("$3 = 3");
    expect(r.gdb).toContain("$4 = 6"); // 1 + 2 + 3, then counts[3] is out of bounds
    expect(r.gdb).toContain("Program terminated with signal SIGABRT");
    expect(r.stderr).toMatch(/wasp: replayed as recorded: the guest panicked: index out of bounds.*\(WASP_GUEST_PANIC\)\n/);
    expect(r.status).toBe(0);
  }, slow(180_000));
});
