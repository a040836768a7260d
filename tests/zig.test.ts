// Inline Zig virtines: compiled with the bundled zig and the SDK, cached by a hash of what decides
// the image, compile errors as typed errors with the compiler's message.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Virtine, CompileError, compileZig, WaspError } from "../src/index.ts";

const cacheDir = mkdtempSync(join(tmpdir(), "wasp-zig-cache-"));
afterAll(() => rmSync(cacheDir, { recursive: true, force: true }));

const SQUARE = `pub fn main(x: u64) u64 {\n    return x * x;\n}\n`;

describe("Virtine.fromZig", () => {
  test("Zig source in a script becomes a virtine", async () => {
    using v = await Virtine.fromZig(SQUARE, { cacheDir });
    expect(v.invoke([12]).value).toBe(144n);
    expect(v.invoke([3]).value).toBe(9n);
  }, 120_000);

  test("the second load of the same source does not run the compiler", async () => {
    const first = await compileZig(SQUARE, { cacheDir });
    const second = await compileZig(SQUARE, { cacheDir });
    expect(second.compiled).toBe(false);
    expect(second.path).toBe(first.path);
    expect(second.image.bytes).toEqual(first.image.bytes);
  }, 120_000);

  test("a different source is a different image", async () => {
    const cube = await compileZig(`pub fn main(x: u64) u64 { return x * x * x; }`, { cacheDir });
    expect(cube.compiled).toBe(true);
    using v = new Virtine(cube.image);
    expect(v.invoke([3]).value).toBe(27n);
    expect(readdirSync(cacheDir).filter((f) => f.endsWith(".bin")).length).toBeGreaterThanOrEqual(2);
  }, 120_000);

  test("the SDK works from inline source: output and arguments", async () => {
    const src = `const virtine = @import("virtine");\npub fn main(a: u64, b: u64) u64 {\n    virtine.print("{d}+{d}\\n", .{ a, b });\n    return a + b;\n}\n`;
    using v = await Virtine.fromZig(src, { cacheDir, name: "adder" });
    const r = v.invoke([40, 2]);
    expect(r.value).toBe(42n);
    expect(new TextDecoder().decode(r.output)).toBe("40+2\n");
  }, 120_000);

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
  }, 120_000);

  test("a bad image name is refused before compiling", async () => {
    await expect(compileZig(SQUARE, { cacheDir, name: "no spaces allowed" })).rejects.toThrow(/image name/);
  });
});
