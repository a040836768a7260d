// Inline Zig virtines: Zig source written in a script, compiled with the bundled zig and the guest
// SDK into a native image, and cached by a hash of everything that decides the output (the source,
// the SDK's files, the compiler's version and the flags), so the second run of a script does not
// run the compiler at all.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { WaspError } from "../errors.ts";
import { parseImage, type Image } from "./image.ts";

/** The compiler rejected the source: the message holds its diagnostics. */
export class CompileError extends WaspError {
  constructor(
    message: string,
    readonly diagnostics: string,
  ) {
    super("WASP_COMPILE", message);
  }
}

// The SDK's files, embedded in the standalone binary (under `bun run` these are the files themselves).
import sdkAbi from "../../guests/sdk/abi.zig" with { type: "file" };
import sdkRoot from "../../guests/sdk/root.zig" with { type: "file" };
import sdkVirtine from "../../guests/sdk/virtine.zig" with { type: "file" };
import sdkLinker from "../../guests/sdk/linker.ld" with { type: "file" };
import sdkWaspH from "../../guests/sdk/wasp.h" with { type: "file" };
import sdkHostcall from "../../guests/sdk/hostcall.zig" with { type: "file" };
import sdkHttp from "../../guests/sdk/http.zig" with { type: "file" };
import sdkWaspRs from "../../guests/sdk/wasp.rs" with { type: "file" };
import sdkWaspNativeRs from "../../guests/sdk/wasp_native.rs" with { type: "file" };
import sdkAbiRs from "../../guests/sdk/abi.rs" with { type: "file" };

const SDK_FILES: Record<string, string> = {
  "abi.zig": sdkAbi, "root.zig": sdkRoot, "virtine.zig": sdkVirtine, "hostcall.zig": sdkHostcall, "http.zig": sdkHttp, "linker.ld": sdkLinker, "wasp.h": sdkWaspH,
  // the Rust SDK (src/image/rust.ts)
  "wasp.rs": sdkWaspRs, "wasp_native.rs": sdkWaspNativeRs, "abi.rs": sdkAbiRs,
};

/** Where wasp's package is: the repository under `bun run`; beside dist/ for the standalone binary. */
const ROOT = import.meta.dir.startsWith("/$bunfs") ? resolve(dirname(process.execPath), "..") : resolve(import.meta.dir, "../..");

/** The zig `npm install` brought into wasp's package, if it is there. */
export function bundledZig(): string {
  return join(ROOT, "node_modules", ".bin", "zig");
}

/**
 * A folder holding the guest SDK (the Zig SDK, wasp.h and the Rust crate): the repository's own, or — in the
 * standalone binary, whose embedded files zig cannot open — a copy written once into the cache,
 * named by its contents.
 */
export function sdkDir(cacheDir: string): string {
  const own = join(ROOT, "guests", "sdk");
  if (!import.meta.dir.startsWith("/$bunfs") && existsSync(join(own, "root.zig"))) return own;
  const h = new Bun.CryptoHasher("sha256");
  const files = Object.entries(SDK_FILES).map(([name, path]) => [name, readFileSync(path)] as const);
  for (const [name, bytes] of files) h.update(`${name}\0`).update(bytes).update("\0");
  const dir = join(cacheDir, `sdk-${h.digest("hex").slice(0, 16)}`);
  if (!existsSync(join(dir, "root.zig"))) {
    const tmp = `${dir}.${process.pid}.tmp`;
    mkdirSync(tmp, { recursive: true });
    for (const [name, bytes] of files) writeFileSync(join(tmp, name), bytes);
    try {
      renameSync(tmp, dir);
    } catch {
      rmSync(tmp, { recursive: true, force: true }); // another process wrote it first
    }
  }
  return dir;
}

/** The flags build.zig uses for native guests (see its comments for why each), after `-O MODE`. */
const FLAGS = [
  "-target", "x86_64-freestanding-none", "-mcpu", "baseline", "-fsingle-threaded",
  "-fno-stack-protector", "-fno-PIE", "-fno-PIC", "--gc-sections",
];

/**
 * How a guest is optimized: "safe" (the default) keeps Zig's safety checks — integer overflow,
 * `unreachable`, bounds — each a panic that names it; "fast" and "small" drop them (overflow wraps,
 * `unreachable` is undefined behaviour) for speed or size, as the benchmark guests are built.
 */
export type ZigOptimize = "safe" | "fast" | "small" | "debug";
const MODES: Record<ZigOptimize, string> = { safe: "ReleaseSafe", fast: "ReleaseFast", small: "ReleaseSmall", debug: "Debug" };

export interface ZigOptions {
  /** where compiled images are kept (default: $WASP_CACHE_DIR, else ~/.cache/wasp/zig) */
  cacheDir?: string;
  /** the zig compiler (default: the one installed with wasp, node_modules/.bin/zig) */
  zig?: string;
  /** the image's name in its header and in messages (default "inline") */
  name?: string;
  /** "safe" (default: Zig's safety checks on), "fast" or "small" (checks off) */
  optimize?: ZigOptimize;
  /** how the compiler's messages name the source (default "inline.zig") */
  fileName?: string;
  /**
   * the file the source was read from (`wasp build`): compiled where it is, so that the symbols'
   * line tables name it and gdb finds the source (inline source is compiled from a temporary copy)
   */
  sourceFile?: string;
}

export interface CompiledZig {
  image: Image;
  /** false when the image came from the cache and the compiler did not run */
  compiled: boolean;
  /** the cached image file */
  path: string;
  /** the same program as an ELF file with its symbols and DWARF, cached beside it: for gdb (docs/debugging.md) */
  debugPath: string;
}

