// The hand-off between the main thread and a worker: a SharedArrayBuffer per worker with SLOTS call
// slots, woken by Atomics.wait/notify, plus a MessagePort read synchronously (receiveMessageOnPort)
// for what does not fit a slot: control messages (load or drop a virtine, stop) and large data.
// `wasp bench` measures this channel against plain postMessage (handoff_atomics/handoff_postmessage):
// a slot round trip costs a few µs where a message costs tens of µs, so calls travel in slots.
//
// A slot goes FREE → READY (main wrote a request) → RUNNING (the worker took it) → DONE (the worker
// wrote the result) → FREE (main read it). The worker serves slots in ring order; main fills them in
// the same order. Every state change is an Atomics store, and each side reads the other's fields
// only after seeing the state that publishes them.
import type { RunnerOptions } from "../virtine/runner.ts";
import type { LoadedSnapshotFile, SnapshotFileInfo } from "../snapshot/file.ts";
import { sha256, type Recording } from "../virtine/record.ts";
import { BadArgsError } from "../errors.ts";

/** Calls a worker holds at once: the one running and those next, so that it does not wait for main. */
export const SLOTS = 8;
/** Bytes of call data (input; or output, console and error) carried in a slot itself. */
export const INLINE_BYTES = 64 * 1024;

/** Int32 fields of the worker header. */
export const H = {
  /** bumped by main for every request or control message (the worker waits on it) */
  DOORBELL: 0,
  /** the worker thread's kernel tid (0 until it runs): where cancellation signals go */
  TID: 1,
  /** bumped by the worker for each control message it has handled */
  CONTROL_DONE: 2,
  /** 1 once the worker has stopped */
  STOPPED: 3,
  /** 1 while the worker sleeps (or is about to) in Atomics.wait on DOORBELL: a ring must notify */
  SLEEPING: 4,
  SIZE: 6, // (one spare, so that the slots' BigInt64 fields stay 8-aligned)
} as const;

/** Int32 fields of a slot. */
export const S = {
  STATE: 0,
  /** set to 1 by main to stop the call */
  CANCEL: 1,
  VIRTINE: 2,
  ARGC: 3,
  /** F_* bits */
  FLAGS: 4,
  /** request: input bytes; reply: output bytes */
  DATA_LEN: 5,
  /** reply: console bytes (after the output) */
  CONSOLE_LEN: 6,
  /** reply: R_* */
  RESULT: 7,
  EXITS: 8,
  /** reply: how long the call ran on the worker (µs, capped at 2^31 - 1) */
  RUN_US: 9,
  /** reply: the recording's bytes (after the console), a recorded call's */
  RECORDING_LEN: 10,
  SIZE: 12, // (the BigInt64 fields that follow stay 8-aligned)
} as const;

export const STATE = { FREE: 0, READY: 1, RUNNING: 2, DONE: 3 } as const;
export const F = {
  /** request: the input came on the port, not in the slot */
  INPUT_ON_PORT: 1,
  /** reply: output, console and error came on the port */
  REPLY_ON_PORT: 2,
  /** reply: the console was cut at its cap */
  CONSOLE_TRUNCATED: 4,
  /** reply: the output was cut at its cap (a Linux program's stdout) */
  OUTPUT_TRUNCATED: 8,
  /** request: record the call (its recording comes back in the slot after the console, or on the port when it does not fit) */
  RECORD: 16,
} as const;
export const R = { OK: 0, ERROR: 1, CANCELLED: 2 } as const;
/** The virtine id of a call that runs no guest: the worker replies at once (to measure the hand-off). */
export const PING = 0;

/** u64 fields of a slot: the arguments, then the result. */
const ARGS_U64 = 0;
const VALUE_U64 = 6;
const U64S = 7;

const HEADER_BYTES = H.SIZE * 4;
const SLOT_INTS_BYTES = S.SIZE * 4;
const SLOT_BYTES = SLOT_INTS_BYTES + U64S * 8 + INLINE_BYTES;

/** Int32 fields of the pool-wide control block (one for all workers). */
export const C = {
  /** bumped by a worker after every reply and every handled control message */
  COMPLETIONS: 0,
  /** 1 while main waits for COMPLETIONS (then a worker must notify) */
  MAIN_WAITING: 1,
  SIZE: 2,
} as const;

export function newControl(): SharedArrayBuffer {
  return new SharedArrayBuffer(C.SIZE * 4);
}

export function newMailbox(): SharedArrayBuffer {
  return new SharedArrayBuffer(HEADER_BYTES + SLOTS * SLOT_BYTES);
}

