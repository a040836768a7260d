// JavaScript virtines: QuickJS built as a static Linux program (guests/js/runtime.c, installed as
// dist/guests/js.elf and embedded in the standalone binary), and the protocol of one call of it —
// the files it reads at load, its fixed arguments, a call's stdin, and its reply turned into a
// value or a typed error. docs/js.md is the reference. A JavaScript virtine is this program run
// as a Linux virtine (src/virtine/linux.ts): its snapshot point comes after the module is
// compiled and warmed up, so every call resumes a warm engine.
import { readFileSync } from "node:fs";
import engineFile from "../../dist/guests/js.elf" with { type: "file" };
import { BadArgsError, BadImageError, BadOutputError, BadSnapshotError, JsError, JsMemoryError, JsStackError, JsSyntaxError, StackOverflowError, type JsPhase } from "../errors.ts";
import { escapeGuestLine } from "../guest-text.ts";

/** The engine's program name (argv[0]): how a snapshot file of a JavaScript virtine is told apart. */
export const JS_PROGRAM = "wasp-js";
/** Where the engine reads the module and the warm-up calls (granted files, read before the snapshot). */
export const JS_MODULE_PATH = "/wasp/handler.js";
export const JS_WARMUP_PATH = "/wasp/warmup.json";
/** A module's cap (the engine's too). */
export const MAX_JS_SOURCE = 16 << 20;
/** A call's arguments (the engine's cap). */
export const MAX_JS_ARGS = 64;
/** Below the stack the program gets, the room kept for the C frames between the engine's checks. */
const STACK_MARGIN = 256 << 10;

/** The engine executable's path (in the standalone binary, its embedded copy). */
export const enginePath: string = engineFile;

let engineBytes: Uint8Array | undefined;

/** The engine executable's bytes (read once per process). */
export function jsEngine(): Uint8Array {
  if (engineBytes) return engineBytes;
  try {
    engineBytes = new Uint8Array(readFileSync(enginePath));
  } catch (e) {
    throw new BadImageError(`the JavaScript engine ${enginePath} cannot be read (${e instanceof Error ? e.message : String(e)}): npm install builds it`);
  }
  return engineBytes;
}

/** The limits a JavaScript virtine's engine runs under, inside its VM's. */
export interface JsLimits {
  /** the engine's heap limit in bytes (its own accounting, under the VM's memory) */
  heap: number;
  /** the engine's stack limit in bytes (under the program's stack) */
  stack: number;
}

/** The limits for a VM of `memory` bytes and a program stack of `stackSize`: half the memory, the stack less a margin. */
export function jsLimits(memory: number, stackSize: number, heapLimit?: number): JsLimits {
  const most = Math.floor(memory / 2);
  if (heapLimit !== undefined && (!Number.isSafeInteger(heapLimit) || heapLimit < 1 << 20 || heapLimit > most)) {
    throw new BadArgsError(`heapLimit ${heapLimit} is not between 1 MiB and half the virtine's memory (${most} bytes)`);
  }
  return { heap: heapLimit ?? most, stack: Math.max(64 << 10, stackSize - STACK_MARGIN) };
}

/** The engine's arguments: fixed for a virtine (they are read before the snapshot). */
export function jsArgs(fileName: string, limits: JsLimits): string[] {
  return ["--name", fileName, "--heap", String(limits.heap), "--stack", String(limits.stack)];
}

/** A module's file name as stacks and syntax errors show it: one line, printable, at most 100 characters. */
export function checkFileName(name: unknown): string {
  if (typeof name !== "string" || name.length === 0 || name.length > 100 || /[\0-\x1f\x7f]/.test(name)) {
    throw new BadArgsError(`the module's name ${typeof name === "string" ? JSON.stringify(name) : typeof name} is not a file name of 1 to 100 printable characters`);
  }
  return name;
}

