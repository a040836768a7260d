// Host functions: TypeScript functions the embedder gives a virtine (Hyperlight's host functions,
// under wasp's hypercall policy). A guest calls one by name through the `host` hypercall with its
// arguments encoded as values (src/abi/guest-abi.ts, HostCall): unsigned and signed 64-bit integers,
// bytes and UTF-8 strings. The host decodes them from a copy of the guest's bytes — every length
// checked, nothing past the block read, no guest pointer ever handed to the function — calls the
// function, and encodes what it returns into the guest's buffer through the checked access.
import { HostCall } from "../abi/guest-abi.ts";
import { BadArgsError, HostFunctionError, PolicyViolationError } from "../errors.ts";

/** What a guest passes and a host function returns: integers as bigint, bytes, strings. */
export type HostValue = bigint | Uint8Array | string;
/**
 * A host function: synchronous, called with the guest's arguments decoded. It may return a bigint
 * (or a safe integer number), bytes, a string, or nothing (the guest gets no value: length 0).
 */
export type HostFunction = (...args: HostValue[]) => HostValue | number | undefined | void;

const U64_END = 1n << 64n;
const I64_MIN = -(1n << 63n);
const NAME = /^[A-Za-z_][A-Za-z0-9_.]{0,63}$/;

/**
 * Decodes a guest's encoded arguments. A malformed block is the guest's fault: a
 * PolicyViolationError naming what is wrong (the call ends), never a host error.
 */
export function decodeValues(bytes: Uint8Array): HostValue[] {
  const bad = (why: string): never => {
    throw new PolicyViolationError(`the guest's host-call arguments are malformed: ${why}`, "host call");
  };
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: HostValue[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (out.length === HostCall.MAX_VALUES) bad(`more than ${HostCall.MAX_VALUES} values`);
    const tag = bytes[at++];
    switch (tag) {
      case HostCall.TAG_U64:
      case HostCall.TAG_I64: {
        if (at + 8 > bytes.length) bad(`value ${out.length + 1}: an integer cut short at byte ${at}`);
        out.push(tag === HostCall.TAG_U64 ? dv.getBigUint64(at, true) : dv.getBigInt64(at, true));
        at += 8;
        break;
      }
      case HostCall.TAG_BYTES:
      case HostCall.TAG_STRING: {
        if (at + 4 > bytes.length) bad(`value ${out.length + 1}: a length cut short at byte ${at}`);
        const len = dv.getUint32(at, true);
        at += 4;
        if (len > bytes.length - at) bad(`value ${out.length + 1}: ${len} bytes announced, ${bytes.length - at} left`);
        const payload = bytes.slice(at, at + len); // a copy: the function never sees guest memory
        at += len;
        if (tag === HostCall.TAG_BYTES) out.push(payload);
        else {
          try {
            out.push(new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(payload));
          } catch {
            bad(`value ${out.length + 1}: a string that is not UTF-8`);
          }
        }
        break;
      }
      default:
        bad(`value ${out.length + 1}: unknown tag ${tag} at byte ${at - 1}`);
    }
  }
  return out;
}