/** A view of one slot of a mailbox. */
export class Slot {
  readonly i32: Int32Array;
  readonly u64: BigUint64Array;
  readonly data: Uint8Array;
  constructor(sab: SharedArrayBuffer, index: number) {
    const at = HEADER_BYTES + index * SLOT_BYTES;
    this.i32 = new Int32Array(sab, at, S.SIZE);
    this.u64 = new BigUint64Array(sab, at + SLOT_INTS_BYTES, U64S);
    this.data = new Uint8Array(sab, at + SLOT_INTS_BYTES + U64S * 8, INLINE_BYTES);
  }
  get state(): number {
    return Atomics.load(this.i32, S.STATE);
  }
  set state(s: number) {
    Atomics.store(this.i32, S.STATE, s);
  }
  arg(i: number): bigint {
    return this.u64[ARGS_U64 + i];
  }
  setArg(i: number, v: bigint): void {
    this.u64[ARGS_U64 + i] = v;
  }
  get value(): bigint {
    return this.u64[VALUE_U64];
  }
  set value(v: bigint) {
    this.u64[VALUE_U64] = v;
  }
}

export function headerOf(sab: SharedArrayBuffer): Int32Array {
  return new Int32Array(sab, 0, H.SIZE);
}

export function slotsOf(sab: SharedArrayBuffer): Slot[] {
  return Array.from({ length: SLOTS }, (_, i) => new Slot(sab, i));
}

/** What a worker needs to build its own engine for a virtine (structured-cloneable). */
export type VirtineSpec =
  /** (`path`: the file it was loaded from, if any, for recordings to name) */
  | { kind: "image"; bytes: Uint8Array; name: string; raw?: boolean; path?: string }
  /** a loaded snapshot file: its sealed memfd is shared by every thread, so all run exactly what load opened */
  | { kind: "snapshot"; file: LoadedSnapshotFile; path?: string }
  /** a Linux executable (its file's bytes; a dynamically linked one's interpreter, its libraries among the files), run by a LinuxProgram */
  | { kind: "linux"; bytes: Uint8Array; name: string; path?: string; interpreter?: Uint8Array };

/** The options of a virtine's engines, as they travel to workers (documented on VirtineOptions). */
export const ENGINE_OPTION_KEYS = ["memory", "timeoutMs", "allow", "maxOutput", "snapshot", "poolSize", "dataSize", "stackSize", "hostModule", "env", "files", "dirs"] as const;
export type EngineOptions = Pick<RunnerOptions, Exclude<(typeof ENGINE_OPTION_KEYS)[number], "env" | "files" | "dirs">> & {
  /** a Linux program's environment: "KEY=value" strings or { KEY: "value" } (default: empty) */
  env?: readonly string[] | Readonly<Record<string, string>>;
  /**
   * read-only files a Linux program may open, or a native guest read (the `file` hypercall), by
   * absolute guest path: bytes, or a host file's path (read once, at load)
   */
  files?: Readonly<Record<string, Uint8Array | string>>;
  /** read-only host directories a Linux program may open files in, by absolute guest path: { "/data": "./data" } (read when opened; src/linux/dirs.ts) */
  dirs?: Readonly<Record<string, string>>;
};

/** Messages from main to a worker, on the port. */
export type ToWorker =
  | { op: "load"; id: number; spec: VirtineSpec; options: EngineOptions }
  | { op: "drop"; id: number }
  | { op: "input"; bytes: Uint8Array }
  | { op: "stop" };

/** A reply too big for its slot, on the port (in the order of the replies). */
export interface BigReply {
  output: Uint8Array;
  console: Uint8Array;
  error?: string;
  /** the call's recording, when it was asked for (F.RECORD) */
  recording?: Uint8Array;
}

/** A recording's starting state for a virtine of `spec` (native image or snapshot file; Recording["start"]). */
export function recordStartOf(spec: VirtineSpec, name: string, info: SnapshotFileInfo | undefined): Recording["start"] {
  if (spec.kind === "image") return { kind: "image", name: spec.name, ...(spec.path !== undefined && { path: spec.path }), sha256: sha256(spec.bytes) };
  if (spec.kind === "linux" || !info) throw new BadArgsError("record: calls of native images and their snapshot files can be recorded so far");
  return { kind: "snapshot", name, ...(spec.path !== undefined && { path: spec.path }), sha256: info.imageSha256, memorySha256: info.memorySha256 };
}
