// `wasp invoke <image> [args...]` and `wasp inspect <image>`. What the image is decides which
// engine's module is loaded (src/cli/image-arg.ts): a Linux program's and a JavaScript virtine's
// (the Linux layer, its decoder) are imported only for them, as are the recorder and gdb's stub
// only with --record and --gdb — a native call's process start loads none of them.
import { readFileSync, statSync } from "node:fs";
import { basename, resolve } from "node:path";
import { SnapshotFile } from "../snapshot/file.ts";
import { kvmDevicePath, systemKvm } from "../kvm/system.ts";
import { Runner, checkArgs } from "../virtine/runner.ts";
import { BadArgsError, GuestFaultError, WaspError } from "../errors.ts";
import type { Recording } from "../virtine/record.ts";
import { escapeGuestText } from "../guest-text.ts";
import { MIB, type Image, type NativeHeader } from "../image/image.ts";
import { checkWritable, parseCount, parseFiles, parseIntArg, parseList, parseSize, writeOutput } from "./parse.ts";
import { describeSandbox, enterSandbox } from "../host/harden.ts";
import { err, out } from "./output.ts";
import type { LinuxFlags } from "./linux.ts";
import type { JsFlags } from "./js.ts";
import { isElfPath, isJsPath, isJsSnapshotPath, isLinuxSnapshotPath, isPyPath, isPySnapshotPath, isSnapshotPath, loadImage, resolveImage } from "./image-arg.ts";

export interface InvokeFlags extends LinuxFlags {
  mem?: string;
  allow?: string;
  timeout?: string;
  snapshot?: boolean;
  verbose?: boolean;
  /** the call's input: a file, or "-" for standard input */
  input?: string;
  /** where the guest's output goes: a file, or "-" for standard output (then instead of the result) */
  output?: string;
  dataSize?: string;
  /** --stack SIZE: the guest's stack */
  stack?: string;
  /** false with --no-sandbox: no seccomp filter, no Landlock (src/host/harden.ts) */
  sandbox?: boolean;
  /** --raw: any bytes are a raw image, even text or an ELF file */
  raw?: boolean;
  /** --json: one JSON object with the result, console and output instead of text */
  json?: boolean;
  /** --record FILE: record the call for `wasp replay` (native images, Linux programs and their snapshot files) */
  record?: string;
  /** --gdb HOST:PORT: run the call under gdb (src/debug/) */
  gdb?: string;
}