/** Compiles `source` (a guest file: `pub fn main(...) u64`) into a native image, or takes it from the cache. */
/** The zig to compile with: the one named, else the bundled one; a CompileError if it is not there. */
export function zigCompiler(given: string | undefined): string {
  const zig = given ?? bundledZig();
  if (!existsSync(zig)) throw new CompileError(`the zig compiler is not at ${zig}: run npm install in wasp's folder, or name a zig (--zig, the zig option)`, "");
  return zig;
}

export async function compileZig(source: string, opts: ZigOptions = {}): Promise<CompiledZig> {
  const zig = zigCompiler(opts.zig);
  const name = opts.name ?? "inline";
  if (!/^[A-Za-z0-9_.-]{1,23}$/.test(name)) throw new CompileError(`image name "${name}" must be 1-23 letters, digits, '_', '.' or '-'`, "");
  const optimize = opts.optimize ?? "safe";
  const mode = MODES[optimize];
  if (mode === undefined) throw new CompileError(`optimize "${String(optimize)}" is none of ${Object.keys(MODES).join(", ")}`, "");
  const flags = ["-O", mode, ...FLAGS];
  const cacheDir = compileCacheDir(opts.cacheDir);
  const SDK = sdkDir(cacheDir);
  const sourceFile = opts.sourceFile === undefined ? undefined : resolve(opts.sourceFile);
  const key = cacheKey("wasp-zig-2", [await zigVersion(zig), flags.join(" "), name, source, sourceFile ?? ""], SDK);
  const path = join(cacheDir, `${key}.bin`);
  const debugPath = join(cacheDir, `${key}.debug`);
  if (existsSync(path) && existsSync(debugPath)) {
    return { image: parseImage(new Uint8Array(readFileSync(path)), `${name}.bin`), compiled: false, path, debugPath };
  }
  const work = mkdtempSync(join(tmpdir(), "wasp-zig-"));
  try {
    const guestFile = sourceFile ?? join(work, "guest.zig");
    if (sourceFile === undefined) writeFileSync(guestFile, source);
    writeFileSync(join(work, "wasp_build.zig"), `pub const name: []const u8 = ${JSON.stringify(name)};\n`);
    const elf = join(work, "guest.elf");
    const build = Bun.spawn(
      [
        zig, "build-exe",
        "--mod", `virtine::${join(SDK, "virtine.zig")}`,
        "--mod", `guest:virtine:${guestFile}`,
        "--mod", `wasp_build::${join(work, "wasp_build.zig")}`,
        "--deps", "guest,virtine,wasp_build",
        join(SDK, "root.zig"),
        ...flags,
        "-T", join(SDK, "linker.ld"),
        `-femit-bin=${elf}`,
        "--cache-dir", join(cacheDir, "zig-cache"),
        // zig's own global cache (compiler_rt, built once per mode) is left shared, as for C
      ],
      { stdout: "pipe", stderr: "pipe" },
    );
    const [status, err] = await Promise.all([build.exited, new Response(build.stderr).text()]);
    if (status !== 0) {
      const diagnostics = err.replaceAll(guestFile, opts.fileName ?? "inline.zig").trim();
      const first = diagnostics.split("\n").find((l) => l.includes("error:")) ?? diagnostics.split("\n")[0] ?? "";
      throw new CompileError(`the Zig source does not compile: ${first}`, diagnostics);
    }
    const bin = join(work, "guest.bin");
    const copy = Bun.spawnSync([zig, "objcopy", "-O", "binary", elf, bin]);
    if (copy.exitCode !== 0) throw new CompileError(`zig objcopy failed: ${copy.stderr.toString().trim()}`, copy.stderr.toString());
    const bytes = new Uint8Array(readFileSync(bin));
    const image = parseImage(bytes, `${name}.bin`);
    // the symbols first: a cached image always has them beside it
    storeCached(debugPath, new Uint8Array(readFileSync(elf)));
    storeCached(path, bytes);
    return { image, compiled: true, path, debugPath };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const versions = new Map<string, string>();
/** `zig version` of a compiler, asked once per process: part of every cache key. */
export async function zigVersion(zig: string): Promise<string> {
  let v = versions.get(zig);
  if (v === undefined) {
    const p = Bun.spawn([zig, "version"], { stdout: "pipe" });
    v = (await new Response(p.stdout).text()).trim();
    await p.exited;
    versions.set(zig, v);
  }
  return v;
}

/**
 * A compile cache's key: SHA-256 of `tag` and `parts` (what decides the output: compiler version,
 * flags, source...) and every file of the SDK folder. Shared by inline Zig and src/linux/c.ts.
 */
export function cacheKey(tag: string, parts: readonly string[], sdk: string): string {
  const h = new Bun.CryptoHasher("sha256");
  h.update(`${tag}\0${parts.join("\0")}\0`);
  for (const f of readdirSync(sdk).sort()) h.update(`${f}\0`).update(readFileSync(join(sdk, f))).update("\0");
  return h.digest("hex");
}

/** Where compiled guests are kept: the caller's folder, else $WASP_CACHE_DIR, else ~/.cache/wasp/zig. */
export function compileCacheDir(given: string | undefined): string {
  return given ?? process.env.WASP_CACHE_DIR ?? join(homedir(), ".cache", "wasp", "zig");
}

/** Puts a compiled file into the cache atomically: a concurrent reader sees no file or the whole one. */
export function storeCached(path: string, bytes: Uint8Array, mode?: number): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, bytes);
  if (mode !== undefined) chmodSync(tmp, mode);
  renameSync(tmp, path);
}
