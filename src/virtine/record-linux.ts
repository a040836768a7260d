// Record and replay of one call of a static Linux program (docs/recording-format.md, format version
// 2). Such a program learns about the world through its arguments, environment and stdin, its
// starting state (the executable, or a snapshot file of it), its granted files, the AT_RANDOM
// bytes on its first stack, its system calls and its wasp.h hypercalls. A recording holds the
// first ones whole (the start by hash), then every system call and hypercall in order — number,
// arguments, result, and for those answered from outside the guest (the clock and sleeps with the
// `time` grant, getrandom with `random`; time, random, host and file hypercalls) the bytes the host
// wrote into guest memory — then the outcome. A replay starts from the same state, answers those
// from the recording (their writes through GuestAccess, as a handler's), runs every other one for
// real, and checks each one and the outcome: the first difference is a ReplayDivergedError.
import { BadArgsError, BadRecordingError, MemoryFaultError, ReplayDivergedError, WaspError } from "../errors.ts";
import type { HypercallContext } from "../hypercall/handlers.ts";
import { type Outcome } from "../linux/process.ts";
import { NR, outsideSyscalls, syscallSpec } from "../linux/syscalls.ts";
import type { GuestAccess } from "../memory/guest-access.ts";
import { checkEnv, type LinuxCallHook, type LinuxProgram, type LinuxRunRequest, type LinuxRunResult } from "./linux.ts";
import {
  HYPERCALL_NAMES,
  LINUX_RECORDING_VERSION,
  MAX_EVENTS,
  RECORDED_BY,
  describeHypercall,
  decodeRecording,
  hypercallFromOutside,
  isHypercall,
  readRecordingBody,
  recordingFields,
  recordedTimeout,
  observed,
  recordingFile,
  sha256,
  type RecordedWrite,
  type Recording,
} from "./record.ts";

export interface LinuxSyscallEvent {
  type: "syscall";
  /** the number as answered (RAX; above 0xffff: 0xffff) */
  nr: number;
  /** RDI, RSI, RDX, R10, R8, R9 */
  args: bigint[];
  /** the value for the guest's RAX (64-bit, two's complement); null when it ended the call */
  result: bigint | null;
  writes: RecordedWrite[];
}

export interface LinuxHypercallEvent {
  type: "hypercall";
  nr: number;
  a: bigint;
  b: bigint;
  result: bigint | null;
  writes: RecordedWrite[];
}

export type LinuxEvent = LinuxSyscallEvent | LinuxHypercallEvent;

export type LinuxOutcome =
  | { status: number; exits: number; syscalls: number; stdout: string; stderr: string; stdoutTruncated: boolean; stderrTruncated: boolean }
  | { error: { code: string; message: string } };

export interface LinuxRecording {
  kind: "linux";
  /** the wasp version that made it (informative) */
  wasp: string;
  /** the executable by SHA-256, or a snapshot file by its executable's, memory's and process section's */
  start: { kind: "executable"; name: string; path?: string; sha256: string } | { kind: "snapshot"; name: string; path?: string; sha256: string; memorySha256: string; processSha256: string };
  /** what shapes the VM and what the program may do: the same at replay (the granted files whole) */
  /** `timeoutMs`: the call's deadline, which a replay of a timed-out call keeps */
  options: { memory: number; stackSize: number; snapshot: boolean; maxOutput: number; allow: string[]; files: [string, Uint8Array][]; timeoutMs?: number };
  /** argv[1..], the environment, stdin; the AT_RANDOM bytes of a call started at the entry */
  call: { args: string[]; env: string[]; input: Uint8Array; random?: Uint8Array };
  events: LinuxEvent[];
  outcome: LinuxOutcome;
}

const hex = (v: bigint) => `0x${v.toString(16)}`;
const describeSyscall = (e: { nr: number; args: readonly bigint[] }) => `system call ${syscallSpec(e.nr)?.name ?? `#${e.nr}`}(${e.args.map(hex).join(", ")})`;
const describeEvent = (e: LinuxEvent) => (e.type === "syscall" ? describeSyscall(e) : describeHypercall(e));
const showResult = (r: bigint | null) => (r === null ? "the end" : String(r));

/** What the guest's RAX gets for an outcome (null: the call ended). */
function resultOf(o: Outcome): bigint | null {
  if (o.kind === "return") return BigInt.asUintN(64, o.value);
  if (o.kind === "exit") return null;
  return 0n; // setBase, sleep: 0 once done
}

