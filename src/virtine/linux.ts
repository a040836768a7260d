// Running a static Linux executable in a virtine (issue 13, first cut): each call in a new VM of
// its own — the cold path of `wasp invoke PROG` — built from src/linux/'s pure parts: the address
// space and entry state (start.ts), the system-call entry (entry.ts), the host's answers
// (process.ts), `--trace` lines (trace.ts). The run loop answers every `syscall` exit, applies what
// the answer asks (a result in RAX, the FS base, a sleep, the end), reports faults as for native
// guests and stops at the deadline. Not yet: pools, snapshots (wasp_snapshot() answers 0, "off"),
// workers and the TypeScript API's Virtine — the next step is a Linux image kind in src/kinds/.
//
// NOTE: written on a machine without /dev/kvm; tests/linux-run.test.ts exercises it on KVM.
import { KVM_EXIT, KVM_EXIT_IO_OUT, kvm_cpuid2, kvm_cpuid_entry2, kvm_msr_entry, kvm_msrs, kvm_run, kvm_segment, kvm_sregs } from "../../ffi/kvm.ts";
import { Port } from "../abi/guest-abi.ts";
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { BadArgsError, BadImageError, CancelledError, PolicyViolationError, TimeoutError } from "../errors.ts";
import { compileC, type COptions } from "../linux/c.ts";
import { ConsoleSink, DEFAULT_MAX_OUTPUT } from "../hypercall/console.ts";
import { dispatchHypercall, type HypercallContext } from "../hypercall/handlers.ts";
import { Policy } from "../hypercall/policy.ts";
import { hostFunctionTable, type HostFunction } from "../hypercall/host-call.ts";
import { MAX_MEMORY, MIB } from "../image/image.ts";
import { systemKvm, type Kvm } from "../kvm/system.ts";
import { msrBuffer } from "../kvm/msrs.ts";
import { EXIT_INTERRUPTED, type Vcpu } from "../kvm/vcpu.ts";
import { GuestAccess } from "../memory/guest-access.ts";
import { GuestMemory } from "../memory/guest-memory.ts";
import { linuxAccessRules, planLinux, type LinuxLayout } from "../linux/address-space.ts";
import { parseElf, type ElfExecutable } from "../linux/elf.ts";
import { syscallArgs } from "../linux/entry.ts";
import { LinuxProcess } from "../linux/process.ts";
import { linuxEntryState } from "../linux/start.ts";
import { traceLine } from "../linux/trace.ts";
import { DeadlineTimer } from "./deadline.ts";
import { exceptionFault, guestFault } from "./fault.ts";
import { DEFAULT_TIMEOUT_MS, MAX_TIMEOUT_MS } from "./runner.ts";

const IO_DIRECTION = kvm_run.off("io.direction");
/** A Linux program's memory when none is given: libc and malloc want more room than a native guest. */
export const DEFAULT_LINUX_MEMORY = 64 * MIB;
/** AT_RANDOM without the `random` grant: fixed, so that such a call is deterministic and learns no host entropy. */
const FIXED_RANDOM = new Uint8Array([0x77, 0x61, 0x73, 0x70, 0x2d, 0x6e, 0x6f, 0x2d, 0x72, 0x61, 0x6e, 0x64, 0x6f, 0x6d, 0x00, 0x01]);
const MAX_FILE_BYTES = 64 * MIB;

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
  /** called with each system call as strace prints it (`--trace`) */
  trace?: (line: string) => void;
  /** host functions the program may call through wasp.h (RunnerOptions.hostFunctions) */
  hostFunctions?: Readonly<Record<string, HostFunction>>;
  /** a module whose exported functions are host functions */
  hostModule?: string;
  kvm?: Kvm;
}

/** One call: its arguments (strings), its standard input, its environment (else the program's). */
export interface LinuxRunRequest {
  args?: readonly string[];
  input?: Uint8Array | string;
  env?: readonly string[] | Readonly<Record<string, string>>;
  /** asked when the thread's deadline signal interrupts the guest: true cancels the call */
  interrupted?: () => boolean;
}

/** "KEY=value" strings from a list or a record, each checked. */
function checkEnv(env: readonly string[] | Readonly<Record<string, string>>): string[] {
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
  /** VM exits the call took */
  exits: number;
  /** system calls the program made */
  syscalls: number;
  /** system calls answered -ENOSYS, by number, with how often */
  unsupported: Map<number, number>;
}

export class LinuxProgram {
  readonly elf: ElfExecutable;
  readonly layout: LinuxLayout;
  readonly timeoutMs: number;
  readonly policy: Policy;
  readonly maxOutput: number;
  readonly #opts: LinuxOptions;
  readonly #env: string[];
  readonly #files: Map<string, Uint8Array>;
  readonly #hostFunctions: Map<string, HostFunction>;
  readonly #kvm: Kvm | undefined;

