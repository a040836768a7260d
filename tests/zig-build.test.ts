// How inline Zig and `wasp build` compile guests, checked on the images themselves (no VM needed):
// safety checks on by default, off with optimize "fast" or "small"; every failure one line.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CompileError, compileZig } from "../src/image/zig.ts";
import { EXIT_STATUS } from "../src/errors.ts";
import { slow, WASP, wasp } from "./support.ts";

const cacheDir = mkdtempSync(join(tmpdir(), "wasp-zig-build-"));
afterAll(() => rmSync(cacheDir, { recursive: true, force: true }));

const has = (bytes: Uint8Array, text: string) => Buffer.from(bytes).includes(Buffer.from(text));

test("the default build keeps Zig's overflow check (its panic message is in the image); fast and small drop it", async () => {
  const src = `pub fn main(x: u64) u64 { return x + 1; }`;
  const safe = await compileZig(src, { cacheDir });
  expect(has(safe.image.bytes, "integer overflow")).toBe(true);
  for (const optimize of ["fast", "small"] as const) {
    const unchecked = await compileZig(src, { cacheDir, optimize });
    expect(has(unchecked.image.bytes, "integer overflow")).toBe(false);
    expect(unchecked.path).not.toBe(safe.path); // cached apart
  }
}, slow(120_000));

test("an optimize mode that does not exist is a CompileError", async () => {
  await expect(compileZig(`pub fn main() u64 { return 1; }`, { cacheDir, optimize: "turbo" as "fast" })).rejects.toThrow(new CompileError('optimize "turbo" is none of safe, fast, small, debug', ""));
});

describe("wasp build", () => {
  test("builds a guest from a Zig file anywhere, with the bundled zig and the SDK the binary carries", () => {
    const dir = mkdtempSync(join(tmpdir(), "wasp-build-"));
    try {
      writeFileSync(join(dir, "triple.zig"), `pub fn main(x: u64) u64 {\n    return x * 3;\n}\n`);
      const r = Bun.spawnSync([WASP, "build", "triple.zig"], { cwd: dir, env: { ...process.env, WASP_CACHE_DIR: cacheDir } });
      expect(r.stderr.toString()).toBe("");
      expect(r.stdout.toString()).toMatch(/^wrote triple\.bin: native image triple, \d+ bytes \(safe: safety checks on\); its symbols for gdb in triple\.debug\n$/);
      // the symbols: an ELF whose loadable part is the image (gdb reads it)
      const debug = readFileSync(join(dir, "triple.debug"));
      expect(debug.subarray(0, 4)).toEqual(Buffer.from("\x7fELF", "latin1"));
      expect(debug.includes(Buffer.from("triple.main"))).toBe(true);
      const inspect = wasp(["inspect", join(dir, "triple.bin")]);
      expect(inspect.stdout).toMatch(/kind\s+native/);
      expect(inspect.stdout).toMatch(/name\s+triple/);
      const fast = wasp(["build", join(dir, "triple.zig"), "-o", join(dir, "t.bin"), "--optimize", "fast", "--name", "t"], { WASP_CACHE_DIR: cacheDir });
      expect(fast.status).toBe(0);
      expect(wasp(["inspect", join(dir, "t.bin")]).stdout).toMatch(/name\s+t\n/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, slow(120_000));

  test("a source that does not compile, a bad mode or a missing compiler is one line", () => {
    const dir = mkdtempSync(join(tmpdir(), "wasp-build-"));
    try {
      const bad = join(dir, "bad.zig");
      writeFileSync(bad, "pub fn main() u64 { return y; }\n");
      const r = wasp(["build", bad], { WASP_CACHE_DIR: cacheDir });
      expect(r.status).toBe(EXIT_STATUS.WASP_COMPILE);
      expect(r.stderr).toBe(`wasp: the Zig source does not compile: ${bad}:1:28: error: use of undeclared identifier 'y'\n`);
      expect(wasp(["build", bad, "--optimize", "turbo"]).stderr).toBe("wasp: --optimize turbo is none of safe, fast, small, debug\n");
      expect(wasp(["build", bad, "--zig", join(dir, "nozig")]).stderr).toMatch(/^wasp: the zig compiler is not at .*nozig: /);
      expect(wasp(["build", join(dir, "notzig.txt")]).stderr).toBe(`wasp: ${join(dir, "notzig.txt")}: a guest's source is a .zig file (a native guest), a .c file (a Linux program) or a .rs file (a Linux program; --native: a native guest)\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