/** The outcome of a Linux call as a recording keeps it. */
export function linuxOutcomeOf(r: LinuxRunResult | WaspError): LinuxOutcome {
  if (r instanceof WaspError) return { error: { code: r.code, message: r.message } };
  return { status: r.status, exits: r.exits, syscalls: r.syscalls, stdout: sha256(r.stdout), stderr: sha256(r.stderr), stdoutTruncated: r.stdoutTruncated, stderrTruncated: r.stderrTruncated };
}

/**
 * What the host would have written into guest memory for system call `nr` answered from outside
 * (the clock, getrandom) with `result`: the bytes the layer wrote when it answered it, rebuilt
 * from its log entry's clock reading and random bytes.
 */
function outsideWrites(nr: number, args: readonly bigint[], result: bigint, ns: bigint, random: Uint8Array): RecordedWrite[] {
  const u64s = (...vs: bigint[]) => {
    const out = new Uint8Array(vs.length * 8);
    vs.forEach((v, i) => new DataView(out.buffer).setBigInt64(i * 8, v, true));
    return out;
  };
  const sec = ns / 1_000_000_000n;
  if (BigInt.asIntN(64, result) < 0n) return [];
  switch (nr) {
    case NR.clock_gettime:
      return [{ addr: args[1], data: u64s(sec, ns % 1_000_000_000n) }];
    case NR.gettimeofday:
      return args[0] === 0n ? [] : [{ addr: args[0], data: u64s(sec, (ns % 1_000_000_000n) / 1000n) }];
    case NR.time:
      return args[0] === 0n ? [] : [{ addr: args[0], data: u64s(sec) }];
    case NR.getrandom:
      return result === 0n ? [] : [{ addr: args[0], data: random.slice(0, Number(result)) }];
    default:
      return [];
  }
}

/** Records a Linux call: its AT_RANDOM bytes, its system calls and hypercalls, each run for real. */
export class LinuxRecorder implements LinuxCallHook {
  readonly events: LinuxEvent[] = [];
  random: Uint8Array | undefined;
  readonly #outside: Set<number>;
  /** the in-VM layer answers as it would, and logs what it answers: recording costs no exit */
  readonly logs = true;

  constructor(allow: readonly string[]) {
    this.#outside = outsideSyscalls(allow);
  }

  atRandom(fresh: Uint8Array): Uint8Array {
    this.random = fresh.slice();
    return fresh;
  }

  #push(event: LinuxEvent): void {
    if (this.events.length >= MAX_EVENTS) throw new BadRecordingError(`the call made more than ${MAX_EVENTS} system calls and hypercalls: too many to record`);
    this.events.push(event);
  }

  logged(nr: number, args: readonly bigint[], result: bigint, outside: { ns: bigint; random: Uint8Array }): void {
    this.#push({ type: "syscall", nr, args: [...args], result, writes: this.#outside.has(nr) ? outsideWrites(nr, args, result, outside.ns, outside.random) : [] });
  }

  syscall(nr: number, args: readonly bigint[], guest: GuestAccess, handle: () => Outcome): Outcome {
    const event: LinuxSyscallEvent = { type: "syscall", nr, args: [...args], result: null, writes: [] };
    this.#push(event);
    return observed(guest, this.#outside.has(nr), event.writes, () => {
      const o = handle();
      event.result = resultOf(o);
      return o;
    });
  }

  hypercall(nr: bigint, a: bigint, b: bigint, ctx: HypercallContext, handle: () => bigint | undefined): bigint | undefined {
    const event: LinuxHypercallEvent = { type: "hypercall", nr: Number(nr & 0xffffffffn), a, b, result: null, writes: [] };
    this.#push(event);
    return observed(ctx.guest, hypercallFromOutside(Number(nr)), event.writes, () => {
      const r = handle();
      event.result = r ?? null;
      return r;
    });
  }
}

/** Replays a Linux call from a recording: the recorded AT_RANDOM bytes and outside answers, every event checked. */
export class LinuxReplayer implements LinuxCallHook {
  #next = 0;
  readonly #outside: Set<number>;
  readonly #random: Uint8Array | undefined;
  readonly #granted: boolean;

  constructor(readonly rec: LinuxRecording) {
    this.#outside = outsideSyscalls(rec.options.allow);
    this.#random = rec.call.random;
    this.#granted = rec.options.allow.includes("random");
  }

  /** Events the replay has consumed. */
  get consumed(): number {
    return this.#next;
  }

