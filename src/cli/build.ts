// `wasp build GUEST.zig [-o GUEST.bin]`: a guest built anywhere, with the zig and the guest SDK that
// came with wasp — the same compile and cache as `Virtine.fromZig` (src/image/zig.ts).
// `wasp build PROG.c [-o PROG]`: a C program compiled with the bundled zig cc into a static x86-64
// Linux executable (src/linux/c.ts), which a Linux virtine runs — and which runs natively too;
// `wasp build PROG.zig --linux`: the same for a Zig program written with Zig's standard library.
// `wasp build PROG.rs [--native]`: a Rust program with std built by the rustc on PATH into a static
// Linux executable (src/linux/rust.ts); with --native, a #![no_std] function into a native image
// (src/image/rust.ts).
import { chmodSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { BadArgsError } from "../errors.ts";
import { compileZig, type ZigOptimize } from "../image/zig.ts";
import { compileC, compileZigLinux } from "../linux/c.ts";
import { compileRustImage } from "../image/rust.ts";
import { compileRust } from "../linux/rust.ts";
import { checkWritable } from "./parse.ts";
import { out } from "./output.ts";

export interface BuildFlags {
  /** --linux: a .zig file is a program for Linux with Zig's standard library, not an SDK guest */
  linux?: boolean;
  /** --native: a .rs file is a #![no_std] guest function, built into a native image */
  native?: boolean;
  rustc?: string;
  output?: string;
  name?: string;
  optimize?: string;
  zig?: string;
}

const OPTIMIZE: readonly ZigOptimize[] = ["safe", "fast", "small", "debug"];

export async function buildCommand(sourcePath: string, flags: BuildFlags): Promise<void> {
  const lang = sourcePath.endsWith(".zig") ? "zig" : sourcePath.endsWith(".c") ? "c" : sourcePath.endsWith(".rs") ? "rs" : undefined;
  if (lang === undefined) throw new BadArgsError(`${sourcePath}: a guest's source is a .zig file (a native guest), a .c file (a Linux program) or a .rs file (a Linux program; --native: a native guest)`);
  if (flags.native && lang !== "rs") throw new BadArgsError(`--native is for .rs files (a Zig guest is native unless --linux)`);
  if (flags.linux && lang === "rs" && flags.native) throw new BadArgsError("--linux and --native: a .rs file is one or the other");
  if (flags.rustc !== undefined && lang !== "rs") throw new BadArgsError("--rustc is for .rs files");
  let source: string;
  try {
    source = readFileSync(sourcePath, "utf8");
  } catch (e) {
    throw new BadArgsError(`${sourcePath}: cannot read it (${e instanceof Error ? e.message : String(e)})`);
  }
  const stem = basename(sourcePath, `.${lang}`);
  const name = flags.name ?? stem;
  const optimize = (flags.optimize ?? "safe") as ZigOptimize;
  if (!OPTIMIZE.includes(optimize)) throw new BadArgsError(`--optimize ${flags.optimize} is none of ${OPTIMIZE.join(", ")}`);
  const linux = lang === "c" || flags.linux === true || (lang === "rs" && flags.native !== true);
  const output = flags.output ?? join(dirname(sourcePath), linux ? stem : `${stem}.bin`);
  checkWritable(output, "-o");
  let bytes: Uint8Array;
  let what: string;
  /** a native image's symbols, written beside it as NAME.debug (gdb reads them; a Linux executable keeps its own) */
  let symbols: { path: string; bytes: Uint8Array } | undefined;
  if (!linux) {
    const compile = lang === "rs" ? compileRustImage : compileZig;
    const { image, debugPath } = await compile(source, { name, optimize, zig: flags.zig, rustc: flags.rustc, fileName: sourcePath, sourceFile: sourcePath });
    bytes = image.bytes;
    symbols = { path: output.replace(/\.bin$/, "") + ".debug", bytes: new Uint8Array(readFileSync(debugPath)) };
    checkWritable(symbols.path, "-o (its symbols)");
    const checks = lang === "rs" ? ["overflow checks on", "overflow checks off"] : ["safety checks on", "safety checks off"];
    what = `native image ${name}, ${bytes.length} bytes (${optimize}: ${optimize === "safe" || optimize === "debug" ? checks[0] : checks[1]}); its symbols for gdb in ${symbols.path}`;
  } else {
    const compile = lang === "c" ? compileC : lang === "rs" ? compileRust : compileZigLinux;
    const { elf } = await compile(source, { name, optimize, zig: flags.zig, rustc: flags.rustc, fileName: sourcePath, sourceFile: sourcePath });
    bytes = elf.bytes;
    const checks = lang === "c" ? "checked undefined behaviour traps" : lang === "rs" ? "overflow checks on" : "Zig's safety checks on";
    what = `static x86-64 Linux executable ${name}, ${bytes.length} bytes (${optimize}: ${optimize === "safe" || optimize === "debug" ? checks : "unchecked"})`;
  }
  if (symbols) writeAtomically(symbols.path, symbols.bytes, false);
  writeAtomically(output, bytes, linux);
  out(`wrote ${output}: ${what}\n`);
}

/** Atomic, like snapshot files: a reader sees the old file or the whole new one. */
function writeAtomically(output: string, bytes: Uint8Array, executable: boolean): void {
  const tmp = join(dirname(output), `.${basename(output)}.${process.pid}.tmp`);
  try {
    writeFileSync(tmp, bytes);
    if (executable) chmodSync(tmp, 0o755);
    renameSync(tmp, output);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new BadArgsError(`-o ${output}: cannot write it (${e instanceof Error ? e.message : String(e)})`);
  }
}
