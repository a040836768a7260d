// `wasp replay FILE [--image PATH]`: runs a recorded call again (`wasp invoke --record FILE`) from
// the same starting state (checked by hash), answering its time, random, host and file hypercalls
// from the recording, and checks every hypercall and the outcome against it (src/virtine/record.ts);
// a Linux program's call (format version 2) likewise, with its system calls — the clock, sleeps and
// getrandom answered from the recording, the rest run and checked (src/virtine/record-linux.ts).
// A faithful replay prints the call's result as `invoke` did and exits 0; the first difference is
// one `wasp:` line (WASP_REPLAY_DIVERGED).
import { readFileSync, statSync } from "node:fs";
import { Runner } from "../virtine/runner.ts";
import { MAX_RECORDING, Replayer, checkOutcome, outcomeOf, replayTimeout, sha256, type RecordedOutcome } from "../virtine/record.ts";
import { checkLinuxStart, decodeAnyRecording, replayLinuxCall, type LinuxRecording } from "../virtine/record-linux.ts";
import { LinuxProgram, type LinuxRunResult } from "../virtine/linux.ts";
import { JS_PROGRAM, decodeJsReply, savedJsSettings } from "../js/engine.ts";
import { isElf, parseElf } from "../linux/elf.ts";
import { MAX_MEMORY } from "../image/image.ts";
import { streamOut } from "./linux.ts";
import { BadArgsError, ReplayDivergedError, WaspError } from "../errors.ts";
import { escapeGuestText } from "../guest-text.ts";
import { isSnapshotPath, loadImage, resolveImage } from "./invoke.ts";
import { waitForGdb } from "./gdb.ts";
import { parseCount } from "./parse.ts";
import { err, out } from "./output.ts";

export interface ReplayFlags {
  /** the image or snapshot file to start from, when not where the recording says */
  image?: string;
  timeout?: string;
  /** --gdb HOST:PORT: replay under gdb */
  gdb?: string;
}

function readRecording(path: string): Uint8Array {
  try {
    const st = statSync(path);
    if (st.isDirectory()) throw new Error("it is a directory");
    if (st.size > MAX_RECORDING) throw new Error(`${st.size} bytes, more than ${MAX_RECORDING >> 20} MiB`);
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new BadArgsError(`${path}: cannot read it (${e instanceof Error ? e.message : String(e)})`);
  }
}

export function replayCommand(file: string, flags: ReplayFlags): void {
  const any = decodeAnyRecording(readRecording(file), file);
  // --timeout, else the recorded deadline for a call that timed out (so its replay times out as it
  // did, not a minute later), else at least a minute
  const timedOut = "error" in any.outcome && any.outcome.error.code === "WASP_TIMEOUT";
  const timeoutMs = flags.timeout === undefined ? replayTimeout(any.options.timeoutMs, timedOut) : parseCount(flags.timeout, "--timeout");
  if ("kind" in any) return replayLinux(any, flags, timeoutMs);
  const rec = any;
  // where it starts: --image, else the path recorded, else a built-in guest of the recorded name
  const target = flags.image ?? rec.start.path ?? rec.start.name;
  const options = { memory: rec.options.memory, timeoutMs, oneShot: true, snapshot: rec.options.snapshot, allow: rec.options.allow };
  let virtine: Runner;
  if (rec.start.kind === "image") {
    if (resolveImage(target) === undefined && isSnapshotPath(target)) throw new ReplayDivergedError(-1, `the image ${rec.start.name}`, `${target}, a snapshot file`);
    const image = loadImage(target, { memory: rec.options.memory });
    const got = sha256(image.bytes);
    if (got !== rec.start.sha256) throw new ReplayDivergedError(-1, `the image ${rec.start.name}, sha256 ${rec.start.sha256}`, `${target}, sha256 ${got}`);
    virtine = new Runner(image, { ...options, dataSize: rec.options.dataSize || undefined, stackSize: rec.options.stackSize || undefined });
  } else {
    virtine = Runner.fromSnapshotFile(target, options);
    const info = virtine.snapshotFileInfo!;
    if (info.imageSha256 !== rec.start.sha256 || info.memorySha256 !== rec.start.memorySha256) {
      virtine.close();
      throw new ReplayDivergedError(-1, `the snapshot file ${rec.start.name} (image sha256 ${rec.start.sha256}, memory sha256 ${rec.start.memorySha256})`, `${target} (image sha256 ${info.imageSha256}, memory sha256 ${info.memorySha256})`);
    }
  }
  using _ = virtine;
  if (virtine.memorySize !== rec.options.memory || virtine.meta.dataSize !== rec.options.dataSize || virtine.meta.stackSize !== rec.options.stackSize) {
    throw new ReplayDivergedError(-1, `a VM of ${rec.options.memory} bytes, data window ${rec.options.dataSize}, stack ${rec.options.stackSize}`, `${virtine.memorySize}, ${virtine.meta.dataSize}, ${virtine.meta.stackSize}`);
  }
  const replayer = new Replayer(rec.events);
  using debug = flags.gdb === undefined ? undefined : waitForGdb(flags.gdb);
  let got: RecordedOutcome;
  let result;
  try {
    result = virtine.run(rec.call.args, { input: rec.call.input.length > 0 ? rec.call.input : undefined, hook: replayer, debug });
    got = outcomeOf(result);
  } catch (e) {
    if (e instanceof ReplayDivergedError || !(e instanceof WaspError)) throw e;
    got = outcomeOf(e);
  }
  checkOutcome(rec, replayer.consumed, got);
  if (!result) {
    // faithful to a call that failed: its error, said as invoke said it, and success
    const o = got as { error: { code: string; message: string } };
    err(`wasp: replayed as recorded: ${o.error.message} (${o.error.code})\n`);
    return;
  }
  if (result.console.length > 0) out(escapeGuestText(result.console));
  if (result.output.length > 0) {
    out(escapeGuestText(result.output));
    if (result.output[result.output.length - 1] !== 0x0a) out("\n");
  }
  out(`${result.value}\n`);
  err(`wasp: replayed ${rec.events.length} hypercall(s) as recorded\n`);
}

