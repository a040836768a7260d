// JavaScript virtines: `Virtine.fromJs(source)` and `Virtine.loadJs(snapshotFile)`. The user's ES
// module runs in QuickJS, a static Linux program in a VM of its own per call (src/js/engine.ts):
// the first call on a thread compiles the module and runs the warm-up calls, then the engine
// snapshots itself; every later call resumes that warm engine with its own arguments. A call's
// arguments and result travel as JSON; errors come back typed (JsSyntaxError, JsError,
// JsMemoryError, JsStackError; the deadline is a TimeoutError).
import { BadArgsError, WaspError } from "../errors.ts";
import { checkFileName, decodeJsReply, savedJsSettings, encodeJsCall, jsArgs, jsEngine, jsFault, jsFiles, jsLimits, JS_LOAD_ONLY, JS_PROGRAM, type JsLimits } from "../js/engine.ts";
import { DEFAULT_MAX_OUTPUT } from "../hypercall/console.ts";
import type { SnapshotFileInfo } from "../snapshot/file.ts";
import { virtineInternals, type CallOptions, type Result, type Virtine, type VirtineOptions } from "./virtine.ts";

/** A JavaScript virtine's options: a virtine's (memory, timeoutMs, allow, poolSize, snapshot, workers...) and the module's. */
export interface JsOptions extends Omit<VirtineOptions, "env" | "files" | "raw" | "dataSize" | "hostFunctions" | "hostModule"> {
  /** inputs handed to the handler, one call each, before the snapshot (so every call starts warm) */
  warmup?: readonly unknown[];
  /** the module's file name in stacks and syntax errors (default "handler.js") */
  name?: string;
  /** the engine's heap limit in bytes (default and most: half the virtine's memory) */
  heapLimit?: number;
}

/** A JavaScript call with everything it gave back. */
export interface JsResult {
  /** the handler's result, through JSON (undefined when it returned undefined) */
  value: unknown;
  /** what console.log / console.error printed (UTF-8): data, escape it before a terminal */
  console: string;
  consoleTruncated: boolean;
  /** VM exits the call took */
  exits: number;
  /** how long the call ran on its thread, µs (Result.runMicros) */
  runMicros: number;
  /** the call's recording, when it was run with `record: true` */
  recording?: Uint8Array;
}

export interface JsRunRequest {
  /** the handler's arguments (default: none); each travels as JSON */
  args?: readonly unknown[];
  /**
   * record the call: the engine's run as a Linux program's (docs/recording-format.md, version 2),
   * the module among its granted files; in `recording` of the result, or of a failed call's error
   * — what `wasp replay` runs again
   */
  record?: boolean;
}

export class JsVirtine implements Disposable, AsyncDisposable {
  /** the module's file name */
  readonly name: string;
  readonly kind = "js" as const;
  /** the engine's heap and stack limits */
  readonly limits: JsLimits;
  readonly #inner: Virtine;
  /** the engine's arguments: the same for every call (a resumed call may not change them) */
  readonly #args: string[];
  readonly #maxOutput: number;

  private constructor(inner: Virtine, name: string, limits: JsLimits, args: string[], maxOutput: number) {
    this.#inner = inner;
    this.name = name;
    this.limits = limits;
    this.#args = args;
    this.#maxOutput = maxOutput;
  }

  /** See `Virtine.fromJs`. */
  static async fromSource(source: string | Uint8Array, options: JsOptions = {}): Promise<JsVirtine> {
    if (typeof options !== "object" || options === null) throw new BadArgsError("the options are an object");
    const { warmup, name = "handler.js", heapLimit, ...rest } = options;
    for (const k of ["env", "files", "raw", "dataSize", "hostFunctions", "hostModule"]) {
      if ((rest as Record<string, unknown>)[k] !== undefined) throw new BadArgsError(`${k} is not an option of a JavaScript virtine`);
    }
    const fileName = checkFileName(name);
    const files = jsFiles(source, warmup);
    const inner = virtineInternals.fromElf(jsEngine(), JS_PROGRAM, { ...rest, files, env: [] });
    const { layout } = virtineInternals.linuxOf(inner)!;
    let limits: JsLimits;
    try {
      limits = jsLimits(layout.memory, layout.stack[1] - layout.stack[0], heapLimit);
    } catch (e) {
      await inner.closeAsync();
      throw e;
    }
    const args = jsArgs(fileName, limits);
    const v = new JsVirtine(inner, fileName, limits, args, rest.maxOutput ?? DEFAULT_MAX_OUTPUT);
    try {
      // compiled (and warmed up) now, on a worker, so that a syntax error rejects here
      await v.#call(JS_LOAD_ONLY, undefined);
    } catch (e) {
      await inner.closeAsync();
      throw e;
    }
    return v;
  }

