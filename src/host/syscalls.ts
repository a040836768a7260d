// The seccomp allowlists of a sandboxed wasp process (`wasp invoke`; `wasp serve`, which adds
// SERVE_SYSCALLS): the one table of every system call it may make, each with why, and the BPF
// filter built from it. Everything else fails with
// EPERM. The list comes from tracing dist/wasp and `bun run` of src/index.ts (strace -f: Bun's
// start-up, its JIT, GC and worker threads, node:fs, timers) and from reading every libc call in
// ffi/ and src/ on the KVM path (docs/security.md, "The host process").
//
// Why EPERM and not killing the process: a system call Bun makes on a path no trace saw (a new Bun
// version, a rare error path) then fails like any refused call and Bun reports it, instead of wasp
// dying with SIGSYS on a machine nobody tested. A compromised process gains nothing from an error.
import { Errno } from "../../ffi/errno.ts";
import {
  AUDIT_ARCH_X86_64, BpfProgram, SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS, X32_SYSCALL_BIT, argLow, seccomp_data,
} from "../../ffi/seccomp.ts";

/** A condition on one argument: its low 32 bits (an int or a flag word), or all 64 of a pointer. */
export type ArgCheck =
  /** allowed only if these bits are set in argument `arg` */
  | { kind: "bits"; arg: number; bits: number }
  /** allowed only if argument `arg` is one of `values` (or this process's pid, with `ownPid`) */
  | { kind: "values"; arg: number; values: readonly number[]; ownPid?: boolean }
  /** ioctl: allowed only for requests of this ioctl type (bits 8-15) or one of `requests` */
  | { kind: "ioctl"; type: number; requests: readonly number[] }
  /** allowed only if argument `arg` (a pointer: all 64 bits) is NULL */
  | { kind: "null"; arg: number };

export interface SyscallRule {
  name: string;
  /** x86-64 number (asm/unistd_64.h; checked against the C headers by tests/harden.test.ts) */
  nr: number;
  why: string;
  /** allowed only when this holds; otherwise EPERM */
  only?: ArgCheck;
  /** not allowed: fails with this errno rather than EPERM */
  refuse?: number;
}

const CLONE_THREAD = 0x00010000; // linux/sched.h
/** prctl options Bun uses or the sandbox's own checks read (linux/prctl.h) */
const PR = { GET_DUMPABLE: 3, SET_NAME: 15, GET_NAME: 16, GET_SECCOMP: 21, GET_NO_NEW_PRIVS: 39, SET_VMA: 0x53564d41 } as const;
/** The ioctl type of every KVM request (linux/kvm.h, KVMIO). */
export const KVMIO = 0xae;
/** The terminal and file ioctls Bun makes on standard streams (asm-generic/ioctls.h). */
export const TTY_IOCTLS = { TCGETS: 0x5401, TIOCGPGRP: 0x540f, TIOCGWINSZ: 0x5413, FIONREAD: 0x541b, FIONBIO: 0x5421, FIONCLEX: 0x5450, FIOCLEX: 0x5451 } as const;