/** `wasp replay` of a Linux program's call: the same executable or snapshot file (by hash), the recorded options, every event checked. */
function replayLinux(rec: LinuxRecording, flags: ReplayFlags, timeoutMs: number): void {
  const target = flags.image ?? rec.start.path ?? rec.start.name;
  const o = rec.options;
  const options = { oneShot: true, timeoutMs, allow: o.allow, snapshot: o.snapshot, maxOutput: o.maxOutput, env: rec.call.env, files: Object.fromEntries(o.files) };
  let program: LinuxProgram;
  if (rec.start.kind === "executable") {
    if (isSnapshotPath(target)) throw new ReplayDivergedError(-1, `the executable ${rec.start.name}`, `${target}, a snapshot file`);
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(readFileSync(target));
    } catch (e) {
      throw new BadArgsError(`${target}: cannot read the recorded executable (${e instanceof Error ? e.message : String(e)}); --image says where it is`);
    }
    const got = sha256(bytes);
    if (got !== rec.start.sha256 || !isElf(bytes)) throw new ReplayDivergedError(-1, `the executable ${rec.start.name}, sha256 ${rec.start.sha256}`, `${target}, sha256 ${got}`);
    program = new LinuxProgram(parseElf(bytes, rec.start.name, MAX_MEMORY), { ...options, memory: o.memory, stackSize: o.stackSize });
  } else {
    if (!isSnapshotPath(target)) throw new ReplayDivergedError(-1, `the snapshot file ${rec.start.name}`, `${target}, not a snapshot file`);
    program = LinuxProgram.fromSnapshotFile(target, options);
  }
  using _ = program;
  checkLinuxStart(rec, program, target);
  using debug = flags.gdb === undefined ? undefined : waitForGdb(flags.gdb);
  const { result, outcome } = replayLinuxCall(rec, program, { debug });
  if (!result) {
    const e = outcome as { error: { code: string; message: string } };
    err(`wasp: replayed as recorded: ${e.error.message} (${e.error.code})\n`);
    return;
  }
  if (program.elf.name === JS_PROGRAM) return showJsReply(rec, program, result, target);
  streamOut(1, result.stdout);
  streamOut(2, result.stderr);
  err(`wasp: replayed ${rec.events.length} system call(s) and hypercall(s) as recorded; the program's exit status was ${result.status}\n`);
}

/**
 * A JavaScript handler's replayed call (the engine's run) shown as `wasp invoke handler.js` shows
 * it: the console, then the handler's result as JSON, or its error — as recorded, so exit 0.
 */
function showJsReply(rec: LinuxRecording, program: LinuxProgram, result: LinuxRunResult, target: string): void {
  // the engine's arguments name the module and its limits: the call's own, or the snapshot's
  const { name, limits } = savedJsSettings(rec.start.kind === "executable" ? rec.call.args : (program.snapshotArgs ?? []), target);
  if (result.stderr.length > 0) streamOut(2, result.stderr);
  let value: unknown;
  try {
    value = decodeJsReply({ status: result.status, stdout: result.stdout, stdoutTruncated: result.stdoutTruncated }, { limits, maxOutput: program.maxOutput, fileName: name });
  } catch (e) {
    if (!(e instanceof WaspError)) throw e;
    err(`wasp: replayed as recorded: ${e.message} (${e.code})\n`);
    return;
  }
  if (value !== undefined) out(`${JSON.stringify(value)}\n`);
  err(`wasp: replayed ${rec.events.length} system call(s) and hypercall(s) as recorded\n`);
}