/**
 * What a JS snapshot file's saved engine arguments (`--name N --heap B --stack B`) say: the module's
 * name and the limits the engine was started with. They are the file's, so each is checked: a
 * name that is no file name or a size that is no byte count is a BadSnapshotError naming `path`.
 */
export function savedJsSettings(saved: readonly string[], path: string): { name: string; limits: JsLimits } {
  const field = (flag: string): string | undefined => {
    const i = saved.indexOf(flag);
    return i >= 0 && i + 1 < saved.length ? saved[i + 1] : undefined;
  };
  const size = (flag: string): number => {
    const v = Number(field(flag));
    if (!Number.isSafeInteger(v) || v < 0) throw new BadSnapshotError(`${path}: the engine's ${flag} is not a byte count`);
    return v;
  };
  let name: string;
  try {
    name = checkFileName(field("--name") ?? "handler.js");
  } catch {
    throw new BadSnapshotError(`${path}: the engine's --name is not a file name`);
  }
  return { name, limits: { heap: size("--heap"), stack: size("--stack") } };
}

/** The files the engine reads at load: the module's source and, if any, the warm-up calls. */
export function jsFiles(source: string | Uint8Array, warmup: readonly unknown[] | undefined): Record<string, Uint8Array> {
  const bytes = typeof source === "string" ? new TextEncoder().encode(source) : source;
  if (!(bytes instanceof Uint8Array)) throw new BadArgsError(`a JavaScript virtine's source is a string or bytes, not ${typeof source}`);
  if (bytes.length > MAX_JS_SOURCE) throw new BadArgsError(`the module is ${bytes.length} bytes, more than ${MAX_JS_SOURCE >> 20} MiB`);
  const files: Record<string, Uint8Array> = { [JS_MODULE_PATH]: bytes };
  if (warmup !== undefined) {
    if (!Array.isArray(warmup)) throw new BadArgsError("warmup is a list of inputs, each handed to the handler before the snapshot");
    files[JS_WARMUP_PATH] = new TextEncoder().encode(`[${warmup.map((input, i) => `[${jsonOf(input, `warm-up input ${i + 1}`) ?? ""}]`).join(",")}]`);
  }
  return files;
}

