// Record and replay of one call of a native virtine (issue 16; docs/recording-format.md). A native
// guest learns about the world only through its arguments, its input, its starting state and its
// hypercalls. A recording holds the first three (the start by hash) and every hypercall in order —
// its number and arguments, its result, and the bytes the host wrote into guest memory for it —
// then the outcome. A replay starts from the same state, answers the nondeterministic hypercalls
// (time, random, host, file) from the recording instead of the host, runs the others (exit, write,
// panic, snapshot) for real, and checks every hypercall and the outcome against the recording: the
// first difference is a ReplayDivergedError. What a guest reads from the CPU itself (RDTSC, RDRAND,
// CPUID) is not recorded: docs/determinism.md.
import { Hypercalls } from "../abi/guest-abi.ts";
import type { HypercallContext } from "../hypercall/handlers.ts";
import type { GuestAccess } from "../memory/guest-access.ts";
import { BadRecordingError, ReplayDivergedError, WaspError } from "../errors.ts";
import { VERSION } from "../version.ts";
import type { HypercallHook, RunOptions, RunResult, Runner } from "./runner.ts";

export const RECORDING_MAGIC = "WASPREC1";
export const RECORDING_VERSION = 1;
/** magic (8), version (u32), CRC-32 of the body (u32), body length (u64) */
export const RECORDING_HEADER = 24;
/** The largest recording read or written. */
export const MAX_RECORDING = 256 * 1024 * 1024;
/** The most hypercalls one recording holds. */
export const MAX_EVENTS = 10_000_000;

/** Hypercalls whose answer comes from outside the guest: recorded, and answered from the recording at replay. */
const FROM_OUTSIDE = new Set(["time", "random", "host", "file"]);
const NAMES = new Map<number, string>(Hypercalls.map((h) => [h.nr, h.name]));
/** True for a hypercall whose answer comes from outside the guest (time, random, host, file). */
export const hypercallFromOutside = (nr: number): boolean => FROM_OUTSIDE.has(NAMES.get(nr) ?? "");
/** True for a hypercall number this wasp has. */
export const isHypercall = (nr: number): boolean => NAMES.has(nr);
/** The names of the hypercalls (what a recording's grants may name). */
export const HYPERCALL_NAMES: readonly string[] = [...NAMES.values()];

export interface RecordedWrite {
  /** the guest address the host wrote at */
  addr: bigint;
  data: Uint8Array;
}

export interface RecordedEvent {
  nr: number;
  a: bigint;
  b: bigint;
  /** the value for the guest's RAX; null when the hypercall ended the virtine */
  result: bigint | null;
  writes: RecordedWrite[];
}

export type RecordedOutcome = { value: bigint; exits: number; output: string; console: string } | { error: { code: string; message: string } };

export interface Recording {
  /** the wasp version that made it (informative) */
  wasp: string;
  /** the starting state: an image's bytes, or a snapshot file's image and memory, by SHA-256 */
  start: { kind: "image" | "snapshot"; name: string; path?: string; sha256: string; memorySha256?: string };
  /** what shapes the VM and what it may do: the same at replay */
  /** `timeoutMs`: the call's deadline (absent in recordings of wasp before it), which a replay of a timed-out call keeps */
  options: { memory: number; dataSize: number; stackSize: number; snapshot: boolean; allow: string[]; timeoutMs?: number };
  call: { args: bigint[]; input: Uint8Array };
  events: RecordedEvent[];
  outcome: RecordedOutcome;
}

const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
export const sha256 = (b: Uint8Array) => (b.length === 0 ? EMPTY_SHA256 : new Bun.CryptoHasher("sha256").update(b).digest("hex"));

/** The outcome of a call as a recording keeps it. */
export function outcomeOf(r: { value: bigint; exits: number; output: Uint8Array; console: Uint8Array } | WaspError): RecordedOutcome {
  if (r instanceof WaspError) return { error: { code: r.code, message: r.message } };
  return { value: r.value, exits: r.exits, output: sha256(r.output), console: sha256(r.console) };
}

