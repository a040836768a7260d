// Errors across the worker boundary: a worker encodes what it caught as JSON (class name, code,
// message and the class's own fields, bigints included); main rebuilds an instance of the same
// WaspError class, so `instanceof`, `code` and fields like `timeoutMs` or `rip` survive the trip.
import * as errors from "../errors.ts";
import { CompileError } from "../image/zig.ts";
import { WaspError } from "../errors.ts";

const CLASSES: Record<string, { prototype: object }> = {
  WaspError: errors.WaspError,
  SyscallError: errors.SyscallError,
  KvmUnavailableError: errors.KvmUnavailableError,
  BadImageError: errors.BadImageError,
  BadSnapshotError: errors.BadSnapshotError,
  BadArgsError: errors.BadArgsError,
  GuestFaultError: errors.GuestFaultError,
  MemoryFaultError: errors.MemoryFaultError,
  PolicyViolationError: errors.PolicyViolationError,
  TimeoutError: errors.TimeoutError,
  GuestPanicError: errors.GuestPanicError,
  CancelledError: errors.CancelledError,
  QueueFullError: errors.QueueFullError,
  ClosedError: errors.ClosedError,
  BadOutputError: errors.BadOutputError,
  StackOverflowError: errors.StackOverflowError,
  JsSyntaxError: errors.JsSyntaxError,
  JsError: errors.JsError,
  JsMemoryError: errors.JsMemoryError,
  JsStackError: errors.JsStackError,
  CompileError,
};

/** Each class by its code: codes are stable, while a class's name is what a minifier leaves of it. */
const BY_CODE = new Map<string, { prototype: object }>([
  ["WASP_SYSCALL", errors.SyscallError],
  ["WASP_KVM_UNAVAILABLE", errors.KvmUnavailableError],
  ["WASP_BAD_IMAGE", errors.BadImageError],
  ["WASP_BAD_SNAPSHOT", errors.BadSnapshotError],
  ["WASP_BAD_ARGS", errors.BadArgsError],
  ["WASP_GUEST_FAULT", errors.GuestFaultError],
  ["WASP_MEMORY_FAULT", errors.MemoryFaultError],
  ["WASP_POLICY", errors.PolicyViolationError],
  ["WASP_TIMEOUT", errors.TimeoutError],
  ["WASP_GUEST_PANIC", errors.GuestPanicError],
  ["WASP_CANCELLED", errors.CancelledError],
  ["WASP_QUEUE_FULL", errors.QueueFullError],
  ["WASP_CLOSED", errors.ClosedError],
  ["WASP_BAD_OUTPUT", errors.BadOutputError],
  ["WASP_STACK_OVERFLOW", errors.StackOverflowError],
  ["WASP_COMPILE", CompileError],
  ["WASP_JS_SYNTAX", errors.JsSyntaxError],
  ["WASP_JS_ERROR", errors.JsError],
  ["WASP_JS_MEMORY", errors.JsMemoryError],
  ["WASP_JS_STACK", errors.JsStackError],
]);

interface Encoded {
  name: string;
  code: string;
  message: string;
  fields: Record<string, unknown>;
}

/** Encodes an error caught in a worker. Anything that is not a WaspError becomes one (WASP_INTERNAL). */
export function encodeError(e: unknown): string {
  let out: Encoded;
  if (e instanceof WaspError) {
    const fields: Record<string, unknown> = {};
    // (a recording travels beside the error, as bytes on the port: not through JSON)
    for (const [k, v] of Object.entries(e)) if (k !== "code" && k !== "name" && k !== "message" && k !== "stack" && k !== "recording") fields[k] = v;
    out = { name: e.name, code: e.code, message: e.message, fields };
  } else {
    const message = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    out = { name: "WaspError", code: "WASP_INTERNAL", message: `unexpected error in a worker: ${message}`, fields: {} };
  }
  return JSON.stringify(out, (_, v) => (typeof v === "bigint" ? { $bigint: v.toString() } : v));
}

/** Rebuilds the error on this side of the boundary, with a stack trace of this thread. */
export function decodeError(text: string): WaspError {
  const raw = JSON.parse(text, (_, v) => (v && typeof v === "object" && typeof v.$bigint === "string" ? BigInt(v.$bigint) : v)) as Encoded;
  // by code, which is stable: a class's name is what a minifier leaves of it
  const cls = BY_CODE.get(raw.code) ?? CLASSES[raw.name] ?? WaspError;
  const e = Object.create(cls.prototype) as WaspError;
  Object.defineProperty(e, "message", { value: raw.message, writable: true, configurable: true });
  Object.assign(e, raw.fields, { code: raw.code, name: raw.name });
  // the header line of the original, then where it surfaced on this thread
  const here = (new Error().stack ?? "").split("\n").slice(2).join("\n");
  Object.defineProperty(e, "stack", { value: `${raw.name}: ${raw.message}\n${here}`, writable: true, configurable: true });
  return e;
}

/**
 * A Linux program's call as it travels to a worker in a call's input bytes: its arguments, its
 * environment (or none: the program's own), then its stdin. Little-endian u32 counts and lengths,
 * each string's UTF-8 bytes. Made and read by wasp's own threads only.
 */
export interface LinuxCall {
  args: readonly string[];
  env: readonly string[] | undefined;
  input: Uint8Array;
}

const NO_ENV = 0xffffffff;

export function encodeLinuxCall(call: LinuxCall): Uint8Array {
  const enc = new TextEncoder();
  const args = call.args.map((a) => enc.encode(a));
  const env = call.env?.map((e) => enc.encode(e));
  const strings = [...args, ...(env ?? [])];
  const size = 8 + strings.reduce((n, b) => n + 4 + b.length, 0) + call.input.length;
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  let at = 0;
  const u32 = (v: number) => {
    dv.setUint32(at, v, true);
    at += 4;
  };
  const put = (b: Uint8Array) => {
    u32(b.length);
    out.set(b, at);
    at += b.length;
  };
  u32(args.length);
  args.forEach(put);
  u32(env ? env.length : NO_ENV);
  env?.forEach(put);
  out.set(call.input, at);
  return out;
}

export function decodeLinuxCall(bytes: Uint8Array): LinuxCall {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dec = new TextDecoder();
  let at = 0;
  const u32 = () => {
    if (at + 4 > bytes.length) throw new RangeError("a Linux call's encoding is cut short");
    const v = dv.getUint32(at, true);
    at += 4;
    return v;
  };
  const get = () => {
    const n = u32();
    if (at + n > bytes.length) throw new RangeError("a Linux call's encoding is cut short");
    const s = dec.decode(bytes.subarray(at, at + n));
    at += n;
    return s;
  };
  const args = Array.from({ length: u32() }, get);
  const envCount = u32();
  const env = envCount === NO_ENV ? undefined : Array.from({ length: envCount }, get);
  return { args, env, input: bytes.subarray(at) };
}
