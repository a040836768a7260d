// The Linux system calls a static program makes, answered by the host (issue 13, part 3), tested
// without a VM: guest memory with the host's page tables, the calls made as the run loop will make
// them, every result and byte checked — and thousands of random calls with random arguments, none
// of which may throw or touch what the guest could not.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { runs } from "./fuzz.ts";
import { GuestMemory } from "../src/memory/guest-memory.ts";
import { GuestAccess } from "../src/memory/guest-access.ts";
import { accessRules } from "../src/shell/shell.ts";
import { longModeTablePieces } from "../src/image/boot.ts";
import { Layout } from "../src/abi/guest-abi.ts";
import { ERRNO, LinuxProcess, MAX_FDS, NR, WRITE_CHUNK, type Outcome } from "../src/linux/process.ts";
import { ProcessBlock } from "../src/linux/block.ts";
import { planIo, type LinuxLayout } from "../src/linux/address-space.ts";
import { processPieces } from "../src/linux/layer.ts";
import { SYSCALL_TABLE } from "../src/linux/syscalls.ts";
import { readFileSync } from "node:fs";
import { NetState, type NetOptions } from "../src/linux/net.ts";
import { MemoryConnection } from "../src/serve/connection.ts";
import { GuestFaultError, PolicyViolationError } from "../src/errors.ts";
import { join } from "node:path";

const RAM = 32 * 1024 * 1024;
const BUF = 0x200000; // scratch the tests pass pointers into
const BRK = 0x400000;
const MMAP = 0x800000;

const MMAP_END = 0x1000000;

/** A process's layout for these files: the regions above, wasp's pages (the process block...) right after the mappings. */
function layoutOf(files: Map<string, Uint8Array>): LinuxLayout {
  const regions = { brkStart: BRK, brkEnd: MMAP, mmapStart: MMAP, mmapEnd: MMAP_END };
  const io = planIo(MMAP_END, (MMAP_END - MMAP) / 4096, [...files].map(([path, d]) => ({ path, size: d.length })));
  return { memory: RAM, bias: 0, low: 0x400000, high: BRK, regions, io, guard: [RAM - 0x20000, RAM - 0x10000], stack: [RAM - 0x10000, RAM], dirs: false, net: false };
}

function setup(opts: { input?: string; files?: Record<string, string>; time?: boolean; random?: boolean; memory?: GuestMemory; net?: NetOptions } = {}) {
  const enc = new TextEncoder();
  const files = new Map(Object.entries(opts.files ?? {}).map(([k, v]) => [k, enc.encode(v)]));
  const layout = layoutOf(files);
  const mem = opts.memory ?? new GuestMemory(RAM);
  if (!opts.memory) {
    for (const [at, bytes] of longModeTablePieces()) mem.bytes.set(bytes, at);
    for (const [at, bytes] of processPieces(layout, files)) mem.bytes.set(bytes, at);
  }
  const written: number[] = [];
  const guest = new GuestAccess(mem, accessRules(false), (phys) => written.push(phys));
  const block = new ProcessBlock(mem, layout, files.size, () => {});
  // the call's input is all the host's here (the window holds none of it)
  const callAt = layout.io.call;
  new DataView(mem.bytes.buffer).setBigUint64(callAt + 16, BigInt(enc.encode(opts.input ?? "").length), true);
  new DataView(mem.bytes.buffer).setBigUint64(callAt + 24, 0n, true);
  const stdout: number[] = [];
  const stderr: number[] = [];
  const proc = new LinuxProcess(guest, block, {
    name: "prog",
    input: enc.encode(opts.input ?? ""),
    stdout: { append: (b) => { for (const x of b) stdout.push(x); } },
    stderr: { append: (b) => { for (const x of b) stderr.push(x); } },
    files: [...files].map(([path, data]) => ({ path, data })),
    time: opts.time,
    random: opts.random,
    memory: layout.regions,
    stackSize: 1 << 20,
    clock: () => 1_700_000_000_123_456_789n,
    fillRandom: (b) => b.fill(7),
    net: opts.net,
  });
  const call = (nr: number, ...args: (bigint | number)[]): Outcome => proc.syscall(nr, [...args.map(BigInt), ...new Array(6 - args.length).fill(0n)]);
  const value = (nr: number, ...args: (bigint | number)[]) => {
    const o = call(nr, ...args);
    if (o.kind !== "return") throw new Error(`syscall ${nr} did not return: ${o.kind}`);
    return o.value;
  };
  const cstr = (at: number, s: string) => mem.bytes.set(enc.encode(`${s}\0`), at);
  const text = () => new TextDecoder().decode(new Uint8Array(stdout));
  return { mem, proc, call, value, cstr, text, stdout, stderr, written, layout };
}

