// Python virtines: `Virtine.fromPython(source)` and `Virtine.loadPython(snapshotFile)`. The user's
// module runs in the host's unmodified python3, a dynamically linked Linux program in a VM of its
// own per call (src/python/runtime.ts): the first call on a thread imports the module and runs the
// warm-up calls, then the interpreter snapshots itself; every later call resumes that warm
// interpreter with its own arguments — Replayable Execution on a real managed runtime. Arguments
// and results travel as JSON; an exception comes back as a PyError with its traceback.
import { BadArgsError, WaspError } from "../errors.ts";
import { encodeJsCall, JS_LOAD_ONLY } from "../js/engine.ts";
import { decodePyReply, findPython, checkPyFileName, pyArgs, pyFiles, savedPyName, PY_DEFAULT_MEMORY, PY_DEFAULT_STACK, PY_PROGRAM } from "../python/runtime.ts";
import { DEFAULT_MAX_OUTPUT } from "../hypercall/console.ts";
import type { SnapshotFileInfo } from "../snapshot/file.ts";
import { virtineInternals, type CallOptions, type Result, type Virtine, type VirtineOptions } from "./virtine.ts";

/** A Python virtine's options: a virtine's (memory, timeoutMs, allow, poolSize, snapshot, workers...) and the module's. */
export interface PyOptions extends Omit<VirtineOptions, "env" | "files" | "dirs" | "raw" | "dataSize" | "hostFunctions" | "hostModule"> {
  /** inputs handed to the handler, one call each, before the snapshot (so every call starts warm) */
  warmup?: readonly unknown[];
  /** the module's file name in tracebacks (default "handler.py") */
  name?: string;
  /** the python3 executable (default: the first python3 on PATH) */
  python?: string;
}

/** A Python call with everything it gave back. */
export interface PyResult {
  /** the handler's result, through JSON (undefined when it returned None... and nothing was written) */
  value: unknown;
  /** what the handler printed (its sys.stdout and sys.stderr, UTF-8): data, escape it before a terminal */
  console: string;
  consoleTruncated: boolean;
  /** VM exits the call took */
  exits: number;
  /** how long the call ran on its thread, µs */
  runMicros: number;
  /** the call's recording, when it was run with `record: true` */
  recording?: Uint8Array;
}

export interface PyRunRequest {
  /** the handler's arguments (default: none); each travels as JSON */
  args?: readonly unknown[];
  /** record the call (a Linux program's recording: docs/recording-format.md) */
  record?: boolean;
}

export class PyVirtine implements Disposable, AsyncDisposable {
  /** the module's file name */
  readonly name: string;
  readonly kind = "python" as const;
  /** the python3 executable on the host */
  readonly python: string;
  readonly #inner: Virtine;
  /** the interpreter's arguments: the same for every call (a resumed call may not change them) */
  readonly #args: string[];
  readonly #maxOutput: number;

  private constructor(inner: Virtine, name: string, python: string, args: string[], maxOutput: number) {
    this.#inner = inner;
    this.name = name;
    this.python = python;
    this.#args = args;
    this.#maxOutput = maxOutput;
  }

  /** See `Virtine.fromPython`. */
  static async fromSource(source: string | Uint8Array, options: PyOptions = {}): Promise<PyVirtine> {
    if (typeof options !== "object" || options === null) throw new BadArgsError("the options are an object");
    const { warmup, name = "handler.py", python, ...rest } = options;
    for (const k of ["env", "files", "dirs", "raw", "dataSize", "hostFunctions", "hostModule"]) {
      if ((rest as Record<string, unknown>)[k] !== undefined) throw new BadArgsError(`${k} is not an option of a Python virtine`);
    }
    const fileName = checkPyFileName(name);
    const files = pyFiles(source, warmup);
    const install = findPython(python);
    const inner = virtineInternals.fromElf(install.bytes, PY_PROGRAM, { memory: PY_DEFAULT_MEMORY, stackSize: PY_DEFAULT_STACK, ...rest, files, dirs: install.dirs, env: install.env }, install.path);
    const v = new PyVirtine(inner, fileName, install.path, pyArgs(fileName), rest.maxOutput ?? DEFAULT_MAX_OUTPUT);
    try {
      // imported (and warmed up) now, on a worker, so that an error in the module rejects here
      await v.#call(JS_LOAD_ONLY, undefined);
    } catch (e) {
      await inner.closeAsync();
      throw e;
    }
    return v;
  }