export async function invokeCommand(imageArg: string, rawArgs: string[], flags: InvokeFlags & JsFlags & { python?: string }): Promise<void> {
  // a Python module (*.py), or a snapshot file of one: JSON in, JSON out (src/cli/python.ts)
  if (resolveImage(imageArg) === undefined && isPyPath(imageArg)) return (await import("./python.ts")).pyInvoke(imageArg, rawArgs, flags, false);
  if (resolveImage(imageArg) === undefined && isPySnapshotPath(imageArg)) return (await import("./python.ts")).pyInvoke(imageArg, rawArgs, flags, true);
  if (flags.python !== undefined) throw new BadArgsError(`--python is for Python virtines (*.py and their snapshot files); ${imageArg} is not one`);
  // a JavaScript module (*.js, *.mjs), or a snapshot file of one: JSON in, JSON out (src/cli/js.ts)
  if (flags.gdb !== undefined && resolveImage(imageArg) === undefined && (isJsPath(imageArg) || isJsSnapshotPath(imageArg))) {
    throw new BadArgsError(`--gdb: ${imageArg} is a JavaScript virtine, whose machine code is the engine's (QuickJS), not the module's: gdb attaches to native images and Linux programs`);
  }
  if (resolveImage(imageArg) === undefined && isJsPath(imageArg)) return (await import("./js.ts")).jsInvoke(imageArg, rawArgs, flags, false);
  if (resolveImage(imageArg) === undefined && isJsSnapshotPath(imageArg)) return (await import("./js.ts")).jsInvoke(imageArg, rawArgs, flags, true);
  if (flags.heap !== undefined) throw new BadArgsError(`--heap is for JavaScript virtines; ${imageArg} is not one`);
  // a static Linux executable, or a snapshot file of one: its arguments are strings (src/cli/linux.ts)
  if (!flags.raw && resolveImage(imageArg) === undefined && isElfPath(imageArg)) return (await import("./linux.ts")).linuxInvoke(imageArg, rawArgs, flags);
  if (resolveImage(imageArg) === undefined && isLinuxSnapshotPath(imageArg)) return (await import("./linux.ts")).linuxInvoke(imageArg, rawArgs, flags, true);
  for (const [set, name] of [[flags.env?.length, "--env"], [flags.trace, "--trace"], [flags.dir?.length, "--dir"]] as const) {
    if (set) throw new BadArgsError(`${name} is for Linux programs (static ELF executables); ${imageArg} is not one`);
  }
  // files a native guest may read (the `file` hypercall): read now, before the sandbox
  const { files, hostPaths } = parseFiles(flags.file ?? []);
  const args = rawArgs.map((a, i) => parseIntArg(a, i + 1));
  checkArgs(args); // at most six: said before anything else is
  const memory = flags.mem === undefined ? undefined : parseSize(flags.mem, "--mem");
  const timeoutMs = flags.timeout === undefined ? undefined : parseCount(flags.timeout, "--timeout");
  const dataSize = flags.dataSize === undefined ? undefined : parseSize(flags.dataSize, "--data-size");
  const stackSize = flags.stack === undefined ? undefined : parseSize(flags.stack, "--stack");
  if (flags.output !== undefined && flags.output !== "-") checkWritable(flags.output, "--output");
  if (flags.record !== undefined) checkWritable(flags.record, "--record");
  if (flags.json && flags.output === "-") throw new BadArgsError("--json and --output - both want standard output: write the data to a file, or leave --output out (the JSON carries it)");
  // gdb connects before the sandbox closes the door on new sockets
  // (both modules imported before the sandbox too: under `bun run` an import reads a file)
  const gdb = flags.gdb === undefined ? undefined : await import("./gdb.ts");
  using debug = flags.gdb === undefined || gdb === undefined ? undefined : gdb.waitForGdb(flags.gdb, gdb.symbolsOf(imageArg));
  const recorder = flags.record === undefined ? undefined : await import("../virtine/record.ts");
  // from here on the process can open only the files named here and make only the allowed system calls
  if (flags.sandbox !== false) {
    const sandbox = enterSandbox({ read: [resolveImage(imageArg) ?? imageArg, flags.input, ...hostPaths], write: [flags.output, flags.record], devices: [kvmDevicePath()] });
    if (flags.verbose) err(`wasp: sandbox: ${describeSandbox(sandbox)}\n`);
  }
  const input = flags.input === undefined ? undefined : readInput(flags.input);
  // One call per process: the one-shot cold path (no pool, no snapshot memfd, no dirty logging).
  const options = { memory, timeoutMs, dataSize, stackSize, oneShot: true, snapshot: flags.snapshot ?? true, allow: flags.allow === undefined ? [] : parseList(flags.allow), ...(flags.file?.length && { files }) };
  const builtIn = resolveImage(imageArg) !== undefined;
  const image = !builtIn && isSnapshotPath(imageArg) ? undefined : loadImage(imageArg, { memory, raw: flags.raw });
  // what the guest would silently ignore (its header says what its main takes)
  if (image) for (const w of unusedCallParts(image, args.length, input !== undefined)) err(`wasp: warning: ${w}\n`);
  using virtine = image ? new Runner(image, options) : Runner.fromSnapshotFile(imageArg, options);
  // the recording's starting state: the image's bytes, or the snapshot file's image and memory
  const start = (sha256: (bytes: Uint8Array) => string): Recording["start"] => {
    const info = virtine.snapshotFileInfo;
    const path = builtIn ? imageArg : resolve(imageArg);
    return image ? { kind: "image", name: image.name, path, sha256: sha256(image.bytes) } : { kind: "snapshot", name: basename(imageArg), path, sha256: info!.imageSha256, memorySha256: info!.memorySha256 };
  };
  const started = Bun.nanoseconds();
  let result;
  try {
    if (recorder === undefined || flags.record === undefined) result = virtine.run(args, { input, debug });
    else {
      result = recorder.runRecorded(virtine, start(recorder.sha256), args, { input, debug });
      writeOutput(flags.record, result.recording, "--record");
    }
  } catch (e) {
    if (flags.verbose && e instanceof GuestFaultError) err(`wasp: registers at the fault:\n${formatRegs(e.regs)}\n`);
    // a failed call is recorded too
    if (flags.record !== undefined && e instanceof WaspError && e.recording) writeOutput(flags.record, e.recording, "--record");
    throw e;
  }
  const elapsed = (Bun.nanoseconds() - started) / 1000;
  if (flags.json) {
    // one JSON object: JSON's escapes keep the guest's text off the terminal; the output data as
    // base64 (any bytes), unless --output took it
    if (flags.output !== undefined) writeOutput(flags.output, result.output);
    out(`${JSON.stringify({
      value: String(result.value),
      exits: result.exits,
      console: new TextDecoder().decode(result.console),
      consoleTruncated: result.consoleTruncated,
      ...(flags.output === undefined && { output: Buffer.from(result.output).toString("base64") }),
      microseconds: Math.round(elapsed * 10) / 10,
    })}\n`);
    return;
  }
  // with `--output -` standard output carries the output data alone: the console goes to stderr
  const dataOnStdout = flags.output === "-";
  // The console, and the output data unless --output asked for it, are the guest's text shown on a
  // terminal: escaped (src/guest-text.ts). Only --output gets the guest's bytes as they are.
  if (result.console.length > 0) (dataOnStdout ? err : out)(escapeGuestText(result.console));
  if (result.consoleTruncated) err(`wasp: guest output truncated at the ${virtine.maxOutput} byte cap; the rest was dropped\n`);
  if (dataOnStdout) out(result.output);
  else {
    if (flags.output !== undefined) writeOutput(flags.output, result.output);
    else if (result.output.length > 0) {
      // the output data before the result, on lines of its own
      out(escapeGuestText(result.output));
      if (result.output[result.output.length - 1] !== 0x0a) out("\n");
    }
    out(`${result.value}\n`);
  }
  if (flags.verbose) {
    const kind = virtine.image ? virtine.image.kind : "snapshot file";
    // which image ran: a built-in guest, or the file (a bare name of a built-in is the built-in)
    const source = builtIn ? `the built-in guest ${imageArg}` : imageArg;
    err(`wasp: ${source}: ${virtine.meta.name} (${kind}), ${virtine.memorySize / MIB} MiB, ${result.exits} exit(s), ${elapsed.toFixed(1)} µs\n`);
  }
}

