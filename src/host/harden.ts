// Hardening of the wasp process itself, as Firecracker's jailer does for its VMM: if a bug ever gave
// a guest code execution in the host, the process it would own can run no program, reach no
// network, open no file the command did not name, and leaves no guest memory in a core dump.
//
// - hardenProcess (every command, at start): no_new_privs, not dumpable, RLIMIT_CORE 0.
// - enterSandbox (`wasp invoke`, once its arguments are parsed): Landlock (src/host/landlock.ts),
//   then a seccomp allowlist (src/host/syscalls.ts) on every thread of the process.
// - `wasp serve` takes the two steps apart (src/cli/serve.ts): sandboxFiles before it starts a
//   thread (Landlock restricts the calling thread and the threads it starts, every thread only
//   from ABI 8), sandboxSyscalls("serve") once it listens (TSYNC: every thread).
// docs/security.md, "The host process", says what each layer does and does not protect against.
import { ptr } from "bun:ffi";
import * as libc from "../../ffi/libc.ts";
import { errnoName } from "../../ffi/errno.ts";
import { SECCOMP_FILTER_FLAG_TSYNC, SECCOMP_SET_MODE_FILTER, sock_fprog, sock_filter } from "../../ffi/seccomp.ts";
import { SandboxError, SyscallError } from "../errors.ts";
import { restrictFiles, type Grant, type LandlockResult } from "./landlock.ts";
import type { SandboxKind } from "./syscalls.ts";
// a macro: the filter is assembled when the binary is built (src/host/syscalls.ts, assembledFilter)
import { assembledFilter } from "./syscalls.ts" with { type: "macro" };

/** The seccomp filters' bytes for pid 0, and where the pid goes: `wasp invoke`'s and `wasp serve`'s. */
const FILTERS = { invoke: assembledFilter("invoke"), serve: assembledFilter("serve") } as const;

/**
 * no_new_privs (no program this process could run gains privileges: setuid bits and file
 * capabilities are ignored; seccomp and Landlock need it); not dumpable (no core dump, no ptrace
 * attach by other processes of the same user, /proc/<pid>/mem closed to them) and a core size limit
 * of 0, soft and hard, so guest RAM never reaches a disk. Idempotent.
 */
export function hardenProcess(): void {
  try {
    libc.prctl(libc.PR_SET_NO_NEW_PRIVS, 1, "prctl(PR_SET_NO_NEW_PRIVS)");
    libc.prctl(libc.PR_SET_DUMPABLE, 0, "prctl(PR_SET_DUMPABLE)");
    libc.setrlimit(libc.RLIMIT_CORE, 0n, 0n);
  } catch (e) {
    if (e instanceof SyscallError) throw new SandboxError(`cannot harden the process: ${e.message}`);
    throw e;
  }
}

/** What a sandboxed command may open; `undefined` and "-" (a standard stream) get no rule. */
export interface SandboxPaths {
  /** files read: the image or snapshot file, --input */
  read: readonly (string | undefined)[];
  /** files written (or created): --output */
  write: readonly (string | undefined)[];
  /** devices opened read-write with ioctls: /dev/kvm */
  devices: readonly (string | undefined)[];
  /** folders whose files are read, written, made and removed (`wasp serve --record-failures`) */
  folders?: readonly (string | undefined)[];
}

export interface SandboxReport {
  landlock: LandlockResult;
  /** system calls in the allowlist */
  syscalls: number;
  /** BPF instructions of the filter */
  instructions: number;
}

/**
 * Sandboxes this process for the rest of its life (irreversibly): Landlock to `paths`, then the
 * seccomp allowlist on all threads. What is in force is returned (`describeSandbox` says it in one line).
 */
export function enterSandbox(paths: SandboxPaths): SandboxReport {
  hardenProcess();
  // Landlock first: once the filter is in, its system calls are refused
  const landlock = restrictTo(paths);
  return { landlock, syscalls: FILTERS.invoke.syscalls, instructions: installFilter("invoke") };
}

/** Landlock to `paths` (and Bun's own, RUNTIME) for this thread and the threads it starts; no_new_privs first. */
export function sandboxFiles(paths: SandboxPaths): LandlockResult {
  hardenProcess();
  return restrictTo(paths);
}

function restrictTo(paths: SandboxPaths): LandlockResult {
  const grants: Grant[] = [];
  const add = (list: readonly (string | undefined)[], access: Grant["access"]) => {
    for (const path of list) if (path !== undefined && path !== "-" && path !== "") grants.push({ path, access });
  };
  add(paths.read, "read");
  add(paths.write, "write");
  add(paths.devices, "device");
  add(paths.folders ?? [], "folder");
  return restrictFiles(grants);
}

/** The seccomp allowlist of `kind` on every thread of the process (irreversibly): its size. */
export function sandboxSyscalls(kind: SandboxKind): { syscalls: number; instructions: number } {
  hardenProcess();
  return { syscalls: FILTERS[kind].syscalls, instructions: installFilter(kind) };
}

/** One line on what is in force, for --verbose. */
export function describeSandbox(r: SandboxReport): string {
  const files = r.landlock.abi === 0
    ? `no Landlock in this kernel (${r.landlock.missing ?? "unknown"}): file access is not restricted`
    : `Landlock ABI ${r.landlock.abi} limits files to the command's (${r.landlock.allThreads ? "every thread" : "the main thread and the threads it starts"})`;
  return `seccomp allows ${r.syscalls} system calls on every thread; ${files}`;
}

/** The seccomp filter of process `pid`, as struct sock_filter[]: `buildFilter(pid, kind).assemble()`, made ahead. */
export function filterProgram(pid: number, kind: SandboxKind = "invoke"): Uint8Array {
  const filter = FILTERS[kind];
  const program = new Uint8Array(Buffer.from(filter.base64, "base64"));
  const dv = new DataView(program.buffer);
  for (const at of filter.pidOffsets) dv.setUint32(at, pid, true);
  return program;
}

/** Installs the seccomp filter on every thread (TSYNC); returns its length in instructions. */
function installFilter(kind: SandboxKind): number {
  const program = filterProgram(process.pid, kind);
  const fprog = new Uint8Array(sock_fprog.size);
  const count = program.length / sock_filter.size;
  sock_fprog.write(new DataView(fprog.buffer), 0, { len: count, filter: BigInt(ptr(program)) });
  const r = libc.raw.syscall(libc.SYS.seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, ptr(fprog), 0) as number;
  if (r === 0) return count;
  if (r > 0) throw new SandboxError(`cannot install the seccomp filter: thread ${r} already has a different one (run with --no-sandbox to go without)`);
  const e = libc.errno();
  throw new SandboxError(`cannot install the seccomp filter: ${errnoName(e)} (${e}) (run with --no-sandbox to go without)`);
}
