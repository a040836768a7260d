// Rust as a guest language, with the `rustc` on PATH and the SDK's crate `wasp` (guests/sdk/wasp.rs).
// Here: what both forms share — finding rustc, its flags per mode, the SDK crate, the compiler's
// messages as a CompileError — and the native form, a `#![no_std]` function built into a native
// image (`wasp build prog.rs --native`, `Virtine.fromRust(source, { native: true })`). The other form,
// a program with `std` built into a static Linux executable, is src/linux/rust.ts.
//
// The native form needs no target of its own (x86_64-unknown-none has no std package in Debian):
// the guest is compiled for x86_64-unknown-linux-gnu without std — core is the same — into a static
// library with fat LTO, so core is compiled again with the guest's flags (no PIC, baseline x86-64),
// and linked by the bundled zig's lld with the SDK's linker script, then made a flat image by zig
// objcopy, as Zig guests are. Cached like inline Zig: by a hash of the source, the flags, `rustc -vV`,
// the zig's version and the SDK's files.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseImage } from "./image.ts";
import { cacheKey, compileCacheDir, CompileError, sdkDir, storeCached, zigCompiler, zigVersion, type CompiledZig, type ZigOptimize } from "./zig.ts";

export interface RustOptions {
  /** where compiled guests are kept (default: $WASP_CACHE_DIR, else ~/.cache/wasp/zig) */
  cacheDir?: string;
  /** the rustc to compile with (default: the one on PATH) */
  rustc?: string;
  /** the zig whose lld and objcopy make a native image (default: the one installed with wasp) */
  zig?: string;
  /** "safe" (default: -O2 with overflow checks), "fast" (-O3), "small" (-Os), "debug" (-O0 -g, checks on) */
  optimize?: ZigOptimize;
  /** the guest's name: a native image's header name (at most 23 bytes), a program's argv[0] (default "inline") */
  name?: string;
  /** how the compiler's messages name the source (default "inline.rs") */
  fileName?: string;
  /** the file the source was read from (`wasp build`): compiled where it is, so that panics and gdb name it */
  sourceFile?: string;
}

/**
 * Rust's bounds checks are always on; "safe" adds overflow checks (a panic, as Zig's ReleaseSafe),
 * "fast" and "small" leave overflow to wrap, "debug" is unoptimized with every check for gdb.
 */
const MODES: Record<ZigOptimize, readonly string[]> = {
  safe: ["-C", "opt-level=2", "-C", "overflow-checks=on"],
  fast: ["-C", "opt-level=3"],
  small: ["-C", "opt-level=s"],
  debug: ["-C", "opt-level=0", "-g"],
};

/** Every crate of either form: edition 2021, baseline x86-64, no PIC (the image and the program are placed where they are linked). */
const COMMON = ["--edition", "2021", "--target", "x86_64-unknown-linux-gnu", "-C", "target-cpu=x86-64", "-C", "relocation-model=static", "--color", "never"];

/** The flags of a mode (a CompileError for one that is none), after COMMON. */
export function rustFlags(optimize: ZigOptimize | undefined): readonly string[] {
  const mode = MODES[optimize ?? "safe"];
  if (mode === undefined) throw new CompileError(`optimize "${String(optimize)}" is none of ${Object.keys(MODES).join(", ")}`, "");
  return [...COMMON, ...mode];
}

/** The rustc to compile with: the one named, else the one on PATH; a CompileError naming rustc when there is none. */
export function rustCompiler(given: string | undefined): string {
  if (given !== undefined) {
    if (!existsSync(given)) throw new CompileError(`rustc is not at ${given}: name an installed rustc (--rustc, the rustc option)`, "");
    return given;
  }
  const found = Bun.which("rustc", { PATH: process.env.PATH ?? "" }); // the PATH of now, not of the start
  if (found === null) throw new CompileError("rustc is not on PATH: a .rs guest is built with the rustc on PATH — install Rust (Debian: apt install rustc; or rustup), or name one with --rustc", "");
  return found;
}