/** Every system call a sandboxed wasp may make. Keep docs/security.md's summary in step. */
export const SYSCALLS: readonly SyscallRule[] = [
  // files and descriptors: which files can be opened is Landlock's job (src/host/landlock.ts)
  { name: "read", nr: 0, why: "files, standard input, eventfds" },
  { name: "write", nr: 1, why: "standard output and error, --output, eventfd wake-ups" },
  { name: "open", nr: 2, why: "Bun opens a few /proc and /sys files with open(2) (paths limited by Landlock)" },
  { name: "close", nr: 3, why: "every fd wasp or Bun opens" },
  { name: "stat", nr: 4, why: "node:fs stat of a path" },
  { name: "fstat", nr: 5, why: "size of an open image or snapshot file" },
  { name: "lstat", nr: 6, why: "node:fs lstat" },
  { name: "poll", nr: 7, why: "Bun's event loop and stream writes" },
  { name: "lseek", nr: 8, why: "SEEK_DATA/SEEK_HOLE over a snapshot file; node:fs" },
  { name: "pread64", nr: 17, why: "node:fs reads at an offset (images, snapshot headers)" },
  { name: "pwrite64", nr: 18, why: "a snapshot memfd's contents (ffi/libc.ts pwrite)" },
  { name: "readv", nr: 19, why: "node:fs" },
  { name: "writev", nr: 20, why: "Bun's buffered stdout/stderr" },
  { name: "access", nr: 21, why: "node:fs existsSync/accessSync" },
  { name: "pipe", nr: 22, why: "Bun's internal wake-up pipes (a pipe within the process)" },
  { name: "dup", nr: 32, why: "Bun duplicates standard streams" },
  { name: "dup2", nr: 33, why: "as dup" },
  { name: "fcntl", nr: 72, why: "F_GETFL/F_SETFL (non-blocking), F_DUPFD_CLOEXEC on Bun's own fds; F_ADD_SEALS on a loaded snapshot's memfd" },
  { name: "fsync", nr: 74, why: "node:fs fsync of a file wasp writes" },
  { name: "fdatasync", nr: 75, why: "as fsync" },
  { name: "ftruncate", nr: 77, why: "sizing a snapshot memfd (an fd-only truncate)" },
  { name: "getcwd", nr: 79, why: "resolving relative paths" },
  { name: "readlink", nr: 89, why: "Bun resolves /proc/self/exe and /etc/localtime" },
  { name: "fstatfs", nr: 138, why: "node:fs on an open file" },
  { name: "getdents64", nr: 217, why: "reading a directory (limited by Landlock)" },
  { name: "fadvise64", nr: 221, why: "node:fs read-ahead hints" },
  { name: "openat", nr: 257, why: "every open: /dev/kvm, the image, snapshot, input and output files (limited by Landlock)" },
  { name: "newfstatat", nr: 262, why: "node:fs stat, fstat of an open fd" },
  { name: "readlinkat", nr: 267, why: "as readlink" },
  { name: "faccessat", nr: 269, why: "as access" },
  { name: "pselect6", nr: 270, why: "Bun's event loop (libuv-style waits)" },
  { name: "ppoll", nr: 271, why: "as poll" },
  { name: "dup3", nr: 292, why: "as dup" },
  { name: "pipe2", nr: 293, why: "as pipe" },
  { name: "preadv", nr: 295, why: "node:fs" },
  { name: "pwritev", nr: 296, why: "node:fs writes (writeFileSync of --output)" },
  { name: "statx", nr: 332, why: "node:fs statSync (images, --input)" },
  { name: "sendto", nr: 44, why: "standard output and error when they are sockets (Bun's spawn, systemd): only without an address, so only on a connected socket wasp was given", only: { kind: "null", arg: 4 } },
  { name: "recvfrom", nr: 45, why: "standard input when it is a socket" },
  { name: "preadv2", nr: 327, why: "Bun reads pipes with RWF_NOWAIT first (standard input)" },
  { name: "pwritev2", nr: 328, why: "Bun writes pipes with RWF_NOWAIT first (standard output and error)" },
  { name: "close_range", nr: 436, why: "Bun closes inherited fds at start-up and in its thread pool" },
  { name: "faccessat2", nr: 439, why: "as access" },
  // memory: guest RAM, kvm_run, snapshot mappings; JavaScriptCore's heap and JIT
  { name: "mmap", nr: 9, why: "guest RAM, kvm_run, snapshot files (copy-on-write), Bun's heap and JIT" },
  { name: "mprotect", nr: 10, why: "the JIT's code pages, thread stack guards" },
  { name: "munmap", nr: 11, why: "releasing guest RAM and mappings" },
  { name: "brk", nr: 12, why: "malloc" },
  { name: "mremap", nr: 25, why: "malloc's large reallocations" },
  { name: "msync", nr: 26, why: "mapped files" },
  { name: "mincore", nr: 27, why: "the allocator probes residency" },
  { name: "madvise", nr: 28, why: "MADV_DONTNEED resets of guest RAM; the GC returns memory" },
  { name: "memfd_create", nr: 319, why: "snapshot memory (an anonymous file, no path)" },
  { name: "membarrier", nr: 324, why: "JavaScriptCore's cross-thread code fences" },
  // KVM
  {
    name: "ioctl", nr: 16, why: "every KVM request (type 0xAE) on /dev/kvm, VM and vCPU fds, including KVM_RUN; the terminal queries Bun makes on standard streams. Not TIOCSTI or any other",
    only: { kind: "ioctl", type: KVMIO, requests: Object.values(TTY_IOCTLS) },
  },
  // threads and synchronization
  { name: "clone", nr: 56, why: "new threads (Bun's workers, JIT, GC); a new process is refused", only: { kind: "bits", arg: 0, bits: CLONE_THREAD } },
  { name: "clone3", nr: 435, why: "its flags are in memory a filter cannot read: ENOSYS makes glibc fall back to clone", refuse: Errno.ENOSYS },
  { name: "exit", nr: 60, why: "a thread ends" },
  { name: "exit_group", nr: 231, why: "the process ends" },
  { name: "futex", nr: 202, why: "locks, condition variables, Atomics.wait" },
  { name: "set_robust_list", nr: 273, why: "every new thread (glibc)" },
  { name: "set_tid_address", nr: 218, why: "every new thread (glibc)" },
  { name: "rseq", nr: 334, why: "every new thread (glibc)" },
  { name: "arch_prctl", nr: 158, why: "a thread's TLS base (glibc)" },
  { name: "gettid", nr: 186, why: "the deadline timer's target thread" },
  { name: "getpid", nr: 39, why: "process.pid; tgkill's first argument" },
  { name: "getppid", nr: 110, why: "process.ppid" },
  { name: "sched_yield", nr: 24, why: "a worker's polite spin-wait" },
  { name: "sched_getaffinity", nr: 204, why: "Bun sizes its thread pools by the usable CPUs" },
  { name: "sched_getparam", nr: 143, why: "thread priorities (read only)" },
  { name: "sched_getscheduler", nr: 145, why: "as sched_getparam" },
  { name: "prctl", nr: 157, why: "thread names, anonymous mapping names; reading the dumpable and no_new_privs flags. Not PR_SET_DUMPABLE", only: { kind: "values", arg: 0, values: Object.values(PR) } },
  // signals and timers: the deadline (src/virtine/deadline.ts) and JavaScriptCore's thread suspension
  { name: "rt_sigaction", nr: 13, why: "the deadline signal's handler; Bun's handlers" },
  { name: "rt_sigprocmask", nr: 14, why: "blocking the deadline signal outside KVM_RUN" },
  { name: "rt_sigreturn", nr: 15, why: "the return from every signal handler" },
  { name: "rt_sigpending", nr: 127, why: "signal bookkeeping" },
  { name: "rt_sigtimedwait", nr: 128, why: "consuming a pending deadline signal" },
  { name: "rt_sigsuspend", nr: 130, why: "JavaScriptCore suspends threads for the GC with a signal" },
  { name: "sigaltstack", nr: 131, why: "a thread's signal stack" },
  { name: "restart_syscall", nr: 219, why: "the kernel restarts a sleep interrupted by a signal" },
  { name: "kill", nr: 62, why: "a signal to this process only", only: { kind: "values", arg: 0, values: [], ownPid: true } },
  { name: "tgkill", nr: 234, why: "the deadline and cancellation signals to a thread of this process only (GC suspension too)", only: { kind: "values", arg: 0, values: [], ownPid: true } },
  { name: "timer_create", nr: 222, why: "the deadline timer" },
  { name: "timer_settime", nr: 223, why: "arming and disarming the deadline" },
  { name: "timer_gettime", nr: 224, why: "as timer_settime" },
  { name: "timer_getoverrun", nr: 225, why: "as timer_settime" },
  { name: "timer_delete", nr: 226, why: "the deadline timer's end" },
  { name: "timerfd_create", nr: 283, why: "Bun's event loop timers" },
  { name: "timerfd_settime", nr: 286, why: "as timerfd_create" },
  { name: "timerfd_gettime", nr: 287, why: "as timerfd_create" },
  { name: "nanosleep", nr: 35, why: "sleeps" },
  { name: "clock_nanosleep", nr: 230, why: "sleeps" },
  { name: "clock_gettime", nr: 228, why: "clocks (when the vDSO falls back to the kernel)" },
  { name: "clock_getres", nr: 229, why: "as clock_gettime" },
  { name: "gettimeofday", nr: 96, why: "as clock_gettime" },
  { name: "time", nr: 201, why: "as clock_gettime" },
  // event loop
  { name: "epoll_wait", nr: 232, why: "Bun's event loop" },
  { name: "epoll_ctl", nr: 233, why: "Bun's event loop" },
  { name: "epoll_pwait", nr: 281, why: "Bun's event loop" },
  { name: "epoll_create1", nr: 291, why: "Bun's event loop" },
  { name: "epoll_pwait2", nr: 441, why: "Bun's event loop" },
  { name: "eventfd2", nr: 290, why: "waking the event loop from other threads" },
  // process information (read only)
  { name: "uname", nr: 63, why: "Bun and glibc read the kernel version" },
  { name: "umask", nr: 95, why: "node:fs file creation mode" },
  { name: "getrlimit", nr: 97, why: "stack and fd limits (read)" },
  { name: "prlimit64", nr: 302, why: "glibc's getrlimit/setrlimit, for this process only (RLIMIT_CORE's hard limit 0 cannot be raised without privilege)", only: { kind: "values", arg: 0, values: [0], ownPid: true } },
  { name: "getrusage", nr: 98, why: "process.cpuUsage and the GC's heuristics" },
  { name: "sysinfo", nr: 99, why: "Bun sizes its heap by the machine's memory" },
  { name: "getuid", nr: 102, why: "user ids (read)" },
  { name: "getgid", nr: 104, why: "user ids (read)" },
  { name: "geteuid", nr: 107, why: "user ids (read)" },
  { name: "getegid", nr: 108, why: "user ids (read)" },
  { name: "getrandom", nr: 318, why: "crypto.getRandomValues, hash seeds; the `random` hypercall" },
];

