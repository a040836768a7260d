// Inline Zig virtines, through the public API: compiled with the bundled zig and the SDK, cached by
// a hash of what decides the image, compile errors as typed errors with the compiler's message.
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Virtine, CompileError, WaspError, BadArgsError, StackOverflowError } from "../src/index.ts";
import { slow, zigPath } from "./support.ts";

const cacheDir = mkdtempSync(join(tmpdir(), "wasp-zig-cache-"));
afterAll(() => rmSync(cacheDir, { recursive: true, force: true }));

const SQUARE = `pub fn main(x: u64) u64 {\n    return x * x;\n}\n`;

/** A zig that logs each run to a file, then runs the bundled one: counts compiler runs. */
function countingZig(dir: string): { zig: string; runs: () => number } {
  const log = join(dir, "runs.log");
  const zig = join(dir, "zig");
  writeFileSync(zig, `#!/bin/sh\necho run >> '${log}'\nexec '${zigPath()}' "$@"\n`);
  chmodSync(zig, 0o755);
  return { zig, runs: () => (existsSync(log) ? readFileSync(log, "utf8").split("\n").filter(Boolean).length : 0) };
}

describe("Virtine.fromZig", () => {
  test("Zig source in a script becomes a virtine", async () => {
    await using v = await Virtine.fromZig(SQUARE, { cacheDir });
    expect(v.invokeSync(12)).toBe(144n);
    expect(await v.invoke(3)).toBe(9n);
  }, slow(120_000));

  test("the second load of the same source does not run the compiler", async () => {
    const dir = mkdtempSync(join(tmpdir(), "wasp-zig-count-"));
    try {
      const { zig, runs } = countingZig(dir);
      const src = `pub fn main(x: u64) u64 { return x + 1000; }`;
      const own = join(dir, "cache");
      await using first = await Virtine.fromZig(src, { cacheDir: own, zig });
      expect(runs()).toBeGreaterThanOrEqual(1);
      const after = runs();
      await using second = await Virtine.fromZig(src, { cacheDir: own, zig });
      expect(runs()).toBe(after);
      expect(second.invokeSync(1)).toBe(1001n);
      expect(first.invokeSync(2)).toBe(1002n);
      // a different source does run it
      await using third = await Virtine.fromZig(`pub fn main(x: u64) u64 { return x + 2000; }`, { cacheDir: own, zig });
      expect(runs()).toBeGreaterThan(after);
      expect(third.invokeSync(1)).toBe(2001n);
      expect(readdirSync(own).filter((f) => f.endsWith(".bin")).length).toBe(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, slow(120_000));

  test("the SDK works from inline source: output and arguments", async () => {
    const src = `const virtine = @import("virtine");\npub fn main(a: u64, b: u64) u64 {\n    virtine.print("{d}+{d}\\n", .{ a, b });\n    return a + b;\n}\n`;
    await using v = await Virtine.fromZig(src, { cacheDir, name: "adder" });
    expect(v.name).toBe("adder");
    const r = await v.run({ args: [40, 2] });
    expect(r.value).toBe(42n);
    expect(r.console).toBe("40+2\n");
  }, slow(120_000));

  test("data in and out from inline source: main takes the input and returns the output", async () => {
    const src = `const std = @import("std");\nconst virtine = @import("virtine");\npub fn main(input: []const u8) ![]const u8 {\n    return std.ascii.upperString(try virtine.allocator().alloc(u8, input.len), input);\n}\n`;
    await using v = await Virtine.fromZig(src, { cacheDir });
    expect(await v.call("shout this")).toBe("SHOUT THIS");
    expect(v.callSync("again")).toBe("AGAIN");
  }, slow(120_000));

  test("a compile error is a CompileError with the compiler's message", async () => {
    try {
      await Virtine.fromZig(`pub fn main(x: u64) u64 { return y; }`, { cacheDir });
      throw new Error("it compiled");
    } catch (e) {
      expect(e).toBeInstanceOf(CompileError);
      expect(e).toBeInstanceOf(WaspError);
      expect((e as CompileError).code).toBe("WASP_COMPILE");
      expect((e as Error).message).toBe("the Zig source does not compile: inline.zig:1:34: error: use of undeclared identifier 'y'");
      expect((e as CompileError).diagnostics).toContain("undeclared identifier");
    }
  }, slow(120_000));

  test("a bad image name is refused before compiling", async () => {
    await expect(Virtine.fromZig(SQUARE, { cacheDir, name: "no spaces allowed" })).rejects.toThrow(/image name/);
  });

  test("bad options are refused at load", async () => {
    await expect(Virtine.fromZig(SQUARE, { cacheDir, memory: 12345 })).rejects.toBeInstanceOf(BadArgsError);
  }, slow(120_000));
  test("guests are built with safety checks by default: an overflow is a panic naming it; optimize \"fast\" wraps (issue 12)", async () => {
    const src = `pub fn main(x: u64) u64 { return x + 1; }`;
    await using safe = await Virtine.fromZig(src, { cacheDir });
    expect(safe.invokeSync(41)).toBe(42n);
    expect(() => safe.invokeSync(-1)).toThrow(/integer overflow/);
    await using fast = await Virtine.fromZig(src, { cacheDir, optimize: "fast" });
    expect(fast.invokeSync(-1)).toBe(0n);
  });
  test("a stack overflow is a StackOverflowError naming the stack, the heap untouched; a bigger stack runs the same call (issue 12)", async () => {
    // fills 4 MiB of heap, recurses n deep with ~300 bytes a frame, then checks the heap
    const src = `
const virtine = @import("virtine");
fn deep(n: u64) u64 {
    var buf: [256]u8 = undefined;
    const p: *volatile u8 = &buf[n % 256];
    p.* = @truncate(n);
    if (n == 0) return p.*;
    return deep(n - 1) +% p.*;
}
pub fn main(n: u64) u64 {
    const heap = virtine.allocator().alloc(u8, 4 * 1024 * 1024) catch return 1;
    @memset(heap, 0xa5);
    const r = deep(n);
    for (heap) |b| if (b != 0xa5) return 2;
    return 0x1000000 | (r & 0xffff);
}`;
    await using small = await Virtine.fromZig(src, { cacheDir, timeoutMs: 20_000 });
    expect(small.invokeSync(100) >> 24n).toBe(1n);
    let e: unknown;
    try {
      small.invokeSync(100_000); // ~30 MB of stack against 1 MiB
    } catch (err) {
      e = err;
    }
    expect(e).toBeInstanceOf(StackOverflowError);
    expect((e as StackOverflowError).code).toBe("WASP_STACK_OVERFLOW");
    expect((e as Error).message).toMatch(/^the guest overflowed its stack of 1048576 bytes \(it touched the guard page at 0x/);
    expect(small.invokeSync(100) >> 24n).toBe(1n); // the next call is fine
    await using big = await Virtine.fromZig(src, { cacheDir, memory: 64 * 1024 * 1024, stackSize: 40 * 1024 * 1024, timeoutMs: 20_000 });
    expect(big.invokeSync(100_000) >> 24n).toBe(1n);
  }, slow(60_000));
});
