// The sockets of a served program (`wasp serve --program`, issue 25): an unmodified Linux server
// makes its listening socket, binds it, listens, and waits for a connection (accept, epoll_wait or
// poll on it) — where wasp snapshots it. Every connection wasp's own listener accepts is then given
// to a fresh virtine resumed there, as the connection the program's wait returns. None of the
// program's sockets is a host socket: its listener, its epoll instances and any other socket are
// objects here, and its one connection is the `Connection` the host hands it (src/serve/program.ts
// reads and writes the real one). The state of these objects is the host's (`NetState`), copied
// from the snapshot for every call; the fds that name them are the block's (`socket` entries).
//
// The program has no network but its listener: a connect is ENETUNREACH (ENOENT for a Unix socket's
// path, which no virtine has), a second listener is refused, and so are a fork or a thread before
// the snapshot. After it, a fork (a server that forks per connection: busybox httpd) goes on as the
// child — the parent's side of it is the next connection's virtine — and a thread is refused.
// Every guest value is checked before use; what the guest could not read or write itself is -EFAULT.
import { PolicyViolationError } from "../errors.ts";
import type { GuestAccess } from "../memory/guest-access.ts";
import { LinuxBlock } from "../abi/guest-abi.ts";
import { MAX_SOCKET_OBJECTS, type FdEntry, type ProcessBlock } from "./block.ts";
import { Threads, type GreenThread } from "./threads.ts";

/** The connection a resumed call serves: the host's side of it, blocking with a bound. */
export interface Connection {
  /** the peer's IPv4 address and port */
  readonly peer: { address: string; port: number };
  /** Waits at most `ms` (−1: no bound) for bytes: up to `max` of them, "end" when the peer has closed its side (or the call must see it so), "wait" when nothing came in time. */
  receive(max: number, ms: number, peek: boolean): Uint8Array | "end" | "wait";
  /** Whether bytes (or the end) are there now, waiting at most `ms` (0: not at all). */
  readable(ms: number): boolean;
  /** Sends all of `bytes`; false when the peer has gone. */
  send(bytes: Uint8Array): boolean;
  /** shutdown(2)'s SHUT_RD 0, SHUT_WR 1, SHUT_RDWR 2 */
  shutdown(how: number): void;
  /** The program closed its last fd of the connection. */
  close(): void;
}

/** What a blocking wait of the program may do beyond the connection: the deadline's say. */
export interface NetHooks {
  /** the program waits between requests (it answered and reads again): the deadline pauses; returns how long it may wait (ms) */
  idle(): number;
  /** bytes of a new request came: the deadline starts again */
  busy(): void;
  /** throws the deadline's error when it has passed */
  check(): void;
}

type Family = 2 | 10;
export type NetObject =
  | { type: "socket"; domain: number; sotype: number; nonblock: boolean; bound?: Uint8Array }
  | { type: "listener"; domain: Family; nonblock: boolean; bound?: Uint8Array }
  | { type: "connection"; nonblock: boolean }
  | { type: "epoll"; interest: Map<number, { events: number; data: bigint }> };


/** The served program's socket objects: made before its snapshot, copied for every call. */
export class NetState {
  readonly objects: (NetObject | undefined)[] = [];
  /** the listener, once the program listens */
  listener: number | undefined;

  clone(): NetState {
    const s = new NetState();
    for (const o of this.objects) {
      if (o === undefined) s.objects.push(undefined);
      else if (o.type === "epoll") s.objects.push({ type: "epoll", interest: new Map([...o.interest].map(([fd, e]) => [fd, { ...e }])) });
      else s.objects.push({ ...o });
    }
    s.listener = this.listener;
    return s;
  }

  add(o: NetObject): number | undefined {
    let i = this.objects.indexOf(undefined);
    if (i < 0) {
      if (this.objects.length >= MAX_SOCKET_OBJECTS) return undefined;
      i = this.objects.length;
      this.objects.push(o);
    } else this.objects[i] = o;
    return i;
  }
}

/** What the run loop does with a system call of the net: return a value, capture the snapshot here, or end the call (the program waits for another connection). */
export type NetOutcome =
  | { kind: "return"; value: bigint }
  | { kind: "listen"; call: string }
  | { kind: "idle" }
  /** the current thread blocks (its system call's result `result` when it runs again) or has exited; `to` runs */
  | { kind: "switch"; result: bigint; to: GreenThread; exited?: boolean }
  /** a new thread: its registers are the caller's but RAX 0, RSP `stack`, FS base `tls` (else the caller's); the caller gets its tid */
  | { kind: "clone"; thread: GreenThread; stack: bigint; tls: bigint | undefined };