/**
 * What `wasp serve` makes beyond SYSCALLS, once it listens (traced with strace -f over its tests,
 * a wrk run of each kind of function, --record-failures, SIGHUP and SIGTERM): the connections Bun
 * accepts on the socket it opened before the filter, and the files of its recordings folder. Still
 * no socket, connect, bind or listen: the server talks only over connections made to it.
 */
export const SERVE_SYSCALLS: readonly SyscallRule[] = [
  { name: "accept4", nr: 288, why: "a connection to the listening socket Bun opened before the filter" },
  { name: "getpeername", nr: 52, why: "a connection's remote address (REMOTE_ADDR, the access log)" },
  { name: "getsockname", nr: 51, why: "a connection's local address" },
  { name: "setsockopt", nr: 54, why: "TCP_NODELAY on each accepted connection" },
  { name: "getsockopt", nr: 55, why: "a connection's pending error" },
  { name: "shutdown", nr: 48, why: "closing a connection's half" },
  { name: "sendmsg", nr: 46, why: "a response in pieces (headers and body) on a connection; no socket can be made to send elsewhere" },
  { name: "recvmsg", nr: 47, why: "as recvfrom, on a connection" },
  { name: "rename", nr: 82, why: "a recording (--record-failures) or a snapshot file put in place whole (limited by Landlock to the recordings folder)" },
  { name: "renameat", nr: 264, why: "as rename" },
  { name: "renameat2", nr: 316, why: "as rename" },
  { name: "unlink", nr: 87, why: "the oldest recordings removed past their bounds (limited by Landlock to the recordings folder)" },
  { name: "unlinkat", nr: 263, why: "as unlink" },
  { name: "mkdir", nr: 83, why: "the recordings folder checked again at a reload (it exists: EEXIST; Landlock grants making none)" },
  { name: "mkdirat", nr: 258, why: "as mkdir" },
  { name: "chmod", nr: 90, why: "a snapshot file made read-only before it is put in place" },
  { name: "fchmod", nr: 91, why: "as chmod" },
  { name: "fchmodat", nr: 268, why: "as chmod" },
];

