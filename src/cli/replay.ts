// `wasp replay FILE [--image PATH]`: runs a recorded call again (`wasp invoke --record FILE`) from
// the same starting state (checked by hash), answering its time, random, host and file hypercalls
// from the recording, and checks every hypercall and the outcome against it (src/virtine/record.ts);
// a Linux program's call (format version 2) likewise, with its system calls — the clock, sleeps and
// getrandom answered from the recording, the rest run and checked (src/virtine/record-linux.ts).
// A faithful replay prints the call's result as `invoke` did and exits 0; the first difference is
// one `wasp:` line (WASP_REPLAY_DIVERGED).
import { readFileSync, statSync } from "node:fs";
import { MAX_RECORDING } from "../virtine/record.ts";
import type { LinuxRecording } from "../virtine/record-linux.ts";
import type { LinuxRunResult } from "../virtine/linux.ts";
import { replayRecording } from "../virtine/replay.ts";
import { JS_PROGRAM, decodeJsReply, savedJsSettings } from "../js/engine.ts";
import type { GdbDebugger } from "../debug/debugger.ts";
import { streamOut } from "./linux.ts";
import { BadArgsError, WaspError } from "../errors.ts";
import { escapeGuestText } from "../guest-text.ts";
import { resolveImage } from "./image-arg.ts";
import { symbolsOf, waitForGdb } from "./gdb.ts";
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
  const timeoutMs = flags.timeout === undefined ? undefined : parseCount(flags.timeout, "--timeout");
  /** the image, executable or snapshot file (or built-in guest's name) the replay starts from */
  let started = "";
  /** the debugger --gdb attached, closed when the replay is done */
  let debugging: GdbDebugger | undefined;
  // where it starts: --image, else the path recorded, else a built-in guest of the recorded name
  const r = replayRecording(readRecording(file), file, {
    image: flags.image,
    timeoutMs,
    resolve: (target) => {
      started = target;
      return resolveImage(target);
    },
    // gdb is waited for once the start is known to be the recorded one
    debug: () => (flags.gdb === undefined ? undefined : (debugging = waitForGdb(flags.gdb, symbolsOf(started)))),
  });
  debugging?.close();
  if (r.error) {
    // faithful to a call that failed: its error, said as invoke said it, and success
    err(`wasp: replayed as recorded: ${r.error.message} (${r.error.code})\n`);
    return;
  }
  if (r.kind === "linux") {
    const result = r.result!;
    if (r.program.name === JS_PROGRAM) return showJsReply(r.recording, r.program, result, flags.image ?? file);
    streamOut(1, result.stdout);
    streamOut(2, result.stderr);
    err(`wasp: replayed ${r.recording.events.length} system call(s) and hypercall(s) as recorded; the program's exit status was ${result.status}\n`);
    return;
  }
  const result = r.result!;
  if (result.console.length > 0) out(escapeGuestText(result.console));
  if (result.output.length > 0) {
    out(escapeGuestText(result.output));
    if (result.output[result.output.length - 1] !== 0x0a) out("\n");
  }
  out(`${result.value}\n`);
  err(`wasp: replayed ${r.recording.events.length} hypercall(s) as recorded\n`);
}

/**
 * A JavaScript handler's replayed call (the engine's run) shown as `wasp invoke handler.js` shows
 * it: the console, then the handler's result as JSON, or its error — as recorded, so exit 0.
 */
function showJsReply(rec: LinuxRecording, program: { snapshotArgs: readonly string[] | undefined; maxOutput: number }, result: LinuxRunResult, target: string): void {
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