const E = (e: number) => BigInt(-e);

describe("I/O: fd 0 is the input, fd 1 the output, fd 2 the console", () => {
  test("read, write, readv, writev, and what the streams are", () => {
    const { mem, value, text, stderr } = setup({ input: "hello world" });
    expect(value(NR.read, 0, BUF, 5)).toBe(5n);
    expect(new TextDecoder().decode(mem.bytes.subarray(BUF, BUF + 5))).toBe("hello");
    expect(value(NR.read, 0, BUF, 100)).toBe(6n);
    expect(value(NR.read, 0, BUF, 100)).toBe(0n); // end of input
    mem.bytes.set(new TextEncoder().encode("abcdef"), BUF);
    expect(value(NR.write, 1, BUF, 3)).toBe(3n);
    expect(value(NR.write, 2, BUF + 3, 3)).toBe(3n);
    // writev of two iovecs: "ab", "cde"
    const iov = new DataView(mem.bytes.buffer, BUF + 0x100, 32);
    iov.setBigUint64(0, BigInt(BUF), true);
    iov.setBigUint64(8, 2n, true);
    iov.setBigUint64(16, BigInt(BUF + 2), true);
    iov.setBigUint64(24, 3n, true);
    expect(value(NR.writev, 1, BUF + 0x100, 2)).toBe(5n);
    expect(text()).toBe("abcabcde");
    expect(new TextDecoder().decode(new Uint8Array(stderr))).toBe("def");
    expect(value(NR.write, 0, BUF, 1)).toBe(E(ERRNO.EBADF));
    expect(value(NR.read, 1, BUF, 1)).toBe(E(ERRNO.EBADF));
    expect(value(NR.ioctl, 1, 0x5401, BUF)).toBe(E(ERRNO.ENOTTY)); // TCGETS: a pipe, not a terminal
    // a huge write is a short one, as a pipe's: the host copies at most WRITE_CHUNK bytes a call
    const before = text().length;
    expect(value(NR.write, 1, BUF, 3 * WRITE_CHUNK)).toBe(BigInt(WRITE_CHUNK));
    expect(text().length - before).toBe(WRITE_CHUNK);
    expect(value(NR.lseek, 0, 0, 0)).toBe(E(ERRNO.ESPIPE));
    expect(value(NR.fstat, 1, BUF)).toBe(0n);
    expect(new DataView(mem.bytes.buffer).getUint32(BUF + 24, true) & 0o170000).toBe(0o010000); // S_IFIFO
    expect(value(NR.close, 2)).toBe(0n);
    expect(value(NR.write, 2, BUF, 1)).toBe(E(ERRNO.EBADF));
  });

  test("a pointer the guest could not use itself is -EFAULT, and nothing is written", () => {
    const { value, written } = setup({ input: "secret" });
    for (const bad of [0, Layout.PML4, Layout.IDT, Layout.TRAMPOLINE, RAM + 0x1000, 2 ** 47]) {
      expect(value(NR.read, 0, bad, 4)).toBe(E(ERRNO.EFAULT));
      expect(value(NR.write, 1, bad, 4)).toBe(E(ERRNO.EFAULT));
    }
    expect(written).toEqual([]);
  });
});

