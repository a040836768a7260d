// `wasp invoke PROG [args...]` and `wasp inspect PROG` for a static Linux executable: the program
// runs in a virtine as it would run in a shell — its arguments as strings, its standard input from
// --input, its stdout to stdout, its stderr to stderr, its exit status as wasp's.
import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { BadArgsError, BadImageError, GuestFaultError, WaspError } from "../errors.ts";
import { escapeGuestText } from "../guest-text.ts";
import { MAX_MEMORY, MIB } from "../image/image.ts";
import { kvmDevicePath, systemKvm } from "../kvm/system.ts";
import { parseElf } from "../linux/elf.ts";
import { describeSandbox, enterSandbox } from "../host/harden.ts";
import { waitForGdb } from "./gdb.ts";
import { LinuxProgram } from "../virtine/linux.ts";
import { linuxStartOf, runRecordedLinux } from "../virtine/record-linux.ts";
import { err, out, setExitStatus, syscallCounts } from "./output.ts";
import { checkWritable, parseCount, parseDirs, parseFiles, parseList, parseSize, writeOutput } from "./parse.ts";
import type { InvokeFlags } from "./invoke.ts";

export interface LinuxFlags {
  /** --env KEY=VALUE, repeatable */
  env?: string[];
  /** --file GUEST=HOST, repeatable: a host file the program may open read-only at GUEST */
  file?: string[];
  /** --dir HOST[=GUEST], repeatable: a host directory the program may read at GUEST */
  dir?: string[];
  /** --trace: each system call on stderr */
  trace?: boolean;
}

function readProgram(path: string) {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new BadImageError(`${path}: cannot read it (${e instanceof Error ? e.message : String(e)})`);
  }
  const name = path.split("/").pop() || path;
  return parseElf(bytes, name, MAX_MEMORY);
}

/** The program's stdin from --input: a file, or - for wasp's own standard input. */
function readInputFlag(given: string | undefined): Uint8Array | undefined {
  if (given === undefined) return undefined;
  try {
    return new Uint8Array(readFileSync(given === "-" ? 0 : given));
  } catch (e) {
    throw new BadArgsError(`--input ${given}: cannot read it (${e instanceof Error ? e.message : String(e)})`);
  }
}

/** Bytes the program wrote, for a terminal escaped (src/guest-text.ts), for a pipe or file as they are. */
export function streamOut(fd: 1 | 2, bytes: Uint8Array): void {
  if (bytes.length === 0) return;
  const tty = fd === 1 ? process.stdout.isTTY : process.stderr.isTTY;
  (fd === 1 ? out : err)(tty ? escapeGuestText(bytes) : bytes);
}

/**
 * `wasp invoke PROG` of a static executable, or (`fromSnapshot`) of a Linux program's snapshot
 * file: the call resumes where the snapshot was taken, with its own input.
 */