/** --input: a file's bytes, or standard input's with "-". */
export function readInput(path: string): Uint8Array {
  try {
    if (path !== "-" && statSync(path).isDirectory()) throw new Error("it is a directory");
    return new Uint8Array(readFileSync(path === "-" ? 0 : path));
  } catch (e) {
    throw new BadArgsError(`--input ${path}: cannot read it (${e instanceof Error ? e.message : String(e)})`);
  }
}

export async function inspectCommand(imageArg: string, flags: { raw?: boolean; json?: boolean } = {}): Promise<void> {
  if (!flags.raw && resolveImage(imageArg) === undefined && isElfPath(imageArg)) return (await import("./linux.ts")).linuxInspect(imageArg, flags.json ?? false);
  if (resolveImage(imageArg) === undefined && isSnapshotPath(imageArg)) return await inspectSnapshot(imageArg, flags.json ?? false);
  const image = loadImage(imageArg, { raw: flags.raw });
  if (flags.json) {
    // one JSON object; 64-bit values as decimal strings (JSON numbers lose precision past 2^53)
    const h = image.kind === "native" ? image.header : undefined;
    out(`${JSON.stringify({
      file: image.name,
      kind: image.kind,
      size: image.bytes.length,
      loadAddress: image.loadAddr,
      ...(h && { name: h.name, abiVersion: h.abiVersion, entry: String(h.entry), imageEnd: String(h.imageEnd), memoryWanted: String(h.memWanted), takes: h.takes ?? null }),
    })}\n`);
    return;
  }
  const lines: [string, string][] = [
    ["file", image.name],
    ["kind", image.kind === "native" ? "native (host-built 64-bit long mode, CPL3)" : "raw (16-bit real mode at 0x8000, Wasp convention)"],
    ["size", `${image.bytes.length} bytes`],
  ];
  if (image.kind === "native") {
    const h = image.header;
    lines.push(
      ["name", h.name || "(none)"],
      ["abi version", String(h.abiVersion)],
      ["load address", `0x${h.loadAddr.toString(16)}`],
      ["entry", `0x${h.entry.toString(16)}`],
      ["image end", `0x${h.imageEnd.toString(16)} (${h.imageEnd - h.loadAddr - BigInt(image.bytes.length)} bytes of bss)`],
      ["memory wanted", h.memWanted === 0n ? "default" : `${Number(h.memWanted) / MIB} MiB`],
      ["main takes", describeTakes(h.takes)],
    );
  } else {
    lines.push(["load address", `0x${image.loadAddr.toString(16)}`]);
  }
  printTable(lines);
}