describe("files: only what the caller grants, read-only", () => {
  test("open, read, lseek, fstat, stat, access; anything else -ENOENT, a write -EROFS", () => {
    const { mem, value, cstr } = setup({ files: { "/etc/config": "key=value\n" } });
    cstr(BUF, "/etc/../etc/./config");
    const fd = value(NR.openat, -100, BUF, 0);
    expect(fd).toBe(3n);
    expect(value(NR.read, Number(fd), BUF + 0x100, 3)).toBe(3n);
    expect(new TextDecoder().decode(mem.bytes.subarray(BUF + 0x100, BUF + 0x103))).toBe("key");
    expect(value(NR.lseek, Number(fd), 0, 2)).toBe(10n);
    expect(value(NR.pread64, Number(fd), BUF + 0x100, 5, 4)).toBe(5n);
    expect(value(NR.pread64, Number(fd), BUF + 0x100, 5, -1)).toBe(E(ERRNO.EINVAL)); // a negative offset
    expect(value(NR.fstat, Number(fd), BUF + 0x200)).toBe(0n);
    expect(new DataView(mem.bytes.buffer).getBigInt64(BUF + 0x200 + 48, true)).toBe(10n);
    expect(value(NR.stat, BUF, BUF + 0x200)).toBe(0n);
    expect(value(NR.access, BUF, 4)).toBe(0n);
    expect(value(NR.openat, -100, BUF, 1)).toBe(E(ERRNO.EROFS));
    cstr(BUF, "/etc/passwd");
    expect(value(NR.openat, -100, BUF, 0)).toBe(E(ERRNO.ENOENT));
    expect(value(NR.open, BUF, 0)).toBe(E(ERRNO.ENOENT));
    expect(value(NR.access, BUF, 4)).toBe(E(ERRNO.ENOENT));
    cstr(BUF, "etc/config"); // relative to "/"
    expect(value(NR.openat, -100, BUF, 0)).toBe(4n);
  });

  test("at most RLIMIT_NOFILE fds: then -EMFILE, and a closed one is reused", () => {
    const { value, cstr } = setup({ files: { "/f": "x" } });
    cstr(BUF, "/f");
    for (let fd = 3; fd < MAX_FDS; fd++) expect(value(NR.openat, -100, BUF, 0)).toBe(BigInt(fd));
    expect(value(NR.openat, -100, BUF, 0)).toBe(E(ERRNO.EMFILE));
    expect(value(NR.close, 10)).toBe(0n);
    expect(value(NR.openat, -100, BUF, 0)).toBe(10n);
    expect(value(NR.prlimit64, 0, 7, 0, BUF + 0x100)).toBe(0n);
  });
});

