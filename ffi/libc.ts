// libc through bun:ffi. Each checked wrapper reads errno right after a failing call (before any
// other libc call can overwrite it) and throws a SyscallError naming the call and the errno.
// `raw` exposes the unchecked symbols for hot paths (the run loop) that inspect errors themselves.
import { FFIType, dlopen, read, type Pointer } from "bun:ffi";
import { SyscallError } from "./errors.ts";
import { Errno, errnoName } from "./errno.ts";

const lib = dlopen("libc.so.6", {
  open: { args: ["cstring", "i32", "u32"], returns: "i32" },
  close: { args: ["i32"], returns: "i32" },
  sched_yield: { args: [], returns: "i32" },
  // the third argument is an integer or a pointer; "ptr" takes both a number and a typed array
  ioctl: { args: ["i32", "u64", "ptr"], returns: "i32" },
  mmap: { args: ["u64", "u64", "i32", "i32", "i32", "i64"], returns: "ptr" },
  munmap: { args: ["u64", "u64"], returns: "i32" },
  madvise: { args: ["u64", "u64", "i32"], returns: "i32" },
  mprotect: { args: ["u64", "u64", "i32"], returns: "i32" },
  memfd_create: { args: ["cstring", "u32"], returns: "i32" },
  ftruncate: { args: ["i32", "i64"], returns: "i32" },
  pwrite: { args: ["i32", "ptr", "u64", "i64"], returns: FFIType.i64_fast },
  lseek: { args: ["i32", "i64", "i32"], returns: FFIType.i64_fast },
  getrlimit: { args: ["i32", "ptr"], returns: "i32" },
  setrlimit: { args: ["i32", "ptr"], returns: "i32" },
  syscall: { args: ["i64", "i64", "i64", "i64", "i64"], returns: FFIType.i64_fast },
  sigaction: { args: ["i32", "ptr", "ptr"], returns: "i32" },
  // variadic in C; glibc reads four more arguments, and some options need the unused ones 0
  prctl: { args: ["i32", "u64", "u64", "u64", "u64"], returns: "i32" },
  // abs(3) is a pure function of one int: as a signal handler it does nothing at all
  abs: { args: ["i32"], returns: "i32" },
  __errno_location: { args: [], returns: "ptr" },
});

export const raw = lib.symbols;

/** The calling thread's errno. Read it immediately after the call that failed. */
export function errno(): number {
  const p = raw.__errno_location() as Pointer | null;
  return p === null ? 0 : read.i32(p, 0);
}

export function fail(call: string, detail?: string): never {
  const e = errno();
  throw new SyscallError(call, e, errnoName(e), detail);
}

// open(2) flags and mmap(2) constants from asm-generic/fcntl.h and asm-generic/mman*.h (checked by
// tests/ffi-layout.test.ts).
export const O_RDONLY = 0;
export const O_RDWR = 2;
export const O_CLOEXEC = 0o2000000;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
export const MADV_DONTNEED = 4;
export const MFD_CLOEXEC = 1;
export const RLIMIT_NOFILE = 7;
export const RLIMIT_CORE = 4;
export const O_PATH = 0o10000000;
// prctl(2) options (linux/prctl.h).
export const PR_GET_DUMPABLE = 3;
export const PR_SET_DUMPABLE = 4;
export const PR_GET_SECCOMP = 21;
export const PR_SET_NO_NEW_PRIVS = 38;
export const PR_GET_NO_NEW_PRIVS = 39;
export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;
// Signals and timers (asm-generic/signal-defs.h, siginfo.h, linux/time.h).
export const SIG_BLOCK = 0;
export const SIG_UNBLOCK = 1;
export const SIGEV_THREAD_ID = 4;
export const CLOCK_MONOTONIC = 1;
/**
 * Installs a handler for `signal` that does nothing (libc's abs(3), called with the signal number
 * and returning it), through libc's sigaction so that libc supplies the x86-64 signal trampoline.
 * No SA_RESTART: an interrupted system call returns EINTR.
 */
export function ignoreByHandler(signal: number, sigactionStruct: { size: number; handler: number }): void {
  const act = new Uint8Array(sigactionStruct.size);
  const handler = (raw.abs as unknown as { ptr: number }).ptr;
  new DataView(act.buffer).setBigUint64(sigactionStruct.handler, BigInt(handler), true);
  if (raw.sigaction(signal, act, null) < 0) fail(`sigaction(${signal})`);
}

/** The kernel's sigset_t is 64 bits on x86-64. */
export const KERNEL_SIGSET_BYTES = 8;

/** NUL-terminated bytes for a C string argument. */
export function cstr(s: string): Buffer {
  return Buffer.from(`${s}\0`, "utf8");
}

export function open(path: string, flags: number): number {
  const fd = raw.open(cstr(path), flags | O_CLOEXEC, 0);
  if (fd < 0) fail(`open(${path})`);
  return fd;
}

export function close(fd: number): void {
  if (raw.close(fd) < 0) fail("close");
}

/**
 * ioctl with an integer or pointer argument; `name` is the request's name for the error. A call
 * interrupted by a signal (EINTR: a profiler's, or any other the process catches) is retried;
 * KVM_RUN, whose EINTR means something, goes through `raw` instead.
 */
export function ioctl(fd: number, request: number, arg: number | NodeJS.TypedArray, name: string): number {
  for (;;) {
    const r = raw.ioctl(fd, request, arg);
    if (r >= 0) return r;
    if (errno() !== Errno.EINTR) fail(`ioctl(${name})`);
  }
}

