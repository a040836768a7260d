// C (and Zig written for Linux) as guest languages: source compiled with the bundled zig into a static x86-64 Linux
// executable (musl, no interpreter), the kind of program a Linux virtine runs unchanged. Cached like
// inline Zig (src/image/zig.ts), by a hash of everything that decides the output — the source, the
// flags, the compiler's version and wasp.h — so the second run of a script does not compile again.
// Safety as for Zig guests: by default undefined behaviour the compiler can check (overflow of
// signed integers, out-of-bounds array indexes, misaligned or null pointers, ...) traps with `ud2`
// instead of corrupting memory silently, and stack smashing is caught by musl's canary.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Layout } from "../abi/guest-abi.ts";
import { cacheKey, compileCacheDir, CompileError, sdkDir, storeCached, zigCompiler, zigVersion, type ZigOptimize } from "../image/zig.ts";
import { parseElf, type ElfExecutable } from "./elf.ts";

export interface COptions {
  /** where compiled executables are kept (default: $WASP_CACHE_DIR, else ~/.cache/wasp/zig) */
  cacheDir?: string;
  /** the zig compiler whose `zig cc` compiles (default: the one installed with wasp) */
  zig?: string;
  /** "safe" (default: -O2, checked undefined behaviour traps, stack protector), "fast" (-O2) or "small" (-Os) */
  optimize?: ZigOptimize;
  /** the program's name in messages and argv[0] (default "inline") */
  name?: string;
  /** how the compiler's messages name the source (default "inline.c") */
  fileName?: string;
  /** more compiler arguments (-D, -I, -W..., -l...) after wasp's own; not the output, target or linking mode */
  flags?: readonly string[];
  /**
   * the file the source was read from (`wasp build`): compiled where it is, so that the
   * executable's line tables name it and gdb finds the source (inline source: a temporary copy)
   */
  sourceFile?: string;
}

export interface CompiledC {
  /** the executable, parsed and checked as the Linux kind loads it */
  elf: ElfExecutable;
  /** false when it came from the cache and the compiler did not run */
  compiled: boolean;
  /** the cached executable file (mode 0755: it runs natively too) */
  path: string;
}