describe("a process's state is in its memory: a snapshot of the memory keeps it, and every call resumed from it starts there", () => {
  test("fds and their offsets, the break, mappings and TLS bases come back from a copy of the memory; later changes do not reach the copy", () => {
    const a = setup({ files: { "/f": "abcdef" } });
    a.cstr(BUF, "/f");
    const fd = Number(a.value(NR.openat, -100, BUF, 0));
    expect(a.value(NR.read, fd, BUF + 0x100, 2)).toBe(2n);
    expect(a.value(NR.close, 0)).toBe(0n);
    const brk = a.value(NR.brk, BRK + 0x3000);
    const map = a.value(NR.mmap, 0, 0x2000, 3, 0x22, -1, 0);
    expect(a.call(NR.arch_prctl, 0x1002, 0x123000)).toEqual({ kind: "setBase", register: "fs", base: 0x123000n });
    const snapshot = a.mem.bytes.slice();
    // the capturing call goes on: none of this may reach the copy
    expect(a.value(NR.read, fd, BUF + 0x100, 2)).toBe(2n);
    expect(a.value(NR.close, fd)).toBe(0n);
    a.value(NR.brk, BRK + 0x8000);
    a.value(NR.munmap, map, 0x2000);
    for (let i = 0; i < 2; i++) {
      const memory = new GuestMemory(RAM);
      memory.bytes.set(snapshot);
      const b = setup({ files: { "/f": "abcdef" }, memory });
      expect(b.value(NR.read, fd, BUF + 0x100, 10)).toBe(4n); // from offset 2
      expect(new TextDecoder().decode(b.mem.bytes.subarray(BUF + 0x100, BUF + 0x104))).toBe("cdef");
      expect(b.value(NR.read, 0, BUF, 1)).toBe(E(ERRNO.EBADF)); // fd 0 stays closed
      expect(b.value(NR.brk, 0)).toBe(brk);
      expect(b.value(NR.mmap, 0, 0x2000, 3, 0x22, -1, 0)).not.toBe(map); // still mapped: another range
      expect(b.value(NR.arch_prctl, 0x1003, BUF + 0x200)).toBe(0n);
      expect(new DataView(b.mem.bytes.buffer).getBigUint64(BUF + 0x200, true)).toBe(0x123000n);
      b.value(NR.lseek, fd, 0, 0); // moving this call's offset moves no other call's
    }
  });

  test("a state the program overwrote so that no system call could have left it ends the call, naming what", () => {
    const a = setup({ files: { "/f": "abcdef" } });
    const dv = new DataView(a.mem.bytes.buffer);
    dv.setBigUint64(a.layout.io.block + 8, 0x10n, true); // the break, below its region
    expect(() => a.value(NR.brk, 0)).toThrow(/wasp's process state .*the break = 16/);
    const b = setup({ files: { "/f": "abcdef" } });
    b.mem.bytes[b.layout.io.block + 64 + 3 * 16] = 4; // fd 3: a file
    new DataView(b.mem.bytes.buffer).setUint32(b.layout.io.block + 64 + 3 * 16 + 4, 7, true); // the 8th of one file
    expect(() => b.value(NR.read, 3, BUF, 1)).toThrow(/fd 3's file = 7/);
    b.mem.bytes[b.layout.io.block + 64 + 4 * 16] = 99;
    expect(() => b.value(NR.close, 4)).toThrow(/fd 4's kind = 99/);
  });
});

describe("memory: brk and anonymous mappings inside the regions, zeroed when reused", () => {
  test("brk moves within its range and stops at its end", () => {
    const { mem, value } = setup();
    expect(value(NR.brk, 0)).toBe(BigInt(BRK));
    expect(value(NR.brk, BRK + 0x3000)).toBe(BigInt(BRK + 0x3000));
    mem.bytes.fill(9, BRK, BRK + 0x3000);
    expect(value(NR.brk, BRK + 0x1000)).toBe(BigInt(BRK + 0x1000)); // shrink
    expect(value(NR.brk, BRK + 0x3000)).toBe(BigInt(BRK + 0x3000)); // grow again: zeroed
    expect(mem.bytes.subarray(BRK + 0x1000, BRK + 0x3000).every((b) => b === 0)).toBe(true);
    expect(value(NR.brk, MMAP + 0x1000)).toBe(BigInt(BRK + 0x3000)); // past the range: unchanged
  });

  test("mmap hands out pages top-down, munmap frees them, a reused page reads zero, mremap grows and moves", () => {
    const { mem, value } = setup();
    const a = value(NR.mmap, 0, 0x2000, 3, 0x22, -1, 0); // PROT_READ|WRITE, MAP_PRIVATE|ANONYMOUS
    expect(a).toBe(BigInt(MMAP_END) - 0x2000n);
    mem.bytes.fill(5, Number(a), Number(a) + 0x2000);
    expect(value(NR.munmap, a, 0x2000)).toBe(0n);
    const b = value(NR.mmap, 0, 0x1000, 3, 0x22, -1, 0);
    expect(b).toBe(BigInt(MMAP_END) - 0x1000n);
    expect(mem.bytes.subarray(Number(b), Number(b) + 0x1000).every((x) => x === 0)).toBe(true);
    mem.bytes[Number(b)] = 42;
    const c = value(NR.mremap, b, 0x1000, 0x4000, 1); // MREMAP_MAYMOVE: no room above, it moves
    expect(c).not.toBe(b);
    expect(mem.bytes[Number(c)]).toBe(42);
    expect(value(NR.mmap, 0, 0x10000000, 3, 0x22, -1, 0)).toBe(E(ERRNO.ENOMEM)); // past the region
    expect(value(NR.mmap, 0, 0x1000, 1, 0x02, 3, 0)).toBe(E(ERRNO.EBADF)); // a file not open
    expect(value(NR.mmap, 0, 0x1000, 1, 0x02, 0, 0)).toBe(E(ERRNO.ENODEV)); // stdin: a pipe, nothing to map
    expect(value(NR.mmap, 0, 0x1000, 3, 0x21, -1, 0)).toBe(E(ERRNO.ENODEV)); // shared anonymous memory
    expect(value(NR.mmap, 0, 0, 3, 0x22, -1, 0)).toBe(E(ERRNO.EINVAL));
  });
});

describe("process, time and randomness", () => {
  test("identity, limits, uname, arch_prctl, futex; exit ends the call with its status", () => {
    const { mem, value, call } = setup();
    expect(value(NR.getpid)).toBe(1n);
    expect(value(NR.getuid)).toBe(1000n);
    expect(value(NR.uname, BUF)).toBe(0n);
    expect(new TextDecoder().decode(mem.bytes.subarray(BUF, BUF + 5))).toBe("Linux");
    expect(new TextDecoder().decode(mem.bytes.subarray(BUF + 65 * 4, BUF + 65 * 4 + 6))).toBe("x86_64");
    expect(value(NR.prlimit64, 0, 3, 0, BUF)).toBe(0n);
    expect(new DataView(mem.bytes.buffer).getBigUint64(BUF, true)).toBe(1n << 20n);
    expect(value(NR.prlimit64, 0, 3, BUF, 0)).toBe(E(ERRNO.EPERM)); // setting a limit
    expect(call(NR.arch_prctl, 0x1002, 0x123000)).toEqual({ kind: "setBase", register: "fs", base: 0x123000n });
    expect(value(NR.arch_prctl, 0x1003, BUF)).toBe(0n);
    expect(new DataView(mem.bytes.buffer).getBigUint64(BUF, true)).toBe(0x123000n);
    expect(value(NR.futex, BUF, 0, 0)).toBe(E(ERRNO.EAGAIN));
    expect(call(NR.exit_group, 0x1ff)).toEqual({ kind: "exit", status: 0xff });
  });

  test("the clock and randomness only with their grants", () => {
    const denied = setup();
    expect(denied.value(NR.clock_gettime, 0, BUF)).toBe(E(ERRNO.EPERM));
    expect(denied.value(NR.getrandom, BUF, 16, 0)).toBe(E(ERRNO.EPERM));
    const granted = setup({ time: true, random: true });
    expect(granted.value(NR.clock_gettime, 0, BUF)).toBe(0n);
    const dv = new DataView(granted.mem.bytes.buffer);
    expect(dv.getBigInt64(BUF, true)).toBe(1_700_000_000n);
    expect(dv.getBigInt64(BUF + 8, true)).toBe(123_456_789n);
    expect(granted.value(NR.getrandom, BUF, 16, 0)).toBe(16n);
    expect(granted.mem.bytes.subarray(BUF, BUF + 16).every((b) => b === 7)).toBe(true);
    dv.setBigInt64(BUF, 0n, true);
    dv.setBigInt64(BUF + 8, 5000n, true);
    expect(granted.call(NR.nanosleep, BUF, 0)).toEqual({ kind: "sleep", ns: 5000n });
  });

  test("select and pselect6: the streams are ready as poll says, the sets rewritten; a bad fd, too many fds, a bad timeout; no fd and a timeout is a sleep", () => {
    const { mem, value, call } = setup({ input: "x" });
    const dv = new DataView(mem.bytes.buffer);
    const sets = (r: number, w: number) => {
      mem.bytes.fill(0, BUF, BUF + 24);
      mem.bytes[BUF] = r;
      mem.bytes[BUF + 8] = w;
    };
    sets(0b11, 0b11); // read: fds 0 and 1, write: fds 0 and 1
    expect(value(23, 2, BUF, BUF + 8, 0, 0)).toBe(2n); // stdin readable, stdout writable
    expect([mem.bytes[BUF], mem.bytes[BUF + 8]]).toEqual([0b01, 0b10]);
    sets(0b1000, 0);
    expect(value(23, 4, BUF, 0, 0, 0)).toBe(E(ERRNO.EBADF)); // fd 3 is not open
    expect(value(23, 2000, BUF, 0, 0, 0)).toBe(E(ERRNO.EINVAL));
    dv.setBigInt64(BUF + 32, 0n, true);
    dv.setBigInt64(BUF + 40, 2_000_000n, true); // 2,000,000 µs is not a timeval
    sets(0b1, 0);
    expect(value(23, 1, BUF, 0, 0, BUF + 32)).toBe(E(ERRNO.EINVAL));
    dv.setBigInt64(BUF + 40, 0n, true);
    expect(value(23, 0, 0, 0, 0, BUF + 32)).toBe(0n); // nothing to wait for, no time: at once
    dv.setBigInt64(BUF + 40, 5_000_000n, true); // 5 ms as a timespec
    expect(value(270, 0, 0, 0, 0, BUF + 32, 0)).toBe(E(ERRNO.EPERM)); // a sleep, without the time grant
    const granted = setup({ time: true });
    new DataView(granted.mem.bytes.buffer).setBigInt64(BUF + 40, 5_000_000n, true);
    expect(granted.call(270, 0, 0, 0, 0, BUF + 32, 0)).toEqual({ kind: "sleep", ns: 5_000_000n });
    void call;
  });

  test("what is not answered is -ENOSYS and counted: processes, sockets, ptrace, unknown numbers", () => {
    const { value, proc } = setup();
    for (const nr of [56, 57, 58, 59, 41, 42, 101, 9999]) expect(value(nr)).toBe(E(ERRNO.ENOSYS));
    expect(proc.unknown.get(57)).toBe(1);
    expect(proc.unknown.size).toBe(8);
  });
});

test("thousands of random system calls with random arguments: each returns, exits, sets a base or sleeps; nothing throws; no host page is written", () => {
  const { proc, written } = setup({ input: "x".repeat(100), files: { "/f": "data" }, time: true, random: true });
  const interesting = [0n, 1n, 2n, 3n, 0x1000n, BigInt(BUF), BigInt(BRK), BigInt(MMAP), 0x7000n, 0x6000n, 2n ** 47n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 64n - 100n];
  const arg = fc.oneof(fc.constantFrom(...interesting), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 0x2000000n }));
  const nr = fc.oneof(fc.constantFrom(...Object.values(NR)), fc.integer({ min: 0, max: 500 }));
  fc.assert(
    fc.property(nr, fc.array(arg, { minLength: 6, maxLength: 6 }), (n, args) => {
      const o = proc.syscall(n, args);
      if (o.kind === "return") return o.value >= -4095n; // a value, or a negative errno
      return o.kind === "exit" || o.kind === "setBase" || o.kind === "sleep";
    }),
    { numRuns: runs(5000) },
  );
  const hostPage = (p: number) => (p >= Layout.PML4 && p < Layout.INFO) || (p >= Layout.TSS && p < Layout.HOST_END);
  expect(written.filter(hostPage)).toEqual([]);
});

describe("a served program's sockets (src/linux/net.ts)", () => {
  const NRS = { socket: 41, bind: 49, listen: 50, accept4: 288, getsockname: 51, getpeername: 52, recvfrom: 45, sendto: 44, recvmsg: 47, sendmsg: 46, shutdown: 48, epoll_create1: 291, epoll_ctl: 233, epoll_wait: 232, dup2: 33, fork: 57, clone: 56, connect: 42, getsockopt: 55, setsockopt: 54, fcntl: 72, ioctl: 16, poll: 7, close: 3 };
  const listen = { address: "127.0.0.1", port: 8080 };
  /** socket, bind, listen: the listener's fd */
  function listener(t: ReturnType<typeof setup>, nonblock = false): bigint {
    const fd = t.value(NRS.socket, 2, 1 | (nonblock ? 0o4000 : 0), 0);
    const sa = new DataView(t.mem.bytes.buffer, BUF + 0x800, 16);
    sa.setUint16(0, 2, true);
    sa.setUint16(2, 9999, false);
    expect(t.value(NRS.bind, fd, BUF + 0x800, 16)).toBe(0n);
    expect(t.value(NRS.listen, fd, 16)).toBe(0n);
    return fd;
  }

  test("before the snapshot: the wait on the listener is the snapshot point; a fork, a thread, a second listener are refused; connect fails", () => {
    const state = new NetState();
    const t = setup({ net: { state, listen } });
    const fd = listener(t);
    expect(fd).toBe(3n);
    expect(t.call(NRS.accept4, fd, 0, 0, 0)).toEqual({ kind: "listen", call: "accept4" });
    // getsockname says wasp's address, whatever the program bound
    new DataView(t.mem.bytes.buffer).setUint32(BUF + 0x900, 16, true);
    expect(t.value(NRS.getsockname, fd, BUF + 0x910, BUF + 0x900)).toBe(0n);
    expect([...t.mem.bytes.subarray(BUF + 0x910, BUF + 0x918)]).toEqual([2, 0, 0x1f, 0x90, 127, 0, 0, 1]);
    expect(t.value(NRS.connect, fd, BUF + 0x800, 16)).toBe(E(101)); // ENETUNREACH
    expect(() => t.call(NRS.fork)).toThrow(PolicyViolationError);
    expect(() => t.call(NRS.clone, 0x10f00, 0)).toThrow(/made a thread before it waited for a connection \(clone\)/);
    const second = t.value(NRS.socket, 2, 1, 0);
    expect(() => t.call(NRS.listen, second, 1)).toThrow(/listens on a second socket/);
  });

  test("after it: accept hands over the connection once; reads, writes, peeks; dup2 and close count its fds; epoll and poll see it", () => {
    const state = new NetState();
    const start = setup({ net: { state, listen } });
    const fd = listener(start, true);
    expect(start.value(NRS.accept4, fd, 0, 0, 0)).toBe(E(ERRNO.EAGAIN)); // non-blocking: no connection before the snapshot
    const conn = new MemoryConnection(new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"));
    const t = setup({ memory: start.mem, net: { state: state.clone(), listen, connection: conn } });
    const ep = t.value(NRS.epoll_create1, 0);
    const ev = new DataView(t.mem.bytes.buffer, BUF + 0xa00, 12);
    ev.setUint32(0, 1, true);
    ev.setBigUint64(4, 0xabcn, true);
    expect(t.value(NRS.epoll_ctl, ep, 1, fd, BUF + 0xa00)).toBe(0n);
    expect(t.value(NRS.epoll_wait, ep, BUF + 0xb00, 8, -1)).toBe(1n); // the listener is readable: a connection waits
    expect(new DataView(t.mem.bytes.buffer).getBigUint64(BUF + 0xb04, true)).toBe(0xabcn);
    new DataView(t.mem.bytes.buffer).setUint32(BUF + 0x900, 16, true);
    const c = t.value(NRS.accept4, fd, BUF + 0x910, BUF + 0x900, 0o4000);
    expect(t.value(NRS.accept4, fd, 0, 0, 0)).toBe(E(ERRNO.EAGAIN)); // taken: a non-blocking listener has no other
    expect(t.value(NRS.recvfrom, c, BUF, 4, 2 /* MSG_PEEK */, 0, 0)).toBe(4n);
    expect(t.value(NRS.recvfrom, c, BUF, 100, 0, 0, 0)).toBe(18n);
    expect(new TextDecoder().decode(t.mem.bytes.subarray(BUF, BUF + 3))).toBe("GET");
    expect(t.value(NRS.recvfrom, c, BUF, 100, 0, 0, 0)).toBe(0n); // the end
    t.mem.bytes.set(new TextEncoder().encode("HTTP/1.1 200 OK\r\n\r\n"), BUF);
    expect(t.value(NRS.sendto, c, BUF, 19, 0, 0, 0)).toBe(19n);
    expect(new TextDecoder().decode(conn.answer)).toBe("HTTP/1.1 200 OK\r\n\r\n");
    // the connection on fd 0 as well; closing one fd keeps it
    expect(t.value(NRS.dup2, c, 0)).toBe(0n);
    expect(t.value(NRS.close, c)).toBe(0n);
    expect(t.value(NRS.sendto, 0, BUF, 4, 0, 0, 0)).toBe(4n);
    expect(t.value(NRS.getsockopt, 0, 1, 3, BUF + 0xc00, BUF + 0x900)).toBe(0n); // SO_TYPE
    expect(t.value(NRS.fcntl, 0, 3, 0)).toBe(BigInt(2 | 0o4000)); // O_RDWR | O_NONBLOCK
    expect(t.value(NRS.close, 0)).toBe(0n);
    // nothing that could become ready: the call's end
    expect(t.call(NRS.epoll_wait, ep, BUF + 0xb00, 8, -1)).toEqual({ kind: "idle" });
    expect(t.call(NRS.accept4, fd, 0, 0, 0)).toEqual({ kind: "idle" }); // its connection closed: even a non-blocking accept ends the call
  });

  test("thousands of random socket calls of a served program: each returns or ends the call; nothing throws but a refusal or a corrupt state; no host page is written", () => {
    const state = new NetState();
    const start = setup({ net: { state, listen } });
    listener(start);
    const conn = new MemoryConnection(new TextEncoder().encode("x".repeat(5000)));
    const t = setup({ memory: start.mem, net: { state: state.clone(), listen, connection: conn, hooks: { idle: () => 0, busy: () => {}, check: () => {} } } });
    const interesting = [0n, 1n, 2n, 3n, 4n, 5n, 6n, 0x800n, 0x4000n, BigInt(BUF), BigInt(BUF + 0x1000), BigInt(MMAP), 0x7000n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 32n - 100n];
    const arg = fc.oneof(fc.constantFrom(...interesting), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 64n }));
    const nr = fc.constantFrom(...Object.values(NRS), 0, 1, 19, 20, 40, 213, 281, 435, 202, 60, 186);
    fc.assert(
      fc.property(nr, fc.array(arg, { minLength: 6, maxLength: 6 }), (n, args) => {
        try {
          const o = t.proc.syscall(n, args);
          if (o.kind === "return") return o.value >= -4095n;
          return o.kind === "idle" || o.kind === "listen" || o.kind === "exit" || o.kind === "clone" || o.kind === "switch";
        } catch (e) {
          return e instanceof PolicyViolationError || (e instanceof GuestFaultError && e.code === "WASP_GUEST_FAULT");
        }
      }),
      { numRuns: runs(5000) },
    );
    const hostPage = (p: number) => (p >= Layout.PML4 && p < Layout.INFO) || (p >= Layout.TSS && p < Layout.HOST_END);
    expect(t.written.filter(hostPage)).toEqual([]);
  });
});

