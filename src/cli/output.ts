// What the command line prints, written synchronously to its standard streams. A reader that goes
// away (`wasp bench | head -1`: EPIPE) ends the command quietly, with the status a Unix tool killed
// by SIGPIPE has (141); any other failure to write standard output (`> /dev/full`: ENOSPC, EIO...)
// is one `wasp: ...` line on stderr and WASP_WRITE's status. Nothing is buffered: what a command
// has printed is out when it stops.
import { writeSync } from "node:fs";
import { WriteError } from "../errors.ts";

/** Exit status after standard output's reader went away: 128 + SIGPIPE, as the shell shows a tool SIGPIPE killed. */
export const EXIT_PIPE_CLOSED = 141;

/** Standard output's reader went away: the command stops quietly (main.ts turns it into EXIT_PIPE_CLOSED). */
export class PipeClosed extends Error {
  constructor() {
    super("standard output was closed by its reader");
  }
}

/** Writes to standard output, all of it. */
export function out(data: string | Uint8Array): void {
  try {
    writeAll(1, data);
  } catch (e) {
    const code = errnoCode(e);
    if (code === "EPIPE") throw new PipeClosed();
    throw new WriteError(`cannot write to standard output (${code ?? (e instanceof Error ? e.message : String(e))})`);
  }
}

/** Writes to standard error; a failure there cannot be reported anywhere, so it is dropped. */
export function err(data: string | Uint8Array): void {
  try {
    writeAll(2, data);
  } catch {
    // stderr is where failures are reported: with it gone there is nobody left to tell
  }
}

function writeAll(fd: number, data: string | Uint8Array): void {
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  for (let done = 0; done < bytes.length; ) {
    try {
      done += writeSync(fd, bytes, done, bytes.length - done);
    } catch (e) {
      // a non-blocking stream (a parent may hand one over): wait until it drains
      if (errnoCode(e) !== "EAGAIN") throw e;
      Bun.sleepSync(1);
    }
  }
}

function errnoCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** The exit status a command chose (a Linux program's own status), else 0 when it succeeds. */
let commandStatus = 0;
export function setExitStatus(status: number): void {
  commandStatus = status;
}
export function exitStatus(): number {
  return commandStatus;
}

/** "7 system call(s) (6 answered in the VM)": how many the call made, and how many of them needed no exit. */
export function syscallCounts(r: { syscalls: number; syscallsInVm: number }): string {
  return `${r.syscalls} system call(s) (${r.syscallsInVm} answered in the VM)`;
}
