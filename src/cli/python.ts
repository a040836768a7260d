// `wasp invoke handler.py [args...] [--input in.json]`, `wasp snapshot handler.py -o h.snap` and
// `wasp invoke h.snap`: Python virtines on the command line (docs/python.md). The module runs in
// the host's unmodified python3 (src/python/runtime.ts) as a Linux program in one VM; its result
// is printed as JSON on stdout, what it printed on stderr; an exception is a `wasp: ...` line, its
// traceback, and its status.
import { basename } from "node:path";
import { BadArgsError, BadImageError, PyError } from "../errors.ts";
import { escapeGuestText } from "../guest-text.ts";
import { MIB } from "../image/image.ts";
import { kvmDevicePath, systemKvm } from "../kvm/system.ts";
import { describeSandbox, enterSandbox } from "../host/harden.ts";
import { MAX_MEMORY } from "../image/image.ts";
import { parseElf } from "../linux/elf.ts";
import { LinuxProgram } from "../virtine/linux.ts";
import { encodeJsCall, JS_LOAD_ONLY } from "../js/engine.ts";
import { checkPyFileName, decodePyReply, findPython, pyArgs, pyFiles, savedPyName, PY_DEFAULT_MEMORY, PY_DEFAULT_STACK, PY_PROGRAM, type PythonInstall } from "../python/runtime.ts";
import { err, out, syscallCounts } from "./output.ts";
import { checkWritable, jsonArgs, parseCount, parseList, parseSize, readJson, readText } from "./parse.ts";

export interface PyFlags {
  /** --python PATH: the interpreter (default: python3 on PATH) */
  python?: string;
  mem?: string;
  stack?: string;
  timeout?: string;
  allow?: string;
  input?: string;
  verbose?: boolean;
  sandbox?: boolean;
  json?: boolean;
  warmup?: string;
  output?: string;
  /** flags of other kinds, refused */
  env?: string[];
  dir?: string[];
  file?: string[];
  heap?: string;
  record?: string;
  trace?: boolean;
  dataSize?: string;
  snapshot?: boolean;
  raw?: boolean;
  gdb?: string;
}

function refuseOthers(flags: PyFlags): void {
  const others: [unknown, string][] = [
    [flags.env?.length, "--env"],
    [flags.dir?.length, "--dir"],
    [flags.file?.length, "--file"],
    [flags.heap, "--heap"],
    [flags.record, "--record"],
    [flags.gdb, "--gdb"],
    [flags.dataSize, "--data-size"],
    [flags.snapshot === false, "--no-snapshot"],
    [flags.raw, "--raw"],
  ];
  for (const [set, name] of others) if (set) throw new BadArgsError(`${name} does not apply to a Python virtine`);
}

function limits(flags: PyFlags, fromSnapshot: boolean, timeoutDefault?: number): { memory?: number; stackSize?: number; timeoutMs?: number; allow: string[] } {
  const memory = flags.mem === undefined ? undefined : parseSize(flags.mem, "--mem");
  const stackSize = flags.stack === undefined ? undefined : parseSize(flags.stack, "--stack");
  const timeoutMs = flags.timeout === undefined ? timeoutDefault : parseCount(flags.timeout, "--timeout");
  const allow = flags.allow === undefined ? [] : parseList(flags.allow);
  return fromSnapshot ? { memory, stackSize, timeoutMs, allow } : { memory: memory ?? PY_DEFAULT_MEMORY, stackSize: stackSize ?? PY_DEFAULT_STACK, timeoutMs, allow };
}

function program(install: PythonInstall, files: Record<string, Uint8Array>, opts: ReturnType<typeof limits> & { oneShot?: boolean; poolSize?: number }): LinuxProgram {
  const elf = parseElf(install.bytes, PY_PROGRAM, MAX_MEMORY);
  return new LinuxProgram(elf, { ...opts, files, dirs: install.dirs, env: install.env, origin: install.path });
}

/** Prints what the handler printed, then its result or the error (an exception's traceback on stderr). */
function report(path: string, result: ReturnType<LinuxProgram["run"]>, p: LinuxProgram, name: string, flags: PyFlags, elapsed: number, fromSnapshot: boolean): void {
  if (result.stderr.length > 0) err(process.stderr.isTTY ? escapeGuestText(result.stderr) : result.stderr);
  if (result.stderrTruncated) err(`wasp: the console went past the ${p.maxOutput}-byte cap; the rest was dropped\n`);
  if (flags.verbose) err(`wasp: ${path}: Python${fromSnapshot ? " (snapshot file)" : ""}, ${p.layout.memory / MIB} MiB, ${syscallCounts(result)}, ${result.exits} exit(s), ${elapsed.toFixed(1)} µs\n`);
  let value: unknown;
  try {
    value = decodePyReply({ status: result.status, stdout: result.stdout, stdoutTruncated: result.stdoutTruncated }, { maxOutput: p.maxOutput, fileName: name, stderr: result.stderr });
  } catch (e) {
    // the traceback first, as python3 prints it; the one-line error after it
    if (e instanceof PyError && e.pyName !== "" && e.traceback !== "") err(process.stderr.isTTY ? escapeGuestText(new TextEncoder().encode(e.traceback)) : e.traceback);
    throw e;
  }
  if (flags.json) {
    out(`${JSON.stringify({ value: value ?? null, undefined: value === undefined, console: new TextDecoder().decode(result.stderr), exits: result.exits, syscalls: result.syscalls, syscallsInVm: result.syscallsInVm, microseconds: Math.round(elapsed * 10) / 10 })}\n`);
    return;
  }
  if (value !== undefined) out(`${JSON.stringify(value)}\n`);
}

