// The Linux system calls wasp answers, one row each: its number, its name, how `--trace` shows its
// arguments, what it takes from outside the guest under a grant (the clock, randomness: what a
// recording keeps), and whether the in-VM layer (guests/linux/layer.zig) answers it without an
// exit. The host's handlers are process.ts's, keyed by these names (a row without one fails to
// compile); the trace (trace.ts) and the recorder (record-linux.ts) read the rest from here, and
// tests/linux-syscalls.test.ts checks layer.zig's numbers and dispatch against this table.
// Everything not here is -ENOSYS, counted.

/** How `--trace` shows an argument: a number, in hex, a C string, or a buffer whose length is argument `buf` (`out`: the call fills it, its result is the length). */
export type TraceArg = "int" | "hex" | "str" | { buf: number; out?: boolean };

export interface SyscallSpec {
  readonly nr: number;
  readonly name: string;
  /** the arguments `--trace` shows; without it, the six registers in hex */
  readonly args?: readonly TraceArg[];
  /** what it takes from outside the guest, only under the grant of that name: recorded, replayed */
  readonly outside?: "time" | "random";
  /** the layer answers it inside the VM (a case it does not know still goes to the host) */
  readonly inVm?: boolean;
}

const INT = "int";
const HEX = "hex";
const STR = "str";

/** Every system call wasp answers, by number (arch/x86/entry/syscalls/syscall_64.tbl). */
export const SYSCALL_TABLE = [
  { nr: 0, name: "read", args: [INT, { buf: 2, out: true }, INT], inVm: true },
  { nr: 1, name: "write", args: [INT, { buf: 2 }, INT], inVm: true },
  { nr: 2, name: "open", args: [STR, HEX, HEX], inVm: true },
  { nr: 3, name: "close", args: [INT], inVm: true },
  { nr: 4, name: "stat", args: [STR, HEX], inVm: true },
  { nr: 5, name: "fstat", args: [INT, HEX], inVm: true },
  { nr: 6, name: "lstat", args: [STR, HEX], inVm: true },
  { nr: 7, name: "poll", args: [HEX, INT, INT], inVm: true },
  { nr: 8, name: "lseek", args: [INT, INT, INT], inVm: true },
  { nr: 9, name: "mmap", args: [HEX, INT, HEX, HEX, INT, INT], inVm: true },
  { nr: 10, name: "mprotect", args: [HEX, INT, HEX] },
  { nr: 11, name: "munmap", args: [HEX, INT], inVm: true },
  { nr: 12, name: "brk", args: [HEX], inVm: true },
  { nr: 13, name: "rt_sigaction", args: [INT, HEX, HEX, INT], inVm: true },
  { nr: 14, name: "rt_sigprocmask", args: [INT, HEX, HEX, INT], inVm: true },
  { nr: 16, name: "ioctl", args: [INT, HEX, HEX], inVm: true },
  { nr: 17, name: "pread64", args: [INT, { buf: 2, out: true }, INT, INT], inVm: true },
  { nr: 19, name: "readv", args: [INT, HEX, INT], inVm: true },
  { nr: 20, name: "writev", args: [INT, HEX, INT], inVm: true },
  { nr: 21, name: "access", args: [STR, INT], inVm: true },
  { nr: 23, name: "select", args: [INT, HEX, HEX, HEX, HEX] },
  { nr: 24, name: "sched_yield", args: [], inVm: true },
  { nr: 25, name: "mremap", args: [HEX, INT, INT, HEX], inVm: true },
  { nr: 28, name: "madvise", args: [HEX, INT, INT], inVm: true },
  { nr: 32, name: "dup", args: [INT] },
  { nr: 33, name: "dup2", args: [INT, INT] },
  { nr: 35, name: "nanosleep", args: [HEX, HEX], outside: "time" },
  { nr: 37, name: "alarm", args: [INT] },
  { nr: 39, name: "getpid", args: [], inVm: true },
  { nr: 40, name: "sendfile", args: [INT, INT, HEX, INT] },
  { nr: 41, name: "socket", args: [INT, HEX, INT] },
  { nr: 42, name: "connect", args: [INT, HEX, INT] },
  { nr: 43, name: "accept", args: [INT, HEX, HEX] },
  { nr: 44, name: "sendto", args: [INT, { buf: 2 }, INT, HEX, HEX, INT], inVm: true },
  { nr: 45, name: "recvfrom", args: [INT, { buf: 2, out: true }, INT, HEX, HEX, HEX] },
  { nr: 46, name: "sendmsg", args: [INT, HEX, HEX] },
  { nr: 47, name: "recvmsg", args: [INT, HEX, HEX] },
  { nr: 48, name: "shutdown", args: [INT, INT] },
  { nr: 49, name: "bind", args: [INT, HEX, INT] },
  { nr: 50, name: "listen", args: [INT, INT] },
  { nr: 51, name: "getsockname", args: [INT, HEX, HEX] },
  { nr: 52, name: "getpeername", args: [INT, HEX, HEX] },
  { nr: 54, name: "setsockopt", args: [INT, INT, INT, HEX, INT], inVm: true },
  { nr: 55, name: "getsockopt", args: [INT, INT, INT, HEX, HEX] },
  { nr: 56, name: "clone", args: [HEX, HEX, HEX, HEX, HEX] },
  { nr: 57, name: "fork", args: [] },
  { nr: 58, name: "vfork", args: [] },
  { nr: 60, name: "exit", args: [INT], inVm: true },
  { nr: 61, name: "wait4", args: [INT, HEX, HEX, HEX] },
  { nr: 63, name: "uname", args: [HEX], inVm: true },
  { nr: 72, name: "fcntl", args: [INT, INT, HEX], inVm: true },
  { nr: 79, name: "getcwd", args: [HEX, INT], inVm: true },
  { nr: 80, name: "chdir", args: [STR] },
  { nr: 81, name: "fchdir", args: [INT] },
  { nr: 89, name: "readlink", args: [STR, HEX, INT] },
  { nr: 96, name: "gettimeofday", args: [HEX, HEX], outside: "time", inVm: true },
  { nr: 97, name: "getrlimit", args: [INT, HEX], inVm: true },
  { nr: 102, name: "getuid", args: [], inVm: true },
  { nr: 104, name: "getgid", args: [], inVm: true },
  { nr: 107, name: "geteuid", args: [], inVm: true },
  { nr: 108, name: "getegid", args: [], inVm: true },
  { nr: 110, name: "getppid", args: [], inVm: true },
  { nr: 131, name: "sigaltstack", args: [HEX, HEX], inVm: true },
  { nr: 158, name: "arch_prctl", args: [HEX, HEX], inVm: true },
  { nr: 186, name: "gettid", args: [], inVm: true },
  { nr: 201, name: "time", args: [HEX], outside: "time", inVm: true },
  { nr: 202, name: "futex", args: [HEX, INT, INT, HEX, HEX, INT], inVm: true },
  { nr: 204, name: "sched_getaffinity", args: [INT, INT, HEX], inVm: true },
  { nr: 213, name: "epoll_create", args: [INT] },
  { nr: 217, name: "getdents64", args: [INT, HEX, INT] },
  { nr: 218, name: "set_tid_address", args: [HEX], inVm: true },
  { nr: 228, name: "clock_gettime", args: [INT, HEX], outside: "time", inVm: true },
  { nr: 229, name: "clock_getres", args: [INT, HEX], inVm: true },
  { nr: 230, name: "clock_nanosleep", args: [INT, INT, HEX, HEX], outside: "time" },
  { nr: 231, name: "exit_group", args: [INT], inVm: true },
  { nr: 232, name: "epoll_wait", args: [INT, HEX, INT, INT] },
  { nr: 233, name: "epoll_ctl", args: [INT, INT, INT, HEX] },
  { nr: 257, name: "openat", args: [INT, STR, HEX, HEX], inVm: true },
  { nr: 262, name: "newfstatat", args: [INT, STR, HEX, HEX], inVm: true },
  { nr: 267, name: "readlinkat", args: [INT, STR, HEX, INT] },
  { nr: 269, name: "faccessat", args: [INT, STR, INT], inVm: true },
  { nr: 270, name: "pselect6", args: [INT, HEX, HEX, HEX, HEX, HEX] },
  { nr: 273, name: "set_robust_list", args: [HEX, INT], inVm: true },
  { nr: 281, name: "epoll_pwait", args: [INT, HEX, INT, INT, HEX, INT] },
  { nr: 288, name: "accept4", args: [INT, HEX, HEX, HEX] },
  { nr: 291, name: "epoll_create1", args: [HEX] },
  { nr: 292, name: "dup3", args: [INT, INT, HEX] },
  { nr: 302, name: "prlimit64", args: [INT, INT, HEX, HEX], inVm: true },
  { nr: 318, name: "getrandom", args: [HEX, INT, HEX], outside: "random", inVm: true },
  { nr: 435, name: "clone3", args: [HEX, INT] },
  { nr: 439, name: "faccessat2", args: [INT, STR, INT, HEX], inVm: true },
] as const satisfies readonly SyscallSpec[];

