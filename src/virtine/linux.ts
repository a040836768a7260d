// Running a static Linux executable in a virtine: the Linux image kind (src/kinds/linux.ts) on the
// same shells, pools, dirty-page resets and snapshots as native guests, with a run loop of its own
// that answers every `syscall` exit (src/linux/process.ts), applies what the answer asks (a result
// in RAX, the FS base, a sleep, the end), reports faults as for native guests and stops at the
// deadline. A call takes a warm shell, writes its initial stack (argv, envp, auxv, AT_RANDOM) and
// runs from the entry; once a call reaches `wasp_snapshot()` (wasp.h), its whole state — memory,
// registers, and the process's break, mappings, open files and TLS bases — becomes the snapshot
// every later call resumes from, with its own input on fd 0. `oneShot` is the CLI's cold path: one
// VM of its own, anonymous RAM, closed after the call.
import { kvm_cpuid2, kvm_cpuid_entry2, kvm_msr_entry, kvm_msrs, kvm_regs, kvm_segment, kvm_sregs } from "../../ffi/kvm.ts";
import type { ThreadState } from "../linux/threads.ts";
import { LinuxBlock, LinuxCall, LinuxLayer, LinuxLog, Port } from "../abi/guest-abi.ts";
import { readFileSync, readSync } from "node:fs";
import { basename } from "node:path";
import { BadArgsError, BadImageError, BadSnapshotError, PolicyViolationError, TimeoutError } from "../errors.ts";
import { compileC, type COptions } from "../linux/c.ts";
import { ConsoleSink, DEFAULT_MAX_OUTPUT } from "../hypercall/console.ts";
import { dispatchHypercall, type HypercallContext } from "../hypercall/handlers.ts";
import { Policy } from "../hypercall/policy.ts";
import { hostFunctionTable, type HostFunction } from "../hypercall/host-call.ts";
import { MAX_MEMORY, MIB, type Image } from "../image/image.ts";
import { systemKvm, type Kvm } from "../kvm/system.ts";
import { type LinuxLayout } from "../linux/address-space.ts";
import { parseElf, type ElfExecutable } from "../linux/elf.ts";
import { resolveDynamic } from "../linux/dynamic.ts";
import { LINUX_SAVED_RSP, syscallArgs } from "../linux/entry.ts";
import { LinuxProcess, flushWindows, type GrantedFile, type Outcome } from "../linux/process.ts";
import type { GuestAccess } from "../memory/guest-access.ts";
import { decodeProcessFile, encodeProcessFile, sha256Hex } from "../linux/process-file.ts";
import { NetState, type Connection } from "../linux/net.ts";
import { ProcessBlock } from "../linux/block.ts";
import { callPage, layerCode } from "../linux/layer.ts";
import { libraryCode, NO_SLOT, planRewrite, recordedSites, STUB_RED_ZONE, type Rewrite } from "../linux/sites.ts";
import { pageProtection, protectPages, savedProtections } from "../linux/protect.ts";
import { IN_WINDOW, LOG_ENTRIES, SITE_SLOT } from "../linux/address-space.ts";
import { SEL_USER_CODE, SEL_USER_DATA } from "../image/boot.ts";

import { SnapshotFile, writeSnapshotFile, type LoadedSnapshotFile, type SnapshotFileInfo } from "../snapshot/file.ts";
import { linuxCallStack } from "../linux/start.ts";
import { traceLine } from "../linux/trace.ts";
import { DEFAULT_LINUX_MEMORY, linuxImage, linuxLayoutOf, linuxMemory } from "../kinds/linux.ts";
import { planLinux } from "../linux/address-space.ts";
import type { ResetStrategy, Shell } from "../shell/shell.ts";
import type { ShellPool, PoolStats } from "../shell/pool.ts";
import { VirtineShells } from "./shells.ts";
import { Snapshot } from "../snapshot/snapshot.ts";
import { DeadlineTimer } from "./deadline.ts";
import { RUN_ON, runLoop, type CallExits } from "./run-loop.ts";
import { FAULT_FRAME } from "../image/boot.ts";
import type { Vcpu } from "../kvm/vcpu.ts";
import type { GuestMemory } from "../memory/guest-memory.ts";
import type { DebugHook } from "./debug-hook.ts";
import { DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS, type HypercallHook } from "./runner.ts";
import { grantedFiles } from "./files.ts";
import { GrantedDirs, grantedDirs, MAX_OPENED } from "../linux/dirs.ts";
export { grantedFiles };

export { DEFAULT_LINUX_MEMORY };
/** AT_RANDOM without the `random` grant: fixed, so that such a call is deterministic and learns no host entropy. */
const FIXED_RANDOM = new Uint8Array([0x77, 0x61, 0x73, 0x70, 0x2d, 0x6e, 0x6f, 0x2d, 0x72, 0x61, 0x6e, 0x64, 0x6f, 0x6d, 0x00, 0x01]);
const ENCODER = new TextEncoder();

export interface LinuxOptions {
  /** guest memory in bytes (default 64 MiB; at most 1 GiB) */
  memory?: number;
  /** the stack's size (default 1 MiB, at most a quarter of memory) */
  stackSize?: number;
  /** deadline per call in ms (default 10 s; 0: none) */
  timeoutMs?: number;
  /** grants: "time" (the clock, sleeps), "random" (getrandom, a random AT_RANDOM) */
  allow?: readonly string[];
  /** cap on each of stdout and stderr in bytes (default 1 MiB); the excess is dropped */
  maxOutput?: number;
  /** the environment: "KEY=value" strings or { KEY: "value" } (default: empty) */
  env?: readonly string[] | Readonly<Record<string, string>>;
  /** read-only files the program may open, by absolute guest path: their bytes, or a host file's path (read now) */
  files?: Readonly<Record<string, Uint8Array | string>>;
  /**
   * read-only host directories the program may open files and directories in, by absolute guest
   * path: { "/usr/lib/python3.11": "/usr/lib/python3.11" } (src/linux/dirs.ts). Their files are read
   * at their first open, not placed when the virtine is made
   */
  dirs?: Readonly<Record<string, string>>;
  /**
   * where the executable is on the host: a dynamically linked program's `$ORIGIN` (its search
   * paths relative to it); its interpreter and libraries are found on the host and granted with it
   * (src/linux/dynamic.ts)
   */
  origin?: string;
  /**
   * a dynamically linked program's interpreter, given: nothing is looked for on the host, its
   * libraries are among `files`
   */
  interpreter?: Uint8Array;
  /** the files and directories a snapshot's program had opened in its granted directories, in the order its fds name them (a snapshot file's) */
  openedDirFiles?: readonly { path: string; sha256: string }[];
  /** called with each system call as strace prints it (`--trace`) */
  trace?: (line: string) => void;
  /** host functions the program may call through wasp.h (RunnerOptions.hostFunctions) */
  hostFunctions?: Readonly<Record<string, HostFunction>>;
  /** a module whose exported functions are host functions */
  hostModule?: string;
  /** honour `wasp_snapshot()` (default true); false: every call starts at the program's entry */
  snapshot?: boolean;
  /** most warm shells kept, per thread that runs the program (default 4) */
  poolSize?: number;
  /** how a shell's memory returns to the snapshot (default "dirty-log") */
  resetStrategy?: ResetStrategy;
  /** every call in a new VM of its own, closed right after (the CLI's single call): no pool, no snapshot */
  oneShot?: boolean;
  /** each shell a private copy of the snapshot's memory, not a copy-on-write view (the baseline of density measurements) */
  privateMemory?: boolean;
  /**
   * answer the system calls that need nothing outside the VM inside it, in the in-VM layer
   * (default true; docs/linux-guests.md): false sends every one to the host, as a program that
   * never reached a rewritten site does
   */
  layer?: boolean;
  /**
   * a served program (`wasp serve --program`, src/linux/net.ts): its sockets are wasp's, its first
   * call runs until it waits for a connection and is snapshotted there, every later call serves
   * the connection it is given (`connection`). `listen` is the address wasp listens on for it
   */
  serve?: { listen: { address: string; port: number } };
  kvm?: Kvm;
}