  atRandom(fresh: Uint8Array): Uint8Array {
    const recorded = this.#random;
    if (!recorded) throw new ReplayDivergedError(-1, "a call resumed from a snapshot (no initial stack)", "a call started at the executable's entry");
    if (this.#granted) return recorded;
    // without the grant the bytes are fixed: the recording must say the same
    if (!recorded.every((b, i) => b === fresh[i])) throw new ReplayDivergedError(-1, `the AT_RANDOM bytes ${Buffer.from(recorded).toString("hex")}`, `${Buffer.from(fresh).toString("hex")} (fixed without the random grant)`);
    return fresh;
  }

  #take(now: string): { i: number; recorded: LinuxEvent } {
    const i = this.#next++;
    const recorded = this.rec.events[i];
    if (!recorded) throw new ReplayDivergedError(i, `the call's end after ${this.rec.events.length} events`, now);
    return { i, recorded };
  }

  /** The recorded writes, made through GuestAccess: one the guest could not make itself is a divergence. */
  #write(i: number, recorded: LinuxEvent, guest: GuestAccess): void {
    for (const w of recorded.writes) {
      try {
        guest.write(w.addr, w.data, "a replayed write");
      } catch (e) {
        if (e instanceof MemoryFaultError) throw new ReplayDivergedError(i, `${describeEvent(recorded)} writing ${w.data.length} bytes at ${hex(w.addr)}`, e.message);
        throw e;
      }
    }
  }

  syscall(nr: number, args: readonly bigint[], guest: GuestAccess, handle: () => Outcome): Outcome {
    const now = { nr, args };
    const { i, recorded } = this.#take(describeSyscall(now));
    if (recorded.type !== "syscall" || recorded.nr !== nr || recorded.args.length !== args.length || recorded.args.some((v, k) => v !== args[k])) {
      throw new ReplayDivergedError(i, describeEvent(recorded), describeSyscall(now));
    }
    if (!this.#outside.has(nr) || recorded.result === null) {
      const o = handle();
      const got = resultOf(o);
      if (got !== recorded.result) throw new ReplayDivergedError(i, `${describeSyscall(recorded)} = ${showResult(recorded.result)}`, `${describeSyscall(now)} = ${showResult(got)}`);
      return o;
    }
    // from outside: the recording answers (a sleep is not slept again)
    this.#write(i, recorded, guest);
    return { kind: "return", value: recorded.result };
  }

  hypercall(nr: bigint, a: bigint, b: bigint, ctx: HypercallContext, handle: () => bigint | undefined): bigint | undefined {
    const now = { nr: Number(nr & 0xffffffffn), a, b };
    const { i, recorded } = this.#take(describeHypercall(now));
    if (recorded.type !== "hypercall" || recorded.nr !== now.nr || BigInt(recorded.nr) !== nr || recorded.a !== a || recorded.b !== b) {
      throw new ReplayDivergedError(i, describeEvent(recorded), describeHypercall(now));
    }
    if (!hypercallFromOutside(recorded.nr) || recorded.result === null) {
      const r = handle();
      const got = r ?? null;
      if (got !== recorded.result) throw new ReplayDivergedError(i, `${describeHypercall(recorded)} = ${showResult(recorded.result)}`, `${describeHypercall(now)} = ${showResult(got)}`);
      return r;
    }
    this.#write(i, recorded, ctx.guest);
    return recorded.result;
  }
}

/**
 * Checks a replay's outcome against the recording's (after its last event). The exits are not
 * compared: how many a call took says how it was answered (a replay's system calls all go to the
 * host, a recorded call's mostly to the in-VM layer), not what it did.
 */
export function checkLinuxOutcome(rec: LinuxRecording, consumed: number, got: LinuxOutcome): void {
  const show = (o: LinuxOutcome) =>
    "error" in o
      ? `${o.error.code}: ${o.error.message}`
      : `exit status ${o.status}, ${o.syscalls} system calls, stdout sha256 ${o.stdout.slice(0, 16)}…${o.stdoutTruncated ? " (truncated)" : ""}, stderr sha256 ${o.stderr.slice(0, 16)}…${o.stderrTruncated ? " (truncated)" : ""}`;
  if (consumed < rec.events.length) throw new ReplayDivergedError(consumed, describeEvent(rec.events[consumed]), `the call's end (${"error" in got ? got.error.code : `exit status ${got.status}`})`);
  const want = rec.outcome;
  const same = "error" in want ? "error" in got && show(want) === show(got) : !("error" in got) && show(want) === show(got) && want.stdout === got.stdout && want.stderr === got.stderr;
  if (!same) throw new ReplayDivergedError(rec.events.length, `the outcome ${show(want)}`, `the outcome ${show(got)}`);
}