export const describeHypercall = (e: { nr: number; a: bigint; b: bigint }) => `hypercall ${NAMES.get(e.nr) ?? `#${e.nr}`}(0x${e.a.toString(16)}, 0x${e.b.toString(16)})`;

/** Records a call's hypercalls, running each for real. */
export class Recorder implements HypercallHook {
  readonly events: RecordedEvent[] = [];

  hypercall(nr: bigint, a: bigint, b: bigint, ctx: HypercallContext, handle: () => bigint | undefined): bigint | undefined {
    const event: RecordedEvent = { nr: Number(nr & 0xffffffffn), a, b, result: null, writes: [] };
    if (this.events.length >= MAX_EVENTS) throw new BadRecordingError(`the call made more than ${MAX_EVENTS} hypercalls: too many to record`);
    this.events.push(event);
    return observed(ctx.guest, FROM_OUTSIDE.has(NAMES.get(Number(nr)) ?? ""), event.writes, () => {
      const r = handle();
      event.result = r ?? null;
      return r;
    });
  }
}

/**
 * Runs `handle` (a hypercall or system call answered for real); when its answer comes from
 * outside (`outside`), the host's writes into guest memory meanwhile are kept in `writes`.
 */
export function observed<T>(guest: GuestAccess, outside: boolean, writes: RecordedWrite[], handle: () => T): T {
  if (!outside) return handle();
  guest.observeWrites((addr, data) => writes.push({ addr: BigInt.asUintN(64, BigInt(addr)), data: data.slice() }));
  try {
    return handle();
  } finally {
    guest.observeWrites(undefined);
  }
}

/** Replays a call's hypercalls from a recording, checking each. */
export class Replayer implements HypercallHook {
  #next = 0;
  constructor(readonly events: readonly RecordedEvent[]) {}

  hypercall(nr: bigint, a: bigint, b: bigint, ctx: HypercallContext, handle: () => bigint | undefined): bigint | undefined {
    const i = this.#next++;
    const now = { nr: Number(nr & 0xffffffffn), a, b };
    const recorded = this.events[i];
    if (!recorded) throw new ReplayDivergedError(i, `the call's end after ${this.events.length} hypercalls`, describeHypercall(now));
    if (recorded.nr !== now.nr || recorded.a !== a || recorded.b !== b || BigInt(recorded.nr) !== nr) throw new ReplayDivergedError(i, describeHypercall(recorded), describeHypercall(now));
    if (!FROM_OUTSIDE.has(NAMES.get(recorded.nr) ?? "")) {
      const r = handle();
      const got = r ?? null;
      if (got !== recorded.result) throw new ReplayDivergedError(i, `${describeHypercall(recorded)} = ${recorded.result ?? "the end"}`, `${describeHypercall(now)} = ${got ?? "the end"}`);
      return r;
    }
    // one that failed when recorded (a fault in its request, a policy refusal) fails the same way
    // now: its handler runs, and the outcome is compared
    if (recorded.result === null) return handle();
    // from outside: the recording answers, through the same checks a handler's writes pass
    for (const w of recorded.writes) ctx.guest.write(w.addr, w.data, "replayed write");
    return recorded.result;
  }

  /** Hypercalls the replay has consumed. */
  get consumed(): number {
    return this.#next;
  }
}

/** Checks a replay's outcome against the recording's (after its last hypercall). */
export function checkOutcome(rec: Recording, consumed: number, got: RecordedOutcome): void {
  if (consumed < rec.events.length) throw new ReplayDivergedError(consumed, describeHypercall(rec.events[consumed]), `the call's end (${"error" in got ? got.error.code : `result ${got.value}`})`);
  const want = rec.outcome;
  const show = (o: RecordedOutcome) => ("error" in o ? `${o.error.code}: ${o.error.message}` : `result ${o.value}, ${o.exits} exits, output sha256 ${o.output.slice(0, 16)}…, console sha256 ${o.console.slice(0, 16)}…`);
  if (show(want) !== show(got) || ("error" in want ? false : "error" in got || want.output !== got.output || want.console !== got.console)) {
    throw new ReplayDivergedError(rec.events.length, `the outcome ${show(want)}`, `the outcome ${show(got)}`);
  }
}