const E = { EPERM: 1, ENOENT: 2, EBADF: 9, EAGAIN: 11, EFAULT: 14, EINVAL: 22, EMFILE: 24, ENOTTY: 25, EPIPE: 32, ENOTSOCK: 88, EOPNOTSUPP: 95, EAFNOSUPPORT: 97, EADDRINUSE: 98, ENETUNREACH: 101, EISCONN: 106, ENOTCONN: 107 } as const;
const ret = (v: bigint | number): NetOutcome => ({ kind: "return", value: BigInt(v) });
const err = (e: number): NetOutcome => ret(-e);

const AF_UNIX = 1;
const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const O_NONBLOCK = 0o4000;
const O_RDWR = 2;
const MSG_PEEK = 2;
const MSG_DONTWAIT = 0x40;
const EPOLLIN = 1;
const EPOLLOUT = 4;
const EPOLLERR = 8;
const EPOLLHUP = 0x10;
const EPOLLRDHUP = 0x2000;
const EPOLLONESHOT = 1 << 30;
const POLLIN = 1;
const POLLOUT = 4;
const POLLNVAL = 0x20;
const CLONE_VM = 0x100n;
const CLONE_THREAD = 0x10000n;
const CLONE_SETTLS = 0x80000n;
const CLONE_PARENT_SETTID = 0x100000n;
const CLONE_CHILD_CLEARTID = 0x200000n;
const CLONE_CHILD_SETTID = 0x1000000n;
const ETIMEDOUT = 110;
/** Most bytes one receive or send moves. */
const MAX_IO = 1 << 20;

/** A sockaddr for the program's family: the host's address (IPv4) as sockaddr_in, or as an IPv4-mapped sockaddr_in6. */
export function sockaddrOf(domain: number, address: string, port: number): Uint8Array {
  const parts = address.split(".").map((p) => Number(p) & 0xff);
  if (domain === AF_INET6) {
    const sa = new Uint8Array(28);
    const dv = new DataView(sa.buffer);
    dv.setUint16(0, AF_INET6, true);
    dv.setUint16(2, port, false);
    sa[18] = 0xff;
    sa[19] = 0xff;
    sa.set(parts, 20);
    return sa;
  }
  const sa = new Uint8Array(16);
  const dv = new DataView(sa.buffer);
  dv.setUint16(0, AF_INET, true);
  dv.setUint16(2, port, false);
  sa.set(parts, 4);
  return sa;
}

export interface NetOptions {
  state: NetState;
  /** the address wasp listens on for the program (what getsockname of its listener says) */
  listen: { address: string; port: number };
  /** the call's connection: undefined in the run before the snapshot */
  connection?: Connection;
  hooks?: NetHooks;
}

/** The net's answers for one call (made with the call's process). */
export class Net {
  readonly #guest: GuestAccess;
  readonly #block: ProcessBlock;
  readonly #o: NetOptions;
  readonly state: NetState;
  /** the connection's object, once the program's accept took it */
  #conn: number | undefined;
  /** the connection was closed by the program (its last fd) */
  #closed = false;
  /**
   * the program has written since it last read: its next wait for bytes is between requests (and
   * so is its first: a connection that sends nothing is bounded by the keep-alive time, never held
   * to the deadline)
   */
  #answered = true;
  /** a fork's child goes on: the call is the child's from here */
  forked = false;
  /** the threads the connection made (the main thread alone until one does) */
  readonly threads = new Threads();

  constructor(guest: GuestAccess, block: ProcessBlock, opts: NetOptions) {
    this.#guest = guest;
    this.#block = block;
    this.#o = opts;
    this.state = opts.state;
  }

  /** The object an fd names, if it is a socket of the net. */
  objectOf(fd: number): { index: number; o: NetObject } | undefined {
    const f = this.#block.fd(fd);
    if (f?.kind !== "socket") return undefined;
    const o = this.state.objects[f.object];
    if (o === undefined) return this.#block.corrupt(`fd ${fd}'s socket`, f.object);
    return { index: f.object, o };
  }