export function mmap(length: number, prot: number, flags: number, fd = -1, offset = 0, addr = 0): number {
  const p = raw.mmap(addr, length, prot, flags, fd, offset) as number | null;
  // MAP_FAILED is (void *)-1, which bun:ffi hands back as a pointer value of 2^64-1.
  if (p === null || p === 0 || p >= 2 ** 64 - 4096) fail("mmap", `${length} bytes`);
  return p;
}

export function munmap(addr: number, length: number): void {
  if (raw.munmap(addr, length) < 0) fail("munmap");
}

export function madvise(addr: number, length: number, advice: number): void {
  if (raw.madvise(addr, length, advice) < 0) fail("madvise");
}

export function mprotect(addr: number, length: number, prot: number): void {
  if (raw.mprotect(addr, length, prot) < 0) fail("mprotect");
}

export function memfdCreate(name: string, flags = MFD_CLOEXEC): number {
  const fd = raw.memfd_create(cstr(name), flags);
  if (fd < 0) fail("memfd_create");
  return fd;
}

// memfd seals (linux/memfd.h, linux/fcntl.h): a memfd made with MFD_ALLOW_SEALING can be sealed so
// that nobody — not even this process — can write, shrink or grow it again.
export const MFD_ALLOW_SEALING = 2;
export const F_ADD_SEALS = 1033;
export const F_SEAL_SEAL = 1;
export const F_SEAL_SHRINK = 2;
export const F_SEAL_GROW = 4;
export const F_SEAL_WRITE = 8;
/** Adds `seals` to a memfd made with MFD_ALLOW_SEALING. */
export function addSeals(fd: number, seals: number): void {
  if ((raw.syscall(SYS.fcntl, fd, F_ADD_SEALS, seals, 0) as number) < 0) fail("fcntl(F_ADD_SEALS)");
}

/** Writes all of `data` at `offset` of a file (looping over short writes, retrying EINTR). */
export function pwrite(fd: number, data: Uint8Array, offset: number): void {
  let done = 0;
  while (done < data.length) {
    const n = raw.pwrite(fd, data.subarray(done), data.length - done, offset + done) as number;
    if (n < 0) {
      if (errno() === Errno.EINTR) continue;
      fail("pwrite");
    }
    done += n;
  }
}

/**
 * The data ranges [start, end) of a sparse file between `from` and `to` (SEEK_DATA/SEEK_HOLE);
 * a file system without hole support reports everything as data.
 */
export function dataRanges(fd: number, from: number, to: number): [number, number][] {
  const out: [number, number][] = [];
  let at = from;
  while (at < to) {
    const data = raw.lseek(fd, at, SEEK_DATA) as number;
    if (data < 0) {
      if (errno() === Errno.ENXIO) break; // no data after `at`
      fail("lseek(SEEK_DATA)");
    }
    if (data >= to) break;
    const hole = raw.lseek(fd, data, SEEK_HOLE) as number;
    if (hole < 0) fail("lseek(SEEK_HOLE)");
    out.push([data, Math.min(hole, to)]);
    at = hole;
  }
  return out;
}

export function ftruncate(fd: number, length: number): void {
  if (raw.ftruncate(fd, length) < 0) fail("ftruncate");
}

/** Soft and hard limit of a resource (RLIMIT_*). */
export function getrlimit(resource: number): { soft: bigint; hard: bigint } {
  const buf = new BigUint64Array(2);
  if (raw.getrlimit(resource, buf) < 0) fail("getrlimit");
  return { soft: buf[0], hard: buf[1] };
}

export function setrlimit(resource: number, soft: bigint, hard: bigint): void {
  const buf = new BigUint64Array([soft, hard]);
  if (raw.setrlimit(resource, buf) < 0) fail("setrlimit");
}

/** Linux x86-64 syscall numbers used through syscall(2) (asm/unistd_64.h; checked by a test). */
export const SYS = {
  fcntl: 72,
  rt_sigprocmask: 14,
  rt_sigtimedwait: 128,
  gettid: 186,
  timer_create: 222,
  timer_settime: 223,
  timer_delete: 226,
  tgkill: 234,
  seccomp: 317,
  landlock_create_ruleset: 444,
  landlock_add_rule: 445,
  landlock_restrict_self: 446,
} as const;

/** A raw syscall; returns the kernel's result, or throws SyscallError on -1. */
export function syscall(nr: number, name: string, a = 0, b = 0, c = 0, d = 0): number {
  const r = raw.syscall(nr, a, b, c, d) as number;
  if (r === -1) fail(name);
  return r;
}

export function gettid(): number {
  return raw.syscall(SYS.gettid, 0, 0, 0, 0) as number;
}

/** Gives the CPU to another runnable thread, if there is one (a polite spin-wait). */
export function schedYield(): void {
  raw.sched_yield();
}

/** Sends `signal` to thread `tid` of this process; false if the thread is gone (ESRCH). */
export function tgkill(tid: number, signal: number): boolean {
  const r = raw.syscall(SYS.tgkill, process.pid, tid, signal, 0) as number;
  if (r === -1) {
    if (errno() === Errno.ESRCH) return false;
    fail("tgkill");
  }
  return true;
}

/** prctl(2) with one argument (the others 0); returns the kernel's result or throws SyscallError. */
export function prctl(option: number, arg2 = 0, name = `prctl(${option})`): number {
  const r = raw.prctl(option, arg2, 0, 0, 0);
  if (r === -1) fail(name);
  return r;
}