/** One call: its arguments (strings), its standard input, its environment (else the program's). */
export interface LinuxRunRequest {
  args?: readonly string[];
  input?: Uint8Array | string;
  env?: readonly string[] | Readonly<Record<string, string>>;
  /** asked when the thread's deadline signal interrupts the guest: true cancels the call */
  interrupted?: () => boolean;
  /** a debugger attached to this call (src/debug/): no deadline, the shell discarded afterwards */
  debug?: DebugHook;
  /** record or replay this call (src/virtine/record-linux.ts) */
  hook?: LinuxCallHook;
  /** a served program's call after its snapshot: the connection it serves */
  connection?: Connection;
  /** a served program's connection: how long it may wait for its next request when it has answered one (ms; default 5000) */
  keepAliveMs?: number;
  /**
   * the sites this call rewrites go into the snapshot later calls start from, as the first call's
   * do: for a call whose input is wasp's own (a served program's warm-up connection), never a
   * client's — a later call must not learn from its code which system calls another client's made
   */
  train?: boolean;
}

/**
 * What records a Linux program's call or replays it from a recording: it sees the call's AT_RANDOM
 * bytes, every system call and every wasp.h hypercall, each with `handle` to answer it for real.
 */
export interface LinuxCallHook extends HypercallHook {
  /**
   * a recorder: the layer answers as it would and logs each call it answers (`logged` gets them,
   * in order, before the next system call the host sees); without it, every system call goes to
   * the host (a replayer, which answers each from the recording)
   */
  readonly logs?: boolean;
  /** a system call the layer answered: its number, arguments and result, and its clock reading or random bytes */
  logged?(nr: number, args: readonly bigint[], result: bigint, outside: { ns: bigint; random: Uint8Array }): void;
  /** the 16 AT_RANDOM bytes of a call started at the entry (`fresh`: what it would get): the ones it gets */
  atRandom(fresh: Uint8Array): Uint8Array;
  /** system call `nr` (as answered: above 0xffff is 0xffff) with its six arguments */
  syscall(nr: number, args: readonly bigint[], guest: GuestAccess, handle: () => Outcome): Outcome;
}

/** "KEY=value" strings from a list or a record, each checked. */
export function checkEnv(env: readonly string[] | Readonly<Record<string, string>>): string[] {
  if (typeof env !== "object" || env === null) throw new BadArgsError(`the environment is ${env === null ? "null" : typeof env}: give "KEY=value" strings or { KEY: "value" }`);
  const list = Array.isArray(env) ? [...env] : Object.entries(env as Record<string, string>).map(([k, v]) => `${k}=${v}`);
  for (const e of list) {
    if (typeof e !== "string" || !/^[^=\0]+=/.test(e) || e.includes("\0")) throw new BadArgsError(`environment entry ${JSON.stringify(e)} is not KEY=value without NUL bytes`);
  }
  return list;
}


export interface LinuxRunResult {
  /** the exit status (exit/exit_group's low 8 bits) */
  status: number;
  stdout: Uint8Array;
  stderr: Uint8Array;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  /** VM exits the call took (the host's own interruptions not counted) */
  exits: number;
  /** system calls the program made (the host's and the in-VM layer's) */
  syscalls: number;
  /** of them, those the in-VM layer answered without an exit (the program's own count: a report) */
  syscallsInVm: number;
  /** system calls answered -ENOSYS, by number, with how often */
  unsupported: Map<number, number>;
  /** a served program's first call: the system call it waited for a connection in, where its snapshot is */
  listening?: string;
  /** a served program's call: it waited for another connection (its end), having taken its own (`accepted`) */
  served?: { idle: boolean; accepted: boolean; forked: boolean };
}

/**
 * What calls resumed from a program's snapshot start from besides its memory and registers (the
 * process's state is in its memory): the arguments and environment of the call that took it (a
 * resumed call cannot have others).
 */
interface Resume {
  args: readonly string[];
  env: readonly string[];
  /**
   * the entries of the table of what the program opened in its granted directories when the state
   * was captured: the fds of the state name no later ones (which later calls of this program keep
   * seeing, but a snapshot file neither names nor needs)
   */
  opened: number;
  /** a served program's sockets at the snapshot, and the system call it was waiting in (answered first by every resumed call) */
  net?: { state: NetState; pending: { nr: number; args: readonly bigint[] } };
}

/**
 * A loaded snapshot file's process section, decoded, its executable, parsed, and its placed files'
 * bytes, read from its memory and checked against their hashes (read-only, shared by the programs
 * restored from it).
 */
/** Granted files parsed as shared libraries, once each (null: not one wasp can read). */
const libraries = new WeakMap<Uint8Array, ElfExecutable | null>();
function parsedLibrary(bytes: Uint8Array): ElfExecutable | undefined {
  let elf = libraries.get(bytes);
  if (elf === undefined) {
    try {
      elf = parseElf(bytes, "library", MAX_MEMORY, { library: true });
    } catch {
      elf = null;
    }
    libraries.set(bytes, elf);
  }
  return elf ?? undefined;
}
/** The most sites a program remembers as not rewritable (a hostile program could make any number). */
const MAX_REFUSED = 65536;

const decodedFiles = new WeakMap<LoadedSnapshotFile, { saved: ReturnType<typeof decodeProcessFile>; elf: ElfExecutable; files: Map<string, Uint8Array> }>();

/** A shell's clock: the guest's TSC at a host time, and ns per tick << 32, measured once a while. */
interface Clock {
  tsc: bigint;
  ns: bigint;
  mult: bigint;
  /** when it was measured (performance.now(), ms) */
  at: number;
}
/** How long a shell's clock calibration is kept: the TSC and the host's clock drift apart slowly. */
const CLOCK_MS = 10_000;
/** IA32_TIME_STAMP_COUNTER */
const MSR_TSC = 0x10;
const hostNs = () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));

export class LinuxProgram {
  readonly elf: ElfExecutable;
  /** a dynamically linked program's interpreter (loaded above it), else undefined */
  readonly interp: ElfExecutable | undefined;
  /** the program as an image of the Linux kind (src/kinds/linux.ts) */
  readonly image: Image;
  readonly layout: LinuxLayout;
  readonly timeoutMs: number;
  readonly policy: Policy;
  readonly maxOutput: number;
  /** honour `wasp_snapshot()` */
  readonly snapshots: boolean;
  readonly oneShot: boolean;
  readonly #opts: LinuxOptions;
  readonly #env: string[];
  readonly #files: Map<string, Uint8Array>;
  /** the granted host directories and what the program opened in them (kept across calls) */
  readonly #dirs: GrantedDirs;
  /** the granted files in the order the process's file table has them */
  readonly #granted: GrantedFile[];
  /** answer system calls in the in-VM layer */
  readonly layerOn: boolean;
  /** the `syscall` sites rewritten in the current call's shell by the current call (undone by its reset) */
  #callRewrites: Rewrite[] = [];
  /** the return addresses of `syscall` sites judged not rewritable (src/linux/sites.ts) */
  readonly #refused = new Set<bigint>();
  /** the first call that ended well has put the sites it rewrote into the snapshot later calls start from */
  #trained = false;
  /** the first free site slot of the snapshot calls start from (the slots before it are its rewritten sites') */
  #slots: number;
  /** each shell's clock calibration (the `time` grant) */
  readonly #clocks = new WeakMap<Shell, Clock>();
  /** the TLS bases the current call set (arch_prctl), for the training */
  #callBases: { fs?: bigint; gs?: bigint } = {};
  /** the call page's bytes, reused */
  readonly #callBytes = new Uint8Array(LinuxCall.SIZE);
  readonly #callView = new DataView(this.#callBytes.buffer);
  readonly #hostFunctions: Map<string, HostFunction>;
  readonly #kvmGiven: Kvm | undefined;
  readonly #deadline: DeadlineTimer;
  readonly #stdout: ConsoleSink;
  readonly #stderr: ConsoleSink;
  /** the entry state, its pool, a capture with the process state calls resumed from it start from */
  #shells: VirtineShells<Resume> | undefined;
  /** the snapshot file the program was restored from (closed with it) */
  #snapshotFile: SnapshotFile | undefined;
  /** the call in progress: its arguments (undefined between calls) */
  #callArgs: { args: readonly string[]; env: readonly string[] } | undefined;
  /** AT_HWCAP: CPUID.1:EDX of the vCPU (read once) */
  #hwcap: bigint | undefined;
  /** a debugger is attached to the call running now */
  #debugging = false;
  /** the call running now trains the snapshot with the sites it rewrites, as the first call did (a served program's warm-up connection) */
  #trainsThis = false;
  #closed = false;