export function linuxInvoke(path: string, args: string[], flags: InvokeFlags & LinuxFlags, fromSnapshot = false): void {
  if (flags.dataSize !== undefined) throw new BadArgsError("--data-size is for native guests: a Linux program reads its input on fd 0");
  if (flags.snapshot === false) throw new BadArgsError("--no-snapshot is for native guests: a Linux program in `wasp invoke` runs from its start anyway");
  const memory = flags.mem === undefined ? undefined : parseSize(flags.mem, "--mem");
  const timeoutMs = flags.timeout === undefined ? undefined : parseCount(flags.timeout, "--timeout");
  const stackSize = flags.stack === undefined ? undefined : parseSize(flags.stack, "--stack");
  if (flags.output !== undefined && flags.output !== "-") checkWritable(flags.output, "--output");
  if (flags.record !== undefined) checkWritable(flags.record, "--record");
  const { files, hostPaths } = parseFiles(flags.file ?? []);
  const { dirs, hostPaths: dirPaths } = parseDirs(flags.dir ?? []);
  const trace = flags.trace ? (line: string) => err(`${line}\n`) : undefined;
  // every option checked first; then /dev/kvm opened (and a snapshot file loaded), before the sandbox
  const options = { oneShot: true, memory, stackSize, timeoutMs, allow: flags.allow === undefined ? [] : parseList(flags.allow), env: flags.env ?? [], files, trace, ...(dirPaths.length > 0 && { dirs }) };
  // a dynamically linked program's interpreter and libraries are found and read here, before the sandbox
  const program = fromSnapshot ? LinuxProgram.fromSnapshotFile(path, options) : new LinuxProgram(readProgram(path), { ...options, origin: resolve(path) });
  systemKvm();
  // gdb connects before the sandbox closes the door on new sockets
  using debug = flags.gdb === undefined ? undefined : waitForGdb(flags.gdb, fromSnapshot ? undefined : path);
  if (flags.sandbox !== false) {
    const sandbox = enterSandbox({ read: [path, flags.input, ...hostPaths, ...dirPaths], write: [flags.output, flags.record], devices: [kvmDevicePath()] });
    if (flags.verbose) err(`wasp: sandbox: ${describeSandbox(sandbox)}\n`);
  }
  const input = readInputFlag(flags.input);
  // the recording's start: the executable's bytes, or the snapshot file's executable, memory and process section
  const start = flags.record === undefined ? undefined : linuxStartOf(program, resolve(path));
  const started = Bun.nanoseconds();
  let result;
  try {
    // no arguments: the program's own (a snapshot's are those of the call that took it)
    const call = { args: args.length > 0 ? args : undefined, input, debug };
    if (flags.record === undefined || !start) result = program.run(call);
    else {
      result = runRecordedLinux(program, start, call);
      writeOutput(flags.record, result.recording, "--record");
    }
  } catch (e) {
    // a failed call is recorded too
    if (flags.record !== undefined && e instanceof WaspError && e.recording) writeOutput(flags.record, e.recording, "--record");
    if (flags.verbose && e instanceof GuestFaultError && e.regs) err(`wasp: registers at the fault:\n${Object.entries(e.regs).map(([k, v]) => `  ${k.padStart(6)} 0x${v.toString(16).padStart(16, "0")}`).join("\n")}\n`);
    throw e;
  }
  const elapsed = (Bun.nanoseconds() - started) / 1000;
  const unsupported = [...result.unsupported].map(([nr, n]) => `${nr}${n > 1 ? ` (x${n})` : ""}`);
  if (flags.json) {
    if (flags.output !== undefined) writeFileSync(flags.output, result.stdout);
    out(`${JSON.stringify({
      status: result.status,
      ...(flags.output === undefined && { stdout: Buffer.from(result.stdout).toString("base64") }),
      stderr: new TextDecoder().decode(result.stderr),
      stdoutTruncated: result.stdoutTruncated,
      stderrTruncated: result.stderrTruncated,
      exits: result.exits,
      syscalls: result.syscalls,
      syscallsInVm: result.syscallsInVm,
      unsupportedSyscalls: Object.fromEntries(result.unsupported),
      microseconds: Math.round(elapsed * 10) / 10,
    })}\n`);
    setExitStatus(result.status);
    return;
  }
  if (flags.output !== undefined && flags.output !== "-") {
    try {
      writeFileSync(flags.output, result.stdout);
    } catch (e) {
      throw new BadArgsError(`--output ${flags.output}: cannot write it (${e instanceof Error ? e.message : String(e)})`);
    }
  } else streamOut(1, result.stdout);
  streamOut(2, result.stderr);
  const over = [result.stdoutTruncated && "stdout", result.stderrTruncated && "stderr"].filter(Boolean);
  if (over.length > 0) err(`wasp: the program's ${over.join(" and ")} went past the ${program.maxOutput}-byte cap; the rest was dropped\n`);
  if (flags.verbose) {
    const what = `${program.interp ? "dynamically linked" : "static"} Linux executable`;
    err(`wasp: ${path}: ${fromSnapshot ? `snapshot of a ${what}` : what}, ${program.layout.memory / MIB} MiB, exit status ${result.status}, ${syscallCounts(result)}, ${result.exits} exit(s), ${elapsed.toFixed(1)} µs\n`);
    if (unsupported.length > 0) err(`wasp: system calls answered -ENOSYS (by number): ${unsupported.join(", ")}\n`);
  }
  setExitStatus(result.status);
}