async function inspectSnapshot(path: string, json: boolean): Promise<void> {
  using file = new SnapshotFile(path, systemKvm());
  const i = file.info;
  // a Linux program's granted directories, by guest path: what wasp invoke FILE must grant again
  // (the section was decoded and checked when the file was opened)
  const section = i.linux && file.loaded.process ? (await import("../linux/process-file.ts")).decodeProcessFile(file.loaded.process) : undefined;
  const dirs = section?.dirs;
  // the pages whose protections the program set (a dynamically linked program's libraries), kept by the file
  const protectedPages = section?.protections.reduce((n, r) => n + r.pages, 0);
  const python = i.imageName === (await import("../python/runtime.ts")).PY_PROGRAM;
  if (json) {
    out(`${JSON.stringify({ ...i, kind: "snapshot", ...(python && { runtime: "python" }), ...(dirs && { directories: dirs }), ...(section && { protectedPages }) })}\n`);
    return;
  }
  const grantAgain = python ? "granted again from the python3 it is invoked with, --python or PATH's: the same standard library" : "granted when it was taken: grant each again, --dir HOST=GUEST";
  const lines: [string, string][] = [
    ["file", path],
    ["kind", `snapshot file, format ${i.formatVersion}, written by wasp ${i.waspVersion}`],
    ["image", `${i.imageName} (${i.linux ? "Linux executable" : i.native ? "native" : "raw"}), sha256 ${i.imageSha256}`],
    ...(i.linux ? [["process", `${i.processBytes} bytes: the executable${python ? " (python3, running a Python module's handler)" : ""}, its break, mappings${protectedPages ? ` (${protectedPages} page(s) with protections of its own)` : ""}, open files, arguments and environment`] as [string, string]] : []),
    ...(dirs && dirs.length > 0 ? [["directories", `${dirs.join(", ")} (${grantAgain})`] as [string, string]] : []),
    ["memory", `${i.memSize / MIB} MiB, ${i.populatedPages} pages stored`],
    ["memory sha256", i.memorySha256],
    ["cpu", `${i.cpu.vendor}, features ${i.cpu.features.map((f) => f.toString(16).padStart(8, "0")).join(" ")}, XCR0 0x${i.xcr0.toString(16)}`],
  ];
  printTable(lines);
}

function describeTakes(takes: NativeHeader["takes"]): string {
  if (!takes) return "(not declared)";
  if (takes.input) return "its input ([]const u8)";
  if (takes.args === 0) return "no arguments";
  return takes.args === 1 ? "1 integer argument" : `${takes.args} integer arguments`;
}

/**
 * What a call gives a guest that it ignores, as warnings: more integer arguments than its main
 * takes, input to a main without one, or arguments to a main that takes only its input.
 */
export function unusedCallParts(image: Image, argc: number, hasInput: boolean): string[] {
  if (image.kind !== "native" || !image.header.takes) return [];
  const takes = image.header.takes;
  const out: string[] = [];
  const name = image.header.name || image.name;
  if (argc > takes.args) {
    const extra = argc - takes.args;
    const ignored = takes.args === 0 ? (extra === 1 ? "it is ignored" : "they are ignored") : extra === 1 ? "the last is ignored" : `the last ${extra} are ignored`;
    out.push(`${name}'s main takes ${describeTakes(takes)}; ${argc} ${argc === 1 ? "was" : "were"} given: ${ignored}`);
  }
  if (hasInput && !takes.input) out.push(`${name}'s main takes no input: --input is ignored`);
  return out;
}

function printTable(lines: [string, string][]): void {
  const width = Math.max(...lines.map(([k]) => k.length));
  for (const [k, v] of lines) out(`${k.padEnd(width)}  ${v}\n`);
}

function formatRegs(regs: Record<string, bigint> | undefined): string {
  if (!regs) return "  (not available)";
  return Object.entries(regs)
    .map(([k, v]) => `  ${k.padStart(6)} 0x${v.toString(16).padStart(16, "0")}`)
    .join("\n");
}