  constructor(elf: ElfExecutable, opts: LinuxOptions = {}) {
    this.elf = elf;
    this.#files = grantedFiles(opts.files ?? {});
    this.#dirs = new GrantedDirs(grantedDirs(opts.dirs ?? {}), opts.openedDirFiles);
    // a dynamically linked program: its interpreter, and its libraries granted with it (the
    // caller's grant of the same path wins)
    let interp: ElfExecutable | undefined;
    if (elf.interp !== undefined) {
      if (opts.interpreter) interp = parseElf(opts.interpreter, basename(elf.interp), MAX_MEMORY);
      else {
        const found = resolveDynamic(elf, opts.origin);
        interp = found.interp.elf;
        for (const [path, bytes] of found.libraries) if (!this.#files.has(path)) this.#files.set(path, bytes);
      }
    } else if (opts.interpreter) throw new BadArgsError(`${elf.name} is statically linked: it has no interpreter to give`);
    this.interp = interp;
    this.#granted = [...this.#files].map(([path, data]) => ({ path, data }));
    this.image = linuxImage(elf, this.#files, interp, this.#dirs.grants.length > 0, opts.serve !== undefined);
    const memory = linuxMemory(opts.memory, interp !== undefined);
    this.layout = linuxLayoutOf(this.image, memory, opts.stackSize);
    this.layerOn = opts.layer ?? true;
    this.#slots = this.layout.io.sites;
    // read now, before a command's sandbox closes the file system
    layerCode();
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0 || timeoutMs > MAX_TIMEOUT_MS) throw new BadArgsError(`timeout ${timeoutMs} ms is not between 0 (none) and ${MAX_TIMEOUT_MS} ms`);
    this.timeoutMs = timeoutMs;
    this.#hostFunctions = hostFunctionTable(opts.hostFunctions, opts.hostModule);
    this.policy = Policy.grant(this.#hostFunctions.size > 0 ? [...(opts.allow ?? []), "host"] : opts.allow);
    const maxOutput = opts.maxOutput ?? DEFAULT_MAX_OUTPUT;
    if (!Number.isSafeInteger(maxOutput) || maxOutput < 0) throw new BadArgsError(`output cap ${maxOutput} is not a byte count`);
    this.maxOutput = maxOutput;
    this.#stdout = new ConsoleSink(maxOutput);
    this.#stderr = new ConsoleSink(maxOutput);
    this.#env = checkEnv(opts.env ?? []);
    this.snapshots = opts.snapshot ?? true;
    this.oneShot = opts.oneShot ?? false;
    if (opts.poolSize !== undefined && (!Number.isSafeInteger(opts.poolSize) || opts.poolSize < 1)) throw new BadArgsError(`pool size ${opts.poolSize} is not a positive integer`);
    this.#opts = opts;
    this.#kvmGiven = opts.kvm; // else the process-wide one, opened at the first run
    this.#deadline = DeadlineTimer.forThisThread();
  }

  /** A program from its file's bytes (checked: a BadImageError names what is wrong). */
  static fromBytes(bytes: Uint8Array, name: string, opts: LinuxOptions = {}): LinuxProgram {
    return new LinuxProgram(parseElf(bytes, name, MAX_MEMORY), opts);
  }

  /** A program from a static executable's file. */
  static fromFile(path: string, opts: LinuxOptions = {}): LinuxProgram {
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(readFileSync(path));
    } catch (e) {
      throw new BadImageError(`${path}: cannot read it (${e instanceof Error ? e.message : String(e)})`);
    }
    return LinuxProgram.fromBytes(bytes, basename(path), { origin: path, ...opts });
  }

  /**
   * A program restored from a snapshot file of a Linux program (`wasp snapshot PROG -o FILE`,
   * `writeSnapshot`): every call resumes where its snapshot was taken. Given a path, the program
   * opens the file and closes it with itself; given a file another object loaded, it uses that.
   * The files the snapshot holds open must be granted again (`files`), with the same paths. A
   * snapshot of a program granted directories names their guest paths: `dirs` must grant exactly
   * those again (from any host directories), each file it had opened there holding the same bytes.
   */
  static fromSnapshotFile(source: string | LoadedSnapshotFile, opts: LinuxOptions = {}): LinuxProgram {
    const kvm = opts.kvm ?? systemKvm();
    const file = typeof source === "string" ? new SnapshotFile(source, kvm) : new SnapshotFile(source);
    let snapshot: Snapshot | undefined;
    try {
      const { info } = file;
      if (!info.linux || !file.loaded.process) throw new BadArgsError(`${info.path}: the snapshot of a ${info.native ? "native" : "raw"} image, not of a Linux program`);
      if (opts.memory !== undefined && opts.memory !== info.memSize) throw new BadArgsError(`a snapshot's memory size is fixed (${info.memSize / MIB} MiB); --mem cannot change it`);
      if (opts.stackSize !== undefined && opts.stackSize !== info.stackSize) throw new BadArgsError(`a snapshot's stack is fixed (${info.stackSize} bytes); stackSize (--stack) cannot change it`);
      // decoded and parsed once per loaded file: every program restored from it shares the
      // executable's bytes (a megabyte each for the JavaScript engine) instead of copying them
      let decoded = decodedFiles.get(file.loaded);
      if (!decoded) {
        let saved;
        try {
          saved = decodeProcessFile(file.loaded.process);
        } catch (e) {
          throw new BadSnapshotError(`${info.path}: ${e instanceof Error ? e.message : String(e)}`);
        }
        const elf = parseElf(saved.elf, info.imageName, MAX_MEMORY);
        const interp = saved.interp && parseElf(saved.interp, "interpreter", MAX_MEMORY);
        decoded = { saved, elf, files: placedFilesOf(file.loaded, elf, saved.files, interp, saved.dirs.length > 0) };
        decodedFiles.set(file.loaded, decoded);
      }
      const { saved } = decoded;
      // the files are the snapshot's own, in its memory; granting any means granting the same
      if (opts.files !== undefined && Object.keys(opts.files).length > 0) {
        const given = grantedFiles(opts.files);
        const same = given.size === decoded.files.size && [...decoded.files].every(([path, data]) => given.has(path) && Buffer.compare(given.get(path) as Uint8Array, data) === 0);
        if (!same) throw new BadArgsError(`${info.path}: the snapshot holds the files its program was granted (${[...decoded.files.keys()].join(", ") || "none"}), placed in its memory: grant exactly those, with the same contents, or none`);
      }
      checkSnapshotDirs(info.path, saved.dirs, opts.dirs);
      // its fds name the entries of the table it had, in that order: each read again at first use, checked by hash
      const program = new LinuxProgram(decoded.elf, { ...opts, memory: info.memSize, stackSize: info.stackSize, files: Object.fromEntries(decoded.files), interpreter: saved.interp, openedDirFiles: saved.opened });
      snapshot = file.restore();
      program.#shells = new VirtineShells<Resume>(kvm, program.#deadline, () => program.#entrySnapshot(), { poolSize: opts.poolSize, strategy: opts.resetStrategy, privateCopy: opts.privateMemory }, snapshot, { args: saved.args, env: saved.env, opened: saved.opened.length });
      program.#snapshotFile = file;
      // its sites were rewritten by the call that took it: their slots come first
      program.#trained = true;
      program.#slots = program.layout.io.sites + recordedSites(snapshot.memory, program.layout).length * SITE_SLOT;
      return program;
    } catch (e) {
      snapshot?.close();
      file.close();
      throw e;
    }
  }

  /**
   * Writes the program's snapshot (taken by a call that reached `wasp_snapshot()`) to `path`,
   * atomically: its memory, registers, and the process section — the executable, the process's
   * state, the snapshotting call's arguments and environment (docs/snapshot-format.md).
   */
  writeSnapshot(path: string): SnapshotFileInfo {
    const shells = this.#warm;
    const resume = shells.resume;
    if (!shells.snapshotTaken || !resume) throw new BadImageError(`${this.elf.name}: no call has reached wasp_snapshot(), so there is no initialized state to write`);
    // granted directories by their guest paths alone, never their host paths (a file must not grant
    // itself directories), and what the program had opened in them at the capture, by path and
    // hash: the fds of its snapshot name those entries, read again from the directories granted at
    // the restore and checked
    const dirs = this.#dirs.grants.map((g) => g.guest);
    const opened = this.#dirs.saved(resume.opened);
    // a restore builds the page tables from the executable's headers, and from the protections the
    // program set where they differ (its loader's mprotect of the libraries, RELRO), read here from
    // the snapshot's tables (the host's own pages)
    const protections = savedProtections(shells.pool.snapshot.memory, this.elf, this.layout);
    const section = encodeProcessFile({ elf: this.elf.bytes, interp: this.interp?.bytes, files: this.#files, args: resume.args, env: resume.env, dirs, opened, protections });
    return writeSnapshotFile(path, shells.pool.snapshot, this.elf.bytes, this.#kvm, section);
  }

  /**
   * A program from C source written in the script, compiled with the bundled zig cc (static musl,
   * cached: src/linux/c.ts). A source that does not compile rejects with a CompileError.
   */
  static async fromC(source: string, opts: LinuxOptions & COptions = {}): Promise<LinuxProgram> {
    const { elf } = await compileC(source, opts);
    return new LinuxProgram(elf, opts);
  }

  get #kvm(): Kvm {
    return this.#kvmGiven ?? systemKvm();
  }

  /** The program's shells (made on first use: the process-wide KVM is opened then). */
  get #warm(): VirtineShells<Resume> {
    if (this.#closed) throw new BadArgsError("the program is closed");
    this.#shells ??= new VirtineShells<Resume>(this.#kvm, this.#deadline, () => this.#entrySnapshot(), { poolSize: this.#opts.poolSize, strategy: this.#opts.resetStrategy, privateCopy: this.#opts.privateMemory });
    return this.#shells;
  }

  /** The program's pool of warm shells, created with its entry snapshot on first use. */
  get pool(): ShellPool {
    return this.#warm.pool;
  }

  /** Pre-provisions `n` warm shells (bounded by the pool size), off the path of later calls. */
  ensure(n: number): void {
    this.#warm.ensure(n);
  }

  /** Resets the shells that calls gave back, now. */
  cleanIdle(): number {
    return this.#shells?.cleanIdle() ?? 0;
  }

  get poolStats(): PoolStats {
    return this.#warm.stats;
  }

  /** True once a call reached `wasp_snapshot()`: later calls resume there. */
  get snapshotTaken(): boolean {
    return this.#shells?.snapshotTaken ?? false;
  }

  /** The environment a call gets when it names none. */
  get env(): readonly string[] {
    return this.#env;
  }

  /** The read-only files granted to the program, by guest path. */
  get files(): ReadonlyMap<string, Uint8Array> {
    return this.#files;
  }

  /**
   * The snapshot file the program was restored from: its header, and its process section's bytes
   * (undefined for a program started from its executable).
   */
  get snapshotFile(): { info: SnapshotFileInfo; process: Uint8Array } | undefined {
    const f = this.#snapshotFile;
    return f && f.loaded.process ? { info: f.info, process: f.loaded.process } : undefined;
  }

  /** True when calls resume from a state a call of this program captured (wasp_snapshot()), which no file holds. */
  get resumesFromCapture(): boolean {
    return this.snapshotTaken && this.#snapshotFile === undefined;
  }

  /** The arguments of the call that took the snapshot calls resume from (undefined before one). */
  get snapshotArgs(): readonly string[] | undefined {
    return this.#shells?.snapshotTaken ? this.#shells.resume?.args : undefined;
  }

  /**
   * Runs the program once: argv = its name and `args`, fd 0 = `input`. Returns its exit status and
   * output; a fault, a policy violation or the deadline is a typed error. A call after the
   * program's snapshot resumes there: its arguments and environment are the snapshotting call's
   * (others are refused), its input its own.
   */
  run(args?: readonly string[] | LinuxRunRequest, opts: Omit<LinuxRunRequest, "args"> = {}): LinuxRunResult {
    if (this.#closed) throw new BadArgsError("the program is closed");
    // run({ args, input, env }) as well as run(args, { input, env })
    if (args !== undefined && !Array.isArray(args)) {
      if (typeof args !== "object" || args === null) throw new BadArgsError("a Linux program's run takes a list of string arguments or { args, input, env }");
      opts = args as LinuxRunRequest;
      args = (args as LinuxRunRequest).args;
    }
    const given = args;
    args ??= [];
    if (!Array.isArray(args) || args.some((a) => typeof a !== "string")) throw new BadArgsError("a Linux program's arguments are strings");
    const env = opts.env === undefined ? this.#env : checkEnv(opts.env);
    const input = typeof opts.input === "string" ? ENCODER.encode(opts.input) : opts.input;
    if (input !== undefined && !(input instanceof Uint8Array)) throw new BadArgsError("a Linux program's input is bytes or a string");
    const shells = this.#warm;
    const resume = shells.resume;
    const serving = this.#opts.serve;
    if (serving && resume?.net && !opts.connection) throw new BadArgsError(`${this.elf.name} is a served program past its snapshot: each of its calls serves a connection (connection)`);
    if (opts.connection && !resume?.net) throw new BadArgsError(serving ? `${this.elf.name} has not reached its listener yet: its first call runs it there, without a connection` : "a connection is for a served program (LinuxOptions.serve)");
    let stack: { rsp: number; bytes: Uint8Array } | undefined;
    if (resume) {
      // its argv and envp were read before the snapshot: a resumed call cannot change them
      // (no arguments, or none given, means the snapshot's)
      if ((given !== undefined && given.length > 0 && !sameStrings(args, resume.args)) || (opts.env !== undefined && !sameStrings(env, resume.env))) {
        throw new BadArgsError(`${this.elf.name} resumes from its snapshot (wasp_snapshot()), where it had already read its arguments and environment: a resumed call takes its data on fd 0 (input), not as arguments`);
      }
    } else {
      const random = new Uint8Array(16);
      if (this.policy.has("random")) crypto.getRandomValues(random);
      else random.set(FIXED_RANDOM);
      stack = linuxCallStack(this.elf, this.layout, { argv: [this.elf.name, ...(args as readonly string[])], envp: env, random: opts.hook ? opts.hook.atRandom(random) : random, hwcap: (this.#hwcap ??= cpuidEdx(this.#kvm.cpuid, 1)) });
    }
    const shell = shells.acquire(this.oneShot);
    this.#callArgs = { args: args as readonly string[], env };
    this.#callRewrites = [];
    this.#callBases = {};
    this.#trainsThis = opts.train === true;
    let served: LazyProcess | undefined;
    try {
      shell.loadRegisters([]);
      const block = new ProcessBlock(shell.mem, this.layout, this.#granted.length + MAX_OPENED, (at, len) => shell.markHostWrite(at, len), () => shell.vcpu.reg("rip"));
      const data = input ?? new Uint8Array(0);
      // the process's host side is made when a system call first reaches the host: a call the
      // layer answers whole (one exit, at its end) never needs it
      const proc = new LazyProcess(() => new LinuxProcess(shell.guest, block, {
        name: this.elf.name,
        input: data,
        stdout: this.#stdout,
        stderr: this.#stderr,
        files: this.#granted,
        dirs: this.#dirs,
        time: this.policy.has("time"),
        random: this.policy.has("random"),
        memory: this.layout.regions,
        stackSize: this.layout.stack[1] - this.layout.stack[0],
        areas: { exe: [this.layout.low, this.layout.high], stack: this.layout.stack },
        protect: (addr, len, prot) => {
          const r = protectPages(shell.mem, this.layout, addr, len, prot, (at, n) => shell.markHostWrite(at, n));
          if (r) shell.retranslate(r.ranges, r.split);
          return r !== undefined;
        },
        net: serving
          ? {
              state: resume?.net ? resume.net.state.clone() : new NetState(),
              listen: serving.listen,
              connection: opts.connection,
              hooks: {
                idle: () => {
                  this.#deadline.pause();
                  return opts.keepAliveMs ?? 5000;
                },
                busy: () => this.#deadline.start(this.timeoutMs),
                check: () => {
                  if (this.timeoutMs > 0 && this.#deadline.expired()) throw new TimeoutError(this.timeoutMs);
                },
              },
            }
          : undefined,
      }));
      // a debugger, a recorder or a replayer sees every system call: the layer hands them all over
      const forward = !this.layerOn || opts.debug !== undefined || (opts.hook !== undefined && !opts.hook.logs) || this.#opts.trace !== undefined;
      const logs = !forward && opts.hook?.logs === true;
      if (opts.connection) served = proc;
      this.#startCall(shell, data, forward, logs);
      if (opts.debug) this.#unrewrite(shell);
      if (stack) {
        shell.guest.write(stack.rsp, stack.bytes, "the initial stack");
        shell.vcpu.setReg("rsp", BigInt(stack.rsp));
      }
      this.#debugging = opts.debug !== undefined;
      const result = this.#loop(shell, proc, block, opts.interrupted, opts.debug, opts.hook, resume?.net?.pending);
      this.#end(opts.debug === undefined);
      return result;
    } catch (e) {
      // what a served program sent before it failed reaches its connection (then the server knows whether it answered)
      if (served) {
        try {
          served.get().net?.flush();
        } catch {
          // its state is corrupt: nothing more is sent
        }
      }
      opts.debug?.ended({ error: e });
      this.#stdout.take();
      this.#stderr.take();
      // a shell whose call ended in an error may hold any state: discarded, never reused
      this.#end(false);
      throw e;
    }
  }

  /**
   * Writes what a call starts with into the process's memory: the call page (stdin's length and
   * window, the grants, the clock, random bytes) and the first IN_WINDOW bytes of the input.
   */
  #startCall(shell: Shell, input: Uint8Array, forward: boolean, logs: boolean): void {
    const io = this.layout.io;
    const time = this.policy.has("time");
    const random = this.policy.has("random");
    const window = Math.min(input.length, IN_WINDOW);
    const page = this.#callBytes;
    let randomBytes: Uint8Array | undefined;
    if (random && !forward) {
      randomBytes = page.subarray(LinuxCall.RANDOM, LinuxCall.RANDOM + LinuxCall.RANDOM_CAP);
      crypto.getRandomValues(randomBytes);
      randomBytes = randomBytes.slice();
    }
    callPage({ inTotal: input.length, window, forward, log: logs, time, random, clock: time && !forward ? this.#clock(shell) : undefined, randomBytes }, page, this.#callView);
    shell.mem.bytes.set(page, io.call);
    shell.markHostWrite(io.call, LinuxCall.SIZE);
    if (window > 0) {
      shell.mem.bytes.set(input.subarray(0, window), io.in);
      shell.markHostWrite(io.in, window);
    }
  }

  /** The shell's clock for the layer: the guest's TSC at a host time (measured once per shell, again every CLOCK_MS). */
  #clock(shell: Shell): Clock {
    const now = performance.now();
    let c = this.#clocks.get(shell);
    if (!c || now - c.at > CLOCK_MS) {
      const khz = shell.vcpu.tscKhz();
      const before = hostNs();
      const msrs = shell.vcpu.getMsrs([MSR_TSC]);
      const after = hostNs();
      const tsc = new DataView(msrs.buffer).getBigUint64(kvm_msrs.size + kvm_msr_entry.off("data"), true);
      c = { tsc, ns: (before + after) / 2n, mult: khz > 0 ? (1_000_000n << 32n) / BigInt(khz) : 0n, at: now };
      this.#clocks.set(shell, c);
    }
    return c;
  }

  /** Under a debugger, the sites the snapshot holds rewritten have their own instructions again (its shell is discarded afterwards). */
  #unrewrite(shell: Shell): void {
    const { low, high } = this.layout;
    for (const { at, original } of recordedSites(shell.mem.bytes, this.layout)) {
      // the slots are the program's memory: a record pointing outside its code is not followed
      if (at >= low && at + original.length <= high) shell.mem.bytes.set(original, at);
    }
  }

  /**
   * A `syscall` that reached the host through the CPL0 entry (RCX: its return address): rewritten
   * so that it reaches the layer (src/linux/sites.ts) — for the rest of the call, and once the first
   * call has trained the snapshot, for every later call. The rewrite is the host's write: the reset
   * undoes it.
   */
  #rewrite(shell: Shell): void {
    const { vcpu, mem } = shell;
    const ret = vcpu.reg("rcx");
    // a site judged once is not judged again at its every exit (its decoding cost ~25% of a
    // dynamically linked program's host time); only a lack of slots may change
    if (this.#refused.has(ret)) return;
    const slot = this.#slots + this.#callRewrites.length * SITE_SLOT;
    const { regions } = this.layout;
    const plan = planRewrite(mem, this.elf, this.layout, ret, slot, (site) =>
      libraryCode(mem, site, [regions.mmapStart, regions.mmapEnd], (page) => pageProtection(mem, page), this.#libraryFiles(), parsedLibrary),
    );
    if ("reason" in plan) {
      if (plan.reason !== NO_SLOT && this.#refused.size < MAX_REFUSED) this.#refused.add(ret);
      return;
    }
    mem.bytes.set(plan.slotBytes, plan.slot);
    shell.markHostWrite(plan.slot, SITE_SLOT);
    mem.bytes.set(plan.bytes, plan.at);
    shell.markHostWrite(plan.at, plan.bytes.length);
    // the entry returns to RCX: a jump over the site itself took the bytes it would return to
    if (plan.resume !== plan.site + 2) vcpu.setReg("rcx", BigInt(plan.resume));
    this.#callRewrites.push(plan);
  }

  /** The granted files a library may be mapped from: the placed ones (a dynamically linked program's libraries among them), then those its directories served. */
  *#libraryFiles(): Iterable<Uint8Array> {
    for (const bytes of this.#files.values()) yield bytes;
    yield* this.#dirs.files();
  }

  /** The entry state (made once, when first needed): everything but a call's initial stack. */
  #entrySnapshot(): Snapshot {
    const stackSize = this.layout.stack[1] - this.layout.stack[0];
    return Snapshot.entry(this.image, this.layout.memory, this.#kvm.vcpuResetState(), { stackSize });
  }

  /** Ends a call: its shell back to the pool or discarded; a capture becomes the snapshot. */
  #end(ok: boolean): void {
    const trains = ok && !this.#debugging && (!this.#trained || this.#trainsThis);
    this.#trainsThis = false;
    this.#debugging = false;
    this.#callArgs = undefined;
    if (trains) this.#train();
    this.#callRewrites = [];
    this.#shells?.finish(ok);
  }

  /**
   * The first call that ends well trains the snapshot later calls start from (the one it captured,
   * or the entry state): the sites it rewrote are rewritten there too, so that those calls reach
   * the layer at once. Only that call's: a later call's sites are undone by its reset, so that no
   * call learns from its own code's bytes which system calls an earlier call made (the training
   * call's sites are part of the snapshot, as its memory is; docs/security.md).
   */
  #train(): void {
    const next = this.#shells?.next;
    if (!next) return; // a one-shot shell
    this.#trained = true;
    const golden = next.memory;
    const same = (at: number, bytes: Uint8Array) => Buffer.compare(golden.subarray(at, at + bytes.length), bytes) === 0;
    for (const r of this.#callRewrites) {
      // slots are taken in order: one that is not the next free one ends the training
      if (r.slot !== this.#slots) return;
      // rewritten before a capture: the captured memory holds it already
      if (same(r.at, r.bytes) && same(r.slot, r.slotBytes)) {
        this.#slots += SITE_SLOT;
        continue;
      }
      // the snapshot's own bytes must be the instructions the call saw
      if (!same(r.at, r.original)) return;
      if (!next.patch(r.slot, r.slotBytes)) return; // a snapshot file's memory never changes
      next.patch(r.at, r.bytes);
      this.#slots += SITE_SLOT;
    }
    // A program started at its entry sets its TLS base first (libc's start-up, arch_prctl): later
    // calls start with the base the training call set, in the vCPU and in the process block, and
    // the layer answers the same arch_prctl again without an exit (the value is the program's own
    // choice, the same for every call of a static executable).
    if (next.kind === "entry") {
      for (const [seg, base] of Object.entries(this.#callBases) as ["fs" | "gs", bigint][]) {
        const le = new Uint8Array(8);
        new DataView(le.buffer).setBigUint64(0, base, true);
        if (next.patchSegmentBase(seg, base)) next.patch(this.layout.io.block + (seg === "fs" ? LinuxBlock.FS_BASE : LinuxBlock.GS_BASE), le);
      }
    }
  }

  /**
   * `wasp_snapshot()`: the first call to reach it captures the whole virtine there — memory,
   * registers, the process's state — and gets 0; calls resumed from the capture get 1 (as do
   * later `wasp_snapshot()`s). Off (`snapshot: false`, a one-shot VM): always 0, nothing kept.
   */
  #snapshotHypercall(resumeAt?: bigint): bigint {
    const call = this.#callArgs;
    // never a capture under a debugger: its breakpoints and edits would become every call's start
    if (!this.snapshots || !call || !this.#shells || this.#debugging) return 0n;
    const io = this.layout.io;
    // the call page and the stdin window hold the capturing call's own data, never a later call's
    return this.#shells.capture(() => ({ args: call.args, env: call.env, opened: this.#dirs.size }), [
      [io.call, io.call + 4096],
      [io.in, io.in + IN_WINDOW],
    ], resumeAt);
  }

  /**
   * A served program waits for its first connection: the whole virtine is captured inside that
   * system call (its number and arguments kept, to be answered by every resumed call with its own
   * connection), with the sockets' state. Refused where no capture can be kept.
   */
  #listenCapture(shell: Shell, proc: LinuxProcess, nr: number, args: readonly bigint[], call: string, entry: boolean): void {
    const callArgs = this.#callArgs;
    if (!this.snapshots || !callArgs || !this.#shells || this.#debugging || this.oneShot) {
      throw new PolicyViolationError(`${this.elf.name} waited for a connection (${call}) where no snapshot can be taken (a one-shot or debugged call, or snapshots off)`, call);
    }
    const resumeAt = entry ? returnFromEntry(shell.vcpu, shell.mem, shell) : undefined;
    const io = this.layout.io;
    const state = proc.net!.state.clone();
    this.#shells.capture(() => ({ args: callArgs.args, env: callArgs.env, opened: this.#dirs.size, net: { state, pending: { nr, args: [...args] } } }), [
      [io.call, io.call + 4096],
      [io.in, io.in + IN_WINDOW],
    ], resumeAt);
  }

  #loop(shell: Shell, proc: LazyProcess, block: ProcessBlock, interrupted: (() => boolean) | undefined, debug: DebugHook | undefined, hook: LinuxCallHook | undefined, pending?: { nr: number; args: readonly bigint[] }): LinuxRunResult {
    const { vcpu, guest, mem } = shell;
    const stdout = this.#stdout;
    const stderr = this.#stderr;
    const deadline = this.#deadline;
    // wasp.h's hypercalls: the console is the program's stderr
    const ctx: HypercallContext = { vcpu, guest, console: stderr, exitValue: undefined, snapshot: () => this.#snapshotHypercall(), hostFunctions: this.#hostFunctions };
    const trace = this.#opts.trace;
    const stack = { guard: { start: this.layout.guard[0], end: this.layout.guard[1] }, size: this.layout.stack[1] - this.layout.stack[0] };
    let exits = 0;
    let syscalls = 0;
    let listening: string | undefined;
    let idle = false;
    const done = (status: number): LinuxRunResult => {
      // read before take(), which clears the sink for the next call
      const stdoutTruncated = stdout.truncated;
      const stderrTruncated = stderr.truncated;
      debug?.ended({ status: BigInt(status) });
      const inVm = block.answered;
      const r: LinuxRunResult = { status, stdout: stdout.take(), stderr: stderr.take(), stdoutTruncated, stderrTruncated, exits, syscalls: syscalls + inVm, syscallsInVm: inVm, unsupported: proc.unknown };
      if (listening !== undefined) r.listening = listening;
      if (this.#opts.serve && pending) {
        const net = proc.get().net;
        r.served = { idle, accepted: net?.accepted ?? false, forked: net?.forked ?? false };
      }
      return r;
    };
    // what the layer left in the stdout and stderr windows comes after what the host took before
    const end = (status: number): LinuxRunResult => {
      flushWindows(block, stdout, stderr);
      // a served program's last sends, which the layer kept in the connection window
      if (pending) proc.get().net?.flush();
      return done(status);
    };
    // a recorded call: what the layer answered is recorded before what the host sees next
    const logged = hook?.logs && hook.logged ? (at: (nr: number, args: readonly bigint[], result: bigint, outside: { ns: bigint; random: Uint8Array }) => void) => drainLog(mem, this.layout, this.#callBytes, at) : undefined;
    const takeLog = () => {
      if (logged && hook?.logged) logged(hook.logged.bind(hook));
    };
    const syscall = (entry: boolean, given?: { nr: number; args: readonly bigint[] }): LinuxRunResult | typeof RUN_ON => {
      syscalls++;
      if (entry && this.layerOn && !debug) this.#rewrite(shell);
      const nr = given ? BigInt(given.nr) : vcpu.reg("rax");
      const args = given ? given.args : syscallArgs((r) => vcpu.reg(r));
      const n = nr > 0xffffn ? 0xffff : Number(nr);
      // recording off: no closure, one test
      const outcome = hook ? hook.syscall(n, args, guest, () => proc.get().syscall(n, args)) : proc.get().syscall(n, args);
      if (trace) trace(traceLine(guest, Number(nr & 0xffffn), args, outcome));
      switch (outcome.kind) {
        case "exit":
          return end(outcome.status);
        case "return":
          vcpu.setReg("rax", BigInt.asUintN(64, outcome.value));
          break;
        case "setBase": {
          const sregs = vcpu.getSregs();
          const sdv = new DataView(sregs.buffer);
          kvm_segment.write(sdv, kvm_sregs.off(outcome.register), { ...kvm_segment.read(sdv, kvm_sregs.off(outcome.register)), base: outcome.base });
          vcpu.setSregs(sregs);
          shell.markSregsChanged(); // the reset loads the snapshot's again
          this.#callBases[outcome.register] = outcome.base;
          vcpu.setReg("rax", 0n);
          break;
        }
        case "snapshot": {
          // access(SNAPSHOT_PATH): wasp_snapshot() for a program that cannot issue its OUT. Through
          // the layer the capture resumes past the layer's OUT, as a hypercall's does; through the
          // CPL0 entry (a site not rewritten: a library's) the host makes the entry's return itself
          // first, so that the capture is of the program at CPL3 just after its `syscall`
          const resumeAt = entry ? returnFromEntry(vcpu, mem, shell) : undefined;
          vcpu.setReg("rax", this.#snapshotHypercall(resumeAt));
          break;
        }
        case "listen":
          // a served program waits for its first connection: its snapshot, and this call's end
          this.#listenCapture(shell, proc.get(), n, args, outcome.call, entry);
          listening = outcome.call;
          return end(0);
        case "idle":
          // a served program waits for another connection: the call has served its own
          idle = true;
          return end(0);
        case "clone": {
          // a served program's new thread: the caller's registers but RAX 0 and its stack, run when the caller blocks
          const state = programState(vcpu, mem, entry, 0n);
          const dv = new DataView(state.regs.buffer);
          // through the layer the thread goes on in the site's stub, which steps back over the red
          // zone it stepped past (src/linux/sites.ts): its RSP there is the new stack's less that
          dv.setBigUint64(kvm_regs.off("rsp"), entry ? outcome.stack : outcome.stack - BigInt(STUB_RED_ZONE), true);
          if (outcome.tls !== undefined) state.fs = outcome.tls;
          outcome.thread.state = state;
          vcpu.setReg("rax", BigInt(outcome.thread.tid));
          break;
        }
        case "switch": {
          // the thread blocks (or has gone): another runs from where it last blocked
          const threads = proc.get().net!.threads;
          if (!outcome.exited) threads.current.state = programState(vcpu, mem, entry, outcome.result);
          const next = outcome.to.state;
          if (!next) throw new PolicyViolationError("a served program's thread has no state to run from", "thread");
          outcome.to.state = undefined;
          threads.current = outcome.to;
          loadThread(vcpu, shell, next);
          return RUN_ON;
        }
        case "sleep": {
          // counted against the deadline: a sleep past it ends the call as the deadline would
          const ms = Number(outcome.ns / 1_000_000n);
          if (!debug && this.timeoutMs > 0 && ms >= this.timeoutMs) throw new TimeoutError(this.timeoutMs);
          Bun.sleepSync(ms);
          if (!debug && deadline.expired()) throw new TimeoutError(this.timeoutMs);
          vcpu.setReg("rax", 0n);
          break;
        }
      }
      // a resumed call's first entry still has its special registers to load: kept pending
      if (given) vcpu.addRegsDirty();
      else vcpu.markRegsDirty(false);
      return RUN_ON;
    };
    const hypercall = (): LinuxRunResult | typeof RUN_ON => {
      // the console is stderr: what the layer buffered there comes first
      flushWindows(block, stdout, stderr);
      let ret: bigint | undefined;
      if (hook) {
        const hnr = vcpu.reg("rax");
        const a = vcpu.reg("rdi");
        const b = vcpu.reg("rsi");
        ret = hook.hypercall(hnr, a, b, ctx, () => dispatchHypercall(ctx, this.policy, hnr, a, b));
      } else ret = dispatchHypercall(ctx, this.policy, vcpu.reg("rax"), vcpu.reg("rdi"), vcpu.reg("rsi"));
      if (ret === undefined) return end(Number((ctx.exitValue ?? 0n) & 0xffn));
      vcpu.setReg("rax", ret);
      vcpu.markRegsDirty(false);
      return RUN_ON;
    };
    const calls: CallExits<LinuxRunResult> = {
      afterExit: logged ? takeLog : undefined,
      io: (port, out, n) => {
        exits = n;
        if (!out) return undefined;
        switch (port) {
          case Port.LINUX_SYSCALL: // a system call through the CPL0 entry (a site not rewritten, yet or ever)
            return syscall(true);
          case Port.LINUX_FORWARD: // one the layer hands over
            return syscall(false);
          case Port.HYPERCALL:
            return hypercall();
          case Port.EXIT:
            return end(Number(vcpu.reg("rax") & 0xffn));
        }
        return undefined;
      },
      recover: () => {
        if (!layerFault(vcpu, mem)) return false;
        shell.markSregsChanged();
        return true;
      },
      violation: (port, out) => new PolicyViolationError(`the program used I/O port 0x${port.toString(16)} (${out ? "out" : "in"}), which is not one of wasp's`, `port 0x${port.toString(16)}`),
    };
    if (pending) {
      // a served program resumed inside its wait for a connection: that call is answered first, with this call's
      deadline.start(this.timeoutMs);
      const first = syscall(false, pending);
      if (first !== RUN_ON) return first;
    }
    return runLoop(shell, calls, { deadline, timeoutMs: this.timeoutMs, interrupted, debug, stack });
  }

  /** Closes the program's VMs and snapshots; later calls are refused. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#shells?.close();
    this.#shells = undefined;
    this.#snapshotFile?.close();
    this.#snapshotFile = undefined;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** A call's LinuxProcess, made at its first use. */
class LazyProcess {
  #proc: LinuxProcess | undefined;
  readonly #make: () => LinuxProcess;
  constructor(make: () => LinuxProcess) {
    this.#make = make;
  }
  get(): LinuxProcess {
    return (this.#proc ??= this.#make());
  }
  /** the system calls it did not know (none when no call reached the host) */
  get unknown(): Map<number, number> {
    return this.#proc?.unknown ?? new Map();
  }
}

/**
 * The system calls the layer logged since the last look (a recorded call), each handed to `at` in
 * order with what it took from outside (the clock reading, the random bytes of this call's page it
 * used), then the log emptied. Entries are the guest's: their count is bounded, their numbers masked.
 */
function drainLog(mem: GuestMemory, layout: LinuxLayout, callPageBytes: Uint8Array, at: (nr: number, args: readonly bigint[], result: bigint, outside: { ns: bigint; random: Uint8Array }) => void): void {
  const dv = mem.view;
  const lenAt = layout.io.call + LinuxCall.LOG_LEN;
  const n = Number(dv.getBigUint64(lenAt, true));
  if (n === 0) return;
  dv.setBigUint64(lenAt, 0n, true);
  const count = Math.min(n, LOG_ENTRIES);
  for (let i = 0; i < count; i++) {
    const e = layout.io.log + i * LinuxLog.SIZE;
    const nr = dv.getBigUint64(e + LinuxLog.NR, true);
    const args = [0, 1, 2, 3, 4, 5].map((k) => dv.getBigUint64(e + LinuxLog.ARGS + k * 8, true));
    const result = dv.getBigUint64(e + LinuxLog.RESULT, true);
    const pos = Number(dv.getBigUint64(e + LinuxLog.RANDOM, true) & 0xffffn);
    const take = Number(result & 0xffffn);
    const random = pos + take <= LinuxCall.RANDOM_CAP ? callPageBytes.slice(LinuxCall.RANDOM + pos, LinuxCall.RANDOM + pos + take) : new Uint8Array(0);
    at(nr > 0xffffn ? 0xffff : Number(nr), args, result, { ns: dv.getBigUint64(e + LinuxLog.NS, true), random });
  }
}

/**
 * A page fault in the in-VM layer's code is one of its accesses to the program's memory, which the
 * program could not make itself (a bad pointer): the layer resumes at its EFAULT path, at CPL3 as
 * before, and the system call returns -EFAULT. True when it was that. Any other exception there
 * (a bug, or a layer the program overwrote) ends the call as the program's own fault would.
 */
function layerFault(vcpu: Vcpu, mem: GuestMemory): boolean {
  const vector = Number(vcpu.reg("rax") & 0xffn);
  const rip = vcpu.reg("rdx");
  if (vector !== 14 || rip < BigInt(LinuxLayer.CODE) || rip >= BigInt(LinuxLayer.CODE + LinuxLayer.CODE_SIZE)) return false;
  const sp = vcpu.reg("rsp");
  const rflags = mem.readU64(sp + BigInt(FAULT_FRAME.rflags * 8), "fault frame");
  // the handler runs at CPL0 on the host's segments: the layer's are put back
  const sregs = vcpu.getSregs();
  const dv = new DataView(sregs.buffer);
  kvm_segment.write(dv, kvm_sregs.off("cs"), { base: 0, limit: 0xffffffff, selector: SEL_USER_CODE, type: 11, present: 1, dpl: 3, db: 0, s: 1, l: 1, g: 1, avl: 0, unusable: 0 });
  kvm_segment.write(dv, kvm_sregs.off("ss"), { base: 0, limit: 0xffffffff, selector: SEL_USER_DATA, type: 3, present: 1, dpl: 3, db: 1, s: 1, l: 0, g: 1, avl: 0, unusable: 0 });
  vcpu.setSregs(sregs);
  vcpu.setReg("rip", BigInt(LinuxLayer.EFAULT));
  vcpu.setReg("rflags", rflags);
  vcpu.addRegsDirty();
  return true;
}

/**
 * The CPL0 system-call entry's return (src/linux/entry.ts), made by the host: RIP from RCX, RFLAGS
 * from R11, RSP from the slot the entry saved it in, the program's segments. Returns the RIP the
 * program resumes at. The values are the guest's own (what its IRETQ would load); a saved RSP the
 * guest could not have had is its fault at its next access, as with the IRETQ.
 */
function returnFromEntry(vcpu: Vcpu, mem: GuestMemory, shell: Shell): bigint {
  const rip = vcpu.reg("rcx");
  const sregs = vcpu.getSregs();
  const dv = new DataView(sregs.buffer);
  kvm_segment.write(dv, kvm_sregs.off("cs"), { base: 0, limit: 0xffffffff, selector: SEL_USER_CODE, type: 11, present: 1, dpl: 3, db: 0, s: 1, l: 1, g: 1, avl: 0, unusable: 0 });
  kvm_segment.write(dv, kvm_sregs.off("ss"), { base: 0, limit: 0xffffffff, selector: SEL_USER_DATA, type: 3, present: 1, dpl: 3, db: 1, s: 1, l: 0, g: 1, avl: 0, unusable: 0 });
  vcpu.setSregs(sregs);
  shell.markSregsChanged();
  vcpu.setReg("rsp", mem.readU64(BigInt(LINUX_SAVED_RSP), "the entry's saved RSP"));
  vcpu.setReg("rflags", vcpu.reg("r11"));
  vcpu.setReg("rip", rip);
  vcpu.addRegsDirty();
  return rip;
}

/**
 * The program's own state at a system call's exit, as if the call had returned `rax`: through the
 * layer (its frame holds every register the program had, RIP and RSP), or through the CPL0 entry
 * (the registers are the program's but RCX and R11, its RSP saved by the entry).
 */
function programState(vcpu: Vcpu, mem: GuestMemory, entry: boolean, rax: bigint): ThreadState {
  const regs = vcpu.runBytes.slice(vcpu.syncRegsOffset, vcpu.syncRegsOffset + kvm_regs.size);
  const dv = new DataView(regs.buffer);
  const put = (r: Parameters<typeof kvm_regs.off>[0], v: bigint) => dv.setBigUint64(kvm_regs.off(r), v, true);
  let rip: bigint;
  let rflags: bigint;
  if (entry) {
    rip = vcpu.reg("rcx");
    rflags = vcpu.reg("r11");
    put("rsp", mem.readU64(BigInt(LINUX_SAVED_RSP), "the entry's saved RSP"));
  } else {
    // the layer's frame (guests/linux/layer.zig, Frame): nr, rdi, rsi, rdx, r10, r8, r9, rbx, rbp, r12-r15, rflags, rip, rsp
    const at = BigInt(LinuxLayer.STACK_TOP - 16 * 8);
    const f = (i: number) => mem.readU64(at + BigInt(i * 8), "the layer's frame");
    const names = ["rdi", "rsi", "rdx", "r10", "r8", "r9", "rbx", "rbp", "r12", "r13", "r14", "r15"] as const;
    names.forEach((r, i) => put(r, f(i + 1)));
    rflags = f(13);
    rip = f(14);
    put("rsp", f(15));
  }
  put("rax", rax);
  put("rip", rip);
  put("rcx", rip);
  put("rflags", rflags);
  put("r11", rflags);
  const sregs = vcpu.getSregs();
  const fs = new DataView(sregs.buffer).getBigUint64(kvm_sregs.off("fs") + kvm_segment.off("base"), true);
  return { regs, fs, xsave: vcpu.getXsave() };
}

/** Runs a thread from its state: its registers, the program's CPL3 segments with its FS base, its FPU state. */
function loadThread(vcpu: Vcpu, shell: Shell, t: ThreadState): void {
  const sregs = vcpu.getSregs();
  const dv = new DataView(sregs.buffer);
  kvm_segment.write(dv, kvm_sregs.off("cs"), { base: 0, limit: 0xffffffff, selector: SEL_USER_CODE, type: 11, present: 1, dpl: 3, db: 0, s: 1, l: 1, g: 1, avl: 0, unusable: 0 });
  kvm_segment.write(dv, kvm_sregs.off("ss"), { base: 0, limit: 0xffffffff, selector: SEL_USER_DATA, type: 3, present: 1, dpl: 3, db: 1, s: 1, l: 0, g: 1, avl: 0, unusable: 0 });
  kvm_segment.write(dv, kvm_sregs.off("fs"), { ...kvm_segment.read(dv, kvm_sregs.off("fs")), base: t.fs });
  vcpu.setSregs(sregs);
  shell.markSregsChanged();
  vcpu.setXsave(t.xsave);
  vcpu.putRegs(t.regs);
  vcpu.markRegsDirty(false);
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** EDX of CPUID leaf `fn` (index 0) in a kvm_cpuid2 buffer: what AT_HWCAP carries (leaf 1). */
export function cpuidEdx(cpuid: Uint8Array, fn: number): bigint {
  const dv = new DataView(cpuid.buffer, cpuid.byteOffset, cpuid.byteLength);
  const n = dv.getUint32(kvm_cpuid2.off("nent"), true);
  for (let i = 0; i < n; i++) {
    const at = kvm_cpuid2.size + i * kvm_cpuid_entry2.size;
    if (at + kvm_cpuid_entry2.size > cpuid.byteLength) break;
    if (dv.getUint32(at + kvm_cpuid_entry2.off("function"), true) === fn && dv.getUint32(at + kvm_cpuid_entry2.off("index"), true) === 0) {
      return BigInt(dv.getUint32(at + kvm_cpuid_entry2.off("edx"), true));
    }
  }
  return 0n;
}

/**
 * The files a snapshot file's program was granted, read from its memory where the layout places
 * them and checked against the section's hashes: a file whose bytes differ is a BadSnapshotError.
 */
function placedFilesOf(loaded: LoadedSnapshotFile, elf: ElfExecutable, files: readonly { path: string; size: number; sha256: string }[], interp: ElfExecutable | undefined, dirs: boolean): Map<string, Uint8Array> {
  const layout = planLinux(elf, loaded.info.memSize, loaded.info.stackSize, files, interp, dirs);
  const out = new Map<string, Uint8Array>();
  layout.io.files.forEach((f, i) => {
    const data = new Uint8Array(f.size);
    if (f.size > 0 && readSync(loaded.fd, data, 0, f.size, f.addr) !== f.size) throw new BadSnapshotError(`${loaded.info.path}: the placed file ${f.path} is cut short in its memory`);
    if (sha256Hex(data) !== files[i].sha256) throw new BadSnapshotError(`${loaded.info.path}: the placed file ${f.path} is not the file the snapshot names (its SHA-256 differs)`);
    out.set(f.path, data);
  });
  return out;
}

/**
 * A snapshot's program restored with directories: `given` (the `dirs` option) must grant exactly
 * the guest paths `saved` names — its fds and its layer's configuration were made with those —
 * from whichever host directories. Else a BadArgsError naming what to add or leave out.
 */
function checkSnapshotDirs(file: string, saved: readonly string[], given: LinuxOptions["dirs"]): void {
  const granted = grantedDirs(given ?? {}).map((d) => d.guest);
  const missing = saved.filter((d) => !granted.includes(d));
  const extra = granted.filter((d) => !saved.includes(d)).sort();
  if (missing.length === 0 && extra.length === 0) return;
  if (saved.length === 0) throw new BadArgsError(`${file} was taken with no directories granted: grant it none (leave out ${extra.map((d) => `--dir HOST=${d}`).join(" ")}; dirs)`);
  const what = [...(missing.length > 0 ? [`give ${missing.map((d) => `--dir HOST=${d}`).join(" ")}`] : []), ...(extra.length > 0 ? [`leave out ${extra.join(", ")}, which it was not granted`] : [])];
  throw new BadArgsError(`${file} was taken with directories granted: ${what.join("; ")} (dirs)`);
}
