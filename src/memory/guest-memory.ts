// Guest RAM: one anonymous mapping, presented to the VM as one slot at guest-physical 0. Every
// access to a guest range goes through `check`, which is overflow-safe: it works in bigint (guest
// values are u64) and rejects a range that leaves RAM or wraps around 2^64.
import { toArrayBuffer } from "bun:ffi";
import * as libc from "../../ffi/libc.ts";
import { ClosedError, MemoryFaultError } from "../errors.ts";

export const PAGE_SIZE = 4096;

/**
 * One anonymous RAM mapping that close() kept back, zeroed (MADV_DONTNEED), for the next
 * GuestMemory of its size on this thread (module state is per thread). Not for speed of the
 * mapping itself: JavaScriptCore counts every ArrayBuffer made over a mapping as memory allocated
 * (16 MiB of a guest's RAM is 16 MiB towards its next collection, untouched pages or not), so a
 * view made per VM had the garbage collector run every few VMs — ~350 µs per one-shot VM on
 * average here, a third of what creating the VM costs the kernel. A reused mapping keeps its view.
 */
let spare: { size: number; addr: number; buffer: ArrayBuffer } | undefined;

export class GuestMemory {
  readonly size: number;
  readonly hostAddr: number;
  // SAFETY: both views alias the mapping at hostAddr, which lives until close(); after it they would
  // point at unmapped memory (a crash, not an exception) or, for anonymous RAM, at the next
  // GuestMemory's (the spare mapping), so they are handed out only while open.
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  readonly #sizeBig: bigint;
  /** anonymous RAM (no file behind it): close() may keep it as the spare */
  readonly #anonymous: boolean;
  readonly #buffer: ArrayBuffer;
  #closed = false;

  /**
   * RAM of `size` bytes (a multiple of the page size): anonymous and zero-filled, or, with `fd`, a
   * private copy-on-write view of that file: unmodified pages are the file's (shared through the
   * page cache), written ones become this mapping's own.
   */
  constructor(size: number, fd?: number, offset = 0) {
    if (!Number.isSafeInteger(size) || size <= 0 || size % PAGE_SIZE !== 0) {
      throw new RangeError(`guest memory size ${size} is not a positive multiple of ${PAGE_SIZE}`);
    }
    this.size = size;
    this.#sizeBig = BigInt(size);
    this.#anonymous = fd === undefined;
    if (fd === undefined && spare?.size === size) {
      this.hostAddr = spare.addr;
      this.#buffer = spare.buffer;
      spare = undefined;
    } else {
      this.hostAddr =
        fd === undefined
          ? libc.mmap(size, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS | libc.MAP_NORESERVE)
          : libc.mmap(size, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_PRIVATE | libc.MAP_NORESERVE, fd, offset);
      this.#buffer = toArrayBuffer(this.hostAddr, 0, size);
    }
    this.#bytes = new Uint8Array(this.#buffer);
    this.#view = new DataView(this.#buffer);
  }

  /** The RAM's bytes; a ClosedError once the memory is closed (a view kept from before must not be used after). */
  get bytes(): Uint8Array {
    if (this.#closed) throw new ClosedError("guest memory");
    return this.#bytes;
  }

  get view(): DataView {
    if (this.#closed) throw new ClosedError("guest memory");
    return this.#view;
  }

  /**
   * Checks that [addr, addr+len) lies inside RAM, and returns addr as a number. `what` names the
   * range in the error (e.g. "the console buffer").
   */
  check(addr: bigint | number, len: bigint | number, access: "read" | "write", what: string): number {
    if (this.#closed) throw new ClosedError("guest memory");
    const a = BigInt(addr);
    const n = BigInt(len);
    // a + n cannot wrap here: bigint is unbounded, and both are checked against size first.
    if (a < 0n || n < 0n || a > this.#sizeBig || n > this.#sizeBig - a) {
      throw new MemoryFaultError(
        `${what} [0x${BigInt.asUintN(64, a).toString(16)}, +0x${BigInt.asUintN(64, n).toString(16)}) is outside guest RAM (${this.size} bytes)`,
        BigInt.asUintN(64, a),
        access,
      );
    }
    return Number(a);
  }

  /** A copy of guest bytes. */
  read(addr: bigint | number, len: bigint | number, what = "guest range"): Uint8Array {
    const at = this.check(addr, len, "read", what);
    return this.bytes.slice(at, at + Number(len));
  }

  write(addr: bigint | number, data: Uint8Array, what = "guest range"): void {
    const at = this.check(addr, data.length, "write", what);
    this.bytes.set(data, at);
  }

  fill(addr: bigint | number, len: bigint | number, value = 0, what = "guest range"): void {
    const at = this.check(addr, len, "write", what);
    this.bytes.fill(value, at, at + Number(len));
  }

  readU64(addr: bigint | number, what = "guest u64"): bigint {
    return this.view.getBigUint64(this.check(addr, 8, "read", what), true);
  }

  writeU64(addr: bigint | number, value: bigint, what = "guest u64"): void {
    this.view.setBigUint64(this.check(addr, 8, "write", what), BigInt.asUintN(64, value), true);
  }

  /** Gives the pages back to the kernel; they read as zero afterwards. */
  discard(addr = 0, len = this.size): void {
    const at = this.check(addr, len, "write", "discarded range");
    libc.madvise(this.hostAddr + at, len, libc.MADV_DONTNEED);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Unmaps the RAM — or, for anonymous RAM when no spare is kept, drops its pages (they read as
   * zero, as a new mapping's do) and keeps it as the spare. Close the VM that maps it first.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // (a madvise that failed leaves pages behind: then the mapping is not kept but unmapped)
    if (this.#anonymous && spare === undefined && libc.raw.madvise(this.hostAddr, this.size, libc.MADV_DONTNEED) === 0) {
      spare = { size: this.size, addr: this.hostAddr, buffer: this.#buffer };
      return;
    }
    libc.munmap(this.hostAddr, this.size);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
