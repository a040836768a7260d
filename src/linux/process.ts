// The Linux system calls a single-threaded static program makes, answered by the host (issue 13,
// part 3). Every pointer and length the guest passes is used only through GuestAccess — what the
// guest could read or write itself — and a bad one is -EFAULT for the guest, never a host error.
// The program sees: fd 0 the call's input, fd 1 its output, fd 2 the console; read-only files the
// caller grants and nothing else of the host's file system; the clock and randomness only when
// granted (-EPERM otherwise); no processes, threads, signals delivered or sockets. Anything not here
// is -ENOSYS, counted. `syscall` returns what the run loop must do: return a value to the guest,
// end the call, or set the FS base (arch_prctl). The process's state — its break and mappings,
// its open files, stdin's position, the stdout and stderr windows — is in its own memory
// (block.ts), where the in-VM layer answers the same calls on it: the host answers whatever the
// layer hands over, or every call when the layer is off.
import { LinuxBlock } from "../abi/guest-abi.ts";
import { MemoryFaultError } from "../errors.ts";
import type { GuestAccess } from "../memory/guest-access.ts";
import type { FdEntry, ProcessBlock } from "./block.ts";
import { ProcessMemory, type MemoryRegions } from "./memory.ts";
import { NR, syscallSpec, type SyscallName } from "./syscalls.ts";
import { Net, type NetOptions, type NetOutcome } from "./net.ts";
import type { GreenThread } from "./threads.ts";
import { dirIno as servedDirIno, GrantedDirs, normalizeGuest as normalize, type DirStat, type OpenedEntry } from "./dirs.ts";

/** Linux errno values (asm-generic/errno-base.h, errno.h). */
export const ERRNO = { EPERM: 1, ENOENT: 2, EBADF: 9, EAGAIN: 11, ENOMEM: 12, EACCES: 13, EFAULT: 14, ENODEV: 19, ENOTDIR: 20, EISDIR: 21, EINVAL: 22, ENFILE: 23, ENOTTY: 25, EMFILE: 24, EFBIG: 27, ESPIPE: 29, EROFS: 30, ERANGE: 34, ENAMETOOLONG: 36, ENOSYS: 38 } as const;

/**
 * The path whose access(2) is the snapshot point of a program that cannot issue wasp.h's `out`
 * (an interpreter: Python, a shell): the same as `wasp_snapshot()` — 0 in the call that captures
 * (and when snapshots are off), 1 in every call resumed from the capture.
 */
export const SNAPSHOT_PATH = "/dev/wasp/snapshot";

export { NR };

/** What the run loop does after a system call. */
export type Outcome =
  | { kind: "return"; value: bigint }
  | { kind: "exit"; status: number }
  /** arch_prctl(ARCH_SET_FS / ARCH_SET_GS): load the base, then return 0 */
  | { kind: "setBase"; register: "fs" | "gs"; base: bigint }
  /** nanosleep with the time grant: wait this long (against the deadline), then return 0 */
  | { kind: "sleep"; ns: bigint }
  /** access(SNAPSHOT_PATH): the snapshot point; RAX gets what wasp_snapshot() would return */
  | { kind: "snapshot" }
  /** a served program waits for its first connection (accept, epoll_wait, poll on its listener): its snapshot point */
  | { kind: "listen"; call: string }
  /** a served program waits for another connection: its call ends */
  | { kind: "idle" }
  /** a served program's thread blocks or exits: another runs (src/linux/threads.ts) */
  | { kind: "switch"; result: bigint; to: GreenThread; exited?: boolean }
  /** a served program makes a thread */
  | { kind: "clone"; thread: GreenThread; stack: bigint; tls: bigint | undefined };

/** Where a stream's bytes go: the call's output or the console, each with its cap. */
export interface ByteSink {
  append(bytes: Uint8Array): void;
}

/** A read-only file granted to the program, as the block names it (by its index among them). */
export interface GrantedFile {
  path: string;
  data: Uint8Array;
}

export interface ProcessOptions {
  /** the program's name (argv[0], /proc/self/exe) */
  name: string;
  /** fd 0: the whole input (the window in guest memory holds its first part) */
  input: Uint8Array;
  /** fd 1 and fd 2 */
  stdout: ByteSink;
  stderr: ByteSink;
  /** read-only files the caller grants, in the order the block's file table has them */
  files?: readonly GrantedFile[];
  /** read-only host directories the caller grants, and what the program opened in them (an fd's file index past the placed files' names its entry) */
  dirs?: GrantedDirs;
  /** `time` and `random` grants */
  time?: boolean;
  random?: boolean;
  memory: MemoryRegions;
  /** the stack's size, for getrlimit(RLIMIT_STACK) */
  stackSize: number;
  /**
   * changes the page tables of the program's pages [addr, addr+len) to `prot` (PROT bits), and has
   * KVM drop the old translations (src/linux/protect.ts); false when no table is left to split a
   * large page. Without it, mprotect and mmap's protections are accepted and change nothing.
   */
  protect?: (addr: number, len: number, prot: number) => boolean;
  /** the executable's pages and the stack's, [start, end): what mprotect may change besides the break and the mappings */
  areas?: { exe: [number, number]; stack: [number, number] };
  /** the clock (ns since the epoch) and the entropy, replaceable (a recording replays them) */
  clock?: () => bigint;
  fillRandom?: (bytes: Uint8Array) => void;
  /** a served program's sockets (src/linux/net.ts); without it every socket call is -ENOSYS, counted */
  net?: NetOptions;
}

/** Hands the bytes waiting in the process's stdout and stderr windows to their sinks, in that order, leaving the windows empty. */
export function flushWindows(block: ProcessBlock, stdout: ByteSink, stderr: ByteSink): void {
  const out = block.drain("stdout");
  if (out.length > 0) stdout.append(out);
  const err = block.drain("stderr");
  if (err.length > 0) stderr.append(err);
}

const MAX_PATH = 4096;
/** Open files a program may hold (fds 0 to MAX_FDS-1), what getrlimit(RLIMIT_NOFILE) answers. */
export const MAX_FDS = LinuxBlock.MAX_FDS;
/** Most bytes one read/write moves (Linux moves at most 0x7ffff000; a virtine's buffers are smaller). */
const MAX_IO = 1 << 30;
/** Most bytes one write takes (a pipe's short write): the largest copy a write makes on the host. */
export const WRITE_CHUNK = 1 << 20;
const AT_FDCWD = -100n;
const EFAULT: Outcome = { kind: "return", value: -BigInt(ERRNO.EFAULT) };
const ret = (value: bigint | number): Outcome => ({ kind: "return", value: BigInt(value) });
const err = (e: number): Outcome => ret(-e);

export class LinuxProcess {
  readonly memory: ProcessMemory;
  /** system calls answered -ENOSYS, by number: what a program porting to wasp still needs */
  readonly unknown = new Map<number, number>();
  readonly #guest: GuestAccess;
  readonly #block: ProcessBlock;
  readonly #opts: ProcessOptions;
  readonly #paths: Map<string, number>;
  readonly #placed: number;
  readonly #dirs: GrantedDirs | undefined;
  /** a served program's sockets */
  readonly net: Net | undefined;

  constructor(guest: GuestAccess, block: ProcessBlock, opts: ProcessOptions) {
    this.net = opts.net ? new Net(guest, block, opts.net) : undefined;
    this.#guest = guest;
    this.#block = block;
    this.#opts = opts;
    this.#paths = new Map((opts.files ?? []).map((f, i) => [f.path, i]));
    this.#placed = (opts.files ?? []).length;
    this.#dirs = opts.dirs && opts.dirs.grants.length > 0 ? opts.dirs : undefined;
    this.memory = new ProcessMemory(guest, block, opts.memory);
  }

