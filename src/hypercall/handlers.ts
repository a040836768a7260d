// The host side of each hypercall. Every (address, length) from the guest is checked against a
// per-call length cap, then used only through GuestAccess: translated through the guest's page
// tables and allowed only where the guest itself could read (or write) at CPL3.
import { FILE_NOT_GRANTED, FileRead, HostCall, Hypercalls, Layout, type HypercallName } from "../abi/guest-abi.ts";
import { callHost, decodeValues, type HostFunction } from "./host-call.ts";
import { hypercallName, type Policy } from "./policy.ts";
import type { ConsoleSink } from "./console.ts";
import type { GuestAccess } from "../memory/guest-access.ts";
import type { Vcpu } from "../kvm/vcpu.ts";
import { GuestPanicError, PolicyViolationError } from "../errors.ts";

/** Longest write in one hypercall: the console buffer's size. */
export const MAX_WRITE = Layout.CONSOLE_SIZE;
export const MAX_PANIC_MESSAGE = 4096;
export const MAX_RANDOM = 65536;

export interface HypercallContext {
  /** the vCPU and memory of the call in progress (set at each call) */
  vcpu: Vcpu;
  /** the call's guest memory as the guest may touch it (host writes through it are recorded for the reset) */
  guest: GuestAccess;
  readonly console: ConsoleSink;
  /** set by `exit`: the virtine's result */
  exitValue: bigint | undefined;
  /** the `snapshot` hypercall: captures the state (once per image) and returns the guest's RAX */
  snapshot(): bigint;
  /** the host functions the embedder gave this virtine, by name (the `host` hypercall) */
  hostFunctions?: ReadonlyMap<string, HostFunction>;
  /** the files the embedder granted this virtine, by absolute guest path (the `file` hypercall) */
  files?: ReadonlyMap<string, Uint8Array>;
}

/** A handler returns the value for the guest's RAX, or `undefined` when the virtine has ended. */
type Handler = (ctx: HypercallContext, a: bigint, b: bigint) => bigint | undefined;

function capped(len: bigint, max: number, what: string): number {
  if (len > BigInt(max)) throw new PolicyViolationError(`${what} of ${len} bytes exceeds the limit of ${max} bytes`, what);
  return Number(len);
}

const handlers: Record<HypercallName, Handler> = {
  exit(ctx, value) {
    ctx.exitValue = value;
    return undefined;
  },
  write(ctx, addr, len) {
    ctx.console.append(ctx.guest.read(addr, capped(len, MAX_WRITE, "write"), "write buffer"));
    return 0n;
  },
  panic(ctx, addr, len) {
    const bytes = ctx.guest.read(addr, capped(len, MAX_PANIC_MESSAGE, "panic message"), "panic message");
    throw new GuestPanicError(bytes);
  },
  time() {
    return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e3)) * 1000n;
  },
  random(ctx, addr, len) {
    ctx.guest.randomize(addr, capped(len, MAX_RANDOM, "random"), "random buffer");
    return 0n;
  },
  snapshot(ctx) {
    return ctx.snapshot();
  },
  host(ctx, request) {
    // the request, the name and the arguments are copied out of guest memory before anything runs
    const req = new DataView(ctx.guest.read(request, HostCall.SIZE, "host-call request").buffer);
    const field = (off: number) => req.getBigUint64(off, true);
    const nameBytes = ctx.guest.read(field(HostCall.NAME_PTR), capped(field(HostCall.NAME_LEN), HostCall.MAX_NAME, "host function name"), "host function name");
    const name = new TextDecoder().decode(nameBytes);
    const fn = ctx.hostFunctions?.get(name);
    if (!fn) {
      throw new PolicyViolationError(`the guest called host function ${JSON.stringify(name)}, which this virtine was not given (hostFunctions, hostModule)`, `host function ${JSON.stringify(name)}`);
    }
    const args = decodeValues(ctx.guest.read(field(HostCall.ARGS_PTR), capped(field(HostCall.ARGS_LEN), HostCall.MAX_BYTES, "host-call arguments"), "host-call arguments"));
    const result = callHost(name, fn, args);
    // written only when it fits; the length is returned either way (a guest may retry with more room)
    if (result.length > 0 && BigInt(result.length) <= field(HostCall.OUT_CAP)) ctx.guest.write(field(HostCall.OUT_PTR), result, "host-call result");
    return BigInt(result.length);
  },
  file(ctx, request) {
    // the request and the path are copied out of guest memory before the lookup
    const req = new DataView(ctx.guest.read(request, FileRead.SIZE, "file request").buffer);
    const field = (off: number) => req.getBigUint64(off, true);
    const path = new TextDecoder().decode(ctx.guest.read(field(FileRead.PATH_PTR), capped(field(FileRead.PATH_LEN), FileRead.MAX_PATH, "file path"), "file path"));
    const data = ctx.files?.get(path);
    if (!data) return FILE_NOT_GRANTED;
    const offset = field(FileRead.OFFSET);
    const len = field(FileRead.BUF_LEN);
    if (offset < BigInt(data.length) && len > 0n) {
      const start = Number(offset);
      const n = Math.min(data.length - start, Number(len < BigInt(FileRead.MAX_READ) ? len : BigInt(FileRead.MAX_READ)));
      ctx.guest.write(field(FileRead.BUF_PTR), data.subarray(start, start + n), "file buffer");
    }
    return BigInt(data.length);
  },
};

/** Handlers indexed by hypercall number. */
export const HANDLERS: (Handler | undefined)[] = [];
for (const h of Hypercalls) HANDLERS[h.nr] = handlers[h.name];

/**
 * Carries out hypercall `nr` with arguments `a`, `b` if `policy` grants it: the value for the
 * guest's RAX, or undefined when the virtine has ended. An unknown or ungranted hypercall is a
 * PolicyViolationError and nothing is done.
 */
export function dispatchHypercall(ctx: HypercallContext, policy: Policy, nr: bigint, a: bigint, b: bigint): bigint | undefined {
  const handler = nr < BigInt(HANDLERS.length) ? HANDLERS[Number(nr)] : undefined;
  if (!handler) throw new PolicyViolationError(`the guest made unknown hypercall ${nr}`, `hypercall #${nr}`);
  if (!policy.allows(Number(nr))) {
    throw new PolicyViolationError(`the guest made hypercall "${hypercallName(nr)}", which this virtine is not granted (grant it with --allow)`, `hypercall ${hypercallName(nr)}`);
  }
  return handler(ctx, a, b);
}