// -- the starting state ----------------------------------------------------------------------------

/** A Linux program's starting state as a recording names it: its executable, or the snapshot file it was restored from. */
export function linuxStartOf(program: LinuxProgram, path?: string): LinuxRecording["start"] {
  const file = program.snapshotFile;
  if (file) {
    const name = file.info.path.split("/").pop() || file.info.path;
    return { kind: "snapshot", name, ...(path !== undefined && { path }), sha256: file.info.imageSha256, memorySha256: file.info.memorySha256, processSha256: sha256(file.process) };
  }
  return { kind: "executable", name: program.elf.name, ...(path !== undefined && { path }), sha256: sha256(program.elf.bytes) };
}

/** Checks that `program` (from `target`) is the recording's start: otherwise a divergence at -1. */
export function checkLinuxStart(rec: LinuxRecording, program: LinuxProgram, target: string): void {
  const got = linuxStartOf(program);
  const s = rec.start;
  if (s.kind === "executable" && got.kind === "executable") {
    if (got.sha256 !== s.sha256) throw new ReplayDivergedError(-1, `the executable ${s.name}, sha256 ${s.sha256}`, `${target}, sha256 ${got.sha256}`);
  } else if (s.kind === "snapshot" && got.kind === "snapshot") {
    if (got.sha256 !== s.sha256 || got.memorySha256 !== s.memorySha256 || got.processSha256 !== s.processSha256) {
      throw new ReplayDivergedError(-1, `the snapshot file ${s.name} (executable sha256 ${s.sha256}, memory sha256 ${s.memorySha256}, process sha256 ${s.processSha256})`, `${target} (executable sha256 ${got.sha256}, memory sha256 ${got.memorySha256}, process sha256 ${got.processSha256})`);
    }
  } else throw new ReplayDivergedError(-1, s.kind === "executable" ? `the executable ${s.name}` : `the snapshot file ${s.name}`, `${target}, ${got.kind === "executable" ? "an executable" : "a snapshot file"}`);
  const o = rec.options;
  const shape = (m: number, st: number) => `a VM of ${m} bytes, stack ${st}`;
  const stack = program.layout.stack[1] - program.layout.stack[0];
  if (program.layout.memory !== o.memory || stack !== o.stackSize) throw new ReplayDivergedError(-1, shape(o.memory, o.stackSize), shape(program.layout.memory, stack));
}

// -- recording a call ------------------------------------------------------------------------------

/**
 * Runs one call of `program` recorded: its result with `recording`, or — a call that failed with a
 * WaspError — that error with `error.recording`. A program whose calls resume from a state one of
 * its own calls captured (wasp_snapshot()) is refused: no file holds that start.
 */
export function runRecordedLinux(program: LinuxProgram, start: LinuxRecording["start"], req: Omit<LinuxRunRequest, "hook"> = {}): LinuxRunResult & { recording: Uint8Array } {
  if (program.resumesFromCapture) {
    throw new BadArgsError(`record: ${program.elf.name}'s calls resume from the state its first call captured at wasp_snapshot(), which no file holds: write it (writeSnapshot, wasp snapshot) and record calls of that file, or load the program with snapshot: false`);
  }
  const args = req.args === undefined ? [] : [...req.args];
  const env = req.env === undefined ? [...program.env] : checkEnv(req.env);
  const input = typeof req.input === "string" ? new TextEncoder().encode(req.input) : (req.input ?? new Uint8Array(0));
  const recorder = new LinuxRecorder(program.policy.names);
  const make = (outcome: LinuxOutcome) =>
    encodeLinuxRecording({
      kind: "linux",
      wasp: RECORDED_BY,
      start,
      options: { memory: program.layout.memory, stackSize: program.layout.stack[1] - program.layout.stack[0], snapshot: program.snapshots, maxOutput: program.maxOutput, allow: [...program.policy.names], files: [...program.files], timeoutMs: program.timeoutMs },
      call: { args, env, input, ...(recorder.random && { random: recorder.random }) },
      events: recorder.events,
      outcome,
    });
  let r: LinuxRunResult;
  try {
    r = program.run({ ...req, hook: recorder });
  } catch (e) {
    if (e instanceof WaspError && !(e instanceof BadRecordingError)) {
      try {
        e.recording = make(linuxOutcomeOf(e));
      } catch {
        // a recording too large to encode: the call's own error is what the caller must see
      }
    }
    throw e;
  }
  return { ...r, recording: make(linuxOutcomeOf(r)) };
}

