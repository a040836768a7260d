// How inline Zig is compiled, checked on the images themselves (no VM needed): safety checks are on
// by default, off with optimize "fast" or "small"; a mode that does not exist is refused.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CompileError, compileZig } from "../src/image/zig.ts";

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
}, 120_000);

test("an optimize mode that does not exist is a CompileError", async () => {
  await expect(compileZig(`pub fn main() u64 { return 1; }`, { cacheDir, optimize: "turbo" as "fast" })).rejects.toThrow(new CompileError('optimize "turbo" is none of safe, fast, small', ""));
});
