// A virtine's engine on one thread: an image with its options, run once per run() in its own VM
// (the public `Virtine` of src/api/ drives one per thread that calls it). Calls take a warm
// shell from the image's pool, start from the image's snapshot (its entry state, or the state
// captured at the guest's `snapshot` hypercall), and give the shell back to be reset off the
// caller's path: memory, registers and FPU/SSE state all return to the snapshot.
import { Port } from "../abi/guest-abi.ts";
import { ConsoleSink, DEFAULT_MAX_OUTPUT } from "../hypercall/console.ts";
import { dispatchHypercall, type HypercallContext } from "../hypercall/handlers.ts";
import { Policy } from "../hypercall/policy.ts";
import { hostFunctionTable, type HostFunction } from "../hypercall/host-call.ts";
import { MIB, imageFootprint, type Image } from "../image/image.ts";
import { readImageFile } from "../image/file.ts";
import type { StackGuard } from "../image/boot.ts";
import { kindOf, kindOfMeta } from "../kinds/kinds.ts";
import type { ImageKind } from "../kinds/kind.ts";
import { systemKvm, type Kvm } from "../kvm/system.ts";
import { BadArgsError, PolicyViolationError } from "../errors.ts";
import { DeadlineTimer } from "./deadline.ts";
import type { DebugHook } from "./debug-hook.ts";
import { RUN_ON, runLoop, type CallExits } from "./run-loop.ts";
import { grantedFiles } from "./files.ts";
import type { ResetStrategy, Shell } from "../shell/shell.ts";
import { VirtineShells } from "./shells.ts";
import { ShellPool, type PoolStats } from "../shell/pool.ts";
import { Snapshot, guardOf, type SnapshotMeta } from "../snapshot/snapshot.ts";
import { SnapshotFile, type LoadedSnapshotFile, type SnapshotFileInfo } from "../snapshot/file.ts";
import type { ZigOptions } from "../image/zig.ts";

export const MAX_ARGS = 6;
/** Deadline of an invocation when none is given. */
export const DEFAULT_TIMEOUT_MS = 10_000;
/** Longest deadline accepted (a day); 0 means none. */
export const MAX_TIMEOUT_MS = 86_400_000;
export { DEFAULT_DATA_SIZE, DEFAULT_STACK_SIZE, MIN_STACK, planMemory } from "../kinds/native.ts";

export interface RunnerOptions {
  /** guest RAM in bytes (default: what the image asks for, else 16 MiB; at most 1 GiB) */
  memory?: number;
  /** hypercalls granted beyond the default (DEFAULT_GRANTS: exit, write, panic, snapshot) */
  allow?: readonly string[];
  /** cap on console output bytes per invocation (default 1 MiB); the excess is dropped */
  maxOutput?: number;
  /** deadline per invocation in milliseconds (default 10 s; 0: none) */
  timeoutMs?: number;
  /** honour the guest's `snapshot` hypercall (default true); false: every call starts at the entry */
  snapshot?: boolean;
  /** most warm shells kept for this image, per thread that runs it (default 4) */
  poolSize?: number;
  /** how a shell's memory returns to the snapshot (default "dirty-log"; "cow" for comparison) */
  resetStrategy?: ResetStrategy;
  /**
   * every call in a new VM of its own, closed right after (the CLI's single call): the cheapest
   * cold start — anonymous RAM, no dirty logging — but no pool and no snapshot capture
   */
  oneShot?: boolean;
  /**
   * give each shell a private copy of the snapshot's memory instead of a copy-on-write view of it
   * (no page sharing: the baseline of wasp's density measurements)
   */
  privateMemory?: boolean;
  /**
   * bytes at the top of guest RAM for a call's input and output (native images; default 1 MiB, or
   * what fits a smaller memory; a multiple of 4 KiB; the stack starts below). Untouched pages cost
   * nothing.
   */
  dataSize?: number;
  /**
   * bytes of stack for a native guest, below its data window (default 1 MiB, or what fits a smaller
   * memory; a multiple of 4 KiB, at least 64 KiB). Unmapped guard pages lie under it: an overflow
   * is a StackOverflowError, never a silent write into the heap.
   */
  stackSize?: number;
  /** the /dev/kvm handle to use (default: the process-wide one) */
  kvm?: Kvm;
  /**
   * TypeScript functions the guest may call by name (the `host` hypercall, granted with them):
   * synchronous, given the guest's integers (bigint), bytes and strings, returning one of those or
   * nothing. A function that throws fails only that call (HostFunctionError). Closures run on the
   * thread that made the virtine; for calls on workers give them as `hostModule`.
   */
  hostFunctions?: Readonly<Record<string, HostFunction>>;
  /** a module (absolute path or file URL) whose exported functions are host functions: every thread imports it */
  hostModule?: string;
  /**
   * read-only files a native guest may read with the `file` hypercall (`virtine.readFile`), by
   * absolute guest path: their bytes, or a host file's path (read now, once)
   */
  files?: Readonly<Record<string, Uint8Array | string>>;
}