  constructor(elf: ElfExecutable, opts: LinuxOptions = {}) {
    this.elf = elf;
    const memory = opts.memory ?? DEFAULT_LINUX_MEMORY;
    if (!Number.isSafeInteger(memory) || memory % 4096 !== 0 || memory <= 0 || memory > MAX_MEMORY) {
      throw new BadArgsError(`memory size ${memory} is not a multiple of 4 KiB up to ${MAX_MEMORY / MIB} MiB`);
    }
    this.layout = planLinux(elf, memory, opts.stackSize);
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isFinite(timeoutMs) || timeoutMs < 0 || timeoutMs > MAX_TIMEOUT_MS) throw new BadArgsError(`timeout ${timeoutMs} ms is not between 0 (none) and ${MAX_TIMEOUT_MS} ms`);
    this.timeoutMs = timeoutMs;
    this.#hostFunctions = hostFunctionTable(opts.hostFunctions, opts.hostModule);
    this.policy = Policy.grant(this.#hostFunctions.size > 0 ? [...(opts.allow ?? []), "host"] : opts.allow);
    const maxOutput = opts.maxOutput ?? DEFAULT_MAX_OUTPUT;
    if (!Number.isSafeInteger(maxOutput) || maxOutput < 0) throw new BadArgsError(`output cap ${maxOutput} is not a byte count`);
    this.maxOutput = maxOutput;
    this.#env = checkEnv(opts.env ?? []);
    this.#files = new Map();
    for (const [path, given] of Object.entries(opts.files ?? {})) {
      if (!path.startsWith("/") || path.includes("\0") || path.split("/").some((p) => p === "." || p === "..")) throw new BadArgsError(`granted file ${JSON.stringify(path)} is not an absolute path without . or ..`);
      let data: Uint8Array;
      if (typeof given === "string") {
        try {
          data = new Uint8Array(readFileSync(given));
        } catch (e) {
          throw new BadArgsError(`granted file ${path}: cannot read ${given} (${e instanceof Error ? e.message : String(e)})`);
        }
      } else if (given instanceof Uint8Array) data = given;
      else throw new BadArgsError(`granted file ${path} is neither bytes nor a host path`);
      if (data.length > MAX_FILE_BYTES) throw new BadArgsError(`granted file ${path} is ${data.length} bytes, more than ${MAX_FILE_BYTES / MIB} MiB`);
      this.#files.set(path.replace(/\/+/g, "/").replace(/(.)\/$/, "$1"), data);
    }
    this.#opts = opts;
    this.#kvm = opts.kvm; // else the process-wide one, opened at the first run
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
    return LinuxProgram.fromBytes(bytes, basename(path), opts);
  }

  /**
   * A program from C source written in the script, compiled with the bundled zig cc (static musl,
   * cached: src/linux/c.ts). A source that does not compile rejects with a CompileError.
   */
  static async fromC(source: string, opts: LinuxOptions & COptions = {}): Promise<LinuxProgram> {
    const { elf } = await compileC(source, opts);
    return new LinuxProgram(elf, opts);
  }

  /**
   * Runs the program once in a new VM: argv = its name and `args`, fd 0 = `input`. Returns its exit
   * status and output; a fault, a policy violation or the deadline is a typed error.
   */
  run(args?: readonly string[] | LinuxRunRequest, opts: Omit<LinuxRunRequest, "args"> = {}): LinuxRunResult {
    // run({ args, input, env }) as well as run(args, { input, env })
    if (args !== undefined && !Array.isArray(args)) {
      if (typeof args !== "object" || args === null) throw new BadArgsError("a Linux program's run takes a list of string arguments or { args, input, env }");
      opts = args as LinuxRunRequest;
      args = (args as LinuxRunRequest).args;
    }
    args ??= [];
    if (!Array.isArray(args) || args.some((a) => typeof a !== "string")) throw new BadArgsError("a Linux program's arguments are strings");
    const env = opts.env === undefined ? this.#env : checkEnv(opts.env);
    const input = typeof opts.input === "string" ? new TextEncoder().encode(opts.input) : opts.input;
    if (input !== undefined && !(input instanceof Uint8Array)) throw new BadArgsError("a Linux program's input is bytes or a string");
    const kvm = this.#kvm ?? systemKvm();
    const layout = this.layout;
    const reset = kvm.vcpuResetState();
    const random = new Uint8Array(16);
    if (this.policy.has("random")) crypto.getRandomValues(random);
    else random.set(FIXED_RANDOM);
    const state = linuxEntryState(this.elf, layout, { argv: [this.elf.name, ...(args as readonly string[])], envp: env, random, hwcap: cpuidEdx(kvm.cpuid, 1) }, reset);
    const mem = new GuestMemory(layout.memory);
    let vm: ReturnType<Kvm["createVm"]> | undefined;
    let vcpu: Vcpu | undefined;
    const deadline = DeadlineTimer.forThisThread();
    try {
      for (const [at, bytes] of state.pieces) mem.bytes.set(bytes, at);
      vm = kvm.createVm();
      vm.setMemoryRegion(0, 0, mem.size, mem.hostAddr);
      vcpu = vm.createVcpu(0);
      vcpu.setCpuid(kvm.cpuid);
      const msrs = msrBuffer(state.msrs.map(([index]) => index));
      const mdv = new DataView(msrs.buffer);
      state.msrs.forEach(([, value], i) => mdv.setBigUint64(kvm_msrs.size + i * kvm_msr_entry.size + kvm_msr_entry.off("data"), value, true));
      vcpu.setMsrs(msrs);
      vcpu.setSregs(state.sregs);
      vcpu.clearRegs();
      vcpu.setReg("rip", state.rip);
      vcpu.setReg("rsp", state.rsp);
      vcpu.setReg("rflags", state.rflags);
      vcpu.markRegsDirty(false);
      deadline.attach(vcpu.fd);
      return this.#loop(vcpu, mem, input ?? new Uint8Array(0), deadline, opts.interrupted);
    } finally {
      deadline.stop();
      vcpu?.close();
      vm?.close();
      mem.close();
    }
  }