  /** See `Virtine.loadJs`. */
  static async fromSnapshotFile(path: string, options: Omit<JsOptions, "warmup" | "name" | "heapLimit"> = {}): Promise<JsVirtine> {
    const inner = await virtineInternals.load(path, options as VirtineOptions, "js");
    try {
      const local = virtineInternals.linuxOf(inner);
      if (!local || local.elf.name !== JS_PROGRAM) throw new BadArgsError(`${path}: not the snapshot of a JavaScript virtine (wasp snapshot handler.js -o FILE)`);
      // the saved arguments are the guest's: checked, and the name shown in messages only
      const { name, limits } = savedJsSettings(local.snapshotArgs ?? [], path);
      return new JsVirtine(inner, name, limits, [], local.maxOutput);
    } catch (e) {
      await inner.closeAsync();
      throw e;
    }
  }

  // -- calls ----------------------------------------------------------------------------------

  /** Calls the handler with `input` (none: no argument) on a worker; its result through JSON. */
  call(input?: unknown, options: CallOptions = {}): Promise<unknown> {
    return this.run({ args: input === undefined ? [] : [input], ...options }).then((r) => r.value);
  }

  /** Calls the handler with these arguments on a worker; its result through JSON. */
  invoke(...args: unknown[]): Promise<unknown> {
    return this.run({ args }).then((r) => r.value);
  }

  /** A call on a worker with everything it gave back. */
  run(request: JsRunRequest & CallOptions = {}): Promise<JsResult> {
    let stdin: Uint8Array;
    try {
      stdin = encodeJsCall(checkRequest(request));
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#call(stdin, request.signal, request.record === true);
  }

  /** `call` on this thread (blocking it for the call's length). */
  callSync(input?: unknown): unknown {
    return this.runSync({ args: input === undefined ? [] : [input] }).value;
  }

  /** `invoke` on this thread. */
  invokeSync(...args: unknown[]): unknown {
    return this.runSync({ args }).value;
  }

  /** `run` on this thread. */
  runSync(request: JsRunRequest = {}): JsResult {
    const stdin = encodeJsCall(checkRequest(request));
    let r: Result;
    try {
      r = this.#inner.runSync({ args: this.#args, input: stdin, record: request.record === true });
    } catch (e) {
      throw withRecordingOf(e, jsFault(e, this.limits));
    }
    return this.#decode(r);
  }

  /**
   * Writes the warm engine — the module compiled, the warm-up calls made — to a snapshot file that
   * `Virtine.loadJs` and `wasp invoke FILE` start from.
   */
  writeSnapshot(path: string): SnapshotFileInfo {
    const local = virtineInternals.linuxOf(this.#inner);
    if (!local) throw new BadArgsError("not a JavaScript virtine's engine");
    if (!local.snapshotTaken) this.#decode(this.#inner.runSync({ args: this.#args, input: JS_LOAD_ONLY }));
    return local.writeSnapshot(path);
  }

  #call(stdin: Uint8Array, signal: AbortSignal | undefined, record = false): Promise<JsResult> {
    return this.#inner.run({ args: this.#args, input: stdin, signal, record }).then(
      (r) => this.#decode(r),
      (e) => {
        throw withRecordingOf(e, jsFault(e, this.limits));
      },
    );
  }

  #decode(r: Result): JsResult {
    let value: unknown;
    try {
      value = decodeJsReply({ status: r.status ?? Number(r.value), stdout: r.output, stdoutTruncated: r.outputTruncated ?? false }, { limits: this.limits, maxOutput: this.#maxOutput, fileName: this.name });
    } catch (e) {
      // the handler threw (or gave what JSON cannot carry): the recorded call is what to replay
      if (r.recording && e instanceof WaspError) e.recording = r.recording;
      throw e;
    }
    return { value, console: r.console, consoleTruncated: r.consoleTruncated, exits: r.exits, runMicros: r.runMicros, ...(r.recording && { recording: r.recording }) };
  }

  // -- lifetime -------------------------------------------------------------------------------

  close(): void {
    this.#inner.close();
  }

  closeAsync(): Promise<void> {
    return this.#inner.closeAsync();
  }

  get closed(): boolean {
    return this.#inner.closed;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.closeAsync();
  }
}

function checkRequest(request: JsRunRequest): readonly unknown[] {
  if (typeof request !== "object" || request === null) throw new BadArgsError("a run request is an object ({ args })");
  const { args = [] } = request;
  if (!Array.isArray(args)) throw new BadArgsError("a JavaScript call's args are a list of JSON values");
  return args;
}

/** `to` (an error made of `from`) with the recording `from` carried. */
function withRecordingOf(from: unknown, to: unknown): unknown {
  if (from instanceof WaspError && from.recording && to instanceof WaspError && to !== from) to.recording = from.recording;
  return to;
}
