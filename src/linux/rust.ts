// Rust programs with `std` as Linux guests: a source file with `fn main()` compiled by the rustc on
// PATH into a static x86-64 Linux executable — glibc's static libraries (`-C
// target-feature=+crt-static`, no PIE), the kind of program `gcc -static` makes and a Linux
// virtine runs unchanged (it runs natively too). The SDK's crate `wasp` (guests/sdk/wasp.rs) is on
// its extern path: `wasp::snapshot()`, host functions, raw hypercalls, as wasp.h gives C. Cached
// like C (src/linux/c.ts) by a hash of the source, the flags, `rustc -vV` and the SDK's files.
// rustc links with the system's C compiler (`cc`): Debian's rustc brings gcc and libc6-dev.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Layout } from "../abi/guest-abi.ts";
import { cacheKey, compileCacheDir, sdkDir, storeCached } from "../image/zig.ts";
import { compileSdkCrate, guestName, runRustc, rustCompiler, rustcVersion, rustFlags, rustRemap, type RustOptions } from "../image/rust.ts";
import { parseElf } from "./elf.ts";
import type { CompiledC } from "./c.ts";

/** Compiles a Rust program with `std` into a static Linux executable, or takes it from the cache. */
export async function compileRust(source: string, opts: Omit<RustOptions, "zig"> = {}): Promise<CompiledC> {
  const name = guestName(opts.name, 64);
  // std's own debug information is most of an executable (5.3 of 5.4 MB for a small program): kept for gdb only; the symbols stay
  const strip = opts.optimize === "debug" ? [] : ["-C", "strip=debuginfo"];
  const flags = [...rustFlags(opts.optimize), "-C", "target-feature=+crt-static", ...strip];
  const rustc = rustCompiler(opts.rustc);
  const cacheDir = compileCacheDir(opts.cacheDir);
  const sdk = sdkDir(cacheDir);
  const sourceFile = opts.sourceFile === undefined ? undefined : resolve(opts.sourceFile);
  const key = cacheKey("wasp-rust-linux-1", [await rustcVersion(rustc), flags.join(" "), source, sourceFile ?? ""], sdk);
  const path = join(cacheDir, `${key}.elf`);
  const check = (bytes: Uint8Array) => parseElf(bytes, name, Layout.MAPPED);
  if (existsSync(path)) return { elf: check(new Uint8Array(readFileSync(path))), compiled: false, path };
  const work = mkdtempSync(join(tmpdir(), "wasp-rust-"));
  try {
    const src = sourceFile ?? join(work, "inline.rs");
    if (sourceFile === undefined) writeFileSync(src, source);
    const fileName = opts.fileName ?? "inline.rs";
    const wasp = await compileSdkCrate(rustc, sdk, flags, work, false);
    const out = join(work, "prog");
    const deps = ["-L", `dependency=${work}`, "--extern", `wasp=${wasp}`];
    await runRustc([rustc, "--crate-type", "bin", "--crate-name", "guest", ...flags, ...rustRemap(work, sourceFile === undefined ? src : undefined, fileName), ...deps, src, "-o", out], work, src, fileName);
    const bytes = new Uint8Array(readFileSync(out));
    const elf = check(bytes);
    storeCached(path, bytes, 0o755); // it runs natively too
    return { elf, compiled: true, path };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