/**
 * Sees every hypercall of a call (record and replay, src/virtine/record.ts): given the call's
 * hypercall number and arguments and the host's handler, it returns the value for the guest's RAX
 * (or undefined when the virtine has ended) — by running the handler (recording) or from a
 * recording (replay).
 */
export interface HypercallHook {
  hypercall(nr: bigint, a: bigint, b: bigint, ctx: HypercallContext, handle: () => bigint | undefined): bigint | undefined;
}

export interface RunOptions {
  /** record or replay this call's hypercalls */
  hook?: HypercallHook;
  /**
   * a debugger attached to this call (src/debug/, `wasp invoke --gdb`): the guest stops at its
   * start, the debugger's traps are not the guest's exits, and the call has no deadline; the
   * shell is discarded afterwards (the debugger may have written anywhere in the guest)
   */
  debug?: DebugHook;
  /** bytes for the guest to read (`virtine.input()` in the SDK): they must fit the data window */
  input?: Uint8Array;
  /**
   * asked when the thread's deadline signal interrupts the guest: true ends the call with a
   * CancelledError (how another thread stops a running call: it sets a flag, then signals)
   */
  interrupted?: () => boolean;
}

export interface RunResult {
  /** the guest's RAX at its final exit */
  value: bigint;
  /** the bytes the guest wrote to its output (`virtine.output()` in the SDK) */
  output: Uint8Array;
  /** console output */
  console: Uint8Array;
  /** true when console output went past the cap and the excess was dropped */
  consoleTruncated: boolean;
  /** VM exits this invocation took (1 for a pure computation); the host's own interruptions (a signal to the thread) are not counted */
  exits: number;
}

export class Runner {
  /** the image, when the virtine was made from one (not from a snapshot file) */
  readonly image: Image | undefined;
  /** what calls need to know of the image */
  readonly meta: SnapshotMeta;
  readonly memorySize: number;
  readonly policy: Policy;
  readonly maxOutput: number;
  readonly timeoutMs: number;
  readonly #deadline: DeadlineTimer;
  readonly snapshots: boolean;
  readonly oneShot: boolean;
  readonly #kvm: Kvm;
  readonly #console: ConsoleSink;
  /** what this image's kind does differently (kinds/): its plan, entry state, access, collect */
  readonly #kind: ImageKind;
  /** a native guest's stack and its guard, to tell a stack overflow from other page faults */
  readonly #stack: { guard: StackGuard; size: number } | undefined;
  readonly #ctx: HypercallContext;
  /** the state calls start from (the image's entry state, or a restored file's), its pool, a capture */
  readonly #shells: VirtineShells;
  /** the snapshot file this virtine was restored from (kept open: new shells map it) */
  #snapshotFile: SnapshotFile | undefined;
  #closed = false;
  /** a debugger is attached to the call running now */
  #debugging = false;