// -- the file -------------------------------------------------------------------------------------

const u64 = (v: bigint) => v.toString();
const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");

/** A recording as its file's bytes: the header, then the body (JSON). */
export function encodeRecording(rec: Recording): Uint8Array {
  const body = new TextEncoder().encode(
    JSON.stringify({
      wasp: rec.wasp,
      start: rec.start,
      options: rec.options,
      call: { args: rec.call.args.map(u64), input: b64(rec.call.input) },
      events: rec.events.map((e) => [e.nr, u64(e.a), u64(e.b), e.result === null ? null : u64(e.result), ...(e.writes.length ? [e.writes.map((w) => [u64(w.addr), b64(w.data)])] : [])]),
      outcome: "error" in rec.outcome ? rec.outcome : { ...rec.outcome, value: u64(rec.outcome.value) },
    }),
  );
  return recordingFile(RECORDING_VERSION, body);
}

/** A Linux program's recording (src/virtine/record-linux.ts) is this version of the format. */
export const LINUX_RECORDING_VERSION = 2;

/** The checks every field of a recording's body passes: each failure is `bad(why)`, which throws. */
export function recordingFields(bad: (why: string) => never) {
  const obj = (v: unknown, what: string): Record<string, unknown> => (typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : bad(`${what} is not an object`));
  const str = (v: unknown, what: string, max = 4096): string => (typeof v === "string" && v.length <= max ? v : bad(`${what} is not a string of at most ${max} characters`));
  const hex = (v: unknown, what: string): string => (typeof v === "string" && /^[0-9a-f]{64}$/.test(v) ? v : bad(`${what} is not a SHA-256 in hex`));
  const count = (v: unknown, what: string): number => (typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : bad(`${what} is not a count`));
  const big = (v: unknown, what: string): bigint => (typeof v === "string" && /^(0|[1-9][0-9]{0,19})$/.test(v) && BigInt(v) < 1n << 64n ? BigInt(v) : bad(`${what} is not a 64-bit unsigned integer`));
  const bytesOf = (v: unknown, what: string): Uint8Array => {
    if (typeof v !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(v) || v.length % 4 !== 0) bad(`${what} is not base64`);
    return new Uint8Array(Buffer.from(v as string, "base64"));
  };
  const arr = (v: unknown, what: string, max: number): unknown[] => (Array.isArray(v) && v.length <= max ? v : bad(`${what} is not a list of at most ${max}`));
  const bool = (v: unknown, what: string): boolean => (typeof v === "boolean" ? v : bad(`${what} is not a boolean`));
  /** a hypercall's write list: [[addr, base64], ...] */
  const writes = (v: unknown, what: string): RecordedWrite[] =>
    arr(v, what, 1024).map((w, k) => {
      const pair = arr(w, `${what}[${k}]`, 2);
      return { addr: big(pair[0], `${what}[${k}].addr`), data: bytesOf(pair[1], `${what}[${k}].data`) };
    });
  const error = (o: Record<string, unknown>, what: string) => {
    const e = obj(o.error, `${what}.error`);
    return { error: { code: str(e.code, `${what}.error.code`, 64), message: str(e.message, `${what}.error.message`, 65536) } };
  };
  return { obj, str, hex, count, big, bytesOf, arr, bool, writes, error };
}

/**
 * A recording file's header checked (magic, version, length, checksum) and its body parsed as
 * JSON; anything wrong is a BadRecordingError naming `name`.
 */