  /** The bytes waiting in the stdout and stderr windows, handed to their sinks (before a write, and at the call's end). */
  flush(): void {
    flushWindows(this.#block, this.#opts.stdout, this.#opts.stderr);
  }

  /** Answers one system call: `nr` from RAX, `a` the six arguments (RDI, RSI, RDX, R10, R8, R9). */
  syscall(nr: number, a: readonly bigint[]): Outcome {
    // what a served program sent through the layer goes first
    this.net?.flush();
    try {
      return this.#dispatch(nr, a);
    } catch (e) {
      // a pointer or length the guest could not use itself: its fault, answered as Linux does
      if (e instanceof MemoryFaultError) return EFAULT;
      throw e;
    }
  }

  #dispatch(nr: number, a: readonly bigint[]): Outcome {
    const spec = syscallSpec(nr);
    if (spec === undefined) {
      this.unknown.set(nr, (this.unknown.get(nr) ?? 0) + 1);
      return err(ERRNO.ENOSYS);
    }
    return LinuxProcess.#handlers[spec.name as SyscallName](this, a, nr);
  }

  /** The host's answer to each call of the table (src/linux/syscalls.ts): one handler a name, none missing. */
  static readonly #handlers: { readonly [N in SyscallName]: (p: LinuxProcess, a: readonly bigint[], nr: number) => Outcome } = {
    // one thread of a served program's several: the others go on
    exit: (p, a) => (p.net?.threads.many ? p.net.threadExit() : { kind: "exit", status: Number(a[0] & 0xffn) }),
    exit_group: (_p, a) => ({ kind: "exit", status: Number(a[0] & 0xffn) }),
    read: (p, a) => ret(p.#read(fdOf(a[0]), a[1], a[2], undefined)),
    pread64: (p, a) => ret(p.#read(fdOf(a[0]), a[1], a[2], a[3])),
    readv: (p, a) => ret(p.#socketOf(a[0]) ? p.#receiveVector(fdOf(a[0]), a[1], a[2], 0) : p.#vector(a[1], a[2], (base, len) => p.#read(fdOf(a[0]), base, len, undefined))),
    write: (p, a) => ret(p.#write(fdOf(a[0]), a[1], a[2])),
    writev: (p, a) => ret(p.#socketOf(a[0]) ? p.#sendVector(fdOf(a[0]), a[1], a[2]) : p.#vector(a[1], a[2], (base, len) => p.#write(fdOf(a[0]), base, len))),
    close: (p, a) => {
      const fd = fdOf(a[0]);
      const f = p.#block.fd(fd);
      if (f === undefined) return err(ERRNO.EBADF);
      if (f.kind === "socket" && p.net) p.net.close(fd);
      else p.#block.setFd(fd, undefined);
      return ret(0);
    },
    fstat: (p, a) => ret(p.#fstat(fdOf(a[0]), a[1])),
    stat: (p, a) => ret(p.#statPath(a[0], a[1])),
    lstat: (p, a) => ret(p.#statPath(a[0], a[1])),
    // an empty path with AT_EMPTY_PATH (0x1000) is fstat of the fd
    newfstatat: (p, a) => ret((a[3] & 0x1000n) !== 0n && p.#path(a[1]) === "" ? p.#fstat(fdOf(a[0]), a[2]) : p.#statPath(a[1], a[2], a[0])),
    lseek: (p, a) => ret(p.#lseek(fdOf(a[0]), a[1], Number(a[2] & 0xffffffffn))),
    // TCGETS, TIOCGWINSZ and the rest: the streams are pipes, the files regular files
    ioctl: (p, a) => (p.#socketOf(a[0]) ? p.#netOutcome(p.net!.ioctl(fdOf(a[0]), a[1], a[2])) : p.#block.fd(fdOf(a[0])) ? err(ERRNO.ENOTTY) : err(ERRNO.EBADF)),
    fcntl: (p, a) => {
      const cmd = Number(a[1] & 0xffffffffn);
      // F_DUPFD, F_DUPFD_CLOEXEC: dup from the lowest fd at or above the argument, for every kind
      if (cmd === 0 || cmd === 1030) return ret(p.#dup(fdOf(a[0]), undefined, Number(a[2] & 0xffn)));
      if (p.#socketOf(a[0])) return p.#netOutcome(p.net!.fcntl(fdOf(a[0]), cmd, a[2]));
      // F_GETFL: O_WRONLY (1) for the output streams, O_RDONLY (0) for the rest; anything else 0
      const f = p.#block.fd(fdOf(a[0]));
      if (!f) return err(ERRNO.EBADF);
      return ret(cmd === 3 ? (f.kind === "stdout" || f.kind === "stderr" ? 1 : 0) : 0);
    },
    poll: (p, a) => (p.net && p.#pollsSocket(a[0], a[1]) ? p.#netOutcome(p.net.poll(a[0], a[1], Number(BigInt.asIntN(32, a[2])), "poll")) : ret(p.#poll(a[0], a[1]))),
    select: (p, a) => p.#select(a[0], [a[1], a[2], a[3]], a[4], false),
    pselect6: (p, a) => p.#select(a[0], [a[1], a[2], a[3]], a[4], true),
    dup: (p, a) => ret(p.#dup(fdOf(a[0]), undefined)),
    dup2: (p, a) => ret(p.#block.fd(fdOf(a[0])) === undefined ? -BigInt(ERRNO.EBADF) : p.#dup(fdOf(a[0]), fdOf(a[1]))),
    dup3: (p, a) => (fdOf(a[0]) === fdOf(a[1]) || (a[2] & ~0o2000000n) !== 0n ? err(ERRNO.EINVAL) : ret(p.#block.fd(fdOf(a[0])) === undefined ? -BigInt(ERRNO.EBADF) : p.#dup(fdOf(a[0]), fdOf(a[1])))),
    // accepted, never delivered, as every signal
    alarm: () => ret(0),
    // no child is ever visible: a served program's fork goes on as the child
    wait4: () => err(10 /* ECHILD */),
    sendfile: (p, a) => ret(p.#sendfile(fdOf(a[0]), fdOf(a[1]), a[2], a[3])),
    socket: (p, a, nr) => p.#withNet(nr, (n) => n.socket(Number(a[0] & 0xffffffffn), Number(a[1] & 0xffffffffn))),
    connect: (p, a, nr) => p.#withNet(nr, (n) => n.connect(fdOf(a[0]), a[1], a[2])),
    bind: (p, a, nr) => p.#withNet(nr, (n) => n.bind(fdOf(a[0]), a[1], a[2])),
    listen: (p, a, nr) => p.#withNet(nr, (n) => n.listen(fdOf(a[0]))),
    accept: (p, a, nr) => p.#withNet(nr, (n) => n.accept(fdOf(a[0]), a[1], a[2], 0n, "accept")),
    accept4: (p, a, nr) => p.#withNet(nr, (n) => n.accept(fdOf(a[0]), a[1], a[2], a[3] & 0xffffffffn, "accept4")),
    getsockname: (p, a, nr) => p.#withNet(nr, (n) => n.getsockname(fdOf(a[0]), a[1], a[2], false)),
    getpeername: (p, a, nr) => p.#withNet(nr, (n) => n.getsockname(fdOf(a[0]), a[1], a[2], true)),
    setsockopt: (p, a, nr) => p.#withNet(nr, (n) => n.setsockopt(fdOf(a[0]))),
    getsockopt: (p, a, nr) => p.#withNet(nr, (n) => n.getsockopt(fdOf(a[0]), a[1] & 0xffffffffn, a[2] & 0xffffffffn, a[3], a[4])),
    shutdown: (p, a, nr) => p.#withNet(nr, (n) => n.shutdown(fdOf(a[0]), Number(a[1] & 0xffffffffn))),
    recvfrom: (p, a, nr) => p.#withNet(nr, (n) => ({ kind: "return", value: p.#recvfrom(n, fdOf(a[0]), a[1], a[2], Number(a[3] & 0xffffffffn), a[4], a[5]) })),
    sendto: (p, a, nr) => p.#withNet(nr, (n) => ({ kind: "return", value: p.#sendBuffer(n, fdOf(a[0]), a[1], a[2]) })),
    recvmsg: (p, a, nr) => p.#withNet(nr, (n) => ({ kind: "return", value: p.#recvmsg(n, fdOf(a[0]), a[1], Number(a[2] & 0xffffffffn)) })),
    sendmsg: (p, a, nr) => p.#withNet(nr, () => ({ kind: "return", value: p.#sendmsg(fdOf(a[0]), a[1]) })),
    epoll_create: (p, a, nr) => p.#withNet(nr, (n) => (BigInt.asIntN(32, a[0]) <= 0n ? { kind: "return", value: -BigInt(ERRNO.EINVAL) } : n.epollCreate())),
    epoll_create1: (p, a, nr) => p.#withNet(nr, (n) => ((a[0] & ~0o2000000n) !== 0n ? { kind: "return", value: -BigInt(ERRNO.EINVAL) } : n.epollCreate())),
    epoll_ctl: (p, a, nr) => p.#withNet(nr, (n) => n.epollCtl(fdOf(a[0]), Number(a[1] & 0xffffffffn), fdOf(a[2]), a[3])),
    epoll_wait: (p, a, nr) => p.#withNet(nr, (n) => n.epollWait(fdOf(a[0]), a[1], BigInt.asIntN(32, a[2]), Number(BigInt.asIntN(32, a[3])), "epoll_wait")),
    epoll_pwait: (p, a, nr) => p.#withNet(nr, (n) => n.epollWait(fdOf(a[0]), a[1], BigInt.asIntN(32, a[2]), Number(BigInt.asIntN(32, a[3])), "epoll_pwait")),
    clone: (p, a, nr) => p.#withNet(nr, (n) => ((a[0] & 0x10000n) !== 0n ? n.thread("clone", a[0], a[1], a[2], a[3], a[4]) : n.fork("clone", a[0]))),
    fork: (p, _a, nr) => p.#withNet(nr, (n) => n.fork("fork", 0n)),
    vfork: (p, _a, nr) => p.#withNet(nr, (n) => n.fork("vfork", 0n)),
    clone3: (p, a, nr) =>
      p.#withNet(nr, (n) => {
        if (a[1] < 64n) return { kind: "return", value: -BigInt(ERRNO.EINVAL) };
        // struct clone_args: flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls
        const ca = new DataView(p.#guest.read(a[0], 64, "clone3's arguments").buffer);
        const flags = ca.getBigUint64(0, true);
        if ((flags & 0x10000n) !== 0n) return n.thread("clone3", flags, ca.getBigUint64(40, true) + ca.getBigUint64(48, true), ca.getBigUint64(24, true), ca.getBigUint64(16, true), ca.getBigUint64(56, true));
        return n.fork("clone3", flags);
      }),
    open: (p, a) => ret(p.#open(AT_FDCWD, a[0], a[1])),
    openat: (p, a) => ret(p.#open(a[0], a[1], a[2])),
    access: (p, a) => p.#access(AT_FDCWD, a[0]),
    faccessat: (p, a) => p.#access(a[0], a[1]),
    faccessat2: (p, a) => p.#access(a[0], a[1]),
    getdents64: (p, a) => ret(p.#getdents(fdOf(a[0]), a[1], a[2])),
    readlink: (p, a) => ret(p.#readlink(a[0], a[1], a[2])),
    readlinkat: (p, a) => ret(p.#readlink(a[1], a[2], a[3])),
    chdir: (p, a) => ret(p.#chdir(p.#resolve(AT_FDCWD, a[0]))),
    fchdir: (p, a) => {
      const d = p.#block.fd(fdOf(a[0]));
      if (d === undefined) return err(ERRNO.EBADF);
      const e = d.kind === "file" ? p.#file(d) : undefined;
      if (e?.listing === undefined) return err(ERRNO.ENOTDIR);
      return ret(p.#chdir((e as OpenedEntry).path));
    },
    getcwd: (p, a) => {
      const cwd = new TextEncoder().encode(`${p.#block.cwd}\0`);
      if (a[1] < BigInt(cwd.length)) return err(ERRNO.ERANGE);
      p.#guest.write(a[0], cwd, "getcwd's buffer");
      return ret(cwd.length);
    },
    brk: (p, a) => ret(p.memory.brk(a[0])),
    mmap: (p, a) => ret(p.#mmap(a[0], a[1], a[2], a[3], a[4], a[5])),
    munmap: (p, a) => {
      // pages whose protections were changed are read-write again, as the region's free pages are
      const r = p.memory.unmap(a[0], a[1]);
      if (r === 0n && p.memory.anyProtected(a[0], a[1])) p.#protect(a[0], a[1], 3, true);
      return ret(r);
    },
    mremap: (p, a) => {
      if (p.memory.anyProtected(a[0], a[1])) return err(ERRNO.EINVAL); // a mapping whose protections were changed stays where it is
      return ret(p.memory.remap(a[0], a[1], a[2], (a[3] & 1n) !== 0n));
    },
    madvise: (p, a) => ret(a[2] === 4n /* MADV_DONTNEED */ ? p.memory.dontNeed(a[0], a[1]) : 0n),
    mprotect: (p, a) => ret(p.#mprotect(a[0], a[1], a[2])),
    getpid: () => ret(1),
    gettid: (p) => ret(p.net?.threads.current.tid ?? 1),
    set_tid_address: () => ret(1),
    getppid: () => ret(0),
    getuid: () => ret(1000),
    geteuid: () => ret(1000),
    getgid: () => ret(1000),
    getegid: () => ret(1000),
    uname: (p, a) => ret(p.#uname(a[0])),
    set_robust_list: () => ret(0),
    sched_yield: () => ret(0),
    rt_sigprocmask: () => ret(0),
    sigaltstack: () => ret(0),
    rt_sigaction: (p, a) => {
      // accepted, never delivered: the old action reads as the default
      if (a[2] !== 0n) p.#guest.write(a[2], new Uint8Array(32), "rt_sigaction's old action");
      return ret(0);
    },
    getrlimit: (p, a) => ret(p.#rlimit(Number(a[0]), 0n, a[1])),
    prlimit64: (p, a) => (a[0] !== 0n && a[0] !== 1n ? err(ERRNO.EPERM) : ret(p.#rlimit(Number(a[1]), a[2], a[3]))),
    sched_getaffinity: (p, a) => {
      if (a[1] < 8n) return err(ERRNO.EINVAL);
      const mask = new Uint8Array(8);
      mask[0] = 1; // one CPU
      p.#guest.write(a[2], mask, "sched_getaffinity's mask");
      return ret(8);
    },
    arch_prctl: (p, a) => p.#archPrctl(Number(a[0]), a[1]),
    futex: (p, a) => {
      if (p.net?.threads.many) return p.net.futex(a[0], Number(a[1] & 0xffffffffn), a[2], a[3], a[4], a[5]);
      // one thread: a wait on a value that matches would never end, a wake has nobody to wake
      const op = Number(a[1] & 0x7fn);
      return op === 0 /* FUTEX_WAIT */ ? err(ERRNO.EAGAIN) : ret(0);
    },
    clock_gettime: (p, a, nr) => p.#time(nr, a),
    clock_getres: (p, a, nr) => p.#time(nr, a),
    gettimeofday: (p, a, nr) => p.#time(nr, a),
    time: (p, a, nr) => p.#time(nr, a),
    nanosleep: (p, a, nr) => p.#time(nr, a),
    clock_nanosleep: (p, a, nr) => p.#time(nr, a),
    getrandom: (p, a) => {
      const o = p.#opts;
      if (!o.random) return err(ERRNO.EPERM);
      const n = Number(a[1] > 256n * 1024n ? 256n * 1024n : a[1]);
      const bytes = new Uint8Array(n);
      (o.fillRandom ?? ((b: Uint8Array) => crypto.getRandomValues(b)))(bytes);
      p.#guest.write(a[0], bytes, "getrandom's buffer");
      return ret(n);
    },
  };

  /**
   * select(2) and pselect6(2) (a timeval or a timespec), as poll answers: the streams and files are
   * always ready, a served program's sockets as the net says (its wait on the listener before the
   * snapshot is the snapshot point). No fd and a timeout is a sleep, as nanosleep (the `time`
   * grant); no fd and no timeout would never end: EINTR. The sets are rewritten with the ready fds.
   */
  #select(nfdsReg: bigint, at: bigint[], tAddr: bigint, spec: boolean): Outcome {
    const nfds = Number(BigInt.asIntN(32, nfdsReg));
    if (nfds < 0 || nfds > 1024) return err(ERRNO.EINVAL);
    const bytes = Math.ceil(nfds / 64) * 8;
    const sets = at.map((a) => (a === 0n || bytes === 0 ? undefined : this.#guest.read(a, bytes, "select's fd set")));
    let timeoutMs = -1;
    if (tAddr !== 0n) {
      const dv = new DataView(this.#guest.read(tAddr, 16, "select's timeout").buffer);
      const sec = dv.getBigInt64(0, true);
      const sub = dv.getBigInt64(8, true);
      if (sec < 0n || sub < 0n || sub >= (spec ? 1_000_000_000n : 1_000_000n) || sec > 86_400_000n) return err(ERRNO.EINVAL);
      timeoutMs = Number(sec) * 1000 + Math.ceil(Number(sub) / (spec ? 1e6 : 1e3));
    }
    // read 1 (POLLIN), write 4 (POLLOUT), except 2 (POLLPRI)
    const bits = [1, 4, 2];
    const list: { fd: number; events: number }[] = [];
    for (let fd = 0; fd < nfds; fd++) {
      let events = 0;
      sets.forEach((s, k) => {
        if (s && (s[fd >> 3] >> (fd & 7)) & 1) events |= bits[k];
      });
      if (events === 0) continue;
      if (this.#block.fd(fd) === undefined) return err(ERRNO.EBADF);
      list.push({ fd, events });
    }
    if (list.length === 0) {
      if (timeoutMs === 0) return ret(0);
      if (timeoutMs < 0) return err(4 /* EINTR */);
      return this.#opts.time ? { kind: "sleep", ns: BigInt(timeoutMs) * 1_000_000n } : err(ERRNO.EPERM);
    }
    let ready: number[];
    if (this.net && list.some((l) => this.#block.fd(l.fd)?.kind === "socket")) {
      const r = this.net.wait(list, timeoutMs, spec ? "pselect6" : "select");
      if ("kind" in r) return this.#netOutcome(r);
      ready = r.ready;
    } else {
      ready = list.map((l) => {
        const f = this.#block.fd(l.fd);
        return l.events & (f?.kind === "stdout" || f?.kind === "stderr" ? 4 : 1);
      });
    }
    const out = sets.map(() => new Uint8Array(bytes));
    let n = 0;
    list.forEach((l, i) => {
      bits.forEach((b, k) => {
        if ((l.events & b) !== 0 && (ready[i] & b) !== 0) {
          out[k][l.fd >> 3] |= 1 << (l.fd & 7);
          n++;
        }
      });
    });
    sets.forEach((s, k) => {
      if (s) this.#guest.write(at[k], out[k], "select's fd set");
    });
    return ret(n);
  }

  /** A call of the net: -ENOSYS, counted, for a program that is not served. */
  #withNet(nr: number, f: (n: Net) => NetOutcome): Outcome {
    if (!this.net) {
      this.unknown.set(nr, (this.unknown.get(nr) ?? 0) + 1);
      return err(ERRNO.ENOSYS);
    }
    return this.#netOutcome(f(this.net));
  }

  #netOutcome(o: NetOutcome): Outcome {
    // a thread of several that waits for another connection: the others go on
    return o.kind === "idle" && this.net ? this.net.idle() : o;
  }

  /** Whether an fd register names one of a served program's sockets. */
  #socketOf(reg: bigint): boolean {
    return this.net !== undefined && this.#block.fd(fdOf(reg))?.kind === "socket";
  }

  #pollsSocket(fds: bigint, count: bigint): boolean {
    if (count < 0n || count > 1024n) return false;
    const dv = new DataView(this.#guest.read(fds, Number(count) * 8, "poll's fds").buffer);
    for (let i = 0; i < Number(count); i++) {
      const fd = dv.getInt32(i * 8, true);
      if (fd >= 0 && this.#block.fd(fd)?.kind === "socket") return true;
    }
    return false;
  }

  /** dup(2), dup2(2), dup3(2), fcntl's F_DUPFD: the same entry at another fd (a socket replaced there is closed as close(2) would). */
  #dup(from: number, to: number | undefined, min = 0): bigint {
    const f = this.#block.fd(from);
    if (f === undefined) return -BigInt(ERRNO.EBADF);
    if (to === undefined) {
      const fd = this.#block.lowestFree(min);
      if (fd < 0) return -BigInt(ERRNO.EMFILE);
      this.#block.setFd(fd, f);
      return BigInt(fd);
    }
    if (to < 0 || to >= MAX_FDS) return -BigInt(ERRNO.EBADF);
    if (to === from) return BigInt(to);
    if (this.#block.fd(to)?.kind === "socket" && this.net) this.net.close(to);
    this.#block.setFd(to, f);
    return BigInt(to);
  }

  /** The iovec array's (base, len) pairs, checked. */
  #iovecs(iov: bigint, count: bigint): { base: bigint; len: number }[] | bigint {
    if (count < 0n || count > 1024n) return -BigInt(ERRNO.EINVAL);
    const dv = new DataView(this.#guest.read(iov, Number(count) * 16, "the iovec array").buffer);
    const out: { base: bigint; len: number }[] = [];
    let total = 0;
    for (let i = 0; i < Number(count); i++) {
      const len = dv.getBigUint64(i * 16 + 8, true);
      if (len > BigInt(MAX_IO)) return -BigInt(ERRNO.EINVAL);
      total += Number(len);
      if (total > MAX_IO) return -BigInt(ERRNO.EINVAL);
      out.push({ base: dv.getBigUint64(i * 16, true), len: Number(len) });
    }
    return out;
  }

  /** Bytes received into an iovec array, in one receive (a second could wait for the next request). */
  #receiveVector(fd: number, iov: bigint, count: bigint, flags: number): bigint {
    const list = this.#iovecs(iov, count);
    if (typeof list === "bigint") return list;
    for (const v of list) if (v.len > 0) this.#guest.check(v.base, v.len, "write", "the receive buffer");
    const got = this.net!.take(fd, list.reduce((n, v) => n + v.len, 0), flags);
    if (typeof got === "bigint") return got;
    let at = 0;
    for (const v of list) {
      if (at >= got.length) break;
      const n = Math.min(v.len, got.length - at);
      this.#guest.write(v.base, got.subarray(at, at + n), "the receive buffer");
      at += n;
    }
    return BigInt(got.length);
  }

  #sendVector(fd: number, iov: bigint, count: bigint): bigint {
    const list = this.#iovecs(iov, count);
    if (typeof list === "bigint") return list;
    // at most WRITE_CHUNK bytes a call, as for write: a short send, the program sends the rest
    const parts: Uint8Array[] = [];
    let left = WRITE_CHUNK;
    for (const v of list) {
      if (left === 0) break;
      const n = Math.min(v.len, left);
      parts.push(this.#guest.read(v.base, n, "the send buffer"));
      left -= n;
    }
    return this.net!.send(fd, parts.length === 1 ? parts[0] : Buffer.concat(parts));
  }

  #sendBuffer(n: Net, fd: number, buf: bigint, len: bigint): bigint {
    if (len < 0n || len > BigInt(MAX_IO)) return -BigInt(ERRNO.EINVAL);
    // at most WRITE_CHUNK bytes a call (a short send): the host never copies more at once
    return n.send(fd, this.#guest.read(buf, Math.min(Number(len), WRITE_CHUNK), "the send buffer"));
  }

  #recvfrom(n: Net, fd: number, buf: bigint, len: bigint, flags: number, src: bigint, lenp: bigint): bigint {
    if (len < 0n || len > BigInt(MAX_IO)) return -BigInt(ERRNO.EINVAL);
    if (len > 0n) this.#guest.check(buf, Number(len), "write", "the receive buffer");
    const got = n.take(fd, Number(len), flags);
    if (typeof got === "bigint") return got;
    if (got.length > 0) this.#guest.write(buf, got, "the receive buffer");
    if (src !== 0n && lenp !== 0n) n.peerInto(fd, src, lenp);
    return BigInt(got.length);
  }

  /** struct msghdr: name (8), namelen (4, padded), iov (8), iovlen (8), control (8), controllen (8), flags (4). */
  #recvmsg(n: Net, fd: number, msg: bigint, flags: number): bigint {
    const dv = new DataView(this.#guest.read(msg, 56, "the msghdr").buffer);
    const r = this.#receiveVector(fd, dv.getBigUint64(16, true), dv.getBigUint64(24, true), flags);
    if (r < 0n) return r;
    const name = dv.getBigUint64(0, true);
    if (name !== 0n) n.peerInto(fd, name, msg + 8n);
    // no control data, no flags
    this.#guest.write(msg + 40n, new Uint8Array(8), "the msghdr's control length");
    this.#guest.write(msg + 48n, new Uint8Array(4), "the msghdr's flags");
    return r;
  }

  #sendmsg(fd: number, msg: bigint): bigint {
    const dv = new DataView(this.#guest.read(msg, 56, "the msghdr").buffer);
    return this.#sendVector(fd, dv.getBigUint64(16, true), dv.getBigUint64(24, true));
  }

  /** sendfile(2): a granted file's bytes to the connection (or to an output stream), from *offset or the fd's position. */
  #sendfile(out: number, from: number, offp: bigint, count: bigint): bigint {
    const src = this.#block.fd(from);
    const dst = this.#block.fd(out);
    if (src === undefined || dst === undefined) return -BigInt(ERRNO.EBADF);
    if (src.kind !== "file") return -BigInt(ERRNO.EINVAL);
    const data = this.#file(src).data;
    if (data === undefined) return -BigInt(ERRNO.EINVAL);
    if (dst.kind !== "socket" && dst.kind !== "stdout" && dst.kind !== "stderr") return -BigInt(ERRNO.EINVAL);
    let pos = src.pos;
    if (offp !== 0n) {
      const off = BigInt.asIntN(64, new DataView(this.#guest.read(offp, 8, "sendfile's offset").buffer).getBigUint64(0, true));
      if (off < 0n) return -BigInt(ERRNO.EINVAL);
      pos = off > BigInt(data.length) ? data.length : Number(off);
    }
    const n = Math.max(0, Math.min(data.length - pos, count > BigInt(WRITE_CHUNK) ? WRITE_CHUNK : Number(count)));
    const bytes = data.subarray(pos, pos + n);
    let sent: bigint;
    if (dst.kind === "socket") {
      if (!this.net) return -BigInt(ERRNO.EINVAL);
      sent = this.net.send(out, bytes);
      if (sent < 0n) return sent;
    } else {
      this.flush();
      (dst.kind === "stdout" ? this.#opts.stdout : this.#opts.stderr).append(bytes);
      sent = BigInt(n);
    }
    if (offp !== 0n) {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, BigInt(pos + n), true);
      this.#guest.write(offp, b, "sendfile's offset");
    } else this.#block.setFd(from, { ...src, pos: pos + n });
    return sent;
  }

  /**
   * mmap(2): anonymous private memory, or a granted file's bytes (a private copy: the files are
   * read-only, so a shared read-only mapping is the same), with their protections.
   */
  #mmap(addr: bigint, len: bigint, prot: bigint, flags: bigint, fdReg: bigint, offset: bigint): bigint {
    const MAP_SHARED = 0x01n;
    const MAP_PRIVATE = 0x02n;
    const MAP_FIXED = 0x10n;
    const MAP_ANONYMOUS = 0x20n;
    if ((prot & ~7n) !== 0n) return -BigInt(ERRNO.EINVAL);
    const type = flags & 3n;
    if (type !== MAP_SHARED && type !== MAP_PRIVATE) return -BigInt(ERRNO.EINVAL);
    if ((flags & MAP_ANONYMOUS) === 0n) return this.#mapFile(addr, len, prot, flags, fdOf(fdReg), offset);
    if (type !== MAP_PRIVATE) return -BigInt(ERRNO.ENODEV); // shared anonymous memory: nobody to share it with
    if ((flags & MAP_FIXED) !== 0n) {
      const open = this.#openFixed(addr, len);
      if (open < 0n) return open;
    }
    const at = this.memory.map(len, (flags & MAP_FIXED) !== 0n ? addr : undefined);
    // memory mapped read-write needs nothing more: the region's pages are (src/linux/protect.ts)
    if (at < 0n || (prot === 3n && !this.memory.anyProtected(at, len))) return at;
    const set = this.#protect(at, len, Number(prot));
    if (set < 0n) this.memory.unmap(at, len);
    return set < 0n ? set : at;
  }

  /**
   * Before a MAP_FIXED mapping: the pages it replaces read-write again (a mapping made read-only
   * before is zeroed or written into by the new one). Only inside the mmap region: elsewhere the
   * mapping fails as `map` says.
   */
  #openFixed(addr: bigint, len: bigint): bigint {
    if (!this.memory.inside(addr, len) || !this.memory.anyProtected(addr, len)) return 0n;
    return this.#protect(addr, len, 3, true);
  }

  /** mmap(2) of a granted file: its bytes from `offset` copied into pages handed out as anonymous ones are, the rest of them zero. */
  #mapFile(addr: bigint, len: bigint, prot: bigint, flags: bigint, fd: number, offset: bigint): bigint {
    const f = this.#block.fd(fd);
    if (f === undefined) return -BigInt(ERRNO.EBADF);
    if (f.kind !== "file") return -BigInt(ERRNO.ENODEV); // the streams are pipes: nothing to map
    // a shared writable mapping would write the file, which is read-only (opened O_RDONLY)
    if ((flags & 3n) === 0x01n && (prot & 2n) !== 0n) return -BigInt(ERRNO.EACCES);
    if (offset % 4096n !== 0n || BigInt.asIntN(64, offset) < 0n) return -BigInt(ERRNO.EINVAL);
    const data = this.#file(f).data;
    if (data === undefined) return -BigInt(ERRNO.ENODEV); // a directory
    if ((flags & 0x10n) !== 0n) {
      const open = this.#openFixed(addr, len);
      if (open < 0n) return open;
    }
    const at = this.memory.map(len, (flags & 0x10n) !== 0n ? addr : undefined);
    if (at < 0n) return at;
    const from = offset >= BigInt(data.length) ? data.length : Number(offset);
    const n = Math.min(data.length - from, Number(len));
    if (n > 0) this.#guest.write(at, data.subarray(from, from + n), "a mapped file's pages");
    if (prot === 3n) return at;
    const set = this.#protect(at, len, Number(prot));
    if (set < 0n) {
      this.memory.unmap(at, len);
      return set;
    }
    return at;
  }

  /**
   * mprotect(2): the pages must be the program's — its executable's, the break's (below the break),
   * mapped ones, the stack's — else ENOMEM, as Linux answers for memory not mapped.
   */
  #mprotect(addr: bigint, len: bigint, prot: bigint): bigint {
    if (addr % 4096n !== 0n || (prot & ~7n) !== 0n) return -BigInt(ERRNO.EINVAL);
    if (len === 0n) return 0n;
    if (len < 0n || len > 1n << 40n || addr + len > 1n << 47n) return -BigInt(ERRNO.ENOMEM);
    const end = Number(addr + ((len + 4095n) & ~4095n));
    const start = Number(addr);
    const o = this.#opts;
    const r = o.memory;
    const brk = Math.ceil(this.#block.brk / 4096) * 4096;
    const inside = ([s, e]: readonly [number, number]) => start >= s && end <= e;
    const ok = (o.areas && (inside(o.areas.exe) || inside(o.areas.stack))) || inside([r.brkStart, brk]) || this.memory.allMapped(addr, BigInt(end - start));
    if (!ok) return -BigInt(ERRNO.ENOMEM);
    return this.#protect(addr, BigInt(end - start), Number(prot));
  }

  /** Sets the protections of [addr, addr+len) and the mappings' PROTECTED bits; 0 or a negative errno. */
  #protect(addr: bigint, len: bigint, prot: number, free = false): bigint {
    const protect = this.#opts.protect;
    if (!protect) return 0n;
    const pages = (len + 4095n) & ~4095n;
    if (!protect(Number(addr), Number(pages), prot)) return -BigInt(ERRNO.ENOMEM);
    this.memory.markProtected(addr, pages, !free && prot !== 3);
    return 0n;
  }

  #read(fd: number, buf: bigint, len: bigint, at: bigint | undefined): bigint {
    const b = this.#block;
    const f = b.fd(fd);
    if (f?.kind === "socket") {
      if (!this.net || at !== undefined) return -BigInt(ERRNO.ESPIPE);
      return this.#recvfrom(this.net, fd, buf, len, 0, 0n, 0n);
    }
    if (f === undefined || f.kind === "stdout" || f.kind === "stderr") return -BigInt(ERRNO.EBADF);
    if (len < 0n || len > BigInt(MAX_IO)) return -BigInt(ERRNO.EINVAL);
    if (at !== undefined && f.kind === "stdin") return -BigInt(ERRNO.ESPIPE);
    if (at !== undefined && BigInt.asIntN(64, at) < 0n) return -BigInt(ERRNO.EINVAL);
    const file = f.kind === "file" ? f : undefined;
    const opened = file ? this.#file(file) : undefined;
    if (opened?.data === undefined && opened !== undefined) return -BigInt(ERRNO.EISDIR);
    const data = opened?.data ?? this.#opts.input;
    const pos = file ? file.pos : b.inPos;
    const from = at === undefined ? pos : Math.min(Number(at), data.length);
    const n = Math.max(0, Math.min(Number(len), data.length - from));
    if (n > 0) this.#guest.write(buf, data.subarray(from, from + n), "read's buffer");
    if (at === undefined) {
      if (file) b.setFd(fd, { kind: "file", file: file.file, pos: pos + n });
      else b.inPos = pos + n;
    }
    return BigInt(n);
  }

  #write(fd: number, buf: bigint, len: bigint): bigint {
    const f = this.#block.fd(fd);
    if (f?.kind === "socket" && this.net) return this.#sendBuffer(this.net, fd, buf, len > BigInt(WRITE_CHUNK) ? BigInt(WRITE_CHUNK) : len);
    if (f?.kind !== "stdout" && f?.kind !== "stderr") return -BigInt(ERRNO.EBADF);
    if (len < 0n || len > BigInt(MAX_IO)) return -BigInt(ERRNO.EINVAL);
    // at most WRITE_CHUNK bytes a call, as a pipe takes them: the host never copies more than that
    // at once whatever length the guest names, and libc writes the rest with the next call
    const n = len > BigInt(WRITE_CHUNK) ? WRITE_CHUNK : Number(len);
    const bytes = this.#guest.read(buf, n, "write's buffer");
    // what the layer buffered comes first
    this.flush();
    (f.kind === "stdout" ? this.#opts.stdout : this.#opts.stderr).append(bytes);
    return BigInt(n);
  }

  /** The file or directory an fd names: a placed file, or an entry of what the program opened in its granted directories (its index checked). */
  #file(f: FdEntry & { kind: "file" }): { data?: Uint8Array; listing?: Uint8Array; stat?: DirStat } {
    const file = this.#opts.files?.[f.file];
    if (file) return file;
    const opened: OpenedEntry | undefined = this.#dirs?.entry(f.file - this.#placed);
    if (!opened) return this.#block.corrupt("an fd's file", f.file);
    return opened;
  }

  /** getdents64(2) of a directory opened in a granted directory: whole linux_dirent64 records from the fd's offset. */
  #getdents(fd: number, buf: bigint, count: bigint): bigint {
    const f = this.#block.fd(fd);
    if (f === undefined) return -BigInt(ERRNO.EBADF);
    if (f.kind !== "file") return -BigInt(ERRNO.ENOTDIR);
    const listing = this.#file(f).listing;
    if (listing === undefined) return -BigInt(ERRNO.ENOTDIR);
    const cap = count > 1n << 20n ? 1 << 20 : Number(count);
    let end = f.pos;
    // whole records only; the offsets are the listing's own, so a position past or inside one ends it
    while (end < listing.length) {
      const len = listing[end + 16] | (listing[end + 17] << 8);
      if (len === 0 || end + len > listing.length || end + len - f.pos > cap) break;
      end += len;
    }
    if (end === f.pos && f.pos < listing.length) return -BigInt(ERRNO.EINVAL); // the buffer holds not even one
    if (end > f.pos) this.#guest.write(buf, listing.subarray(f.pos, end), "getdents64's buffer");
    this.#block.setFd(fd, { ...f, pos: end });
    return BigInt(end - f.pos);
  }

  /** readv/writev: each (base, len) of the iovec array in turn; stops at a short transfer. */
  #vector(iov: bigint, count: bigint, each: (base: bigint, len: bigint) => bigint): bigint {
    if (count < 0n || count > 1024n) return -BigInt(ERRNO.EINVAL);
    const vec = this.#guest.read(iov, Number(count) * 16, "the iovec array");
    const dv = new DataView(vec.buffer);
    let total = 0n;
    for (let i = 0; i < Number(count); i++) {
      const base = dv.getBigUint64(i * 16, true);
      const len = dv.getBigUint64(i * 16 + 8, true);
      const n = each(base, len);
      if (n < 0n) return total > 0n ? total : n;
      total += n;
      if (n < len) break;
    }
    return total;
  }

  #lseek(fd: number, off: bigint, whence: number): bigint {
    const f = this.#block.fd(fd);
    if (f === undefined) return -BigInt(ERRNO.EBADF);
    if (f.kind !== "file") return -BigInt(ERRNO.ESPIPE);
    const e = this.#file(f);
    const base = whence === 0 ? 0n : whence === 1 ? BigInt(f.pos) : whence === 2 ? BigInt((e.data ?? e.listing ?? new Uint8Array(0)).length) : undefined;
    if (base === undefined) return -BigInt(ERRNO.EINVAL);
    const to = base + BigInt.asIntN(64, off);
    if (to < 0n || to > BigInt(Number.MAX_SAFE_INTEGER)) return -BigInt(ERRNO.EINVAL);
    this.#block.setFd(fd, { ...f, pos: Number(to) });
    return to;
  }

  #poll(fds: bigint, count: bigint): bigint {
    if (count < 0n || count > 1024n) return -BigInt(ERRNO.EINVAL);
    const list = this.#guest.read(fds, Number(count) * 8, "poll's fds");
    const dv = new DataView(list.buffer);
    let ready = 0;
    for (let i = 0; i < Number(count); i++) {
      const fd = dv.getInt32(i * 8, true);
      const events = dv.getInt16(i * 8 + 4, true);
      const f = fd < 0 ? undefined : this.#block.fd(fd);
      // POLLIN 1, POLLOUT 4, POLLNVAL 0x20: everything is always ready (nothing ever blocks)
      const revents = f === undefined ? (fd < 0 ? 0 : 0x20) : events & (f.kind === "stdout" || f.kind === "stderr" ? 4 : 1);
      dv.setInt16(i * 8 + 6, revents, true);
      if (revents) ready++;
    }
    this.#guest.write(fds, list, "poll's fds");
    return BigInt(ready);
  }

  #open(dirfd: bigint, pathAddr: bigint, flags: bigint): bigint {
    const O_CREAT = 0x40n;
    const O_DIRECTORY = 0x10000n;
    const path = this.#resolve(dirfd, pathAddr);
    if (typeof path !== "string") return path;
    let file = this.#paths.get(path);
    if (file !== undefined && (flags & O_DIRECTORY) !== 0n) return -BigInt(ERRNO.ENOTDIR);
    if (file === undefined && this.#dirs?.covers(path)) {
      const got = this.#dirs.open(path);
      if (typeof got !== "number") return got.errno === "ENOENT" && (flags & O_CREAT) !== 0n ? -BigInt(ERRNO.EROFS) : -BigInt(ERRNO[got.errno]);
      const kind = this.#dirs.entry(got)?.stat.kind;
      if (kind === "file" && (flags & O_DIRECTORY) !== 0n) return -BigInt(ERRNO.ENOTDIR);
      if (kind === "dir" && (flags & 3n) !== 0n) return -BigInt(ERRNO.EISDIR);
      file = this.#placed + got;
    }
    if (file === undefined) return -BigInt((flags & O_CREAT) !== 0n ? ERRNO.EROFS : ERRNO.ENOENT);
    if ((flags & 3n) !== 0n) return -BigInt(ERRNO.EROFS); // O_WRONLY or O_RDWR: the grants are read-only
    // as many as getrlimit(RLIMIT_NOFILE) says
    const fd = this.#block.lowestFree(3);
    if (fd < 0) return -BigInt(ERRNO.EMFILE);
    this.#block.setFd(fd, { kind: "file", file, pos: 0 });
    return BigInt(fd);
  }

  #access(dirfd: bigint, pathAddr: bigint): Outcome {
    const path = this.#resolve(dirfd, pathAddr);
    if (typeof path !== "string") return ret(path);
    if (path === SNAPSHOT_PATH) return { kind: "snapshot" };
    return ret(this.#paths.has(path) || this.#isDirectory(path) || this.#dirs?.stat(path) !== undefined ? 0n : -BigInt(ERRNO.ENOENT));
  }

  /** Whether `path` (normalized) is a directory holding a granted file ("/" always is): it exists, as the layer says too. */
  #isDirectory(path: string): boolean {
    if (path === "/") return true;
    const prefix = `${path}/`;
    for (const p of this.#paths.keys()) if (p.startsWith(prefix)) return true;
    return false;
  }

  #readlink(pathAddr: bigint, buf: bigint, size: bigint): bigint {
    const path = this.#path(pathAddr);
    if (typeof path !== "string") return path;
    // no link among the grants (a directory's are followed on the host): what exists is not a link
    if (path !== "/proc/self/exe") return -BigInt(this.#paths.has(path) || this.#isDirectory(path) || this.#dirs?.stat(path) !== undefined ? ERRNO.EINVAL : ERRNO.ENOENT);
    const target = new TextEncoder().encode(this.#opts.name.startsWith("/") ? this.#opts.name : `/${this.#opts.name}`);
    const n = Math.min(target.length, Number(size < 0n ? 0n : size));
    this.#guest.write(buf, target.subarray(0, n), "readlink's buffer");
    return BigInt(n);
  }

  #fstat(fd: number, statbuf: bigint): bigint {
    const f = this.#block.fd(fd);
    if (f === undefined) return -BigInt(ERRNO.EBADF);
    // the streams are pipes, as a program run in a pipeline sees them
    const e = f.kind === "file" ? this.#file(f) : undefined;
    this.#guest.write(statbuf, e?.stat ? servedStat(e.stat) : f.kind === "file" ? stat(0o100444, (e?.data as Uint8Array).length, fileIno(f.file)) : f.kind === "socket" ? stat(0o140777, 0, 2n + BigInt(f.object)) : stat(0o010600, 0, 1n), "fstat's buffer");
    return 0n;
  }

  #statPath(pathAddr: bigint, statbuf: bigint, dirfd = AT_FDCWD): bigint {
    const path = this.#resolve(dirfd, pathAddr);
    if (typeof path !== "string") return path;
    const file = this.#paths.get(path);
    if (file === undefined) {
      const served = this.#dirs?.covers(path) ? this.#dirs.stat(path) : undefined;
      if (served) {
        this.#guest.write(statbuf, servedStat(served), "stat's buffer");
        return 0n;
      }
      // a directory that holds a granted file exists (a loader stats the directories it searches)
      if (!this.#isDirectory(path)) return -BigInt(ERRNO.ENOENT);
      this.#guest.write(statbuf, stat(0o040555, 4096, dirIno(path)), "stat's buffer");
      return 0n;
    }
    this.#guest.write(statbuf, stat(0o100444, (this.#opts.files ?? [])[file].data.length, fileIno(file)), "stat's buffer");
    return 0n;
  }

  /** A path as the program names it, made absolute (the working directory is "/"), or a negative errno. */
  #resolve(dirfd: bigint, pathAddr: bigint): string | bigint {
    const path = this.#path(pathAddr);
    if (typeof path !== "string") return path;
    if (path.startsWith("/")) return normalize(path);
    // dirfd is an int: -100 in its low 32 bits (musl passes it so) as well as sign-extended
    if (BigInt.asIntN(32, dirfd) === AT_FDCWD) return normalize(`${this.#block.cwd}/${path}`);
    // relative to a directory the program opened in a granted directory
    const d = this.#block.fd(fdOf(dirfd));
    if (d === undefined) return -BigInt(ERRNO.EBADF);
    const e = d.kind === "file" ? this.#file(d) : undefined;
    if (e?.listing === undefined) return -BigInt(ERRNO.ENOTDIR);
    return normalize(`${(e as OpenedEntry).path}/${path}`);
  }

  /** chdir(2): to a directory the program can see (one of its granted directories', or one that holds a placed file, or "/"). */
  #chdir(path: string | bigint): bigint {
    if (typeof path !== "string") return path;
    if (path !== "/") {
      if (this.#paths.has(path)) return -BigInt(ERRNO.ENOTDIR);
      const served = this.#dirs?.covers(path) ? this.#dirs.stat(path) : undefined;
      const holds = [...this.#paths.keys()].some((f) => f.startsWith(`${path}/`));
      if (served !== undefined && served.kind !== "dir") return -BigInt(ERRNO.ENOTDIR);
      if (served === undefined && !holds) return -BigInt(ERRNO.ENOENT);
    }
    if (new TextEncoder().encode(path).length >= LinuxBlock.CWD_CAP) return -BigInt(ERRNO.ENAMETOOLONG);
    this.#block.cwd = path;
    return 0n;
  }

  /** A C string from the guest, at most MAX_PATH bytes. */
  #path(addr: bigint): string | bigint {
    const bytes: number[] = [];
    for (let at = addr; bytes.length < MAX_PATH; ) {
      const chunk = this.#guest.read(at, Math.min(64, 4096 - Number(at % 4096n)), "a path");
      const nul = chunk.indexOf(0);
      bytes.push(...(nul < 0 ? chunk : chunk.subarray(0, nul)));
      if (nul >= 0) return new TextDecoder().decode(new Uint8Array(bytes));
      at += BigInt(chunk.length);
    }
    return -BigInt(ERRNO.ENAMETOOLONG);
  }

  #uname(buf: bigint): bigint {
    const fields = ["Linux", "wasp", "6.1.0-wasp", "#1 wasp virtine", "x86_64", "(none)"];
    const out = new Uint8Array(65 * fields.length);
    fields.forEach((f, i) => out.set(new TextEncoder().encode(f), i * 65));
    this.#guest.write(buf, out, "uname's buffer");
    return 0n;
  }

  #rlimit(resource: number, newLimit: bigint, old: bigint): bigint {
    if (newLimit !== 0n) return -BigInt(ERRNO.EPERM); // the host sets the limits
    if (old === 0n) return 0n;
    const INFINITY = 2n ** 64n - 1n;
    // RLIMIT_STACK 3, RLIMIT_NOFILE 7, RLIMIT_AS 9, RLIMIT_DATA 2
    const m = this.memory.regions;
    const value = resource === 3 ? BigInt(this.#opts.stackSize) : resource === 7 ? BigInt(MAX_FDS) : resource === 2 ? BigInt(m.brkEnd - m.brkStart) : INFINITY;
    const out = new Uint8Array(16);
    new DataView(out.buffer).setBigUint64(0, value, true);
    new DataView(out.buffer).setBigUint64(8, value, true);
    this.#guest.write(old, out, "the limit's buffer");
    return 0n;
  }

  #archPrctl(code: number, addr: bigint): Outcome {
    // ARCH_SET_GS 0x1001, ARCH_SET_FS 0x1002, ARCH_GET_FS 0x1003, ARCH_GET_GS 0x1004
    if (code === 0x1002 || code === 0x1001) {
      if (addr >= 2n ** 47n) return { kind: "return", value: -BigInt(ERRNO.EPERM) }; // not a canonical user address
      if (code === 0x1002) this.#block.fsBase = addr;
      else this.#block.gsBase = addr;
      return { kind: "setBase", register: code === 0x1002 ? "fs" : "gs", base: addr };
    }
    if (code === 0x1003 || code === 0x1004) {
      const out = new Uint8Array(8);
      new DataView(out.buffer).setBigUint64(0, code === 0x1003 ? this.#block.fsBase : this.#block.gsBase, true);
      this.#guest.write(addr, out, "arch_prctl's buffer");
      return { kind: "return", value: 0n };
    }
    return { kind: "return", value: -BigInt(ERRNO.EINVAL) };
  }

  #time(nr: number, a: readonly bigint[]): Outcome {
    if (!this.#opts.time) return { kind: "return", value: -BigInt(ERRNO.EPERM) };
    const now = (this.#opts.clock ?? (() => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6))))();
    const timespec = (ns: bigint) => {
      const out = new Uint8Array(16);
      new DataView(out.buffer).setBigInt64(0, ns / 1_000_000_000n, true);
      new DataView(out.buffer).setBigInt64(8, ns % 1_000_000_000n, true);
      return out;
    };
    switch (nr) {
      case NR.clock_gettime:
        this.#guest.write(a[1], timespec(now), "clock_gettime's buffer");
        return { kind: "return", value: 0n };
      case NR.clock_getres:
        if (a[1] !== 0n) this.#guest.write(a[1], timespec(1n), "clock_getres's buffer");
        return { kind: "return", value: 0n };
      case NR.gettimeofday: {
        if (a[0] !== 0n) {
          const out = new Uint8Array(16);
          new DataView(out.buffer).setBigInt64(0, now / 1_000_000_000n, true);
          new DataView(out.buffer).setBigInt64(8, (now % 1_000_000_000n) / 1000n, true);
          this.#guest.write(a[0], out, "gettimeofday's buffer");
        }
        return { kind: "return", value: 0n };
      }
      case NR.time: {
        const seconds = now / 1_000_000_000n;
        if (a[0] !== 0n) {
          const out = new Uint8Array(8);
          new DataView(out.buffer).setBigInt64(0, seconds, true);
          this.#guest.write(a[0], out, "time's buffer");
        }
        return { kind: "return", value: seconds };
      }
      default: {
        // nanosleep(req, rem) or clock_nanosleep(clock, flags, req, rem)
        const req = this.#guest.read(nr === NR.nanosleep ? a[0] : a[2], 16, "the sleep's timespec");
        const dv = new DataView(req.buffer);
        const sec = dv.getBigInt64(0, true);
        const nsec = dv.getBigInt64(8, true);
        if (sec < 0n || nsec < 0n || nsec >= 1_000_000_000n) return { kind: "return", value: -BigInt(ERRNO.EINVAL) };
        return { kind: "sleep", ns: sec * 1_000_000_000n + nsec };
      }
    }
  }
}

/** An fd number from a register (its low 32 bits, as a C int; negative ones are never open). */
function fdOf(reg: bigint): number {
  return Number(BigInt.asIntN(32, reg));
}

/**
 * Inode numbers, as the layer gives them: granted file i's is 16 + i, a directory's its path's
 * FNV-1a hash above 2^32, the streams' 1 — distinct, so that a loader that tells files apart by
 * (st_dev, st_ino) does not take one library for another.
 */
export function fileIno(index: number): bigint {
  return 16n + BigInt(index);
}

export const dirIno = servedDirIno;

/** The struct stat of a path in a granted directory: its kind, size, executable bits and modification time as the host has them. */
function servedStat(s: DirStat): Uint8Array {
  const out = stat(s.mode, s.size, s.ino);
  const dv = new DataView(out.buffer);
  const sec = s.mtimeNs / 1_000_000_000n;
  const nsec = s.mtimeNs % 1_000_000_000n;
  for (const at of [72, 88, 104]) {
    // st_atim, st_mtim, st_ctim
    dv.setBigInt64(at, sec, true);
    dv.setBigInt64(at + 8, nsec, true);
  }
  return out;
}

/** A struct stat (x86-64, 144 bytes) for a file of `mode`, `size` and inode number `ino`. */
function stat(mode: number, size: number, ino: bigint): Uint8Array {
  const out = new Uint8Array(144);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(8, ino, true); // st_ino
  dv.setBigUint64(16, 1n, true); // st_nlink
  dv.setUint32(24, mode, true); // st_mode
  dv.setUint32(28, 1000, true); // st_uid
  dv.setUint32(32, 1000, true); // st_gid
  dv.setBigInt64(48, BigInt(size), true); // st_size
  dv.setBigInt64(56, 4096n, true); // st_blksize
  dv.setBigInt64(64, BigInt(Math.ceil(size / 512)), true); // st_blocks
  return out;
}

