// TCP through libc, blocking: the GDB remote protocol's one connection (src/debug/), served by a
// thread that is itself stopped while the debugger holds the guest, so that blocking reads are
// what it wants. IPv4 only; every call checked, EINTR retried (the deadline signal may land in one).
import { FFIType, dlopen } from "bun:ffi";
import { Errno } from "./errno.ts";
import { errno, fail, raw as libcRaw } from "./libc.ts";

const lib = dlopen("libc.so.6", {
  socket: { args: ["i32", "i32", "i32"], returns: "i32" },
  setsockopt: { args: ["i32", "i32", "i32", "ptr", "u32"], returns: "i32" },
  bind: { args: ["i32", "ptr", "u32"], returns: "i32" },
  listen: { args: ["i32", "i32"], returns: "i32" },
  accept4: { args: ["i32", "ptr", "ptr", "i32"], returns: "i32" },
  getsockname: { args: ["i32", "ptr", "ptr"], returns: "i32" },
  // recv and send without an address (sendto with a null one: what wasp's seccomp filter allows);
  // MSG_NOSIGNAL: a debugger that went away is an EPIPE, not a SIGPIPE that kills wasp
  recv: { args: ["i32", "ptr", "u64", "i32"], returns: FFIType.i64_fast },
  send: { args: ["i32", "ptr", "u64", "i32"], returns: FFIType.i64_fast },
  poll: { args: ["ptr", "u64", "i32"], returns: "i32" },
  shutdown: { args: ["i32", "i32"], returns: "i32" },
});
const raw = lib.symbols;

const AF_INET = 2;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
const POLLIN = 1;
const MSG_NOSIGNAL = 0x4000;
const MSG_PEEK = 2;
const MSG_DONTWAIT = 0x40;
const SOCK_NONBLOCK = 0o4000;
const SO_SNDTIMEO = 21;
const SOCKADDR_IN = 16;

/** A sockaddr_in for `host` (dotted IPv4) and `port`. */
function sockaddr(host: string, port: number): Uint8Array {
  const parts = host.split(".").map(Number);
  const sa = new Uint8Array(SOCKADDR_IN);
  const dv = new DataView(sa.buffer);
  dv.setUint16(0, AF_INET, true);
  dv.setUint16(2, port, false);
  sa.set(parts, 4);
  return sa;
}

function retry(call: string, f: () => number): number {
  for (;;) {
    const r = f();
    if (r >= 0) return r;
    if (errno() !== Errno.EINTR) fail(call);
  }
}

/**
 * A listening TCP socket on `host:port` (port 0: one the kernel picks), with
 * SO_REUSEADDR and `options` set before it listens; its fd and the port.
 */
function listening(host: string, port: number, backlog: number, flags: number, options: (fd: number) => void): { fd: number; port: number } {
  const fd = retry("socket", () => raw.socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0));
  try {
    const one = new Int32Array([1]);
    retry("setsockopt(SO_REUSEADDR)", () => raw.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, one, 4));
    retry(`bind(${host}:${port})`, () => raw.bind(fd, sockaddr(host, port), SOCKADDR_IN));
    options(fd);
    retry("listen", () => raw.listen(fd, backlog));
    const sa = new Uint8Array(SOCKADDR_IN);
    const len = new Uint32Array([SOCKADDR_IN]);
    retry("getsockname", () => raw.getsockname(fd, sa, len));
    return { fd, port: new DataView(sa.buffer).getUint16(2, false) };
  } catch (e) {
    closeFd(fd);
    throw e;
  }
}

/** A listening TCP socket on `host:port` (port 0: one the kernel picks) for one connection; its fd and the port. */
export function listenTcp(host: string, port: number): { fd: number; port: number } {
  return listening(host, port, 1, 0, () => {});
}

/** Waits for one connection on a listening socket; the connected fd (TCP_NODELAY: packets are small and answered one by one). */
export function acceptTcp(listenFd: number): { fd: number; peer: string } {
  const sa = new Uint8Array(SOCKADDR_IN);
  const len = new Uint32Array([SOCKADDR_IN]);
  const fd = retry("accept4", () => raw.accept4(listenFd, sa, len, SOCK_CLOEXEC));
  const one = new Int32Array([1]);
  retry("setsockopt(TCP_NODELAY)", () => raw.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, one, 4));
  return { fd, peer: `${sa[4]}.${sa[5]}.${sa[6]}.${sa[7]}:${new DataView(sa.buffer).getUint16(2, false)}` };
}