/** The allowlist of a command: `wasp invoke`'s, or `wasp serve`'s (that plus SERVE_SYSCALLS). */
export type SandboxKind = "invoke" | "serve";

export function syscallsOf(kind: SandboxKind): readonly SyscallRule[] {
  return kind === "serve" ? [...SYSCALLS, ...SERVE_SYSCALLS] : SYSCALLS;
}

/**
 * Some of what the filter refuses, by name, for the tests and the docs: the ways out of the process
 * (programs, network, other processes, the kernel). Anything not in SYSCALLS is refused as well.
 */
export const REFUSED: readonly { name: string; nr: number }[] = [
  { name: "execve", nr: 59 }, { name: "execveat", nr: 322 }, { name: "fork", nr: 57 }, { name: "vfork", nr: 58 },
  { name: "socket", nr: 41 }, { name: "connect", nr: 42 }, { name: "accept", nr: 43 }, { name: "recvmsg", nr: 47 },
  { name: "sendmsg", nr: 46 }, { name: "bind", nr: 49 }, { name: "listen", nr: 50 }, { name: "socketpair", nr: 53 },
  { name: "accept4", nr: 288 }, { name: "ptrace", nr: 101 }, { name: "process_vm_readv", nr: 310 },
  { name: "process_vm_writev", nr: 311 }, { name: "mount", nr: 165 }, { name: "umount2", nr: 166 },
  { name: "pivot_root", nr: 155 }, { name: "chroot", nr: 161 }, { name: "unshare", nr: 272 }, { name: "setns", nr: 308 },
  { name: "kexec_load", nr: 246 }, { name: "kexec_file_load", nr: 320 }, { name: "init_module", nr: 175 },
  { name: "finit_module", nr: 313 }, { name: "delete_module", nr: 176 }, { name: "bpf", nr: 321 },
  { name: "perf_event_open", nr: 298 }, { name: "keyctl", nr: 250 }, { name: "add_key", nr: 248 },
  { name: "request_key", nr: 249 }, { name: "io_uring_setup", nr: 425 }, { name: "userfaultfd", nr: 323 },
  { name: "open_by_handle_at", nr: 304 }, { name: "pidfd_open", nr: 434 }, { name: "pidfd_getfd", nr: 438 },
  { name: "tkill", nr: 200 }, { name: "rt_sigqueueinfo", nr: 129 }, { name: "rt_tgsigqueueinfo", nr: 297 },
  { name: "unlinkat", nr: 263 }, { name: "renameat2", nr: 316 }, { name: "mkdirat", nr: 258 }, { name: "truncate", nr: 76 },
  { name: "chmod", nr: 90 }, { name: "setuid", nr: 105 }, { name: "setrlimit", nr: 160 }, { name: "seccomp", nr: 317 },
  { name: "landlock_restrict_self", nr: 446 },
];