  #loop(vcpu: Vcpu, mem: GuestMemory, input: Uint8Array, deadline: DeadlineTimer, interrupted: (() => boolean) | undefined): LinuxRunResult {
    const guest = new GuestAccess(mem, linuxAccessRules());
    const stdout = new ConsoleSink(this.maxOutput);
    const stderr = new ConsoleSink(this.maxOutput);
    const proc = new LinuxProcess(guest, {
      name: this.elf.name,
      input,
      stdout,
      stderr,
      files: this.#files,
      time: this.policy.has("time"),
      random: this.policy.has("random"),
      memory: this.layout.regions,
      stackSize: this.layout.stack[1] - this.layout.stack[0],
    });
    // wasp.h's hypercalls: the console is the program's stderr; no snapshot in a one-call VM
    const ctx: HypercallContext = { vcpu, guest, console: stderr, exitValue: undefined, snapshot: () => 0n, hostFunctions: this.#hostFunctions };
    const trace = this.#opts.trace;
    const stack = { guard: { start: this.layout.guard[0], end: this.layout.guard[1] }, size: this.layout.stack[1] - this.layout.stack[0] };
    let exits = 0;
    let syscalls = 0;
    const done = (status: number): LinuxRunResult => {
      // read before take(), which clears the sink for the next call
      const stdoutTruncated = stdout.truncated;
      const stderrTruncated = stderr.truncated;
      return { status, stdout: stdout.take(), stderr: stderr.take(), stdoutTruncated, stderrTruncated, exits, syscalls, unsupported: proc.unknown };
    };
    deadline.start(this.timeoutMs);
    for (;;) {
      const reason = vcpu.enter();
      exits++;
      if (reason === KVM_EXIT.IO) {
        const port = vcpu.ioPort();
        const out = vcpu.run.getUint8(IO_DIRECTION) === KVM_EXIT_IO_OUT;
        if (port === Port.LINUX_SYSCALL && out) {
          syscalls++;
          const nr = vcpu.reg("rax");
          const args = syscallArgs((r) => vcpu.reg(r));
          const outcome = proc.syscall(nr > 0xffffn ? 0xffff : Number(nr), args);
          if (trace) trace(traceLine(guest, Number(nr & 0xffffn), args, outcome));
          switch (outcome.kind) {
            case "exit":
              return done(outcome.status);
            case "return":
              vcpu.setReg("rax", BigInt.asUintN(64, outcome.value));
              break;
            case "setBase": {
              const sregs = vcpu.getSregs();
              const sdv = new DataView(sregs.buffer);
              kvm_segment.write(sdv, kvm_sregs.off(outcome.register), { ...kvm_segment.read(sdv, kvm_sregs.off(outcome.register)), base: outcome.base });
              vcpu.setSregs(sregs);
              vcpu.setReg("rax", 0n);
              break;
            }
            case "sleep": {
              // counted against the deadline: a sleep past it ends the call as the deadline would
              const ms = Number(outcome.ns / 1_000_000n);
              if (this.timeoutMs > 0 && ms >= this.timeoutMs) throw new TimeoutError(this.timeoutMs);
              Bun.sleepSync(ms);
              if (deadline.expired()) throw new TimeoutError(this.timeoutMs);
              vcpu.setReg("rax", 0n);
              break;
            }
          }
          vcpu.markRegsDirty(false);
          continue;
        }
        if (port === Port.HYPERCALL && out) {
          const ret = dispatchHypercall(ctx, this.policy, vcpu.reg("rax"), vcpu.reg("rdi"), vcpu.reg("rsi"));
          if (ret === undefined) return done(Number((ctx.exitValue ?? 0n) & 0xffn));
          vcpu.setReg("rax", ret);
          vcpu.markRegsDirty(false);
          continue;
        }
        if (port === Port.EXIT && out) return done(Number(vcpu.reg("rax") & 0xffn));
        if (port === Port.FAULT && out) throw exceptionFault(vcpu, mem, stack);
        throw new PolicyViolationError(`the program used I/O port 0x${port.toString(16)} (${out ? "out" : "in"}), which is not one of wasp's`, `port 0x${port.toString(16)}`);
      }
      if (reason === EXIT_INTERRUPTED) {
        deadline.consume();
        if (interrupted?.()) throw new CancelledError();
        if (deadline.expired()) throw new TimeoutError(this.timeoutMs);
        deadline.recheck();
        continue;
      }
      throw guestFault(vcpu, reason);
    }
  }
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