/**
 * `wasp invoke handler.py [args] [--input in.json]` (the module imported and called in one VM) or,
 * `fromSnapshot`, `wasp invoke h.snap ...` (the warm interpreter resumed).
 */
export function pyInvoke(path: string, rawArgs: string[], flags: PyFlags, fromSnapshot: boolean): void {
  refuseOthers(flags);
  if (flags.output !== undefined) throw new BadArgsError("--output does not apply to a Python virtine: its result is printed as JSON");
  if (flags.warmup !== undefined) throw new BadArgsError("--warmup is for wasp snapshot");
  const args = [...(flags.input === undefined ? [] : [readJson(flags.input, "--input")]), ...jsonArgs(rawArgs)];
  const stdin = encodeJsCall(args);
  const install = findPython(flags.python);
  const opts = { ...limits(flags, fromSnapshot), oneShot: true };
  let p: LinuxProgram;
  let name: string;
  let callArgs: string[] | undefined;
  if (fromSnapshot) {
    p = LinuxProgram.fromSnapshotFile(path, { ...opts, dirs: install.dirs });
    name = savedPyName(p.snapshotArgs ?? [], path);
  } else {
    name = checkPyFileName(basename(path));
    p = program(install, pyFiles(readText(path, ""), undefined), opts);
    callArgs = pyArgs(name);
  }
  using _p = p;
  systemKvm();
  if (flags.sandbox !== false) {
    const sandbox = enterSandbox({ read: [path, ...(flags.input === undefined || flags.input === "-" ? [] : [flags.input]), ...Object.values(install.dirs)], write: [], devices: [kvmDevicePath()] });
    if (flags.verbose) err(`wasp: sandbox: ${describeSandbox(sandbox)}\n`);
  }
  const started = Bun.nanoseconds();
  const result = p.run(callArgs, { input: stdin });
  report(path, result, p, name, flags, (Bun.nanoseconds() - started) / 1000, fromSnapshot);
}

/** `wasp snapshot handler.py -o FILE [--warmup warm.json]`: the module imported and warmed up, written as a snapshot file. */
export function pySnapshot(path: string, rawArgs: string[], flags: PyFlags & { output: string }): void {
  refuseOthers(flags);
  if (rawArgs.length > 0) throw new BadArgsError("a Python virtine's snapshot takes no arguments: warm-up inputs go in --warmup FILE (a JSON array)");
  if (flags.input !== undefined) throw new BadArgsError("--input does not apply to a Python snapshot: warm-up inputs go in --warmup FILE (a JSON array)");
  checkWritable(flags.output, "-o");
  let warmup: unknown[] | undefined;
  if (flags.warmup !== undefined) {
    const w = readJson(flags.warmup, "--warmup");
    if (!Array.isArray(w)) throw new BadArgsError(`--warmup ${flags.warmup} is not a JSON array of inputs`);
    warmup = w;
  }
  const name = checkPyFileName(basename(path));
  const install = findPython(flags.python);
  using p = program(install, pyFiles(readText(path, ""), warmup), { ...limits(flags, false, 60_000), poolSize: 1 });
  const result = p.run(pyArgs(name), { input: JS_LOAD_ONLY });
  if (result.stderr.length > 0) err(process.stderr.isTTY ? escapeGuestText(result.stderr) : result.stderr);
  try {
    decodePyReply({ status: result.status, stdout: result.stdout, stdoutTruncated: result.stdoutTruncated }, { maxOutput: p.maxOutput, fileName: name, stderr: result.stderr });
  } catch (e) {
    if (e instanceof PyError && e.pyName !== "" && e.traceback !== "") err(e.traceback);
    throw e;
  }
  if (!p.snapshotTaken) throw new BadImageError(`${name}: the interpreter took no snapshot`);
  const info = p.writeSnapshot(flags.output);
  err(`wasp: wrote ${flags.output}: ${name} imported${warmup ? ` and warmed up by ${warmup.length} call(s)` : ""} by ${install.path}, ${info.memSize / MIB} MiB of guest memory, ${info.populatedPages} pages stored (${((info.populatedPages * 4096) / MIB).toFixed(1)} MiB on disk)\n`);
}