/**
 * Replays a recorded call on `program` (made from the recording's start and options, and checked
 * with checkLinuxStart): its result, or undefined for a call that failed as recorded; any
 * difference is a ReplayDivergedError.
 */
export function replayLinuxCall(rec: LinuxRecording, program: LinuxProgram, extra: Pick<LinuxRunRequest, "debug"> = {}): { result: LinuxRunResult | undefined; outcome: LinuxOutcome } {
  const replayer = new LinuxReplayer(rec);
  let result: LinuxRunResult | undefined;
  let got: LinuxOutcome;
  try {
    // the call's arguments (none given: a resumed call's own); the environment is the program's
    result = program.run({ args: rec.call.args.length > 0 ? rec.call.args : undefined, input: rec.call.input, hook: replayer, ...extra });
    got = linuxOutcomeOf(result);
  } catch (e) {
    if (e instanceof ReplayDivergedError || !(e instanceof WaspError)) throw e;
    got = linuxOutcomeOf(e);
    result = undefined;
  }
  checkLinuxOutcome(rec, replayer.consumed, got);
  return { result, outcome: got };
}

// -- the file --------------------------------------------------------------------------------------

const u64 = (v: bigint) => v.toString();
const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");
const writesJson = (ws: RecordedWrite[]) => (ws.length ? [ws.map((w) => [u64(w.addr), b64(w.data)])] : []);

/** Most arguments, environment entries and granted files one recording holds. */
const MAX_STRINGS = 65536;
const MAX_STRING = 1 << 20;

/** A Linux call's recording as its file's bytes (format version 2). */
export function encodeLinuxRecording(rec: LinuxRecording): Uint8Array {
  const body = new TextEncoder().encode(
    JSON.stringify({
      wasp: rec.wasp,
      kind: "linux",
      start: rec.start,
      options: { ...rec.options, files: rec.options.files.map(([p, d]) => [p, b64(d)]) },
      call: { args: rec.call.args, env: rec.call.env, input: b64(rec.call.input), ...(rec.call.random && { random: b64(rec.call.random) }) },
      events: rec.events.map((e) => (e.type === "syscall" ? ["sys", e.nr, e.args.map(u64), e.result === null ? null : u64(e.result), ...writesJson(e.writes)] : ["hyp", e.nr, u64(e.a), u64(e.b), e.result === null ? null : u64(e.result), ...writesJson(e.writes)])),
      outcome: rec.outcome,
    }),
  );
  return recordingFile(LINUX_RECORDING_VERSION, body);
}

