// A Linux process's state in its own memory: the process block (break, open files, TLS bases),
// the call page (stdin's position, the windows' lengths, the clock, random bytes) and the
// anonymous mappings' page states (guest-abi.ts: LinuxBlock, LinuxCall, LinuxPage). The in-VM
// layer (guests/linux/layer.zig) and the host answer system calls on the same state, so either may
// answer any call and a snapshot keeps it with the memory. The guest can write all of it: every
// field is checked here when the host reads it, and a value no answer could have left ends the
// call (a GuestFaultError naming the field) — a program that corrupts its own state harms only
// its own call. The host's writes are marked, so that a reset puts the snapshot's bytes back.
import { LINUX_BLOCK_MAGIC, LinuxBlock, LinuxCall, LinuxFd } from "../abi/guest-abi.ts";
import { GuestFaultError } from "../errors.ts";
import type { GuestMemory } from "../memory/guest-memory.ts";
import { ERR_WINDOW, OUT_WINDOW, type LinuxLayout } from "./address-space.ts";

const PAGE = 4096;
/** The highest file position the host keeps exactly (a JavaScript number). */
const MAX_POS = BigInt(Number.MAX_SAFE_INTEGER);

/** An open file descriptor as the block holds it. */
export type FdEntry = { kind: "stdin" | "stdout" | "stderr" } | { kind: "file"; file: number; pos: number } | { kind: "socket"; object: number; conn?: boolean };

/** Most socket objects a served program's fds may name (src/linux/net.ts). */
export const MAX_SOCKET_OBJECTS = 64;

const KIND_OF: Record<number, FdEntry["kind"] | undefined> = {
  [LinuxFd.STDIN]: "stdin",
  [LinuxFd.STDOUT]: "stdout",
  [LinuxFd.STDERR]: "stderr",
  [LinuxFd.FILE]: "file",
  [LinuxFd.SOCKET]: "socket",
};
const CODE_OF = { stdin: LinuxFd.STDIN, stdout: LinuxFd.STDOUT, stderr: LinuxFd.STDERR, file: LinuxFd.FILE, socket: LinuxFd.SOCKET } as const;

/** The block's bytes as a new process starts with them: the break at its start, fds 0-2 the streams. */
export function initialBlock(layout: LinuxLayout): Uint8Array {
  const b = new Uint8Array(LinuxBlock.SIZE);
  const dv = new DataView(b.buffer);
  dv.setBigUint64(LinuxBlock.MAGIC, LINUX_BLOCK_MAGIC, true);
  dv.setBigUint64(LinuxBlock.BRK, BigInt(layout.regions.brkStart), true);
  dv.setBigUint64(LinuxBlock.BRK_HIGH, BigInt(layout.regions.brkStart), true);
  b[LinuxBlock.FDS] = LinuxFd.STDIN;
  b[LinuxBlock.FDS + LinuxBlock.FD_SIZE] = LinuxFd.STDOUT;
  b[LinuxBlock.FDS + 2 * LinuxBlock.FD_SIZE] = LinuxFd.STDERR;
  return b;
}

export class ProcessBlock {
  readonly #mem: GuestMemory;
  readonly #layout: LinuxLayout;
  readonly #files: number;
  readonly #mark: (addr: number, len: number) => void;
  readonly #rip: () => bigint;

  /**
   * The state of `layout`'s process in `mem`, with `files` placed files; `mark` records the host's
   * writes (a shell's markHostWrite), `rip` names where the guest was when a check fails.
   */
  constructor(mem: GuestMemory, layout: LinuxLayout, files: number, mark: (addr: number, len: number) => void, rip: () => bigint = () => 0n) {
    this.#mem = mem;
    this.#layout = layout;
    this.#files = files;
    this.#mark = mark;
    this.#rip = rip;
  }

  /** A field the guest left in a state no system call could have: the call ends. */
  corrupt(what: string, value: bigint | number): never {
    throw new GuestFaultError(`the program overwrote wasp's process state in its own memory (${what} = ${value}): its call ends`, "LINUX_STATE", this.#rip());
  }

  #u64(at: number): bigint {
    return this.#mem.view.getBigUint64(at, true);
  }