const DENY = SECCOMP_RET_ERRNO | Errno.EPERM;

/**
 * The filter: the caller's ABI must be x86-64 (a 32-bit `int 0x80` or an x32 call kills the
 * process: nothing wasp runs makes one, so it can only be an attack), then the table in order,
 * then EPERM. `pid` is this process's (kill, tgkill and prlimit64 may name only it); without one,
 * each comparison with it is the slot `pid` (PID_SLOT), given at assembly.
 */
export function buildFilter(pid?: number, kind: SandboxKind = "invoke"): BpfProgram {
  const p = new BpfProgram();
  p.load(seccomp_data.off("arch")).jeq(AUDIT_ARCH_X86_64, 1).ret(SECCOMP_RET_KILL_PROCESS);
  p.load(seccomp_data.off("nr")).jge(X32_SYSCALL_BIT, 0, 1).ret(SECCOMP_RET_KILL_PROCESS);
  for (const rule of syscallsOf(kind)) {
    if (rule.only === undefined) {
      p.jeq(rule.nr, 0, 1).ret(rule.refuse === undefined ? SECCOMP_RET_ALLOW : SECCOMP_RET_ERRNO | rule.refuse);
      continue;
    }
    // the argument check reloads A, so it must end in a return: A no longer holds the number
    const next = `after ${rule.name}`;
    const ok = `allow ${rule.name}`;
    p.jeq(rule.nr, 0, next);
    const c = rule.only;
    switch (c.kind) {
      case "bits":
        p.load(argLow(c.arg)).jset(c.bits, ok).ret(DENY);
        break;
      case "values":
        p.load(argLow(c.arg));
        for (const v of c.values) p.jeq(v, ok);
        if (c.ownPid) {
          if (pid === undefined) p.jeqSlot(PID_SLOT, ok);
          else p.jeq(pid, ok);
        }
        p.ret(DENY);
        break;
      case "ioctl":
        p.load(argLow(1));
        for (const r of c.requests) p.jeq(r, ok);
        p.and(0xff00).jeq(c.type << 8, ok).ret(DENY);
        break;
      case "null":
        p.load(argLow(c.arg)).jeq(0, 0, 1).load(argLow(c.arg) + 4).jeq(0, ok).ret(DENY);
        break;
    }
    p.label(ok).ret(SECCOMP_RET_ALLOW).label(next);
  }
  p.ret(DENY);
  return p;
}

/** The slot of a filter built without a pid that takes the process's pid. */
export const PID_SLOT = "pid";

/** The filter made ahead of the process that installs it: `assembledFilter`. */
export interface AssembledFilter {
  /** struct sock_filter[] assembled with pid 0, in base64 */
  base64: string;
  /** the byte offsets of the u32 words that take the installing process's pid */
  pidOffsets: number[];
  /** the system calls of the allowlist (SYSCALLS.length) */
  syscalls: number;
}

/**
 * The filter for any process, as `wasp invoke` installs it. src/host/harden.ts imports this as a Bun
 * macro: it runs when the binary is built (or when `bun run` transpiles harden.ts), and the binary
 * holds its result, not the table and the assembler. Building and assembling the 268 instructions at
 * every start, in JavaScript not yet compiled, cost ~3 ms of a `wasp invoke` (docs/benchmarks.md,
 * "Start and creation"); tests/harden.test.ts checks the installed bytes against `buildFilter(pid)`.
 */
export function assembledFilter(kind: SandboxKind = "invoke"): AssembledFilter {
  const program = buildFilter(undefined, kind);
  return {
    base64: Buffer.from(program.assemble({ [PID_SLOT]: 0 })).toString("base64"),
    pidOffsets: program.slotOffsets(PID_SLOT),
    syscalls: syscallsOf(kind).length,
  };
}