const COMMON = ["-target", "x86_64-linux-musl", "-mcpu=baseline", "-static"];
const MODES: Record<ZigOptimize, readonly string[]> = {
  // stack-clash protection probes every page of a large frame, so no allocation can jump the guard
  // pages under the stack into the mappings below it
  safe: ["-O2", "-fsanitize=undefined", "-fsanitize-trap=undefined", "-fstack-protector-strong", "-fstack-clash-protection"],
  fast: ["-O2"],
  small: ["-Os"],
  // for gdb: no optimization (every variable where its source says), the checks of "safe"
  debug: ["-O0", "-g", "-fsanitize=undefined", "-fsanitize-trap=undefined", "-fstack-protector-strong", "-fstack-clash-protection"],
};
/** Flags a caller may not pass: they would change what kind of file comes out, or where. */
const REFUSED = /^(-o|-target|--target|-shared|-dynamic|-c|-E|-S|-M|-MM|-fPIC|-pie|-no-pie|-static-pie|-nostdlib|-nostartfiles|-Wl,|-Xlinker|--?help|-###)/;

/** Compiles C source into a static Linux executable, or takes it from the cache. */
export async function compileC(source: string, opts: COptions = {}): Promise<CompiledC> {
  return compileLinux("c", source, opts);
}

/**
 * Compiles a Zig program written for Linux — `pub fn main() !void` with Zig's standard library,
 * not the guest SDK — into a static x86-64 Linux executable (`-target x86_64-linux`, no libc: the
 * standard library makes the system calls itself), or takes it from the cache. `flags` are not
 * taken (a Zig program names what it needs in its source).
 */
export async function compileZigLinux(source: string, opts: Omit<COptions, "flags"> = {}): Promise<CompiledC> {
  return compileLinux("zig", source, opts);
}

/** The Zig modes of "safe", "fast" and "small" (Zig's own safety checks on in "safe"). */
const ZIG_MODES: Record<ZigOptimize, string> = { safe: "ReleaseSafe", fast: "ReleaseFast", small: "ReleaseSmall", debug: "Debug" };

async function compileLinux(lang: "c" | "zig", source: string, opts: COptions): Promise<CompiledC> {
  const zig = zigCompiler(opts.zig);
  const name = opts.name ?? "inline";
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) throw new CompileError(`program name "${name}" must be 1-64 letters, digits, '_', '.' or '-'`, "");
  const optimize = opts.optimize ?? "safe";
  const mode = MODES[optimize];
  if (mode === undefined) throw new CompileError(`optimize "${String(optimize)}" is none of ${Object.keys(MODES).join(", ")}`, "");
  const extra = lang === "c" ? (opts.flags ?? []) : [];
  if (!Array.isArray(extra)) throw new CompileError("flags must be an array of strings", "");
  for (const f of extra) {
    if (typeof f !== "string" || f.length === 0 || f.includes("\0")) throw new CompileError(`flag ${JSON.stringify(f)} is not a non-empty string`, "");
    if (!f.startsWith("-")) throw new CompileError(`flag "${f}" is not an option: one source is compiled, name other files with -I, -L or -l`, "");
    if (REFUSED.test(f)) throw new CompileError(`flag "${f}" is wasp's to choose: the output is one static x86-64 Linux executable`, "");
  }
  const cacheDir = compileCacheDir(opts.cacheDir);
  const sdk = sdkDir(cacheDir);
  const flags = lang === "c" ? [...COMMON, ...mode, "-I", sdk, ...extra] : ["-target", "x86_64-linux-none", "-mcpu", "baseline", "-O", ZIG_MODES[optimize], "-fsingle-threaded"];
  // the SDK's path is in the flags but not in what decides the output: cacheKey hashes its files
  const sourceFile = opts.sourceFile === undefined ? undefined : resolve(opts.sourceFile);
  const key = cacheKey("wasp-c-1", [await zigVersion(zig), flags.filter((f) => f !== sdk).join(" "), `${lang}\0${source}`, ...(sourceFile ? [sourceFile] : [])], sdk);
  const path = join(cacheDir, `${key}.elf`);
  const check = (bytes: Uint8Array) => parseElf(bytes, name, Layout.MAPPED);
  if (existsSync(path)) return { elf: check(new Uint8Array(readFileSync(path))), compiled: false, path };
  const work = mkdtempSync(join(tmpdir(), "wasp-cc-"));
  try {
    const src = sourceFile ?? join(work, lang === "c" ? "main.c" : "main.zig");
    if (sourceFile === undefined) writeFileSync(src, source);
    const out = join(work, "prog");
    const argv = lang === "c" ? [zig, "cc", ...flags, "-o", out, src] : [zig, "build-exe", src, ...flags, `-femit-bin=${out}`, "--cache-dir", join(cacheDir, "zig-cache")];
    const cc = Bun.spawn(argv, {
      stdout: "pipe",
      stderr: "pipe",
      // zig's own global cache (where it builds musl once, ~1.5 min on 2 cores) is left shared
      env: { ...process.env, ZIG_LOCAL_CACHE_DIR: join(cacheDir, "zig-cache") },
    });
    const [status, err] = await Promise.all([cc.exited, new Response(cc.stderr).text()]);
    if (status !== 0) {
      const diagnostics = err.replaceAll(src, opts.fileName ?? (lang === "c" ? "inline.c" : "inline.zig")).replaceAll(work, ".").trim();
      const first = diagnostics.split("\n").find((l) => /error:/.test(l)) ?? diagnostics.split("\n")[0] ?? "";
      throw new CompileError(`the ${lang === "c" ? "C" : "Zig"} source does not compile: ${first}`, diagnostics);
    }
    const bytes = new Uint8Array(readFileSync(out));
    const elf = check(bytes);
    storeCached(path, bytes, 0o755); // it runs natively too
    return { elf, compiled: true, path };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