  #set(at: number, v: bigint): void {
    this.#mem.view.setBigUint64(at, v, true);
    this.#mark(at, 8);
  }

  #block(off: number): number {
    return this.#layout.io.block + off;
  }

  #call(off: number): number {
    return this.#layout.io.call + off;
  }

  /** The magic number: a block that lost it was overwritten. */
  check(): void {
    const m = this.#u64(this.#block(LinuxBlock.MAGIC));
    if (m !== LINUX_BLOCK_MAGIC) this.corrupt("the process block's magic", m);
  }

  get brk(): number {
    const v = this.#u64(this.#block(LinuxBlock.BRK));
    const r = this.#layout.regions;
    if (v < BigInt(r.brkStart) || v > BigInt(r.brkEnd)) this.corrupt("the break", v);
    return Number(v);
  }

  set brk(v: number) {
    this.#set(this.#block(LinuxBlock.BRK), BigInt(v));
  }

  /** The highest the break has been (the bytes above it were never handed out, so are zero). */
  get brkHigh(): number {
    const v = this.#u64(this.#block(LinuxBlock.BRK_HIGH));
    if (v < BigInt(this.#layout.regions.brkStart) || v > BigInt(this.#layout.regions.brkEnd)) this.corrupt("the break's high mark", v);
    return Number(v);
  }

  set brkHigh(v: number) {
    this.#set(this.#block(LinuxBlock.BRK_HIGH), BigInt(v));
  }

  get fsBase(): bigint {
    return this.#u64(this.#block(LinuxBlock.FS_BASE));
  }

  set fsBase(v: bigint) {
    this.#set(this.#block(LinuxBlock.FS_BASE), v);
  }

  get gsBase(): bigint {
    return this.#u64(this.#block(LinuxBlock.GS_BASE));
  }

  set gsBase(v: bigint) {
    this.#set(this.#block(LinuxBlock.GS_BASE), v);
  }

  /** The program's RIP at the system call the layer handed over (0 when it came through the CPL0 entry). */
  get savedRip(): bigint {
    return this.#u64(this.#block(LinuxBlock.SAVED_RIP));
  }

  /** A served program has threads: the layer hands futex, gettid and exit to the host. */
  set threads(on: boolean) {
    this.#set(this.#block(LinuxBlock.THREADS), on ? 1n : 0n);
  }

  /** The working directory: "/" until chdir leaves it (an absolute, normalized path). */
  get cwd(): string {
    const len = this.#u64(this.#block(LinuxBlock.CWD_LEN));
    if (len === 0n) return "/";
    if (len >= BigInt(LinuxBlock.CWD_CAP)) this.corrupt("the working directory's length", len);
    const at = this.#block(LinuxBlock.CWD);
    const path = new TextDecoder().decode(this.#mem.bytes.subarray(at, at + Number(len)));
    if (!path.startsWith("/") || path.includes("\0")) this.corrupt("the working directory", len);
    return path;
  }

  set cwd(path: string) {
    const bytes = new TextEncoder().encode(path === "/" ? "" : path);
    const at = this.#block(LinuxBlock.CWD);
    this.#mem.bytes.fill(0, at, at + LinuxBlock.CWD_CAP);
    this.#mem.bytes.set(bytes, at);
    this.#mark(at, LinuxBlock.CWD_CAP);
    this.#set(this.#block(LinuxBlock.CWD_LEN), BigInt(bytes.length));
  }

  /** The lowest closed descriptor from `min` on, or -1 when the table is full. */
  lowestFree(min = 0): number {
    for (let fd = Math.max(0, min); fd < LinuxBlock.MAX_FDS; fd++) if (this.fd(fd) === undefined) return fd;
    return -1;
  }

  /** Whether any open descriptor names socket object `object`. */
  namesSocket(object: number): boolean {
    for (let fd = 0; fd < LinuxBlock.MAX_FDS; fd++) {
      const f = this.fd(fd);
      if (f?.kind === "socket" && f.object === object) return true;
    }
    return false;
  }

  /** Descriptor `fd`, or undefined when it is closed (or out of the table). */
  fd(fd: number): FdEntry | undefined {
    if (!Number.isInteger(fd) || fd < 0 || fd >= LinuxBlock.MAX_FDS) return undefined;
    const at = this.#block(LinuxBlock.FDS + fd * LinuxBlock.FD_SIZE);
    const code = this.#mem.bytes[at];
    if (code === LinuxFd.CLOSED) return undefined;
    const kind = KIND_OF[code];
    if (kind === undefined) return this.corrupt(`fd ${fd}'s kind`, code);
    if (kind === "socket") {
      const object = this.#mem.view.getUint32(at + 4, true);
      if (object >= MAX_SOCKET_OBJECTS) this.corrupt(`fd ${fd}'s socket`, object);
      // the position field says a connection (1), which the layer sends on itself
      const mark = this.#u64(at + 8);
      if (mark > 1n) this.corrupt(`fd ${fd}'s socket mark`, mark);
      return mark === 1n ? { kind, object, conn: true } : { kind, object };
    }
    if (kind !== "file") return { kind };
    const file = this.#mem.view.getUint32(at + 4, true);
    const pos = this.#u64(at + 8);
    if (file >= this.#files) this.corrupt(`fd ${fd}'s file`, file);
    if (pos > MAX_POS) this.corrupt(`fd ${fd}'s position`, pos);
    return { kind, file, pos: Number(pos) };
  }

  /** Opens or replaces descriptor `fd`; undefined closes it. */
  setFd(fd: number, entry: FdEntry | undefined): void {
    const at = this.#block(LinuxBlock.FDS + fd * LinuxBlock.FD_SIZE);
    const bytes = this.#mem.bytes;
    bytes.fill(0, at, at + LinuxBlock.FD_SIZE);
    if (entry) {
      bytes[at] = CODE_OF[entry.kind];
      if (entry.kind === "file") {
        this.#mem.view.setUint32(at + 4, entry.file, true);
        this.#mem.view.setBigUint64(at + 8, BigInt(entry.pos), true);
      } else if (entry.kind === "socket") {
        this.#mem.view.setUint32(at + 4, entry.object, true);
        if (entry.conn) this.#mem.view.setBigUint64(at + 8, 1n, true);
      }
    }
    this.#mark(at, LinuxBlock.FD_SIZE);
  }

  /**
   * The anonymous mappings' page states (LinuxPage bits), a view of guest memory: reads see what
   * the guest left (unknown bits are ignored), writes must be marked (markPages).
   */
  get pages(): Uint8Array {
    const io = this.#layout.io;
    const n = (this.#layout.regions.mmapEnd - this.#layout.regions.mmapStart) / PAGE;
    return this.#mem.bytes.subarray(io.pages, io.pages + n);
  }

  /** Records that the host changed page states [first, first+count). */
  markPages(first: number, count: number): void {
    if (count > 0) this.#mark(this.#layout.io.pages + first, count);
  }

  // -- the call page ----------------------------------------------------------------------------

  get callFlags(): number {
    return Number(this.#u64(this.#call(LinuxCall.FLAGS)) & 0xffffffffn);
  }

  /** The input's length, and how much of it the window holds. */
  get inTotal(): number {
    const v = this.#u64(this.#call(LinuxCall.IN_TOTAL));
    if (v > MAX_POS) this.corrupt("the input's length", v);
    return Number(v);
  }

  /** stdin's position: at most the input's length. */
  get inPos(): number {
    const v = this.#u64(this.#call(LinuxCall.IN_POS));
    if (v > BigInt(this.inTotal)) this.corrupt("stdin's position", v);
    return Number(v);
  }

  set inPos(v: number) {
    this.#set(this.#call(LinuxCall.IN_POS), BigInt(v));
  }

  /** Bytes waiting in the stdout (or stderr) window. */
  windowLength(stream: "stdout" | "stderr"): number {
    const out = stream === "stdout";
    const v = this.#u64(this.#call(out ? LinuxCall.OUT_LEN : LinuxCall.ERR_LEN));
    if (v > (out ? OUT_CAP : ERR_CAP)) this.corrupt(`the ${stream} window's length`, v);
    return Number(v);
  }

  /** Takes the bytes waiting in a stream's window (a view of guest memory: copy before the next entry), leaving it empty. */
  drain(stream: "stdout" | "stderr"): Uint8Array {
    const n = this.windowLength(stream);
    if (n === 0) return EMPTY;
    const at = stream === "stdout" ? this.#layout.io.out : this.#layout.io.err;
    this.#set(this.#call(stream === "stdout" ? LinuxCall.OUT_LEN : LinuxCall.ERR_LEN), 0n);
    return this.#mem.bytes.subarray(at, at + n);
  }

  /** What a served program sent on its connection through the layer since the host last took it (the window left empty). */
  drainNet(): Uint8Array {
    if (!this.#layout.net) return EMPTY;
    const at = this.#call(LinuxCall.NET_LEN);
    const n = this.#u64(at);
    if (n === 0n) return EMPTY;
    if (n > BigInt(OUT_WINDOW / 2)) this.corrupt("the connection window's length", n);
    this.#set(at, 0n);
    const from = this.#layout.io.out + OUT_WINDOW / 2;
    return this.#mem.bytes.subarray(from, from + Number(n));
  }

  /** Whether the layer closed a served program's fd of its connection since the host last looked (the flag cleared). */
  takeNetClosed(): boolean {
    if (!this.#layout.net) return false;
    const at = this.#call(LinuxCall.NET_CLOSED);
    if (this.#u64(at) === 0n) return false;
    this.#set(at, 0n);
    return true;
  }

  /** System calls the layer answered in this call (the guest's own count: a report, never trusted for more). */
  get answered(): number {
    const v = this.#u64(this.#call(LinuxCall.ANSWERED));
    return v > MAX_POS ? Number.MAX_SAFE_INTEGER : Number(v);
  }
}

const EMPTY = new Uint8Array(0);
const OUT_CAP = BigInt(OUT_WINDOW);
const ERR_CAP = BigInt(ERR_WINDOW);