type Row = (typeof SYSCALL_TABLE)[number];
/** The name of a system call wasp answers. */
export type SyscallName = Row["name"];

/** Each answered call's number by name: `NR.read` is 0. */
export const NR = Object.fromEntries(SYSCALL_TABLE.map((r) => [r.name, r.nr])) as { readonly [R in Row as R["name"]]: R["nr"] };

/** The highest number in the table, and the row of every number up to it (undefined: not answered). */
const BY_NR: (SyscallSpec | undefined)[] = [];
for (const row of SYSCALL_TABLE) BY_NR[row.nr] = row;

/** The row of system call `nr`, if wasp answers it. */
export function syscallSpec(nr: number): SyscallSpec | undefined {
  return nr >= 0 && nr < BY_NR.length ? BY_NR[nr] : undefined;
}

/** The name of system call `nr` (`syscall_<nr>` for one wasp does not answer). */
export function syscallName(nr: number): string {
  return syscallSpec(nr)?.name ?? `syscall_${nr}`;
}

/** The numbers of the calls answered from outside the guest under these grants: what a recording keeps. */
export function outsideSyscalls(allow: readonly string[]): Set<number> {
  return new Set(SYSCALL_TABLE.filter((r) => "outside" in r && allow.includes(r.outside)).map((r) => r.nr));
}
