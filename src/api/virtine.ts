// The public virtine: what `import { Virtine } from "wasp"` gives. A function whose every call runs
// in a VM of its own — on the calling thread (`invokeSync`, `callSync`, `runSync`) or on a worker
// thread so the event loop never blocks (`invoke`, `call`, `run`, with an AbortSignal). Its engine
// is a Runner (native and raw images, snapshot files) or a LinuxProgram (static Linux executables,
// C source): for a Linux program a call's arguments are strings, its input is stdin, its output
// stdout, its console stderr and its value the exit status.
import { basename, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { BadArgsError, BadOutputError, ClosedError } from "../errors.ts";
import { escapeGuestLine } from "../guest-text.ts";
import { compileZig, type ZigOptions } from "../image/zig.ts";
import { parseImage } from "../image/image.ts";
import { SnapshotFile, isSnapshotFile } from "../snapshot/file.ts";
import { systemKvm } from "../kvm/system.ts";
import { Runner, describeValue, type RunnerOptions } from "../virtine/runner.ts";
import { imageBytes, readHead } from "../image/file.ts";
import { isElf, parseElf } from "../linux/elf.ts";
import { compileC, type COptions } from "../linux/c.ts";
import { compileRustImage, type RustOptions } from "../image/rust.ts";
import { compileRust } from "../linux/rust.ts";
import { MAX_MEMORY } from "../image/image.ts";
import { LinuxProgram, grantedFiles, type LinuxOptions } from "../virtine/linux.ts";
import { linuxMemory } from "../kinds/linux.ts";
import { ENGINE_OPTION_KEYS, type EngineOptions, type VirtineSpec } from "./channel.ts";
import { WorkerPool, type CallReply, type PoolVirtine } from "./workers.ts";
import { callEngine, type CallEngine } from "./engine.ts";
import { JsVirtine, type JsOptions } from "./js.ts";
import { JS_PROGRAM } from "../js/engine.ts";
import { PyVirtine, type PyOptions } from "./python.ts";
import { PY_PROGRAM } from "../python/runtime.ts";

/** An integer argument: a `number` (a safe integer) or a `bigint`; negative ones travel as two's complement. */
export type Arg = number | bigint;

/**
 * A virtine's options: the engine's (RunnerOptions, documented there: memory, timeoutMs, allow,
 * maxOutput, snapshot, poolSize, dataSize, stackSize — the one declaration of each and its
 * default), and how it is loaded and run here.
 */
export interface VirtineOptions extends EngineOptions {
  /**
   * host functions as closures (RunnerOptions.hostFunctions): they run on the calling thread, so
   * they serve `invokeSync`/`callSync`/`runSync`; calls on workers need them as `hostModule`
   */
  hostFunctions?: RunnerOptions["hostFunctions"];
  /** take an image file or bytes as a raw real-mode image whatever they look like (text and ELF are refused otherwise) */
  raw?: boolean;
  /** the worker threads that run `invoke`/`call`/`run` (default: WorkerPool.shared(), one per core) */
  workers?: WorkerPool;
}

export interface CallOptions {
  /** stops the call: a queued one is dropped, a running guest is interrupted; rejects with `signal.reason` */
  signal?: AbortSignal;
}

export interface RunRequest {
  /** integers for a native guest; strings for a Linux program (argv[1..]; numbers are turned into strings) */
  args?: readonly (Arg | string)[];
  /** bytes for the guest (`virtine.input()` in the Zig SDK; a Linux program's stdin); a string is sent as UTF-8 */
  input?: Uint8Array | string;
  /** a Linux program's environment for this call (default: the virtine's `env`) */
  env?: readonly string[] | Readonly<Record<string, string>>;
  /**
   * record the call (a native image or its snapshot file, on this thread or a worker; a Linux
   * program or its snapshot file, on this thread):
   * `Result.recording`, or a failed call's error's `recording` — what `wasp replay` runs again
   * (docs/recording-format.md)
   */
  record?: boolean;
}

export interface Result {
  /** the guest's u64 result (its `main`'s return value; the output's length for a `[]const u8` main) */
  value: bigint;
  /** the bytes the guest wrote to its output */
  output: Uint8Array;
  /** what the guest printed (UTF-8, invalid bytes replaced), not escaped: escapeGuestText before a terminal */
  console: string;
  /** true when console output passed `maxOutput` and the rest was dropped */
  consoleTruncated: boolean;
  /** VM exits the call took (1 for a pure computation; the host's own interruptions not counted) */
  exits: number;
  /**
   * how long the call ran, µs: its VM's run — guest code, its exits and the host's handling of them
   * — on the thread that ran it; a call on a worker spent the rest of its time waiting for the
   * worker and being handed over
   */
  runMicros: number;
  /** a Linux program's exit status (also `value`); undefined for other images */
  status?: number;
  /** a Linux program's stdout (`output`) went past `maxOutput` and the rest was dropped */
  outputTruncated?: boolean;
  /** the call's recording, when it was run with `record: true` */
  recording?: Uint8Array;
}

/** What `call` takes: bytes, a string, or any JSON value. */
export type Data = Uint8Array | string | Json;
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
/** What `call` gives back: bytes for bytes, a string for a string, parsed JSON for JSON. */
export type DataOut<T> = T extends Uint8Array ? Uint8Array : T extends string ? string : Json;

let nextId = 1;

/**
 * What src/api/js.ts needs of a Virtine and no user does (not exported by src/index.ts): a
 * virtine of an executable's bytes under a given name, a snapshot file loaded with JavaScript
 * virtines' allowed, and the engine on this thread.
 */
export const virtineInternals = {} as {
  fromElf(bytes: Uint8Array, name: string, options: VirtineOptions, path?: string): Virtine;
  load(path: string, options: VirtineOptions, runtime?: "js" | "python"): Promise<Virtine>;
  linuxOf(v: Virtine): LinuxProgram | undefined;
};

export class Virtine implements Disposable, AsyncDisposable {
  /** the image's name */
  readonly name: string;
  /** what it runs: an image of wasp's ("native", "raw"), a snapshot file of one, or a static Linux executable (or its snapshot file) */
  readonly kind: "native" | "raw" | "snapshot" | "linux";
  readonly #pooled: PoolVirtine;
  readonly #workers: WorkerPool;
  /** the engine of calls made on this thread (also what validated the options at load) */
  readonly #local: CallEngine;
  /** a snapshot file's sealed copy, shared with the workers: closed once they have all let go */
  readonly #file: SnapshotFile | undefined;
  #closed = false;
  /** host functions given as closures: calls on workers cannot reach them */
  readonly #closures: boolean;

  static {
    virtineInternals.fromElf = (bytes, name, options, path) => Virtine.#fromElfBytes(bytes, name, options, path);
    virtineInternals.load = (path, options, runtime) => Virtine.#load(path, options, runtime);
    virtineInternals.linuxOf = (v) => v.#local.linux;
  }

  private constructor(local: Runner | LinuxProgram, spec: VirtineSpec, options: VirtineOptions, file?: SnapshotFile) {
    this.#local = callEngine(local, spec);
    this.#file = file;
    this.name = this.#local.name;
    // a Linux program's calls are Linux calls, from an executable or its snapshot file alike
    this.kind = this.#local.kind;
    this.#workers = options.workers ?? WorkerPool.shared();
    const { workers: _, ...engine } = options;
    this.#pooled = { id: nextId++, spec, options: engineOptions(engine) };
    this.#closures = options.hostFunctions !== undefined && Object.keys(options.hostFunctions).length > 0;
  }

  /**
   * Loads a virtine from an image file (native or raw), a snapshot file (`wasp snapshot -o`), a
   * static Linux executable, or the bytes of an image or executable. Options are checked here: a
   * bad image, file or option rejects with its WaspError.
   */
  static async load(source: string | URL | Uint8Array, options: VirtineOptions = {}): Promise<Virtine> {
    if (source instanceof Uint8Array) {
      if (isSnapshotFile(source)) throw new BadArgsError("a snapshot file is loaded by its path, so that it can be mapped: pass the path");
      if (isElf(source) && !options.raw) return Virtine.#fromElfBytes(source, "program", options);
      return Virtine.#fromImageBytes(source, "image", options);
    }
    return Virtine.#load(source instanceof URL ? fileURLToPath(source) : String(source), options);
  }

  /**
   * A JavaScript virtine: `source` is an ES module whose default export is the handler
   * (`export default (input) => output`, may return a Promise). It runs in QuickJS, one VM per
   * call: the module is compiled and the `warmup` inputs handed to the handler once per thread,
   * then every call resumes that warm engine from its snapshot. Arguments and results travel as
   * JSON. A module that does not parse rejects with a JsSyntaxError (line, column); docs/js.md.
   */
  static fromJs(source: string | Uint8Array, options: JsOptions = {}): Promise<JsVirtine> {
    return JsVirtine.fromSource(source, options);
  }

  /** A JavaScript virtine from its snapshot file (`wasp snapshot handler.js -o FILE`, `JsVirtine.writeSnapshot`). */
  static loadJs(path: string | URL, options: Omit<JsOptions, "warmup" | "name" | "heapLimit"> = {}): Promise<JsVirtine> {
    return JsVirtine.fromSnapshotFile(path instanceof URL ? fileURLToPath(path) : String(path), options);
  }

  /**
   * A Python virtine: `source` is a module defining `handler(event)`, run by the host's unmodified
   * python3 (`python`, else the first python3 on PATH), one VM per call: the module is imported and
   * the `warmup` inputs handed to the handler once per thread, then every call resumes that warm
   * interpreter from its snapshot. Arguments and results travel as JSON; an exception rejects with
   * a PyError carrying its traceback (docs/python.md).
   */
  static fromPython(source: string | Uint8Array, options: PyOptions = {}): Promise<PyVirtine> {
    return PyVirtine.fromSource(source, options);
  }

  /** A Python virtine from its snapshot file (`wasp snapshot handler.py -o FILE`, `PyVirtine.writeSnapshot`). */
  static loadPython(path: string | URL, options: Omit<PyOptions, "warmup" | "name"> = {}): Promise<PyVirtine> {
    return PyVirtine.fromSnapshotFile(path instanceof URL ? fileURLToPath(path) : String(path), options);
  }

  static async #load(given: string, options: VirtineOptions, runtime?: "js" | "python"): Promise<Virtine> {
    const path = resolve(given);
    // what the file is, from its first bytes: a snapshot file is never read whole (it is mapped), an
    // image file only if it can fit the guest memory it would get
    const file = readHead(path);
    if (isSnapshotFile(file.head)) {
      // opened once here: every thread restores this very copy, whatever happens to the path later
      const snapshot = new SnapshotFile(path, systemKvm());
      try {
        if (snapshot.info.linux) {
          if (runtime !== "python" && snapshot.info.imageName === PY_PROGRAM) throw new BadArgsError(`${basename(path)} is the snapshot of a Python virtine: load it with Virtine.loadPython`);
          // a Linux program's: the files it holds open are granted again, read once here
          const opts = withGrantedFiles(options);
          const local = LinuxProgram.fromSnapshotFile(snapshot.loaded, localLinuxOptions(opts));
          if (runtime !== "js" && local.elf.name === JS_PROGRAM) {
            local.close();
            throw new BadArgsError(`${basename(path)} is the snapshot of a JavaScript virtine: load it with Virtine.loadJs`);
          }
          return new Virtine(local, { kind: "snapshot", file: snapshot.loaded, path }, opts, snapshot);
        }
        if (options.env !== undefined || options.dirs !== undefined) throw new BadArgsError(`${basename(path)}: ${options.env !== undefined ? "env" : "dirs"} is for Linux programs, not a snapshot of a ${snapshot.info.native ? "native" : "raw"} image`);
        const opts = withGrantedFiles(options);
        const local = Runner.fromSnapshotFile(snapshot.loaded, localOptions(opts));
        return new Virtine(local, { kind: "snapshot", file: snapshot.loaded, path }, opts, snapshot);
      } catch (e) {
        snapshot.close();
        throw e;
      }
    }
    if (isElf(file.head) && !options.raw) return Virtine.#fromElfBytes(imageBytes(file, linuxMemory(options.memory, true)), basename(path), options, path);
    const bytes = imageBytes(file, options.memory);
    return Virtine.#fromImageBytes(bytes, basename(path), options, path);
  }

  /**
   * A virtine of C source in the script (a whole program: `int main(int argc, char **argv)`),
   * compiled with the bundled zig cc into a static x86-64 Linux executable (musl) and cached by a
   * hash of source, flags and compiler: its calls take string arguments and stdin and give stdout,
   * stderr and the exit status. A compile error rejects with a CompileError carrying the
   * compiler's messages.
   */
  static async fromC(source: string, options: VirtineOptions & COptions = {}): Promise<Virtine> {
    const { zig, cacheDir, name, optimize, flags, fileName, ...rest } = options;
    const compiled = await compileC(source, { zig, cacheDir, name, optimize, flags, fileName });
    return Virtine.#fromElfBytes(compiled.elf.bytes, name ?? "inline", rest);
  }

  /**
   * A virtine of Rust source in the script, compiled by the rustc on PATH (or `rustc`) with the
   * SDK's crate `wasp` and cached like C: a program with `std` (`fn main()`) becomes a static Linux
   * executable whose calls take string arguments and stdin and give stdout and the exit status; with
   * `native: true`, a `#![no_std]` file's `pub extern "C" fn main(...) -> u64` becomes a native
   * image whose calls take integers. No rustc, or a source that does not compile: a CompileError.
   */
  static async fromRust(source: string, options: VirtineOptions & RustOptions & { native?: boolean } = {}): Promise<Virtine> {
    const { rustc, zig, cacheDir, name, optimize, fileName, native, ...rest } = options;
    if (native === true) {
      const compiled = await compileRustImage(source, { rustc, zig, cacheDir, name, optimize, fileName });
      return Virtine.#fromImageBytes(compiled.image.bytes, name ?? "inline", rest);
    }
    const compiled = await compileRust(source, { rustc, cacheDir, name, optimize, fileName });
    return Virtine.#fromElfBytes(compiled.elf.bytes, name ?? "inline", rest);
  }

  static #fromElfBytes(bytes: Uint8Array, name: string, options: VirtineOptions, path?: string): Virtine {
    if (options.dataSize !== undefined) throw new BadArgsError(`${name} is a Linux program: its input is stdin, it has no data window (dataSize)`);
    const elf = parseElf(bytes, name, MAX_MEMORY);
    const opts = withGrantedFiles(options);
    const local = new LinuxProgram(elf, { ...localLinuxOptions(opts), ...(path !== undefined && { origin: path }) });
    // a dynamically linked program's libraries, found once here: every worker gets the same bytes
    if (local.interp) opts.files = Object.fromEntries(local.files);
    return new Virtine(local, { kind: "linux", bytes, name, ...(path !== undefined && { path }), ...(local.interp && { interpreter: local.interp.bytes }) }, opts);
  }

  /**
   * A virtine of Zig source in the script (`pub fn main(x: u64) u64 { return x * x; }`), compiled
   * with the bundled zig and the guest SDK and cached by a hash of source, SDK and compiler. A
   * compile error rejects with a CompileError (`WASP_COMPILE`) carrying the compiler's messages.
   */
  static async fromZig(source: string, options: VirtineOptions & ZigOptions = {}): Promise<Virtine> {
    const { zig, cacheDir, name, optimize, ...rest } = options;
    const compiled = await compileZig(source, { zig, cacheDir, name, optimize });
    return Virtine.#fromImageBytes(compiled.image.bytes, name ?? "inline", rest);
  }

  static #fromImageBytes(bytes: Uint8Array, name: string, options: VirtineOptions, path?: string): Virtine {
    if (options.env !== undefined || options.dirs !== undefined) throw new BadArgsError(`${name}: ${options.env !== undefined ? "env" : "dirs"} is for Linux programs; a wasp image takes integer arguments and input`);
    const raw = options.raw === true;
    const image = parseImage(bytes, name, { raw });
    const opts = withGrantedFiles(options);
    const local = new Runner(image, localOptions(opts));
    return new Virtine(local, { kind: "image", bytes: image.bytes, name, raw, ...(path !== undefined && { path }) }, opts);
  }

  // -- on the calling thread --------------------------------------------------------------------

  /** Runs a call on this thread (blocking it for the call's length); the guest's u64 result. */
  invokeSync(...args: (Arg | string)[]): bigint {
    return this.#runLocal(args, undefined, undefined).value;
  }

  /** `call` on this thread. */
  callSync<T extends Data>(input: T): DataOut<T> {
    return decodeData(input, this.#runLocal([], encodeData(input), undefined).output);
  }

  /** A call on this thread with everything it gave back. */
  runSync(request: RunRequest = {}): Result {
    const { args, input, env } = checkRequest(request);
    if (request.record) return this.#runRecorded(args, input, env);
    return toResult(this.#runLocal(args, input, env), this.kind === "linux");
  }

  /** `runSync` with `record: true`: the call run with a Recorder, its recording in the result or on the error. */
  #runRecorded(args: readonly (Arg | string)[], input: Uint8Array | undefined, env: RunRequest["env"]): Result {
    if (this.#closed) throw new ClosedError("virtine");
    const t = Bun.nanoseconds();
    const r = this.#local.call(args, input, env, true);
    r.runMicros = Math.round((Bun.nanoseconds() - t) / 1000);
    return toResult(r, this.kind === "linux");
  }


  // -- on a worker thread -----------------------------------------------------------------------

  /**
   * Runs a call on a worker thread: integer arguments in, the guest's u64 result out. The last
   * argument may be `{ signal }` to cancel it.
   */
  invoke(...params: [...args: (Arg | string)[], options: CallOptions] | (Arg | string)[]): Promise<bigint> {
    const last = params[params.length - 1];
    const hasOptions = typeof last === "object" && last !== null;
    const args = (hasOptions ? params.slice(0, -1) : params) as (Arg | string)[];
    const options = hasOptions ? (last as CallOptions) : {};
    return this.#submit(args, undefined, undefined, options.signal).then((r) => r.value);
  }

  /**
   * Hands the guest data and returns its output, on a worker thread: bytes give bytes back, a
   * string a string (UTF-8), anything else is sent as JSON and the output parsed as JSON.
   */
  call<T extends Data>(input: T, options: CallOptions = {}): Promise<DataOut<T>> {
    let bytes: Uint8Array;
    try {
      bytes = encodeData(input);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#submit([], bytes, undefined, options.signal).then((r) => decodeData(input, r.output));
  }

  /** A call on a worker thread with everything it gave back. */
  run(request: RunRequest & CallOptions = {}): Promise<Result> {
    let checked;
    try {
      checked = checkRequest(request);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#submit(checked.args, checked.input, checked.env, request.signal, request.record === true).then((r) => toResult(r, this.kind === "linux"));
  }

  // -- lifetime ---------------------------------------------------------------------------------

  /**
   * Closes the virtine: calls still in the queue reject with ClosedError, calls a worker already
   * holds finish, later calls are refused. This thread's VMs close now, a worker's once it has
   * served the calls it held (await `closeAsync()` or `[Symbol.asyncDispose]` to know they have).
   */
  close(): void {
    void this.closeAsync();
  }

  /** Closes the virtine and resolves once every worker has closed its VMs of it. */
  async closeAsync(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#local.close();
    try {
      await this.#workers.release(this.#pooled);
    } finally {
      this.#file?.close();
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.closeAsync();
  }

  get closed(): boolean {
    return this.#closed;
  }

  // ---------------------------------------------------------------------------------------------

  #runLocal(args: readonly (Arg | string)[], input: Uint8Array | undefined, env: RunRequest["env"]): CallReply {
    if (this.#closed) throw new ClosedError("virtine");
    const t = Bun.nanoseconds();
    const r = this.#local.call(args, input, env, false);
    r.runMicros = Math.round((Bun.nanoseconds() - t) / 1000);
    return r;
  }


  #submit(args: readonly (Arg | string)[], input: Uint8Array | undefined, env: RunRequest["env"], signal: AbortSignal | undefined, record = false): Promise<CallReply> {
    if (this.#closed) return Promise.reject(new ClosedError("virtine"));
    if (this.#closures) {
      return Promise.reject(new BadArgsError("this virtine's host functions are closures, which run only on the thread that made it: call it with invokeSync/callSync/runSync, or give the functions as a module (hostModule) that every worker imports"));
    }
    try {
      const call = this.#local.encode(args, input, env);
      return this.#workers.submit(this.#pooled, call.argv, call.input, signal, record);
    } catch (e) {
      return Promise.reject(e);
    }
  }
}

/** The options with granted files checked and host paths read, once, here: every thread gets the same bytes. */
function withGrantedFiles(options: VirtineOptions): VirtineOptions {
  return { ...options, files: options.files && Object.fromEntries(grantedFiles(options.files)) };
}

/** The engine's options alone (what travels to the workers). */
function engineOptions(o: VirtineOptions): EngineOptions {
  const e = Object.fromEntries(ENGINE_OPTION_KEYS.map((k) => [k, o[k]])) as EngineOptions;
  // a module is imported by path on every thread: make it absolute here, where the caller's cwd is
  if (typeof e.hostModule === "string" && !e.hostModule.startsWith("file:")) e.hostModule = resolve(e.hostModule);
  // so are granted directories' host paths
  if (e.dirs !== undefined && typeof e.dirs === "object" && e.dirs !== null) e.dirs = Object.fromEntries(Object.entries(e.dirs).map(([g, h]) => [g, typeof h === "string" ? resolve(h) : h]));
  return e;
}

/** The options of the engine on the calling thread: the engine's, and the closures. */
function localOptions(o: VirtineOptions): RunnerOptions {
  const { env: _e, dirs: _d, ...runner } = engineOptions(o);
  return { ...runner, hostFunctions: o.hostFunctions };
}

/** The options of a Linux program on the calling thread. */
function localLinuxOptions(o: VirtineOptions): LinuxOptions {
  const { dataSize: _, ...linux } = engineOptions(o);
  return { ...linux, hostFunctions: o.hostFunctions };
}

function encodeData(input: Data): Uint8Array {
  if (input instanceof Uint8Array) return input;
  if (typeof input === "string") return new TextEncoder().encode(input);
  const text = JSON.stringify(input);
  if (text === undefined) throw new BadArgsError("the input is not JSON (undefined, a function or a symbol)");
  return new TextEncoder().encode(text);
}

function decodeData<T extends Data>(input: T, output: Uint8Array): DataOut<T> {
  if (input instanceof Uint8Array) return output as DataOut<T>;
  const text = new TextDecoder().decode(output);
  if (typeof input === "string") return text as DataOut<T>;
  try {
    return JSON.parse(text) as DataOut<T>;
  } catch (e) {
    const shown = text.length > 80 ? `${text.slice(0, 80)}…` : text;
    // the parser's message quotes the guest's text too: both escaped to one safe line
    throw new BadOutputError(`the guest's output is not JSON (${escapeGuestLine((e as Error).message)}): ${escapeGuestLine(shown)}`);
  }
}

/** A run request as the engine takes it, checked at run time (Bun does not check TypeScript's types). */
function checkRequest(request: RunRequest): { args: readonly (Arg | string)[]; input: Uint8Array | undefined; env: RunRequest["env"] } {
  if (typeof request !== "object" || request === null) throw new BadArgsError(`a run request is an object ({ args, input }), not ${describeValue(request)}`);
  const { args = [], input, env } = request;
  if (input === undefined || input instanceof Uint8Array) return { args, input, env };
  if (typeof input === "string") return { args, input: new TextEncoder().encode(input), env };
  throw new BadArgsError(`input is ${describeValue(input)}: give a Uint8Array or a string (sent as UTF-8)`);
}

function toResult(r: CallReply, linux: boolean): Result {
  const result: Result = { value: r.value, output: r.output, console: new TextDecoder().decode(r.console), consoleTruncated: r.consoleTruncated, exits: r.exits, runMicros: r.runMicros ?? 0 };
  if (r.recording) result.recording = r.recording;
  if (linux) {
    result.status = Number(r.value);
    result.outputTruncated = r.outputTruncated ?? false;
  }
  return result;
}
