// A virtine's engine as the API drives it, on the calling thread and on a worker alike: a Runner
// (native and raw images, their snapshot files) or a LinuxProgram (static executables, C, the
// JavaScript engine, their snapshot files) behind one face. What differs between them — what a
// call's arguments are, how one travels to a worker, what a recording starts from — is here, once,
// not a branch at every use.
import { BadArgsError } from "../errors.ts";
import { Runner, checkArgs, describeValue } from "../virtine/runner.ts";
import { LinuxProgram, checkEnv, type LinuxRunResult } from "../virtine/linux.ts";
import { runRecorded, type Recording } from "../virtine/record.ts";
import { linuxStartOf, runRecordedLinux, type LinuxRecording } from "../virtine/record-linux.ts";
import { recordStartOf, type VirtineSpec } from "./channel.ts";
import { decodeLinuxCall, encodeLinuxCall } from "./wire.ts";
import type { CallReply } from "./workers.ts";

/** An argument of a call: an integer, or for a Linux program a string too. */
export type CallArg = bigint | number | string;
export type CallEnv = Readonly<Record<string, string>> | readonly string[] | undefined;

/** A call as a worker takes it: its registers, and its input (a Linux call's arguments, environment and stdin, encoded). */
export interface WireCall {
  argv: bigint[];
  input: Uint8Array | undefined;
}

export interface CallOptions {
  input?: Uint8Array;
  interrupted?: () => boolean;
  /** run with a recorder: the recording in the reply (or on the error) */
  record?: boolean;
}

export interface CallEngine {
  readonly name: string;
  readonly kind: "native" | "raw" | "snapshot" | "linux";
  /** the Linux program behind the engine (its snapshot, its recordings' checks) */
  readonly linux: LinuxProgram | undefined;
  /** a call from the caller's values, checked, in the form a worker takes */
  encode(args: readonly CallArg[], input: Uint8Array | undefined, env: CallEnv): WireCall;
  /** a call in the form `encode` gives (a worker's) */
  run(argv: bigint[], opts: CallOptions): CallReply;
  /** a call from the caller's values, on this thread */
  call(args: readonly CallArg[], input: Uint8Array | undefined, env: CallEnv, record: boolean): CallReply;
  cleanIdle(): number;
  close(): void;
}

/** The engine of `local`, which `spec` describes (what a recording names as its start). */
export function callEngine(local: Runner | LinuxProgram, spec: VirtineSpec): CallEngine {
  return local instanceof LinuxProgram ? new LinuxEngine(local, spec) : new RunnerEngine(local, spec);
}

class RunnerEngine implements CallEngine {
  readonly name: string;
  readonly kind: "native" | "raw" | "snapshot";
  readonly linux = undefined;
  #start: Recording["start"] | undefined;

  constructor(
    readonly runner: Runner,
    readonly spec: VirtineSpec,
  ) {
    this.name = runner.meta.name;
    this.kind = spec.kind === "snapshot" ? "snapshot" : (runner.image?.kind as "native" | "raw");
  }

  encode(args: readonly CallArg[], input: Uint8Array | undefined, env: CallEnv): WireCall {
    if (env !== undefined) throw new BadArgsError(`${this.name} is not a Linux program: it has no environment`);
    const argv = checkArgs(args as (bigint | number)[]);
    if (input && input.length > 0) this.runner.checkInput(input);
    return { argv, input };
  }

  run(argv: bigint[], opts: CallOptions): CallReply {
    if (!opts.record) return this.runner.run(argv, opts);
    // the image's hash is computed once
    this.#start ??= recordStartOf(this.spec, this.name, this.runner.snapshotFileInfo);
    return runRecorded(this.runner, this.#start, argv, opts);
  }

  call(args: readonly CallArg[], input: Uint8Array | undefined, env: CallEnv, record: boolean): CallReply {
    if (env !== undefined) throw new BadArgsError(`${this.name} is not a Linux program: it has no environment`);
    // the Runner checks the arguments and the input itself
    if (!record) return this.runner.run(args as (bigint | number)[], { input });
    return this.run(checkArgs(args as (bigint | number)[]), { input, record });
  }

  cleanIdle(): number {
    return this.runner.cleanIdle();
  }

  close(): void {
    this.runner.close();
  }
}

class LinuxEngine implements CallEngine {
  readonly name: string;
  readonly kind = "linux";
  #start: LinuxRecording["start"] | undefined;

  constructor(
    readonly linux: LinuxProgram,
    readonly spec: VirtineSpec,
  ) {
    this.name = linux.elf.name;
  }

  encode(args: readonly CallArg[], input: Uint8Array | undefined, env: CallEnv): WireCall {
    // a Linux call travels as its input: arguments, environment, stdin (wire.ts)
    return { argv: [], input: encodeLinuxCall({ args: linuxArgs(args), env: env === undefined ? undefined : checkEnv(env), input: input ?? EMPTY }) };
  }

  run(_argv: bigint[], opts: CallOptions): CallReply {
    const call = decodeLinuxCall(opts.input ?? EMPTY);
    return this.#run(call.args, call.env, call.input, opts.interrupted, opts.record === true);
  }

  call(args: readonly CallArg[], input: Uint8Array | undefined, env: CallEnv, record: boolean): CallReply {
    return this.#run(linuxArgs(args), env, input, undefined, record);
  }

  #run(args: readonly string[], env: CallEnv, input: Uint8Array | undefined, interrupted: (() => boolean) | undefined, record: boolean): CallReply {
    if (!record) return linuxReply(this.linux.run({ args, env, input, interrupted }));
    this.#start ??= linuxStartOf(this.linux, this.spec.path);
    const r = runRecordedLinux(this.linux, this.#start, { args, env, input, interrupted });
    return { ...linuxReply(r), recording: r.recording };
  }

  cleanIdle(): number {
    return this.linux.cleanIdle();
  }

  close(): void {
    this.linux.close();
  }
}

const EMPTY: Uint8Array = new Uint8Array(0);

/** A Linux program's arguments: strings, or integers written as decimal strings. */
export function linuxArgs(args: readonly unknown[]): string[] {
  if (!Array.isArray(args)) throw new BadArgsError(`the arguments are ${describeValue(args)}, not a list`);
  return args.map((a, i) => {
    if (typeof a === "string") return a;
    if (typeof a === "bigint" || (typeof a === "number" && Number.isFinite(a))) return String(a);
    throw new BadArgsError(`argument ${i + 1} (${describeValue(a)}) is neither a string nor a number`);
  });
}

function linuxReply(r: LinuxRunResult): CallReply {
  return { value: BigInt(r.status), output: r.stdout, console: r.stderr, consoleTruncated: r.stderrTruncated, outputTruncated: r.stdoutTruncated, exits: r.exits };
}