/** Reads what is there (blocking until something is): the bytes, or an empty array at the end of the stream or on a reset connection. */
export function readSome(fd: number, buf: Uint8Array): Uint8Array {
  for (;;) {
    const n = raw.recv(fd, buf, buf.length, 0) as number;
    if (n >= 0) return buf.subarray(0, n);
    const e = errno();
    if (e === Errno.EINTR) continue;
    if (e === Errno.ECONNRESET || e === Errno.EPIPE) return buf.subarray(0, 0);
    fail("recv");
  }
}

/** Writes all of `data`; false when the peer has gone. */
export function writeAll(fd: number, data: Uint8Array): boolean {
  let done = 0;
  while (done < data.length) {
    const n = raw.send(fd, data.subarray(done), data.length - done, MSG_NOSIGNAL) as number;
    if (n < 0) {
      const e = errno();
      if (e === Errno.EINTR) continue;
      if (e === Errno.ECONNRESET || e === Errno.EPIPE) return false;
      fail("send");
    }
    done += n;
  }
  return true;
}

/** Whether `fd` has bytes (or an end) to read now, without blocking. */
export function readable(fd: number): boolean {
  return waitFor(fd, 0);
}

export function closeFd(fd: number): void {
  // close(2) is never retried: the fd is gone even when it reports EINTR
  libcRaw.close(fd);
}

/**
 * A listening TCP socket for many threads to accept on (each with acceptWaiting): non-blocking,
 * so that a thread that lost the race for a connection goes back to waiting. `backlog` as listen(2).
 */
export function listenShared(host: string, port: number, backlog: number, sendTimeoutMs: number): { fd: number; port: number } {
  return listening(host, port, backlog, SOCK_NONBLOCK, (fd) => {
    // what every accepted socket inherits (Linux copies them from the listener): no Nagle delay,
    // sends bounded in time (a peer that does not read)
    retry("setsockopt(TCP_NODELAY)", () => raw.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, new Int32Array([1]), 4));
    const tv = new BigInt64Array([BigInt(Math.floor(sendTimeoutMs / 1000)), BigInt((sendTimeoutMs % 1000) * 1000)]);
    retry("setsockopt(SO_SNDTIMEO)", () => raw.setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, tv, 16));
  });
}

/** Waits at most `ms` for a connection on a non-blocking listener of listenShared: the connected fd (blocking; TCP_NODELAY and the send timeout inherited) and its peer, or undefined. */
export function acceptWaiting(listenFd: number, ms: number): { fd: number; address: string; port: number } | undefined {
  // a connection already queued is taken at once (one call, not a poll and an accept)
  return acceptNow(listenFd) ?? (ms > 0 && waitFor(listenFd, ms) ? acceptNow(listenFd) : undefined);
}

/** A connection queued on a non-blocking listener, or undefined (none, or another thread took it). */
function acceptNow(listenFd: number): { fd: number; address: string; port: number } | undefined {
  const sa = new Uint8Array(SOCKADDR_IN);
  const len = new Uint32Array([SOCKADDR_IN]);
  const fd = raw.accept4(listenFd, sa, len, SOCK_CLOEXEC);
  if (fd < 0) {
    const e = errno();
    // another thread took it, or the peer went before it was taken
    if (e === Errno.EAGAIN || e === Errno.EINTR || e === Errno.ECONNABORTED || e === Errno.EPROTO) return undefined;
    fail("accept4");
  }
  return { fd, address: `${sa[4]}.${sa[5]}.${sa[6]}.${sa[7]}`, port: new DataView(sa.buffer).getUint16(2, false) };
}

/** Whether `fd` is readable within `ms` (0: now); an interrupted wait is false. */
export function waitFor(fd: number, ms: number): boolean {
  const pfd = new Uint8Array(8);
  const dv = new DataView(pfd.buffer);
  dv.setInt32(0, fd, true);
  dv.setInt16(4, POLLIN, true);
  const r = raw.poll(pfd, 1, ms);
  if (r < 0) {
    if (errno() === Errno.EINTR) return false;
    fail("poll");
  }
  return r > 0;
}

/** What is there to read now, without blocking: the bytes, "end" (closed or reset), "wait" (nothing yet). */
export function recvNow(fd: number, buf: Uint8Array, peek: boolean): Uint8Array | "end" | "wait" {
  for (;;) {
    const n = raw.recv(fd, buf, buf.length, MSG_DONTWAIT | (peek ? MSG_PEEK : 0)) as number;
    if (n > 0) return buf.subarray(0, n);
    if (n === 0) return "end";
    const e = errno();
    if (e === Errno.EINTR) continue;
    if (e === Errno.EAGAIN) return "wait";
    return "end"; // ECONNRESET and the like: the connection is over
  }
}

/** shutdown(2); an error (the peer gone) changes nothing. */
export function shutdownFd(fd: number, how: number): void {
  raw.shutdown(fd, how);
}