describe("--trace lines", () => {
  test("strace-style: names, decoded arguments, escaped and cut strings, results with errno names", async () => {
    const { traceLine } = await import("../src/linux/trace.ts");
    const { mem, proc, cstr } = setup({ input: "input\n" });
    const guest = new GuestAccess(mem, accessRules(false));
    const line = (nr: number, ...a: (bigint | number)[]) => {
      const args = [...a.map(BigInt), ...new Array(6 - a.length).fill(0n)];
      return traceLine(guest, nr, args, proc.syscall(nr, args));
    };
    mem.bytes.set(new TextEncoder().encode("hi\x1b[2J\n"), BUF);
    expect(line(NR.write, 1, BUF, 7)).toBe('write(1, "hi\\x1b[2J\\n", 7) = 7');
    expect(line(NR.read, 0, BUF + 0x100, 100)).toBe('read(0, "input\\n", 100) = 6');
    cstr(BUF, "/etc/passwd");
    expect(line(NR.openat, -100, BUF, 0, 0)).toBe('openat(-100, "/etc/passwd", 0x0, 0x0) = -1 ENOENT');
    mem.bytes.fill(0x41, BUF, BUF + 100);
    expect(line(NR.write, 1, BUF, 100)).toBe(`write(1, "${"A".repeat(32)}"..., 100) = 100`);
    expect(line(NR.write, 1, 0x6000, 4)).toBe("write(1, 0x6000, 4) = -1 EFAULT"); // a host page: its address only
    expect(line(NR.exit_group, 3)).toBe("exit_group(3) = ? (the program exits with 3)");
    expect(line(9999, 1)).toBe("syscall_9999(0x1, 0x0, 0x0, 0x0, 0x0, 0x0) = -1 ENOSYS");
  });
});