  /** See `Virtine.loadPython`: the python3 it was taken with must be the one found (`python`, else PATH's), with the same standard library. */
  static async fromSnapshotFile(path: string, options: Omit<PyOptions, "warmup" | "name"> = {}): Promise<PyVirtine> {
    const { python, ...rest } = options;
    const install = findPython(python);
    const inner = await virtineInternals.load(path, { ...rest, dirs: install.dirs } as VirtineOptions, "python");
    try {
      const local = virtineInternals.linuxOf(inner);
      if (!local || local.elf.name !== PY_PROGRAM) throw new BadArgsError(`${path}: not the snapshot of a Python virtine (wasp snapshot handler.py -o FILE)`);
      // the saved arguments are the guest's: checked, and the name shown in messages only
      const name = savedPyName(local.snapshotArgs ?? [], path);
      return new PyVirtine(inner, name, install.path, [], local.maxOutput);
    } catch (e) {
      await inner.closeAsync();
      throw e;
    }
  }

  // -- calls ----------------------------------------------------------------------------------

  /** Calls handler(input) (none: handler()) on a worker; its result through JSON. */
  call(input?: unknown, options: CallOptions = {}): Promise<unknown> {
    return this.run({ args: input === undefined ? [] : [input], ...options }).then((r) => r.value);
  }

  /** Calls the handler with these arguments on a worker; its result through JSON. */
  invoke(...args: unknown[]): Promise<unknown> {
    return this.run({ args }).then((r) => r.value);
  }

  /** A call on a worker with everything it gave back. */
  run(request: PyRunRequest & CallOptions = {}): Promise<PyResult> {
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
  runSync(request: PyRunRequest = {}): PyResult {
    const stdin = encodeJsCall(checkRequest(request));
    return this.#decode(this.#inner.runSync({ args: this.#args, input: stdin, record: request.record === true }));
  }

  /** Writes the warm interpreter — the module imported, the warm-up calls made — to a snapshot file that `Virtine.loadPython` and `wasp invoke FILE` start from. */
  writeSnapshot(path: string): SnapshotFileInfo {
    const local = virtineInternals.linuxOf(this.#inner);
    if (!local) throw new BadArgsError("not a Python virtine's interpreter");
    if (!local.snapshotTaken) this.#decode(this.#inner.runSync({ args: this.#args, input: JS_LOAD_ONLY }));
    return local.writeSnapshot(path);
  }

  #call(stdin: Uint8Array, signal: AbortSignal | undefined, record = false): Promise<PyResult> {
    return this.#inner.run({ args: this.#args, input: stdin, signal, record }).then((r) => this.#decode(r));
  }

  #decode(r: Result): PyResult {
    let value: unknown;
    try {
      value = decodePyReply({ status: r.status ?? Number(r.value), stdout: r.output, stdoutTruncated: r.outputTruncated ?? false }, { maxOutput: this.#maxOutput, fileName: this.name, stderr: new TextEncoder().encode(r.console) });
    } catch (e) {
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

function checkRequest(request: PyRunRequest): readonly unknown[] {
  if (typeof request !== "object" || request === null) throw new BadArgsError("a run request is an object ({ args })");
  const { args = [] } = request;
  if (!Array.isArray(args)) throw new BadArgsError("a Python call's args are a list of JSON values");
  return args;
}
