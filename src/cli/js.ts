// `wasp invoke handler.js [args...] [--input in.json]`, `wasp snapshot handler.js -o h.snap` and
// `wasp invoke h.snap`: JavaScript virtines on the command line (docs/js.md). The module runs in
// the JavaScript engine (src/js/engine.ts) as a Linux program in one VM; its result is printed as
// JSON on stdout, its console on stderr; a JavaScript error is a `wasp: ...` line and its status.
import { basename, resolve } from "node:path";
import { BadArgsError, BadImageError, WaspError } from "../errors.ts";
import { linuxStartOf, runRecordedLinux } from "../virtine/record-linux.ts";
import { escapeGuestText } from "../guest-text.ts";
import { MIB } from "../image/image.ts";
import { kvmDevicePath, systemKvm } from "../kvm/system.ts";
import { describeSandbox, enterSandbox } from "../host/harden.ts";
import { parseElf } from "../linux/elf.ts";
import { MAX_MEMORY } from "../image/image.ts";
import { LinuxProgram } from "../virtine/linux.ts";
import { checkFileName, decodeJsReply, savedJsSettings, encodeJsCall, jsArgs, enginePath, jsEngine, jsFault, jsFiles, jsLimits, JS_LOAD_ONLY, JS_PROGRAM, type JsLimits } from "../js/engine.ts";
import { err, out, syscallCounts } from "./output.ts";
import { checkWritable, jsonArgs, parseCount, parseList, parseSize, readJson, readText, writeOutput } from "./parse.ts";

export interface JsFlags {
  dir?: string[];
  mem?: string;
  stack?: string;
  timeout?: string;
  allow?: string;
  input?: string;
  verbose?: boolean;
  sandbox?: boolean;
  json?: boolean;
  /** --heap SIZE: the engine's heap limit */
  heap?: string;
  /** wasp invoke --record FILE: the engine's run recorded, as a Linux program's */
  record?: string;
  /** wasp snapshot: --warmup FILE (a JSON array of inputs), -o FILE */
  warmup?: string;
  output?: string;
  /** flags of other kinds, refused */
  env?: string[];
  file?: string[];
  trace?: boolean;
  dataSize?: string;
  snapshot?: boolean;
  raw?: boolean;
}

function refuseOthers(flags: JsFlags, what: string): void {
  const others: [unknown, string][] = [
    [flags.env?.length, "--env"],
    [flags.dir?.length, "--dir"],
    [flags.file?.length, "--file"],
    [flags.dataSize, "--data-size"],
    [flags.snapshot === false, "--no-snapshot"],
    [flags.raw, "--raw"],
  ];
  for (const [set, name] of others) if (set) throw new BadArgsError(`${name} does not apply to ${what}`);
}

/**
 * `wasp invoke handler.js [args] [--input in.json]` (the module compiled and called in one VM) or,
 * `fromSnapshot`, `wasp invoke h.snap ...` (the warm engine resumed).
 */