describe("the system-call table", () => {
  const layer = readFileSync(join(import.meta.dir, "../guests/linux/layer.zig"), "utf8");

  test("the layer's numbers are the table's", () => {
    const struct = layer.slice(layer.indexOf("const NR = struct {"), layer.indexOf("};", layer.indexOf("const NR = struct {")));
    const numbers = [...struct.matchAll(/const (\w+) = (\d+);/g)].map((m) => [m[1], Number(m[2])] as const);
    expect(numbers.length).toBeGreaterThan(40);
    for (const [name, nr] of numbers) expect({ name, nr: (NR as Record<string, number>)[name] }).toEqual({ name, nr });
  });

  test("the calls the layer answers are the table's inVm rows", () => {
    // answer()'s switch, and exit/exit_group, which dispatch ends the call with itself
    const body = layer.slice(layer.indexOf("fn answer("), layer.indexOf("else => error.Forward", layer.indexOf("fn answer(")));
    const answered = new Set([...body.matchAll(/NR\.(\w+)/g)].map((m) => m[1]));
    // exit_group always; exit while the program has one thread (a served program's threads exit through the host)
    expect(layer).toContain("f.nr == NR.exit_group or (f.nr == NR.exit and !threadsOn())");
    answered.add("exit").add("exit_group");
    const inVm = new Set(SYSCALL_TABLE.filter((r) => "inVm" in r && r.inVm).map((r) => r.name as string));
    expect([...answered].sort()).toEqual([...inVm].sort());
  });

  test("every number is answered once, and the unknown ones are -ENOSYS and counted", () => {
    const nrs = SYSCALL_TABLE.map((r) => r.nr);
    expect(new Set(nrs).size).toBe(nrs.length);
    const { proc } = setup();
    expect(proc.syscall(1000, [0n, 0n, 0n, 0n, 0n, 0n])).toEqual({ kind: "return", value: -BigInt(ERRNO.ENOSYS) });
    expect(proc.syscall(15, [0n, 0n, 0n, 0n, 0n, 0n])).toEqual({ kind: "return", value: -BigInt(ERRNO.ENOSYS) }); // rt_sigreturn: not answered
    expect([...proc.unknown]).toEqual([[1000, 1], [15, 1]]);
  });
});