/** Encodes values as a guest encodes arguments (used by tests and for results). */
export function encodeValues(values: readonly HostValue[]): Uint8Array {
  const parts = values.map((v) => encodeOne(v));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function encodeOne(v: HostValue): Uint8Array {
  if (typeof v === "bigint") {
    const out = new Uint8Array(9);
    const dv = new DataView(out.buffer);
    if (v >= 0n && v < U64_END) {
      out[0] = HostCall.TAG_U64;
      dv.setBigUint64(1, v, true);
    } else if (v < 0n && v >= I64_MIN) {
      out[0] = HostCall.TAG_I64;
      dv.setBigInt64(1, v, true);
    } else throw new RangeError(`${v} does not fit in 64 bits`);
    return out;
  }
  const payload = typeof v === "string" ? new TextEncoder().encode(v) : v;
  const out = new Uint8Array(5 + payload.length);
  out[0] = typeof v === "string" ? HostCall.TAG_STRING : HostCall.TAG_BYTES;
  new DataView(out.buffer).setUint32(1, payload.length, true);
  out.set(payload, 5);
  return out;
}

/**
 * What a host function returned, encoded for the guest: one value, or nothing. Anything else — a
 * Promise, an object, a number that is no safe integer, an integer past 64 bits, a result larger
 * than HostCall.MAX_BYTES — is a HostFunctionError naming the function.
 */
export function encodeResult(name: string, result: unknown): Uint8Array {
  if (result === undefined) return new Uint8Array(0);
  if (result instanceof Promise || (typeof result === "object" && result !== null && typeof (result as { then?: unknown }).then === "function")) {
    throw new HostFunctionError(name, "it returned a Promise: host functions are synchronous (the guest waits for the value)");
  }
  let v: HostValue;
  if (typeof result === "number") {
    if (!Number.isSafeInteger(result)) throw new HostFunctionError(name, `it returned ${result}, not an integer (return a bigint, bytes or a string)`);
    v = BigInt(result);
  } else if (typeof result === "bigint" || typeof result === "string" || result instanceof Uint8Array) v = result;
  else throw new HostFunctionError(name, `it returned ${typeof result === "object" ? "an object" : `a ${typeof result}`}: return a bigint, a safe integer, bytes, a string or nothing`);
  let bytes: Uint8Array;
  try {
    bytes = encodeOne(v);
  } catch (e) {
    throw new HostFunctionError(name, `it returned ${v}, which does not fit in 64 bits`, { cause: e });
  }
  if (bytes.length > HostCall.MAX_BYTES + 5) throw new HostFunctionError(name, `it returned ${bytes.length - 5} bytes, more than the ${HostCall.MAX_BYTES} a result may have`);
  return bytes;
}

/** Calls `fn` with the decoded arguments; whatever it throws becomes a HostFunctionError for this call. */
export function callHost(name: string, fn: HostFunction, args: HostValue[]): Uint8Array {
  let result: unknown;
  try {
    result = fn(...args);
  } catch (e) {
    throw new HostFunctionError(name, e instanceof Error ? e.message : String(e), { cause: e });
  }
  return encodeResult(name, result);
}

/**
 * Host functions given as an object (`hostFunctions`) and as a module's exports (`hostModule`, a
 * path or file URL each thread imports), checked and merged: names as a guest writes them (a letter
 * or '_' first, then letters, digits, '_' or '.', at most 64), each a function, no name twice.
 */
export function hostFunctionTable(functions: Readonly<Record<string, unknown>> | undefined, module: string | undefined): Map<string, HostFunction> {
  const table = new Map<string, HostFunction>();
  const add = (name: string, fn: unknown, from: string) => {
    if (!NAME.test(name)) throw new BadArgsError(`host function name ${JSON.stringify(name)} (${from}) is not a letter or '_' followed by up to 63 letters, digits, '_' or '.'`);
    if (typeof fn !== "function") throw new BadArgsError(`host function "${name}" (${from}) is not a function`);
    if (table.has(name)) throw new BadArgsError(`host function "${name}" is given twice (hostFunctions and hostModule)`);
    table.set(name, fn as HostFunction);
  };
  if (functions !== undefined) {
    if (typeof functions !== "object" || functions === null || Array.isArray(functions)) throw new BadArgsError("hostFunctions must be an object of functions by name");
    for (const [name, fn] of Object.entries(functions)) add(name, fn, "hostFunctions");
  }
  if (module !== undefined) {
    if (typeof module !== "string" || module.length === 0) throw new BadArgsError("hostModule must be a module's path or file URL");
    let exports: Record<string, unknown>;
    try {
      // synchronous (Bun loads ES modules without top-level await through require): a worker builds
      // its engine without awaiting
      exports = require(module.startsWith("file:") ? Bun.fileURLToPath(module) : module) as Record<string, unknown>;
    } catch (e) {
      throw new BadArgsError(`hostModule ${module}: cannot load it (${e instanceof Error ? e.message : String(e)})`);
    }
    for (const [name, fn] of Object.entries(exports)) if (typeof fn === "function" && name !== "default") add(name, fn, `hostModule ${module}`);
  }
  return table;
}