/** A value's JSON text, or undefined for undefined; a BadArgsError for what JSON cannot carry. */
function jsonOf(value: unknown, what: string): string | undefined {
  if (value === undefined) return undefined;
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (e) {
    throw new BadArgsError(`${what} cannot be sent as JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (text === undefined) throw new BadArgsError(`${what} is a ${typeof value}, which JSON cannot carry`);
  return text;
}

/** stdin of a call that only loads (compiles, warms up, snapshots) and calls nothing. */
export const JS_LOAD_ONLY = new Uint8Array(0);

/** stdin of a call of the handler with these arguments: "A" and their JSON array (undefined travels as null). */
export function encodeJsCall(args: readonly unknown[]): Uint8Array {
  if (!Array.isArray(args)) throw new BadArgsError("a call's arguments are a list");
  if (args.length > MAX_JS_ARGS) throw new BadArgsError(`a call has ${args.length} arguments, more than ${MAX_JS_ARGS}`);
  return new TextEncoder().encode(`A[${args.map((a, i) => jsonOf(a, `argument ${i + 1}`) ?? "null").join(",")}]`);
}

/** A JavaScript call's outcome, as the engine reported it through its exit status and stdout. */
export interface JsReply {
  status: number;
  stdout: Uint8Array;
  stdoutTruncated: boolean;
}

/** The engine's exit statuses (guests/js/runtime.c). */
const ST = { OK: 0, THROWN: 1, SYNTAX: 2, MEMORY: 3, STACK: 4, BAD_INPUT: 5, UNSETTLED: 6, SETUP: 7 } as const;

const PHASES = new Set(["load", "warmup", "call", "setup"]);

/**
 * The handler's result, or the typed error the reply stands for. Everything in the reply is the
 * guest's: a status the engine never gives, an envelope that is not what it writes, or output cut
 * at the cap is a BadOutputError, never trusted.
 */
export function decodeJsReply(reply: JsReply, of: { limits: JsLimits; maxOutput: number; fileName: string }): unknown {
  const { limits, maxOutput } = of;
  const text = new TextDecoder().decode(reply.stdout);
  if (reply.stdoutTruncated) throw new BadOutputError(`the handler's result went past the ${maxOutput}-byte output cap (maxOutput)`);
  if (reply.status === ST.OK) {
    if (reply.stdout.length === 0) return undefined;
    try {
      return JSON.parse(text);
    } catch {
      throw new BadOutputError(`the JavaScript engine's result is not JSON: ${escapeGuestLine(text.slice(0, 80))}`);
    }
  }
  if (!Object.values(ST).includes(reply.status as never)) throw new BadOutputError(`the JavaScript engine ended with status ${reply.status}, which it never gives`);
  const e = envelope(text);
  const phase = (e.phase === "setup" ? "load" : e.phase) as JsPhase;
  switch (reply.status) {
    case ST.SYNTAX:
      if (typeof e.line !== "number" || typeof e.column !== "number") throw new BadOutputError("the JavaScript engine's syntax error has no position");
      return fail(new JsSyntaxError(of.fileName, e.line, e.column, e.message));
    case ST.MEMORY:
      return fail(new JsMemoryError(limits.heap, phase));
    case ST.STACK:
      return fail(new JsStackError(limits.stack, phase));
    case ST.BAD_INPUT:
      return fail(new BadArgsError(`the JavaScript engine refused the call: ${escapeGuestLine(e.message)}`));
    case ST.SETUP:
      return fail(new BadImageError(`the JavaScript engine could not start: ${escapeGuestLine(e.message)}`));
    default:
      return fail(new JsError(e.name, e.message, e.stack, phase));
  }
}

/**
 * An error a call of the engine ended with, as a JavaScript virtine reports it: the program's stack
 * running into its guard pages is the engine recursing in C where it checks no limit (deeply
 * nested data in JSON.stringify): a JsStackError like its own. Anything else is as it was.
 */
export function jsFault(e: unknown, limits: JsLimits): unknown {
  return e instanceof StackOverflowError ? new JsStackError(limits.stack, "call") : e;
}

function fail(e: Error): never {
  throw e;
}

/** An error report of a runtime's guest program (the JavaScript engine's, the Python runner's): each field checked. */
export interface Envelope {
  name: string;
  message: string;
  stack: string;
  phase: string;
  line?: number;
  column?: number;
}

/** A runtime's error envelope (`who` names it in messages, "the JavaScript engine"), each field checked: a BadOutputError otherwise. */
export function envelope(text: string, who = "the JavaScript engine"): Envelope {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new BadOutputError(`${who}'s error report is not JSON: ${escapeGuestLine(text.slice(0, 80))}`);
  }
  const bad = (why: string): never => {
    throw new BadOutputError(`${who}'s error report ${why}`);
  };
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return bad("is not an object");
  const r = raw as Record<string, unknown>;
  for (const k of ["name", "message", "phase"]) if (typeof r[k] !== "string") bad(`has no ${k}`);
  if (r.stack !== undefined && typeof r.stack !== "string") bad("has a stack that is not text");
  if (!PHASES.has(r.phase as string)) bad(`names no phase wasp knows (${escapeGuestLine(String(r.phase))})`);
  for (const k of ["line", "column"]) {
    if (r[k] !== undefined && !(Number.isSafeInteger(r[k]) && (r[k] as number) >= 1)) bad(`has a ${k} that is not a positive integer`);
  }
  return { name: r.name as string, message: r.message as string, stack: (r.stack as string | undefined) ?? "", phase: r.phase as string, line: r.line as number | undefined, column: r.column as number | undefined };
}