  #newFd(entry: FdEntry): number {
    const fd = this.#block.lowestFree();
    if (fd >= 0) this.#block.setFd(fd, entry);
    return fd;
  }

  #refuse(what: string, detail: string): never {
    throw new PolicyViolationError(`the served program ${what}: ${detail}`, what);
  }

  /** socket(2): a stream socket of IPv4 or IPv6 may become the listener; any other is made and can never connect. */
  socket(domain: number, type: number): NetOutcome {
    const sotype = type & 0xf;
    if (domain !== AF_INET && domain !== AF_INET6 && domain !== AF_UNIX) return err(E.EAFNOSUPPORT);
    if ((type & ~(0xf | SOCK_NONBLOCK | SOCK_CLOEXEC)) !== 0) return err(E.EINVAL);
    return this.#open({ type: "socket", domain, sotype, nonblock: (type & SOCK_NONBLOCK) !== 0 });
  }

  /** A new object and the lowest free fd naming it (EMFILE when either table is full). */
  #open(o: NetObject, conn = false): NetOutcome {
    const index = this.state.add(o);
    if (index === undefined) return err(E.EMFILE);
    const fd = this.#newFd({ kind: "socket", object: index, ...(conn && { conn }) });
    if (fd < 0) {
      this.state.objects[index] = undefined;
      return err(E.EMFILE);
    }
    return ret(fd);
  }

  bind(fd: number, addr: bigint, len: bigint): NetOutcome {
    const s = this.objectOf(fd);
    if (!s) return this.#block.fd(fd) ? err(E.ENOTSOCK) : err(E.EBADF);
    if (len < 2n || len > 128n) return err(E.EINVAL);
    const sa = this.#guest.read(addr, Number(len), "bind's address");
    if (s.o.type !== "socket" && s.o.type !== "listener") return err(E.EINVAL);
    s.o.bound = sa;
    return ret(0);
  }

  listen(fd: number): NetOutcome {
    const s = this.objectOf(fd);
    if (!s) return this.#block.fd(fd) ? err(E.ENOTSOCK) : err(E.EBADF);
    if (s.o.type === "listener") return ret(0);
    if (s.o.type !== "socket" || s.o.sotype !== SOCK_STREAM || (s.o.domain !== AF_INET && s.o.domain !== AF_INET6)) return err(E.EOPNOTSUPP);
    if (this.state.listener !== undefined && this.state.objects[this.state.listener]?.type === "listener") {
      this.#refuse("listens on a second socket", "wasp gives it the connections of one listener (--listen)");
    }
    this.state.objects[s.index] = { type: "listener", domain: s.o.domain as Family, nonblock: s.o.nonblock, bound: s.o.bound };
    this.state.listener = s.index;
    return ret(0);
  }

  connect(fd: number, addr: bigint, len: bigint): NetOutcome {
    const s = this.objectOf(fd);
    if (!s) return this.#block.fd(fd) ? err(E.ENOTSOCK) : err(E.EBADF);
    if (s.o.type === "connection") return err(E.EISCONN);
    if (len < 2n || len > 128n) return err(E.EINVAL);
    const family = new DataView(this.#guest.read(addr, 2, "connect's address").buffer).getUint16(0, true);
    // a virtine has no network but its listener, and no Unix socket exists in its file system
    return err(family === AF_UNIX ? E.ENOENT : E.ENETUNREACH);
  }

  /** accept(2), accept4(2): before the snapshot, the snapshot point (a non-blocking listener: EAGAIN); after it, the call's connection once, then the call's end. */
  accept(fd: number, addr: bigint, lenp: bigint, flags: bigint, name: string): NetOutcome {
    const s = this.objectOf(fd);
    if (!s) return this.#block.fd(fd) ? err(E.ENOTSOCK) : err(E.EBADF);
    if (s.o.type !== "listener") return err(E.EINVAL);
    if ((flags & ~BigInt(SOCK_NONBLOCK | SOCK_CLOEXEC)) !== 0n) return err(E.EINVAL);
    const conn = this.#o.connection;
    if (conn === undefined) {
      if (s.o.nonblock) return err(E.EAGAIN);
      this.checkSnapshot();
      return { kind: "listen", call: name };
    }
    if (this.#conn !== undefined || this.forked) return s.o.nonblock && !this.#closed ? err(E.EAGAIN) : { kind: "idle" };
    const opened = this.#open({ type: "connection", nonblock: (flags & BigInt(SOCK_NONBLOCK)) !== 0n }, true);
    if (opened.kind !== "return" || opened.value < 0n) return opened;
    const entry = this.#block.fd(Number(opened.value));
    this.#conn = entry?.kind === "socket" ? entry.object : undefined;
    if (addr !== 0n) this.#putAddr(addr, lenp, sockaddrOf(s.o.domain, conn.peer.address, conn.peer.port));
    return opened;
  }

  /**
   * At the snapshot: no socket but the listener (and epoll instances) may be open — every
   * connection's virtine would start with it, and none of them has its other end.
   */
  checkSnapshot(): void {
    for (let fd = 0; fd < LinuxBlock.MAX_FDS; fd++) {
      const f = this.#block.fd(fd);
      if (f?.kind !== "socket") continue;
      const o = this.state.objects[f.object];
      if (o?.type === "socket") {
        const what = o.domain === AF_UNIX ? "a Unix socket" : o.sotype === SOCK_STREAM ? "a TCP socket" : o.sotype === 2 ? "a UDP socket" : "a socket";
        this.#refuse(`has another socket open when it waits for a connection (fd ${fd}: ${what})`, "every connection's virtine would start with it, and none has its other end");
      }
    }
  }


  /** Writes a sockaddr to (addr, *lenp) as Linux does: cut to the buffer, the full length in *lenp. */
  #putAddr(addr: bigint, lenp: bigint, sa: Uint8Array): void {
    const cap = new DataView(this.#guest.read(lenp, 4, "the address length").buffer).getInt32(0, true);
    if (cap < 0) return;
    if (cap > 0) this.#guest.write(addr, sa.subarray(0, Math.min(cap, sa.length)), "the address");
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, sa.length, true);
    this.#guest.write(lenp, len, "the address length");
  }

  getsockname(fd: number, addr: bigint, lenp: bigint, peer: boolean): NetOutcome {
    const s = this.objectOf(fd);
    if (!s) return this.#block.fd(fd) ? err(E.ENOTSOCK) : err(E.EBADF);
    const domain = s.o.type === "listener" || s.o.type === "socket" ? s.o.domain : (this.#listenerDomain() ?? AF_INET);
    if (peer) {
      const conn = this.#o.connection;
      if (s.o.type !== "connection" || !conn) return err(E.ENOTCONN);
      this.#putAddr(addr, lenp, sockaddrOf(domain, conn.peer.address, conn.peer.port));
      return ret(0);
    }
    if (s.o.type === "socket") {
      this.#putAddr(addr, lenp, s.o.bound ?? sockaddrOf(domain === AF_UNIX ? AF_INET : domain, "0.0.0.0", 0));
      return ret(0);
    }
    this.#putAddr(addr, lenp, sockaddrOf(domain, this.#o.listen.address, this.#o.listen.port));
    return ret(0);
  }

  #listenerDomain(): number | undefined {
    const l = this.state.listener === undefined ? undefined : this.state.objects[this.state.listener];
    return l?.type === "listener" ? l.domain : undefined;
  }

  getsockopt(fd: number, level: bigint, opt: bigint, val: bigint, lenp: bigint): NetOutcome {
    const s = this.objectOf(fd);
    if (!s) return this.#block.fd(fd) ? err(E.ENOTSOCK) : err(E.EBADF);
    if (s.o.type === "epoll") return err(E.ENOTSOCK);
    let v = 0;
    if (level === 1n) {
      // SOL_SOCKET: SO_TYPE 3, SO_ERROR 4, SO_SNDBUF 7, SO_RCVBUF 8, SO_ACCEPTCONN 30, SO_DOMAIN 39
      const domain = s.o.type === "connection" ? (this.#listenerDomain() ?? AF_INET) : s.o.domain;
      const table: Record<number, number> = { 3: s.o.type === "socket" ? s.o.sotype : SOCK_STREAM, 4: 0, 7: 16384, 8: 131072, 30: s.o.type === "listener" ? 1 : 0, 39: domain };
      v = table[Number(opt)] ?? 0;
    }
    const cap = new DataView(this.#guest.read(lenp, 4, "the option length").buffer).getInt32(0, true);
    if (cap < 0) return err(E.EINVAL);
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setInt32(0, v, true);
    this.#guest.write(val, bytes.subarray(0, Math.min(4, cap)), "the option");
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, Math.min(4, cap), true);
    this.#guest.write(lenp, len, "the option length");
    return ret(0);
  }

  setsockopt(fd: number): NetOutcome {
    const s = this.objectOf(fd);
    if (!s) return this.#block.fd(fd) ? err(E.ENOTSOCK) : err(E.EBADF);
    return s.o.type === "epoll" ? err(E.ENOTSOCK) : ret(0);
  }

  /** The connection object an fd names, or the errno for it. */
  #connOf(fd: number): { index: number } | number {
    const s = this.objectOf(fd);
    if (!s) return this.#block.fd(fd) ? E.ENOTSOCK : E.EBADF;
    if (s.o.type !== "connection") return s.o.type === "epoll" ? E.EINVAL : E.ENOTCONN;
    return s;
  }

  /** Bytes from the connection for a read of at most `len` (read, recv*, readv): the bytes, or a negative errno. */
  take(fd: number, len: number, flags: number): Uint8Array | bigint {
    const c = this.#connOf(fd);
    if (typeof c === "number") return -BigInt(c);
    const conn = this.#o.connection;
    if (!conn) return -BigInt(E.ENOTCONN);
    const o = this.state.objects[c.index] as NetObject & { type: "connection" };
    const max = Math.min(len, MAX_IO);
    if (max <= 0) return new Uint8Array(0);
    const nonblock = o.nonblock || (flags & MSG_DONTWAIT) !== 0;
    const got = this.#wait(conn, (ms) => conn.receive(max, ms, (flags & MSG_PEEK) !== 0), nonblock);
    if (got === "wait") return -BigInt(E.EAGAIN);
    if (got === "end") return new Uint8Array(0);
    return got;
  }

  /** The peer's address into (addr, *lenp), for recvfrom and recvmsg on the connection. */
  peerInto(fd: number, addr: bigint, lenp: bigint): void {
    const conn = this.#o.connection;
    if (!conn || typeof this.#connOf(fd) === "number") return;
    this.#putAddr(addr, lenp, sockaddrOf(this.#listenerDomain() ?? AF_INET, conn.peer.address, conn.peer.port));
  }

  /**
   * A blocking step on the connection: when the program waits between requests the deadline
   * pauses and the wait is bounded by the keep-alive time (then the connection ends for the
   * program); otherwise it waits until the deadline (checked every 50 ms).
   */
  #wait<T>(conn: Connection, step: (ms: number) => T | "wait", nonblock: boolean): T | "wait" | "end" {
    const hooks = this.#o.hooks;
    const between = this.#answered;
    let r: T | "wait" | "end" = step(0);
    if (r === "wait" && !nonblock) {
      const until = between ? performance.now() + (hooks?.idle() ?? 0) : Infinity;
      for (;;) {
        const left = until - performance.now();
        if (left <= 0) {
          r = "end";
          break;
        }
        r = step(Math.min(50, Math.ceil(left)));
        if (r !== "wait") break;
        if (!between) hooks?.check();
      }
    }
    // bytes of a new request (waited for, or there already): its deadline starts
    if (between && r !== "wait" && r !== "end") {
      this.#answered = false;
      hooks?.busy();
    }
    return r;
  }


  /** Sends what the layer left in the connection window (before every system call the host answers, and at the call's end). */
  flush(): void {
    const bytes = this.#block.drainNet();
    if (bytes.length > 0) {
      this.#answered = true;
      // a peer that has gone: the program learns it at its next send or read, as from a socket buffer
      this.#o.connection?.send(bytes.slice());
    }
    // what the layer closed, after what was sent before the close
    if (this.#block.takeNetClosed()) this.#reconcile();
  }

  /** Bytes from the program to the connection (write, sendto, writev's part). */
  send(fd: number, bytes: Uint8Array): bigint {
    const c = this.#connOf(fd);
    if (typeof c === "number") return -BigInt(c);
    const conn = this.#o.connection;
    if (!conn) return -BigInt(E.ENOTCONN);
    this.#answered = true;
    if (bytes.length === 0) return 0n;
    return conn.send(bytes) ? BigInt(bytes.length) : -BigInt(E.EPIPE);
  }

  shutdown(fd: number, how: number): NetOutcome {
    const c = this.#connOf(fd);
    if (typeof c === "number") return err(c);
    if (how < 0 || how > 2) return err(E.EINVAL);
    this.#o.connection?.shutdown(how);
    if (how !== 0) this.#answered = true;
    return ret(0);
  }

  /** After the layer closed fds of the connection: the connection ends with its last fd; epoll sets forget the fds no longer open. */
  #reconcile(): void {
    const conn = this.#conn;
    if (conn !== undefined && !this.#closed) {
      if (!this.#block.namesSocket(conn)) {
        this.#closed = true;
        this.#o.connection?.close();
        this.state.objects[conn] = undefined;
      }
    }
    for (const e of this.state.objects) {
      if (e?.type !== "epoll") continue;
      for (const fd of [...e.interest.keys()]) if (this.#block.fd(fd)?.kind !== "socket") e.interest.delete(fd);
    }
  }

  /** close(2) of a socket fd: the object goes with its last fd; the connection's end is the host's to make then. */
  close(fd: number): void {
    const f = this.#block.fd(fd);
    this.#block.setFd(fd, undefined);
    if (f?.kind !== "socket" || this.#block.namesSocket(f.object)) return;
    const o = this.state.objects[f.object];
    if (o?.type === "connection") {
      this.#closed = true;
      this.#o.connection?.close();
    }
    // an epoll set forgets a closed fd (one fd per object here: closing it removes it everywhere)
    for (const e of this.state.objects) if (e?.type === "epoll") e.interest.delete(fd);
    if (this.state.listener === f.object) this.state.listener = undefined;
    this.state.objects[f.object] = undefined;
  }

  epollCreate(): NetOutcome {
    return this.#open({ type: "epoll", interest: new Map() });
  }

  epollCtl(epfd: number, op: number, fd: number, event: bigint): NetOutcome {
    const e = this.objectOf(epfd);
    if (!e) return this.#block.fd(epfd) ? err(E.EINVAL) : err(E.EBADF);
    if (e.o.type !== "epoll") return err(E.EINVAL);
    const target = this.#block.fd(fd);
    if (target === undefined) return err(E.EBADF);
    if (fd === epfd) return err(E.EINVAL);
    // regular files and the streams cannot be watched (Linux: EPERM for a file)
    if (target.kind !== "socket") return err(E.EPERM);
    const set = e.o.interest;
    if (op === 2 /* DEL */) return set.delete(fd) ? ret(0) : err(E.ENOENT);
    const ev = this.#guest.read(event, 12, "the epoll event");
    const dv = new DataView(ev.buffer);
    const entry = { events: dv.getUint32(0, true), data: dv.getBigUint64(4, true) };
    if (op === 1 /* ADD */) {
      if (set.has(fd)) return err(17 /* EEXIST */);
      if (set.size >= 64) return err(E.EMFILE);
      set.set(fd, entry);
      return ret(0);
    }
    if (op === 3 /* MOD */) {
      if (!set.has(fd)) return err(E.ENOENT);
      set.set(fd, entry);
      return ret(0);
    }
    return err(E.EINVAL);
  }

  /** What an fd is ready for now (poll's bits: POLLIN 1, POLLOUT 4, POLLHUP 0x10, POLLRDHUP 0x2000), without waiting. */
  #ready(fd: number, events: number, ms: number): number {
    const f = this.#block.fd(fd);
    if (f === undefined) return POLLNVAL;
    if (f.kind !== "socket") return events & (f.kind === "stdout" || f.kind === "stderr" ? POLLOUT : POLLIN);
    const o = this.state.objects[f.object];
    if (o?.type === "listener") return this.#o.connection && this.#conn === undefined && !this.forked ? events & POLLIN : 0;
    if (o?.type === "connection") {
      const conn = this.#o.connection;
      if (!conn) return 0;
      return ((events & POLLIN) !== 0 && conn.readable(ms) ? POLLIN : 0) | (events & POLLOUT);
    }
    return 0;
  }

  /**
   * epoll_wait(2) and poll(2): the ready fds now; when none is, a wait on the listener before the
   * snapshot is the snapshot point, a wait on the connection blocks (bounded as a read is), and a
   * wait on nothing that could become ready ends the call: the program waits for another connection.
   */
  wait(list: { fd: number; events: number }[], timeout: number, name: string): { ready: number[] } | NetOutcome {
    const conn = this.#o.connection;
    const scan = (ms: number) => list.map((e) => this.#ready(e.fd, e.events, ms));
    let ready = scan(0);
    if (ready.some((r) => r !== 0) || timeout === 0) return { ready };
    const listens = list.some((e) => this.objectOf(e.fd)?.o.type === "listener");
    if (!conn && listens) this.checkSnapshot();
    if (!conn) return listens ? { kind: "listen", call: name } : { ready };
    const watchesConn = this.#conn !== undefined && !this.#closed && list.some((e) => this.objectOf(e.fd)?.index === this.#conn);
    if (!watchesConn) return { kind: "idle" };
    const got = this.#wait(conn, (ms) => (conn.readable(ms) ? true : "wait"), false);
    if (got === "end") return { kind: "idle" }; // the keep-alive time passed: the connection ends
    ready = scan(0);
    return { ready };
  }

  epollWait(epfd: number, events: bigint, max: bigint, timeout: number, name: string): NetOutcome {
    const e = this.objectOf(epfd);
    if (!e) return this.#block.fd(epfd) ? err(E.EINVAL) : err(E.EBADF);
    if (e.o.type !== "epoll") return err(E.EINVAL);
    if (max <= 0n || max > 1024n) return err(E.EINVAL);
    const set = e.o.interest;
    const list = [...set].map(([fd, x]) => ({ fd, events: x.events & (EPOLLIN | EPOLLOUT | EPOLLRDHUP) }));
    const r = this.wait(list, timeout, name);
    if ("kind" in r) return r;
    const out: Uint8Array[] = [];
    list.forEach((l, i) => {
      const bits = r.ready[i] & (EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLRDHUP);
      if (bits === 0 || out.length >= Number(max)) return;
      const x = set.get(l.fd);
      if (!x) return;
      const ev = new Uint8Array(12);
      const dv = new DataView(ev.buffer);
      dv.setUint32(0, bits, true);
      dv.setBigUint64(4, x.data, true);
      out.push(ev);
      if ((x.events & EPOLLONESHOT) !== 0) x.events = 0;
    });
    for (let i = 0; i < out.length; i++) this.#guest.write(events + BigInt(i * 12), out[i], "epoll_wait's events");
    return ret(out.length);
  }

  poll(fds: bigint, count: bigint, timeout: number, name: string): NetOutcome {
    if (count < 0n || count > 1024n) return err(E.EINVAL);
    const bytes = this.#guest.read(fds, Number(count) * 8, "poll's fds");
    const dv = new DataView(bytes.buffer);
    const list: { fd: number; events: number }[] = [];
    for (let i = 0; i < Number(count); i++) list.push({ fd: dv.getInt32(i * 8, true), events: dv.getUint16(i * 8 + 4, true) });
    const r = this.wait(
      list.filter((l) => l.fd >= 0),
      timeout,
      name,
    );
    if ("kind" in r) return r;
    let j = 0;
    let n = 0;
    list.forEach((l, i) => {
      const bits = l.fd < 0 ? 0 : r.ready[j++];
      dv.setUint16(i * 8 + 6, bits, true);
      if (bits) n++;
    });
    this.#guest.write(fds, bytes, "poll's fds");
    return ret(n);
  }

  fcntl(fd: number, cmd: number, arg: bigint): NetOutcome {
    const s = this.objectOf(fd);
    if (!s) return err(E.EBADF);
    const o = s.o;
    if (cmd === 3 /* F_GETFL */) return ret(O_RDWR | (o.type !== "epoll" && o.nonblock ? O_NONBLOCK : 0));
    if (cmd === 4 /* F_SETFL */) {
      if (o.type !== "epoll") o.nonblock = (arg & BigInt(O_NONBLOCK)) !== 0n;
      return ret(0);
    }
    return ret(0); // F_GETFD, F_SETFD and the rest
  }

  ioctl(fd: number, req: bigint, arg: bigint): NetOutcome {
    const s = this.objectOf(fd);
    if (!s) return err(E.EBADF);
    if (req === 0x5421n /* FIONBIO */) {
      const on = new DataView(this.#guest.read(arg, 4, "FIONBIO's flag").buffer).getInt32(0, true) !== 0;
      if (s.o.type !== "epoll") s.o.nonblock = on;
      return ret(0);
    }
    if (req === 0x541bn /* FIONREAD */) {
      const conn = this.#o.connection;
      let n = 0;
      if (s.o.type === "connection" && conn) {
        const got = conn.receive(MAX_IO, 0, true);
        n = typeof got === "string" ? 0 : got.length;
      }
      const b = new Uint8Array(4);
      new DataView(b.buffer).setInt32(0, n, true);
      this.#guest.write(arg, b, "FIONREAD's count");
      return ret(0);
    }
    return err(E.ENOTTY);
  }

  /**
   * A thread after the snapshot (clone or clone3 with CLONE_VM and CLONE_THREAD): made, run when
   * the current thread blocks. `stack` is its RSP, `tls` its FS base (CLONE_SETTLS), the tid
   * written where CLONE_PARENT_SETTID and CLONE_CHILD_SETTID say.
   */
  thread(name: string, flags: bigint, stack: bigint, parentTid: bigint, childTid: bigint, tls: bigint): NetOutcome {
    if (!this.#o.connection) this.#refuse(`made a thread before it waited for a connection (${name})`, "wasp serves one process, snapshotted at its listener");
    if ((flags & CLONE_THREAD) === 0n || (flags & CLONE_VM) === 0n) this.#refuse(`shares its memory with a new process (${name})`, "a served program's connection runs one process");
    if (stack === 0n) return err(E.EINVAL);
    const t = this.threads.spawn((flags & CLONE_CHILD_CLEARTID) !== 0n ? childTid : 0n);
    if (!t) return err(E.EAGAIN);
    const tid = new Uint8Array(4);
    new DataView(tid.buffer).setUint32(0, t.tid, true);
    if ((flags & CLONE_PARENT_SETTID) !== 0n) this.#guest.write(parentTid, tid, "clone's parent tid");
    if ((flags & CLONE_CHILD_SETTID) !== 0n) this.#guest.write(childTid, tid, "clone's child tid");
    this.#block.threads = true;
    return { kind: "clone", thread: t, stack, tls: (flags & CLONE_SETTLS) !== 0n ? tls : undefined };
  }

  /** futex(2) among a served program's threads: WAIT, WAKE and their BITSET forms; a wait switches to a thread that can run. */
  futex(addr: bigint, op: number, val: bigint, timeout: bigint, addr2: bigint, val3: bigint): NetOutcome {
    const cmd = op & 0x7f;
    const bitset = cmd === 9 || cmd === 10 ? Number(val3 & 0xffffffffn) : 0xffffffff;
    const count = (v: bigint) => Number(v & 0x7fffffffn);
    if (cmd === 1 || cmd === 10) return ret(this.threads.wake(addr, count(val), bitset));
    if (cmd === 3 || cmd === 4) {
      // FUTEX_REQUEUE, FUTEX_CMP_REQUEUE (musl's condition variables): the count to move is the timeout argument's value
      if (cmd === 4 && BigInt(new DataView(this.#guest.read(addr, 4, "the futex word").buffer).getUint32(0, true)) !== (val3 & 0xffffffffn)) return err(E.EAGAIN);
      return ret(this.threads.requeue(addr, count(val), addr2, count(timeout)));
    }
    if (cmd !== 0 && cmd !== 9) return err(38 /* ENOSYS: the priority-inheritance operations and the rest */);
    if (bitset === 0) return err(E.EINVAL);
    const word = new DataView(this.#guest.read(addr, 4, "the futex word").buffer).getUint32(0, true);
    if (BigInt(word) !== (val & 0xffffffffn)) return err(E.EAGAIN);
    const me = this.threads.current;
    me.wait = { futex: addr, bitset };
    const next = this.threads.runnable();
    if (next) return { kind: "switch", result: 0n, to: next };
    me.wait = undefined;
    // nothing else can run: a wait with a timeout times out (no time passes for a waiting thread), one without never ends
    if (timeout !== 0n) return err(ETIMEDOUT);
    this.#refuse("has every thread waiting on a futex (a deadlock)", "no thread of the connection can run");
  }

  /** exit(2) of one thread of several: its CLONE_CHILD_CLEARTID word cleared and woken, the next thread runs (or the call ends). */
  threadExit(): NetOutcome {
    const me = this.threads.current;
    if (me.clearTid !== 0n) {
      this.#guest.write(me.clearTid, new Uint8Array(4), "the thread's tid word");
      this.threads.wake(me.clearTid, 1);
    }
    this.threads.remove(me);
    return this.#switchOrEnd(0n, true);
  }

  /** The current thread waits for another connection: another thread runs, or the call ends. */
  idle(): NetOutcome {
    if (!this.threads.many) return { kind: "idle" };
    this.threads.current.wait = { connection: true };
    return this.#switchOrEnd(0n, false);
  }

  #switchOrEnd(result: bigint, exited: boolean): NetOutcome {
    const next = this.threads.runnable();
    if (next) return { kind: "switch", result, to: next, exited };
    const waiting = this.threads.all.filter((t) => t !== this.threads.current || exited);
    if (waiting.every((t) => t.wait !== undefined && "connection" in t.wait)) return { kind: "idle" };
    this.#refuse("has every thread waiting on a futex (a deadlock)", "no thread of the connection can run");
  }

  /** fork(2), vfork(2), clone(2), clone3(2): refused before the snapshot; after it a fork goes on as the child, a thread is refused. */
  fork(name: string, flags: bigint): NetOutcome {
    // CLONE_VM without CLONE_THREAD (posix_spawn's vfork-like clone) shares memory as a thread does
    const thread = (flags & (CLONE_VM | CLONE_THREAD)) !== 0n && name !== "vfork";
    if (!this.#o.connection) {
      this.#refuse(`${thread ? "made a thread" : "forked"} before it waited for a connection (${name})`, "wasp serves one process, snapshotted at its listener");
    }
    if (thread) this.#refuse(`made a thread (${name})`, "a served program's connections run in one thread");
    this.forked = true;
    return ret(0);
  }

  /** The connection has been taken by the program's accept. */
  get accepted(): boolean {
    return this.#conn !== undefined;
  }
}