/** `wasp inspect PROG`: what the executable is, and how wasp would lay it out. */
export function linuxInspect(path: string, json: boolean): void {
  const elf = readProgram(path);
  const perms = (s: { read: boolean; write: boolean; exec: boolean }) => `${s.read ? "r" : "-"}${s.write ? "w" : "-"}${s.exec ? "x" : "-"}`;
  if (json) {
    out(`${JSON.stringify({
      file: path,
      kind: "linux",
      size: elf.bytes.length,
      pie: elf.pie,
      entry: elf.entry,
      segments: elf.segments.map((s) => ({ address: s.vaddr, memorySize: s.memsz, fileSize: s.filesz, permissions: perms(s) })),
      tls: elf.tls ?? null,
      interpreter: elf.interp ?? null,
      needed: elf.needed,
    })}\n`);
    return;
  }
  const lines: [string, string][] = [
    ["file", path],
    ["kind", `linux (${elf.interp ? "dynamically linked" : "static"} x86-64 ELF${elf.pie ? ", position-independent" : ""})`],
    ...(elf.interp ? ([["interpreter", elf.interp], ["needs", elf.needed.join(", ") || "none"]] as [string, string][]) : []),
    ["size", `${elf.bytes.length} bytes`],
    ["entry", `0x${elf.entry.toString(16)}${elf.pie ? " (relative to the load address)" : ""}`],
    ...elf.segments.map((s, i): [string, string] => [`segment ${i}`, `0x${s.vaddr.toString(16)}-0x${(s.vaddr + s.memsz).toString(16)} ${perms(s)} (${s.filesz} bytes from the file)`]),
    ["thread-local", elf.tls ? `${elf.tls.memsz} bytes` : "none"],
  ];
  const width = Math.max(...lines.map(([k]) => k.length));
  for (const [k, v] of lines) out(`${k.padEnd(width)}  ${v}\n`);
}

/** `wasp snapshot PROG [args...] -o FILE`: runs the program to `wasp_snapshot()`, then writes that state. */
export function linuxSnapshot(path: string, args: string[], flags: { output: string; mem?: string; stack?: string; timeout?: string; allow?: string; dataSize?: string } & LinuxFlags & { input?: string }): void {
  if (flags.dataSize !== undefined) throw new BadArgsError("--data-size is for native guests: a Linux program reads its input on fd 0");
  const memory = flags.mem === undefined ? undefined : parseSize(flags.mem, "--mem");
  const stackSize = flags.stack === undefined ? undefined : parseSize(flags.stack, "--stack");
  const timeoutMs = flags.timeout === undefined ? 60_000 : parseCount(flags.timeout, "--timeout");
  const { files } = parseFiles(flags.file ?? []);
  // the file names the directories' guest paths (never their host paths): wasp invoke FILE grants them again
  const { dirs, hostPaths: dirPaths } = parseDirs(flags.dir ?? []);
  const input = readInputFlag(flags.input);
  using program = new LinuxProgram(readProgram(path), { origin: resolve(path), poolSize: 1, memory, stackSize, timeoutMs, allow: flags.allow === undefined ? [] : parseList(flags.allow), env: flags.env ?? [], files, ...(dirPaths.length > 0 && { dirs }) });
  const result = program.run(args, { input });
  if (!program.snapshotTaken) throw new BadImageError(`${program.elf.name}: the program never called wasp_snapshot() (wasp.h), so there is no initialized state to write`);
  const info = program.writeSnapshot(flags.output);
  streamOut(1, result.stdout);
  streamOut(2, result.stderr);
  err(`wasp: wrote ${flags.output}: ${info.memSize / MIB} MiB of guest memory, ${info.populatedPages} pages stored (${((info.populatedPages * 4096) / MIB).toFixed(1)} MiB on disk), the first call's exit status ${result.status}\n`);
}