export function jsInvoke(path: string, rawArgs: string[], flags: JsFlags, fromSnapshot: boolean): void {
  refuseOthers(flags, "a JavaScript virtine");
  if (flags.output !== undefined) throw new BadArgsError("--output does not apply to a JavaScript virtine: its result is printed as JSON");
  const memory = flags.mem === undefined ? undefined : parseSize(flags.mem, "--mem");
  const stackSize = flags.stack === undefined ? undefined : parseSize(flags.stack, "--stack");
  const timeoutMs = flags.timeout === undefined ? undefined : parseCount(flags.timeout, "--timeout");
  const allow = flags.allow === undefined ? [] : parseList(flags.allow);
  const args = [...(flags.input === undefined ? [] : [readJson(flags.input, "--input")]), ...jsonArgs(rawArgs)];
  const stdin = encodeJsCall(args);
  const trace = flags.trace ? (line: string) => err(`${line}\n`) : undefined;
  if (flags.record !== undefined) checkWritable(flags.record, "--record");
  let program: LinuxProgram;
  let limits: JsLimits;
  let engineArgs: string[] | undefined;
  let name: string;
  if (fromSnapshot) {
    if (flags.heap !== undefined) throw new BadArgsError("--heap is fixed in a snapshot file");
    program = LinuxProgram.fromSnapshotFile(path, { oneShot: true, memory, stackSize, timeoutMs, allow, trace });
    ({ name, limits } = savedJsSettings(program.snapshotArgs ?? [], path));
  } else {
    name = checkFileName(basename(path));
    const files = jsFiles(readText(path, ""), undefined);
    const elf = parseElf(jsEngine(), JS_PROGRAM, MAX_MEMORY);
    program = new LinuxProgram(elf, { oneShot: true, memory, stackSize, timeoutMs, allow, files, trace });
    limits = jsLimits(program.layout.memory, program.layout.stack[1] - program.layout.stack[0], flags.heap === undefined ? undefined : parseSize(flags.heap, "--heap"));
    engineArgs = jsArgs(name, limits);
  }
  using _program = program;
  systemKvm();
  if (flags.sandbox !== false) {
    const sandbox = enterSandbox({ read: [path, ...(flags.input === undefined || flags.input === "-" ? [] : [flags.input])], write: [flags.record], devices: [kvmDevicePath()] });
    if (flags.verbose) err(`wasp: sandbox: ${describeSandbox(sandbox)}\n`);
  }
  const started = Bun.nanoseconds();
  let result;
  try {
    if (flags.record === undefined) result = program.run(engineArgs, { input: stdin });
    else {
      // the engine's run, as a Linux program's: from the engine (its module among the granted
      // files) or from the snapshot file
      const start = linuxStartOf(program, fromSnapshot ? resolve(path) : enginePath);
      result = runRecordedLinux(program, start, { args: engineArgs, input: stdin });
      writeOutput(flags.record, result.recording, "--record");
    }
  } catch (e) {
    if (flags.record !== undefined && e instanceof WaspError && e.recording) writeOutput(flags.record, e.recording, "--record");
    throw jsFault(e, limits);
  }
  const elapsed = (Bun.nanoseconds() - started) / 1000;
  // the console first: a call that fails has usually said why there
  if (result.stderr.length > 0) err(process.stderr.isTTY ? escapeGuestText(result.stderr) : result.stderr);
  if (result.stderrTruncated) err(`wasp: the console went past the ${program.maxOutput}-byte cap; the rest was dropped\n`);
  if (flags.verbose) err(`wasp: ${path}: JavaScript${fromSnapshot ? " (snapshot file)" : ""}, ${program.layout.memory / MIB} MiB, heap limit ${limits.heap} bytes, ${syscallCounts(result)}, ${result.exits} exit(s), ${elapsed.toFixed(1)} µs\n`);
  const value = decodeJsReply({ status: result.status, stdout: result.stdout, stdoutTruncated: result.stdoutTruncated }, { limits, maxOutput: program.maxOutput, fileName: name });
  if (flags.json) {
    out(`${JSON.stringify({ value: value ?? null, undefined: value === undefined, console: new TextDecoder().decode(result.stderr), exits: result.exits, syscalls: result.syscalls, syscallsInVm: result.syscallsInVm, microseconds: Math.round(elapsed * 10) / 10 })}\n`);
    return;
  }
  if (value !== undefined) out(`${JSON.stringify(value)}\n`);
}

/** `wasp snapshot handler.js -o FILE [--warmup warm.json]`: the module compiled and warmed up, written as a snapshot file. */
export function jsSnapshot(path: string, rawArgs: string[], flags: JsFlags & { output: string }): void {
  refuseOthers(flags, "a JavaScript virtine");
  if (rawArgs.length > 0) throw new BadArgsError("a JavaScript virtine's snapshot takes no arguments: warm-up inputs go in --warmup FILE (a JSON array)");
  if (flags.input !== undefined) throw new BadArgsError("--input does not apply to a JavaScript snapshot: warm-up inputs go in --warmup FILE (a JSON array)");
  const memory = flags.mem === undefined ? undefined : parseSize(flags.mem, "--mem");
  const stackSize = flags.stack === undefined ? undefined : parseSize(flags.stack, "--stack");
  const timeoutMs = flags.timeout === undefined ? 60_000 : parseCount(flags.timeout, "--timeout");
  checkWritable(flags.output, "-o");
  let warmup: unknown[] | undefined;
  if (flags.warmup !== undefined) {
    const w = readJson(flags.warmup, "--warmup");
    if (!Array.isArray(w)) throw new BadArgsError(`--warmup ${flags.warmup} is not a JSON array of inputs`);
    warmup = w;
  }
  const name = checkFileName(basename(path));
  const files = jsFiles(readText(path, ""), warmup);
  const elf = parseElf(jsEngine(), JS_PROGRAM, MAX_MEMORY);
  using program = new LinuxProgram(elf, { poolSize: 1, memory, stackSize, timeoutMs, allow: flags.allow === undefined ? [] : parseList(flags.allow), files });
  const limits = jsLimits(program.layout.memory, program.layout.stack[1] - program.layout.stack[0], flags.heap === undefined ? undefined : parseSize(flags.heap, "--heap"));
  const result = program.run(jsArgs(name, limits), { input: JS_LOAD_ONLY });
  if (result.stderr.length > 0) err(process.stderr.isTTY ? escapeGuestText(result.stderr) : result.stderr);
  decodeJsReply({ status: result.status, stdout: result.stdout, stdoutTruncated: result.stdoutTruncated }, { limits, maxOutput: program.maxOutput, fileName: name });
  if (!program.snapshotTaken) throw new BadImageError(`${name}: the engine took no snapshot`);
  const info = program.writeSnapshot(flags.output);
  err(`wasp: wrote ${flags.output}: ${name} compiled${warmup ? ` and warmed up by ${warmup.length} call(s)` : ""}, ${info.memSize / MIB} MiB of guest memory, ${info.populatedPages} pages stored (${((info.populatedPages * 4096) / MIB).toFixed(1)} MiB on disk)\n`);
}