/** A Linux call's recording from a file's bytes: every field checked; anything else is a BadRecordingError naming `name`. */
export function decodeLinuxRecording(bytes: Uint8Array, name: string): LinuxRecording {
  const { version, body: j, bad } = readRecordingBody(bytes, name);
  if (version !== LINUX_RECORDING_VERSION) bad(`a native call's recording (format version ${version}), not a Linux program's`);
  const { obj, str, hex: sha, count, big, bytesOf, arr, bool, writes, error } = recordingFields(bad);
  const top = obj(j, "the body");
  if (top.kind !== "linux") bad(`kind is not "linux"`);
  const start = obj(top.start, "start");
  const kind = start.kind === "executable" || start.kind === "snapshot" ? start.kind : bad("start.kind is neither executable nor snapshot");
  const name_ = str(start.name, "start.name", 255);
  const path = start.path === undefined ? {} : { path: str(start.path, "start.path") };
  const cString = (v: unknown, what: string): string => {
    const s = str(v, what, MAX_STRING);
    return s.includes("\0") ? bad(`${what} holds a NUL byte`) : s;
  };
  const o = obj(top.options, "options");
  const allow = arr(o.allow, "options.allow", HYPERCALL_NAMES.length).map((v, k) => {
    const n = str(v, `options.allow[${k}]`, 32);
    return HYPERCALL_NAMES.includes(n) ? n : bad(`options.allow[${k}] is not a grant`);
  });
  const seen = new Set<string>();
  const files = arr(o.files, "options.files", MAX_STRINGS).map((v, k): [string, Uint8Array] => {
    const pair = arr(v, `options.files[${k}]`, 2);
    const p = cString(pair[0], `options.files[${k}].path`);
    if (!p.startsWith("/") || p.length > 4096) bad(`options.files[${k}].path is not an absolute path of at most 4096 characters`);
    if (seen.has(p)) bad(`options.files[${k}].path ${JSON.stringify(p)} is granted twice`);
    seen.add(p);
    return [p, bytesOf(pair[1], `options.files[${k}].data`)];
  });
  const c = obj(top.call, "call");
  const env = arr(c.env, "call.env", MAX_STRINGS).map((v, k) => cString(v, `call.env[${k}]`));
  for (const [k, e] of env.entries()) if (!/^[^=]+=/.test(e)) bad(`call.env[${k}] is not KEY=value`);
  const random = c.random === undefined ? undefined : bytesOf(c.random, "call.random");
  if (random && random.length !== 16) bad(`call.random is ${random.length} bytes, not 16`);
  const events = arr(top.events, "events", MAX_EVENTS).map((v, i): LinuxEvent => {
    const e = arr(v, `events[${i}]`, 6);
    if (e[0] === "sys") {
      if (e.length !== 4 && e.length !== 5) bad(`events[${i}] has ${e.length} fields, not 4 or 5`);
      const nr = count(e[1], `events[${i}].nr`);
      if (nr > 0xffff) bad(`events[${i}].nr is above 0xffff`);
      const a = arr(e[2], `events[${i}].args`, 6);
      if (a.length !== 6) bad(`events[${i}].args has ${a.length} values, not 6`);
      return { type: "syscall", nr, args: a.map((x, k) => big(x, `events[${i}].args[${k}]`)), result: e[3] === null ? null : big(e[3], `events[${i}].result`), writes: e.length === 5 ? writes(e[4], `events[${i}].writes`) : [] };
    }
    if (e[0] === "hyp") {
      if (e.length !== 5 && e.length !== 6) bad(`events[${i}] has ${e.length} fields, not 5 or 6`);
      const nr = count(e[1], `events[${i}].nr`);
      if (!isHypercall(nr)) bad(`events[${i}] is hypercall ${nr}, which this wasp does not have`);
      return { type: "hypercall", nr, a: big(e[2], `events[${i}].a`), b: big(e[3], `events[${i}].b`), result: e[4] === null ? null : big(e[4], `events[${i}].result`), writes: e.length === 6 ? writes(e[5], `events[${i}].writes`) : [] };
    }
    return bad(`events[${i}] is neither a "sys" nor a "hyp" event`);
  });
  const out = obj(top.outcome, "outcome");
  const outcome: LinuxOutcome =
    "error" in out
      ? error(out, "outcome")
      : {
          status: count(out.status, "outcome.status") <= 255 ? (out.status as number) : bad("outcome.status is above 255"),
          exits: count(out.exits, "outcome.exits"),
          syscalls: count(out.syscalls, "outcome.syscalls"),
          stdout: sha(out.stdout, "outcome.stdout"),
          stderr: sha(out.stderr, "outcome.stderr"),
          stdoutTruncated: bool(out.stdoutTruncated, "outcome.stdoutTruncated"),
          stderrTruncated: bool(out.stderrTruncated, "outcome.stderrTruncated"),
        };
  return {
    kind: "linux",
    wasp: str(top.wasp, "wasp", 64),
    start: kind === "executable" ? { kind, name: name_, ...path, sha256: sha(start.sha256, "start.sha256") } : { kind, name: name_, ...path, sha256: sha(start.sha256, "start.sha256"), memorySha256: sha(start.memorySha256, "start.memorySha256"), processSha256: sha(start.processSha256, "start.processSha256") },
    options: {
      memory: count(o.memory, "options.memory"), stackSize: count(o.stackSize, "options.stackSize"), snapshot: bool(o.snapshot, "options.snapshot"), maxOutput: count(o.maxOutput, "options.maxOutput"), allow, files,
      ...(o.timeoutMs !== undefined && { timeoutMs: recordedTimeout(o.timeoutMs, bad) }),
    },
    call: { args: arr(c.args, "call.args", MAX_STRINGS).map((v, k) => cString(v, `call.args[${k}]`)), env, input: bytesOf(c.input, "call.input"), ...(random && { random }) },
    events,
    outcome,
  };
}

/** Any recording from a file's bytes: a native call's (version 1) or a Linux program's (version 2). */
export function decodeAnyRecording(bytes: Uint8Array, name: string): Recording | LinuxRecording {
  const { version } = readRecordingBody(bytes, name);
  return version === LINUX_RECORDING_VERSION ? decodeLinuxRecording(bytes, name) : decodeRecording(bytes, name);
}