const versions = new Map<string, string>();
/** `rustc -vV` (release, commit, LLVM), asked once per process: part of every cache key. */
export async function rustcVersion(rustc: string): Promise<string> {
  let v = versions.get(rustc);
  if (v === undefined) {
    const p = Bun.spawn([rustc, "-vV"], { stdout: "pipe", stderr: "pipe" });
    const [text, status] = await Promise.all([new Response(p.stdout).text(), p.exited]);
    if (status !== 0 || !text.startsWith("rustc ")) throw new CompileError(`${rustc} -vV failed: it is not a working rustc`, text);
    v = text.trim();
    versions.set(rustc, v);
  }
  return v;
}

/** The checked name of a guest (`max` bytes: 23 in a native header, 64 for a program). */
export function guestName(name: string | undefined, max: number): string {
  const n = name ?? "inline";
  if (!new RegExp(`^[A-Za-z0-9_.-]{1,${max}}$`).test(n)) throw new CompileError(`guest name "${n}" must be 1-${max} letters, digits, '_', '.' or '-'`, "");
  return n;
}

/** One rustc run in `work`; a CompileError with the compiler's first error, the files named as the caller names them. */
export async function runRustc(argv: readonly string[], work: string, src: string, fileName: string, lang = "Rust source"): Promise<void> {
  const p = Bun.spawn([...argv], { stdout: "pipe", stderr: "pipe", cwd: work });
  const [status, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
  if (status === 0) return;
  const diagnostics = err.replaceAll(src, fileName).replaceAll(work, ".").trim();
  const lines = diagnostics.split("\n");
  const at = lines.findIndex((l) => /^error/.test(l));
  const first = at < 0 ? (lines[0] ?? "") : lines[at];
  const where = at < 0 ? undefined : /^\s*--> (.+)$/.exec(lines[at + 1] ?? "")?.[1];
  if (/linker `[^`]+` not found/.test(diagnostics)) {
    throw new CompileError(`rustc found no linker for a Linux program (${first.replace(/^error: /, "")}): install a C toolchain (Debian: apt install gcc)`, diagnostics);
  }
  if (where?.startsWith("./root.rs")) {
    throw new CompileError(`${MAIN_HINT}: ${first}`, diagnostics);
  }
  throw new CompileError(`the ${lang} does not compile: ${where ? `${where}: ` : ""}${first}`, diagnostics);
}

/**
 * What the compiled code and its messages call the temporary folder (".") and an inline source (as
 * the caller names it), so that no temporary path ends in an executable: the last matching wins.
 */
export function rustRemap(work: string, inlineSource: string | undefined, fileName: string): string[] {
  return ["--remap-path-prefix", `${work}=.`, ...(inlineSource === undefined ? [] : ["--remap-path-prefix", `${inlineSource}=${fileName}`])];
}

/** Compiles the SDK's crate `wasp` (guests/sdk/wasp.rs) for one form into `work`; the rlib's path. */
export async function compileSdkCrate(rustc: string, sdk: string, flags: readonly string[], work: string, native: boolean): Promise<string> {
  const out = join(work, "libwasp.rlib");
  const form = native ? ["--cfg", "wasp_native", "-C", "panic=abort"] : [];
  await runRustc([rustc, "--crate-type", "rlib", "--crate-name", "wasp", ...flags, ...form, join(sdk, "wasp.rs"), "-o", out], work, join(sdk, "wasp.rs"), "wasp.rs", "SDK crate (guests/sdk/wasp.rs)");
  return out;
}

/** How a native guest declares its `main`: `pub extern "C" fn main(a: u64, ...) -> u64` (or without `extern "C"`). */
const MAIN = /\bpub\s+(extern\s+"C"\s+)?fn\s+main\s*\(([^)]*)\)/;
const MAIN_HINT = 'a native Rust guest\'s main is `#[no_mangle] pub extern "C" fn main(...) -> u64` with 0 to 6 u64 parameters';

/**
 * The crate root of a native image: the SDK's image (header, entry) around the guest crate's
 * `main`, as the function pointer its declaration names — so the compiler checks it, and the
 * header gets its number of parameters. The name is checked (letters, digits, '_', '.', '-'), so it
 * is a plain string literal.
 */
function imageRoot(name: string, source: string): string {
  const m = MAIN.exec(source);
  if (m === null) throw new CompileError(`${MAIN_HINT}: the source declares none`, "");
  const params = m[2].split(",").filter((p) => p.trim() !== "").length;
  if (params > 6) throw new CompileError(`${MAIN_HINT}: this one takes ${params}`, "");
  const ty = `${m[1] === undefined ? "" : 'extern "C" '}fn(${Array(params).fill("u64").join(", ")}) -> u64`;
  return `#![no_std]\nextern crate wasp;\nextern crate guest;\nwasp::__wasp_image!(${JSON.stringify(name)}, guest::main, ${ty});\n`;
}

/**
 * Compiles `source` — a `#![no_std]` Rust file with `pub extern "C" fn main(...) -> u64` (0 to 6
 * u64 parameters), using the SDK as `wasp::` — into a native image, or takes it from the cache.
 */
export async function compileRustImage(source: string, opts: RustOptions = {}): Promise<CompiledZig> {
  const name = guestName(opts.name, 23);
  const flags = [...rustFlags(opts.optimize), "-C", "panic=abort"];
  const rustc = rustCompiler(opts.rustc);
  const zig = zigCompiler(opts.zig);
  const cacheDir = compileCacheDir(opts.cacheDir);
  const sdk = sdkDir(cacheDir);
  const sourceFile = opts.sourceFile === undefined ? undefined : resolve(opts.sourceFile);
  const key = cacheKey("wasp-rust-native-1", [await rustcVersion(rustc), await zigVersion(zig), flags.join(" "), name, source, sourceFile ?? ""], sdk);
  const path = join(cacheDir, `${key}.bin`);
  const debugPath = join(cacheDir, `${key}.debug`);
  if (existsSync(path) && existsSync(debugPath)) return { image: parseImage(new Uint8Array(readFileSync(path)), `${name}.bin`), compiled: false, path, debugPath };
  const root = imageRoot(name, source);
  const work = mkdtempSync(join(tmpdir(), "wasp-rust-"));
  try {
    const src = sourceFile ?? join(work, "inline.rs");
    if (sourceFile === undefined) writeFileSync(src, source);
    const fileName = opts.fileName ?? "inline.rs";
    const remap = rustRemap(work, sourceFile === undefined ? src : undefined, fileName);
    const wasp = await compileSdkCrate(rustc, sdk, flags, work, true);
    const deps = ["-L", `dependency=${work}`, "--extern", `wasp=${wasp}`];
    const guest = join(work, "libguest.rlib");
    await runRustc([rustc, "--crate-type", "rlib", "--crate-name", "guest", ...flags, ...remap, ...deps, src, "-o", guest], work, src, fileName);
    writeFileSync(join(work, "root.rs"), root);
    // fat LTO: one object of the guest, the SDK and core, all compiled with these flags
    const lib = join(work, "libimage.a");
    await runRustc([rustc, "--crate-type", "staticlib", "--crate-name", "image", ...flags, ...remap, ...deps, "--extern", `guest=${guest}`, "-C", "lto=fat", "-C", "codegen-units=1", join(work, "root.rs"), "-o", lib], work, src, fileName);
    const elf = join(work, "guest.elf");
    // the entry and the header pull the image's object out of the archive; --gc-sections drops the rest
    const link = Bun.spawnSync([zig, "ld.lld", "-T", join(sdk, "linker.ld"), "--gc-sections", "-static", "-nostdlib", "-u", "_start", "-u", "wasp_header", lib, "-o", elf]);
    if (link.exitCode !== 0) {
      const msg = link.stderr.toString().replaceAll(work, ".").trim();
      throw new CompileError(`the Rust guest does not link: ${msg.split("\n")[0] ?? ""}`, msg);
    }
    const bin = join(work, "guest.bin");
    const copy = Bun.spawnSync([zig, "objcopy", "-O", "binary", elf, bin]);
    if (copy.exitCode !== 0) throw new CompileError(`zig objcopy failed: ${copy.stderr.toString().trim()}`, copy.stderr.toString());
    const bytes = new Uint8Array(readFileSync(bin));
    const image = parseImage(bytes, `${name}.bin`);
    storeCached(debugPath, new Uint8Array(readFileSync(elf)));
    storeCached(path, bytes);
    return { image, compiled: true, path, debugPath };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
