// A recording replayed (`wasp replay`, and `replay` in the TypeScript API): the same starting state
// (an image, an executable or a snapshot file, checked by hash before anything runs), the same VM,
// every nondeterministic answer from the recording, every event and the outcome checked. A
// faithful replay gives what the call gave (its result, or the error it ended with); the first
// difference is a ReplayDivergedError.
import { readFileSync } from "node:fs";
import { MAX_MEMORY } from "../image/image.ts";
import { readHead, readImageFile } from "../image/file.ts";
import { isElf, parseElf } from "../linux/elf.ts";
import { isSnapshotFile } from "../snapshot/file.ts";
import { BadArgsError, ReplayDivergedError, WaspError } from "../errors.ts";
import type { DebugHook } from "./debug-hook.ts";
import { LinuxProgram, type LinuxRunResult } from "./linux.ts";
import { Replayer, checkOutcome, outcomeOf, replayTimeout, sha256, type RecordedOutcome, type Recording } from "./record.ts";
import { checkLinuxStart, decodeAnyRecording, replayLinuxCall, type LinuxRecording } from "./record-linux.ts";
import { Runner, type RunResult } from "./runner.ts";

export interface ReplayOptions {
  /** the image, executable or snapshot file to start from (default: the path the recording names) */
  image?: string;
  /** the replay's deadline in ms (default: the recorded one for a call that timed out, else the recorded one but at least a minute) */
  timeoutMs?: number;
  /** where a start's path or name points when it is not a file (the CLI's built-in guests) */
  resolve?: (target: string) => string | undefined;
  /** asked once the start is checked, just before the replay runs: a debugger to attach (`wasp replay --gdb`) */
  debug?: () => DebugHook | undefined;
}

/** A faithful replay: what the recorded call gave again. */
export type Replayed =
  | {
      kind: "native";
      recording: Recording;
      /** the call's result; undefined when the call ended with `error` (as recorded) */
      result: RunResult | undefined;
      error: { code: string; message: string } | undefined;
    }
  | {
      kind: "linux";
      recording: LinuxRecording;
      result: LinuxRunResult | undefined;
      error: { code: string; message: string } | undefined;
      /** the program's name, the arguments a snapshot file's program was started with, its output cap */
      program: { name: string; snapshotArgs: readonly string[] | undefined; maxOutput: number };
    };

/**
 * Replays a recording's bytes (`name` in messages): a BadRecordingError for a damaged or foreign
 * file, a ReplayDivergedError at the first difference, else what the call gave.
 */
export function replayRecording(bytes: Uint8Array, name: string, opts: ReplayOptions = {}): Replayed {
  const rec = decodeAnyRecording(bytes, name);
  const timedOut = "error" in rec.outcome && rec.outcome.error.code === "WASP_TIMEOUT";
  const timeoutMs = opts.timeoutMs ?? replayTimeout(rec.options.timeoutMs, timedOut);
  return "kind" in rec ? replayLinux(rec, timeoutMs, opts) : replayNative(rec, timeoutMs, opts);
}

function targetOf(start: { path?: string; name: string }, opts: ReplayOptions): string {
  const target = opts.image ?? start.path ?? start.name;
  return opts.resolve?.(target) ?? target;
}

/** Whether `path` is a readable file that starts as a snapshot file does (its head only is read). */
function isSnapshotAt(path: string): boolean {
  try {
    return isSnapshotFile(readHead(path).head);
  } catch {
    return false;
  }
}

function replayNative(rec: Recording, timeoutMs: number, opts: ReplayOptions): Replayed {
  const target = targetOf(rec.start, opts);
  const options = { memory: rec.options.memory, timeoutMs, oneShot: true, snapshot: rec.options.snapshot, allow: rec.options.allow };
  let virtine: Runner;
  if (rec.start.kind === "image") {
    if (isSnapshotAt(target)) throw new ReplayDivergedError(-1, `the image ${rec.start.name}`, `${target}, a snapshot file`);
    const image = readImageFile(target, { memory: rec.options.memory });
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
  const debug = opts.debug?.();
  let got: RecordedOutcome;
  let result: RunResult | undefined;
  try {
    result = virtine.run(rec.call.args, { input: rec.call.input.length > 0 ? rec.call.input : undefined, hook: replayer, debug });
    got = outcomeOf(result);
  } catch (e) {
    if (e instanceof ReplayDivergedError || !(e instanceof WaspError)) throw e;
    got = outcomeOf(e);
  }
  checkOutcome(rec, replayer.consumed, got);
  return { kind: "native", recording: rec, result, error: "error" in got ? got.error : undefined };
}

function replayLinux(rec: LinuxRecording, timeoutMs: number, opts: ReplayOptions): Replayed {
  const target = targetOf(rec.start, opts);
  const o = rec.options;
  const options = { oneShot: true, timeoutMs, allow: o.allow, snapshot: o.snapshot, maxOutput: o.maxOutput, env: rec.call.env, files: Object.fromEntries(o.files) };
  let program: LinuxProgram;
  if (rec.start.kind === "executable") {
    if (isSnapshotAt(target)) throw new ReplayDivergedError(-1, `the executable ${rec.start.name}`, `${target}, a snapshot file`);
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(readFileSync(target));
    } catch (e) {
      throw new BadArgsError(`${target}: cannot read the recorded executable (${e instanceof Error ? e.message : String(e)})${opts.image === undefined ? "; --image (image) says where it is" : ""}`);
    }
    const got = sha256(bytes);
    if (got !== rec.start.sha256 || !isElf(bytes)) throw new ReplayDivergedError(-1, `the executable ${rec.start.name}, sha256 ${rec.start.sha256}`, `${target}, sha256 ${got}`);
    program = new LinuxProgram(parseElf(bytes, rec.start.name, MAX_MEMORY), { ...options, memory: o.memory, stackSize: o.stackSize });
  } else {
    if (!isSnapshotAt(target)) throw new ReplayDivergedError(-1, `the snapshot file ${rec.start.name}`, `${target}, not a snapshot file`);
    // a snapshot file holds its program's files (checked against the recording's with its start, by hash)
    program = LinuxProgram.fromSnapshotFile(target, { ...options, files: undefined });
  }
  using _ = program;
  checkLinuxStart(rec, program, target);
  const { result, outcome } = replayLinuxCall(rec, program, { debug: opts.debug?.() });
  return {
    kind: "linux",
    recording: rec,
    result,
    error: "error" in outcome ? outcome.error : undefined,
    program: { name: program.elf.name, snapshotArgs: program.snapshotArgs, maxOutput: program.maxOutput },
  };
}