  /**
   * A virtine of an image, or of a snapshot restored from a file (`Runner.fromSnapshotFile`,
   * which hands the snapshot over: the virtine closes it).
   */
  constructor(source: Image | Snapshot, options: RunnerOptions = {}) {
    if (source instanceof Snapshot) {
      if (options.memory !== undefined && options.memory !== source.size) {
        throw new BadArgsError(`a snapshot's memory size is fixed (${source.size / MIB} MiB); --mem cannot change it`);
      }
      this.image = undefined;
      this.meta = source.meta;
      if (options.dataSize !== undefined && options.dataSize !== source.meta.dataSize) {
        throw new BadArgsError(`a snapshot's data window is fixed (${source.meta.dataSize} bytes); dataSize (--data-size) cannot change it`);
      }
      if (options.stackSize !== undefined && options.stackSize !== source.meta.stackSize) {
        throw new BadArgsError(`a snapshot's stack is fixed (${source.meta.stackSize} bytes); stackSize (--stack) cannot change it`);
      }
      this.memorySize = source.size;
      this.#kind = kindOfMeta(source.meta);
    } else {
      this.image = source;
      if (source.kind === "linux") throw new BadArgsError(`${source.name} is a Linux program: it runs with LinuxProgram (or Virtine.load), whose calls take string arguments and stdin`);
      const kind = kindOf(source.kind);
      this.#kind = kind;
      if (!kind.takesData && options.dataSize) throw new BadArgsError(`${source.name} is a ${kind.name} image: it takes no data, so it has no data window`);
      if (!kind.takesData && options.stackSize) throw new BadArgsError(`${source.name} is a ${kind.name} image: it sets up its own stack`);
      const plan = kind.plan(source, options.memory, options.dataSize, options.stackSize);
      this.memorySize = plan.memory;
      this.meta = { name: source.name, kind: source.kind, footprint: imageFootprint(source), dataSize: plan.dataSize, stackSize: plan.stackSize };
    }
    const guard = guardOf(this.meta, this.memorySize);
    this.#stack = guard && { guard, size: this.meta.stackSize };
    const hostFunctions = hostFunctionTable(options.hostFunctions, options.hostModule);
    const files = options.files === undefined ? undefined : grantedFiles(options.files);
    if (files && files.size > 0 && !this.#kind.readsFiles) throw new BadArgsError(`${this.meta.name} is a ${this.meta.kind} image: it cannot read files (files are for native images and Linux programs)`);
    // giving a virtine host functions grants it the hypercall that calls them (and only those
    // names); giving it files, the one that reads them (and only those files)
    const grants = [...(options.allow ?? [])];
    if (hostFunctions.size > 0) grants.push("host");
    if (files && files.size > 0) grants.push("file");
    this.policy = Policy.grant(grants);
    const maxOutput = options.maxOutput ?? DEFAULT_MAX_OUTPUT;
    if (!Number.isSafeInteger(maxOutput) || maxOutput < 0) throw new BadArgsError(`output cap ${maxOutput} is not a byte count`);
    this.maxOutput = maxOutput;
    this.#console = new ConsoleSink(maxOutput);
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0 || timeoutMs > MAX_TIMEOUT_MS) {
      throw new BadArgsError(`timeout ${timeoutMs} ms is not between 0 (none) and ${MAX_TIMEOUT_MS} ms`);
    }
    this.timeoutMs = timeoutMs;
    this.#kvm = options.kvm ?? systemKvm();
    this.#deadline = DeadlineTimer.forThisThread();
    this.snapshots = options.snapshot ?? true;
    this.oneShot = options.oneShot ?? false;
    this.#shells = new VirtineShells(
      this.#kvm,
      this.#deadline,
      () => this.#entrySnapshot(),
      { poolSize: options.poolSize, strategy: options.resetStrategy, privateCopy: options.privateMemory },
      source instanceof Snapshot ? source : undefined,
    );
    this.#ctx = {
      vcpu: undefined as never,
      guest: undefined as never,
      console: this.#console,
      exitValue: undefined,
      snapshot: () => this.#snapshotHypercall(),
      hostFunctions,
      files,
    };
  }

  /**
   * Restores a snapshot file (`wasp snapshot -o FILE`): every call starts from its captured state,
   * its memory mapped copy-on-write from the file's sealed copy (shared by every virtine and thread
   * of the process). Given a path, the virtine opens the file and closes it with itself; given a
   * file another object loaded (`SnapshotFile.loaded`), it uses that, which must stay open longer.
   */
  static fromSnapshotFile(source: string | LoadedSnapshotFile, options: RunnerOptions = {}): Runner {
    const file = typeof source === "string" ? new SnapshotFile(source, options.kvm ?? systemKvm()) : new SnapshotFile(source);
    let snapshot: Snapshot | undefined;
    try {
      snapshot = file.restore();
      const v = new Runner(snapshot, options);
      v.#snapshotFile = file;
      return v;
    } catch (e) {
      snapshot?.close();
      file.close();
      throw e;
    }
  }

  /**
   * A virtine of Zig source written in the script (`pub fn main(x: u64) u64 { return x * x; }`),
   * compiled with the bundled zig and the guest SDK, and cached: a second load of the same source
   * does not run the compiler. A source that does not compile rejects with a CompileError
   * (`WASP_COMPILE`) carrying the compiler's diagnostics.
   */
  static async fromZig(source: string, options: RunnerOptions & ZigOptions = {}): Promise<Runner> {
    // the compiler's module (the SDK's sources, node:os) only for this: ~1 ms of every process's start otherwise
    const { image } = await (await import("../image/zig.ts")).compileZig(source, options);
    return new Runner(image, options);
  }

  /** Loads an image file. */
  static fromFile(path: string, options: RunnerOptions = {}): Runner {
    return new Runner(readImageFile(path, { memory: options.memory }), options);
  }

  /** The image's pool of warm shells, created with its entry snapshot on first use. */
  get pool(): ShellPool {
    return this.#shells.pool;
  }

  /** Pre-provisions `n` warm shells (bounded by the pool size), off the path of later calls. */
  ensure(n: number): void {
    this.#shells.ensure(n);
  }

  /** Resets the shells that calls gave back, now (a worker does it when it has nothing else to do). */
  cleanIdle(): number {
    return this.#shells.cleanIdle();
  }

  get poolStats(): PoolStats {
    return this.#shells.stats;
  }

  /** The snapshot file this virtine was restored from (its header's facts), if any. */
  get snapshotFileInfo(): SnapshotFileInfo | undefined {
    return this.#snapshotFile?.info;
  }

  /** True once the guest's `snapshot` hypercall has been captured: calls resume there. */
  get snapshotTaken(): boolean {
    return this.#shells.snapshotTaken;
  }

  /**
   * Runs the image once with up to six integer arguments and, for a native image, input bytes in
   * its data window.
   */
  run(args: readonly (bigint | number)[] = [], opts: RunOptions = {}): RunResult {
    if (this.#closed) throw new BadArgsError("the virtine is closed");
    const argv = checkArgs(args);
    const { input } = opts;
    if (input && input.length > 0) this.checkInput(input);
    const shell = this.#shells.acquire(this.oneShot);
    shell.writeInfo(argv, this.meta.footprint, input);
    shell.loadRegisters(argv);
    const ctx = this.#ctx;
    ctx.vcpu = shell.vcpu;
    ctx.guest = shell.guest;
    ctx.exitValue = undefined;
    const { debug } = opts;
    if (debug && this.#kind.privileged) throw new BadArgsError(`${this.meta.name} is a ${this.#kind.name} image: it runs privileged, with its own exception handling, so gdb cannot attach to it (native images and Linux programs can)`);
    this.#debugging = debug !== undefined;
    try {
      const { value, exits } = this.#run(shell, ctx, opts.interrupted, opts.hook, debug);
      debug?.ended({ status: value });
      const output = this.#kind.collect(shell.guest, shell.mem, { memory: this.memorySize, dataSize: this.meta.dataSize, stackSize: this.meta.stackSize }, this.#console);
      const result = { value, exits, output, consoleTruncated: this.#console.truncated, console: this.#console.take() };
      this.#shells.finish(debug === undefined);
      this.#debugging = false;
      return result;
    } catch (e) {
      debug?.ended({ error: e });
      this.#debugging = false;
      this.#console.take();
      // A shell whose run ended in an error may hold any state: it is discarded, never reused.
      this.#shells.finish(false);
      throw e;
    }
  }

  /** The image's entry state (made once, when first needed). */
  #entrySnapshot(): Snapshot {
    if (!this.image) throw new BadArgsError("the virtine's snapshot is closed");
    const privileged = this.#kind.privileged ? this.#kvm.privilegedResetState() : undefined;
    // a one-shot virtine's first VM is the one the reset state is read from (Kvm.takeFreshVm)
    return Snapshot.entry(this.image, this.memorySize, this.#kvm.vcpuResetState({ keepVm: this.oneShot }), { dataSize: this.meta.dataSize, stackSize: this.meta.stackSize }, privileged);
  }

  /**
   * The `snapshot` hypercall. On the image's first capture, the shell's state becomes the
   * snapshot every later call starts from (RAX 0 here, 1 when resumed); a snapshot is never
   * overwritten: later calls of the hypercall change nothing.
   */
  #snapshotHypercall(): bigint {
    // never a capture under a debugger: its breakpoints and edits would become every call's start
    return this.snapshots && !this.#debugging ? this.#shells.capture(() => undefined) : 0n;
  }

  /** The call's exits: the exit port and HLT end it, hypercalls are dispatched, every other port is refused. */
  #run(shell: Shell, ctx: HypercallContext, interrupted: (() => boolean) | undefined, hook: HypercallHook | undefined, debug: DebugHook | undefined): { value: bigint; exits: number } {
    const { vcpu } = shell;
    const exits: CallExits<{ value: bigint; exits: number }> = {
      io: (port, out, n) => {
        if (!out) return undefined;
        if (port === Port.EXIT) return { value: vcpu.reg("rax"), exits: n };
        if (port === Port.HYPERCALL) return this.#hypercall(ctx, hook) ? { value: ctx.exitValue ?? 0n, exits: n } : RUN_ON;
        return undefined;
      },
      halt: (n) => ({ value: vcpu.reg("rax"), exits: n }),
      violation: (port, out) =>
        new PolicyViolationError(
          `the guest used I/O port 0x${port.toString(16)} (${out ? "out" : "in"}), which is neither the exit port 0x${Port.EXIT.toString(16)} nor the hypercall port 0x${Port.HYPERCALL.toString(16)}`,
          `port 0x${port.toString(16)}`,
        ),
    };
    return runLoop(shell, exits, { deadline: this.#deadline, timeoutMs: this.timeoutMs, interrupted, debug, stack: this.#stack });
  }

  /** Handles one hypercall; true when the virtine has ended. */
  #hypercall(ctx: HypercallContext, hook: HypercallHook | undefined): boolean {
    const { vcpu } = ctx;
    const nr = vcpu.reg("rax");
    const a = vcpu.reg("rdi");
    const b = vcpu.reg("rsi");
    const ret = hook ? hook.hypercall(nr, a, b, ctx, () => dispatchHypercall(ctx, this.policy, nr, a, b)) : dispatchHypercall(ctx, this.policy, nr, a, b);
    if (ret === undefined) return true;
    vcpu.setReg("rax", ret);
    vcpu.markRegsDirty(false);
    return false;
  }

  /** Refuses an input this virtine cannot take: a raw image's, or one larger than the data window. */
  checkInput(input: Uint8Array): void {
    if (!this.#kind.takesData) throw new BadArgsError(`${this.meta.name} is a ${this.#kind.name} image: it takes no input`);
    if (input.length > this.meta.dataSize) {
      throw new BadArgsError(`the input of ${input.length} bytes does not fit the virtine's data window of ${this.meta.dataSize} bytes (raise the data size: dataSize, or wasp invoke --data-size)`);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#shells.close();
    this.#snapshotFile?.close();
    this.#snapshotFile = undefined;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

const I64_MIN = -(1n << 63n);
const U64_END = 1n << 64n;

/** Checks up to six integer arguments and gives them as u64 (negative ones as two's complement). */
export function checkArgs(args: readonly (bigint | number)[]): bigint[] {
  // TypeScript's types are not checked at run time: a script may pass anything
  if (!Array.isArray(args)) throw new BadArgsError(`the arguments are ${describeValue(args)}, not a list of integers`);
  if (args.length > MAX_ARGS) throw new BadArgsError(`${args.length} arguments given, a virtine takes at most ${MAX_ARGS}`);
  const argv = new Array<bigint>(args.length);
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    let v: bigint;
    if (typeof a === "bigint") {
      if (a < I64_MIN || a >= U64_END) throw new BadArgsError(`argument ${i + 1} (${a}) does not fit in 64 bits`);
      v = a;
    } else if (Number.isSafeInteger(a)) {
      v = BigInt(a); // a safe integer always fits
    } else {
      throw new BadArgsError(`argument ${i + 1} (${describeValue(a)}) is not an integer`);
    }
    argv[i] = v < 0n ? BigInt.asUintN(64, v) : v;
  }
  return argv;
}

/** A value as a message shows it: strings quoted (so "12" is not taken for 12), long ones cut. */
export function describeValue(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === "number" || typeof v === "bigint" || typeof v === "boolean" || v === undefined || v === null) return String(v);
  if (Array.isArray(v)) return "a list";
  const kind = typeof v === "object" ? v.constructor?.name : typeof v;
  return !kind || kind === "Object" ? "an object" : `a ${kind}`;
}