export function readRecordingBody(bytes: Uint8Array, name: string): { version: number; body: unknown; bad: (why: string) => never } {
  const bad = (why: string): never => {
    throw new BadRecordingError(`${name}: ${why}`);
  };
  if (bytes.length < RECORDING_HEADER || new TextDecoder().decode(bytes.subarray(0, 8)) !== RECORDING_MAGIC) bad("not a wasp recording (no WASPREC1 magic)");
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = dv.getUint32(8, true);
  if (version !== RECORDING_VERSION && version !== LINUX_RECORDING_VERSION) bad(`format version ${version}, this wasp reads ${RECORDING_VERSION} (native calls) and ${LINUX_RECORDING_VERSION} (Linux programs' calls)`);
  const length = dv.getBigUint64(16, true);
  if (length !== BigInt(bytes.length - RECORDING_HEADER)) bad(`the body is ${bytes.length - RECORDING_HEADER} bytes, the header says ${length}: the file is cut or padded`);
  const body = bytes.subarray(RECORDING_HEADER);
  if (Bun.hash.crc32(body) !== dv.getUint32(12, true)) bad("the body's checksum does not match: the file is damaged");
  let j: unknown;
  try {
    j = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch {
    bad("the body is not JSON");
  }
  return { version, body: j, bad };
}

/** A recording file's bytes: the header, then `body`. */
export function recordingFile(version: number, body: Uint8Array): Uint8Array {
  if (RECORDING_HEADER + body.length > MAX_RECORDING) throw new BadRecordingError(`the recording would be ${body.length} bytes, more than ${MAX_RECORDING >> 20} MiB`);
  const out = new Uint8Array(RECORDING_HEADER + body.length);
  const dv = new DataView(out.buffer);
  out.set(new TextEncoder().encode(RECORDING_MAGIC), 0);
  dv.setUint32(8, version, true);
  dv.setUint32(12, Bun.hash.crc32(body), true);
  dv.setBigUint64(16, BigInt(body.length), true);
  out.set(body, RECORDING_HEADER);
  return out;
}

/**
 * A native call's recording from a file's bytes: every field checked; anything else — a Linux
 * program's recording too (decodeLinuxRecording, src/virtine/record-linux.ts) — is a
 * BadRecordingError naming `name`.
 */
export function decodeRecording(bytes: Uint8Array, name: string): Recording {
  const { version, body: j, bad } = readRecordingBody(bytes, name);
  if (version !== RECORDING_VERSION) bad(`a Linux program's recording (format version ${version}), not a native call's`);
  const { obj, str, hex, count, big, bytesOf, arr, writes: writesOf, error } = recordingFields(bad);

  const top = obj(j, "the body");
  const start = obj(top.start, "start");
  const kind = start.kind === "image" || start.kind === "snapshot" ? start.kind : bad("start.kind is neither image nor snapshot");
  const rec: Recording = {
    wasp: str(top.wasp, "wasp", 64),
    start: { kind, name: str(start.name, "start.name", 255), ...(start.path !== undefined && { path: str(start.path, "start.path") }), sha256: hex(start.sha256, "start.sha256"), ...(kind === "snapshot" && { memorySha256: hex(start.memorySha256, "start.memorySha256") }) },
    options: (() => {
      const o = obj(top.options, "options");
      const allow = arr(o.allow, "options.allow", NAMES.size).map((v, k) => {
        const n = str(v, `options.allow[${k}]`, 32);
        return [...NAMES.values()].includes(n) ? n : bad(`options.allow[${k}] is not a hypercall`);
      });
      return {
        memory: count(o.memory, "options.memory"), dataSize: count(o.dataSize, "options.dataSize"), stackSize: count(o.stackSize, "options.stackSize"),
        snapshot: typeof o.snapshot === "boolean" ? o.snapshot : bad("options.snapshot is not a boolean"), allow,
        ...(o.timeoutMs !== undefined && { timeoutMs: recordedTimeout(o.timeoutMs, bad) }),
      };
    })(),
    call: (() => {
      const c = obj(top.call, "call");
      return { args: arr(c.args, "call.args", 6).map((v, i) => big(v, `call.args[${i}]`)), input: bytesOf(c.input, "call.input") };
    })(),
    events: arr(top.events, "events", MAX_EVENTS).map((v, i) => {
      const e = arr(v, `events[${i}]`, 5);
      if (e.length < 4) bad(`events[${i}] has ${e.length} fields, not 4 or 5`);
      const nr = count(e[0], `events[${i}].nr`);
      if (!NAMES.has(nr)) bad(`events[${i}] is hypercall ${nr}, which this wasp does not have`);
      const writes = e.length === 5 ? writesOf(e[4], `events[${i}].writes`) : [];
      return { nr, a: big(e[1], `events[${i}].a`), b: big(e[2], `events[${i}].b`), result: e[3] === null ? null : big(e[3], `events[${i}].result`), writes };
    }),
    outcome: (() => {
      const o = obj(top.outcome, "outcome");
      if ("error" in o) return error(o, "outcome");
      return { value: big(o.value, "outcome.value"), exits: count(o.exits, "outcome.exits"), output: hex(o.output, "outcome.output"), console: hex(o.console, "outcome.console") };
    })(),
  };
  return rec;
}

/** What a new recording says about the wasp that made it. */
export const RECORDED_BY = `wasp ${VERSION}`;

/**
 * A call's recording as a file's bytes: made on `runner` (its VM's shape and grants), from `start`,
 * with these arguments and input, the events a Recorder saw, and the outcome.
 */
export function recordingOf(runner: Runner, start: Recording["start"], args: readonly (bigint | number)[], input: Uint8Array | undefined, events: RecordedEvent[], outcome: RecordedOutcome): Uint8Array {
  return encodeRecording({
    wasp: RECORDED_BY,
    start,
    options: { memory: runner.memorySize, dataSize: runner.meta.dataSize, stackSize: runner.meta.stackSize, snapshot: runner.snapshots, allow: [...runner.policy.names], timeoutMs: runner.timeoutMs },
    call: { args: args.map((a) => BigInt.asUintN(64, BigInt(a))), input: input ?? new Uint8Array(0) },
    events,
    outcome,
  });
}

/**
 * Runs one call of `runner` recorded: its result with `recording`, or — a call that failed with a
 * WaspError — that error with `error.recording` (a BadRecordingError, too many hypercalls to
 * record, carries none). The one way every caller records: the CLI, the API, the workers.
 */
export function runRecorded(runner: Runner, start: Recording["start"], args: readonly (bigint | number)[], opts: RunOptions = {}): RunResult & { recording: Uint8Array } {
  const recorder = new Recorder();
  let r: RunResult;
  try {
    r = runner.run(args, { ...opts, hook: recorder });
  } catch (e) {
    if (e instanceof WaspError && !(e instanceof BadRecordingError)) {
      try {
        e.recording = recordingOf(runner, start, args, opts.input, recorder.events, outcomeOf(e));
      } catch {
        // a recording too large to encode: the call's own error is what the caller must see
      }
    }
    throw e;
  }
  return { ...r, recording: recordingOf(runner, start, args, opts.input, recorder.events, outcomeOf(r)) };
}

/** A recorded deadline: whole milliseconds, 0 (none) up to a day (MAX_TIMEOUT_MS). */
export function recordedTimeout(v: unknown, bad: (why: string) => never): number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0 && v <= 86_400_000 ? v : bad("options.timeoutMs is not a deadline in milliseconds (0 to 86400000)");
}

/** How long a replay may take when --timeout does not say: as long as the call had when it timed out; otherwise a minute at least. */
export const REPLAY_TIMEOUT_MS = 60_000;
export function replayTimeout(recorded: number | undefined, timedOut: boolean): number {
  if (recorded === undefined) return REPLAY_TIMEOUT_MS;
  if (timedOut) return recorded;
  return recorded === 0 ? 0 : Math.max(recorded, REPLAY_TIMEOUT_MS);
}
