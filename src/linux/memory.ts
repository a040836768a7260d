// A Linux guest's dynamic memory: the program break (brk) and anonymous private mappings (mmap),
// handed out inside regions of guest memory the host fixed, never past them (-ENOMEM, never a host
// error). Pages handed out again after they were used in this call are zeroed through the checked
// access, as Linux gives zeroed pages; pages never used since the snapshot are zero already.
import type { GuestAccess } from "../memory/guest-access.ts";

const PAGE = 4096;
const ZERO_PAGE = new Uint8Array(PAGE);

export interface MemoryRegions {
  /** the program break's range: [brkStart, brkEnd) (after the executable's last segment) */
  brkStart: number;
  brkEnd: number;
  /** where anonymous mappings go: [mmapStart, mmapEnd), handed out from the top down as Linux does */
  mmapStart: number;
  mmapEnd: number;
}

/** The part of a process's memory state a snapshot keeps (memory.ts's own, restored with the pages). */
export interface MemoryState {
  brk: number;
  brkHigh: number;
  mapped: Uint8Array;
  used: Uint8Array;
}

export class ProcessMemory {
  readonly regions: MemoryRegions;
  #guest: GuestAccess;
  /** the current break, and the highest it has been (pages above it are untouched, so zero) */
  #brk: number;
  #brkHigh: number;
  /** one byte per page of the mmap region: handed out now; handed out at some time (to zero on reuse) */
  #mapped: Uint8Array;
  #used: Uint8Array;

  constructor(guest: GuestAccess, regions: MemoryRegions) {
    const aligned = (n: number) => n % PAGE === 0;
    if (!aligned(regions.brkStart) || !aligned(regions.brkEnd) || !aligned(regions.mmapStart) || !aligned(regions.mmapEnd)) throw new RangeError("memory regions must be page-aligned");
    if (regions.brkEnd < regions.brkStart || regions.mmapEnd < regions.mmapStart) throw new RangeError("a memory region ends before it starts");
    this.regions = regions;
    this.#guest = guest;
    this.#brk = regions.brkStart;
    this.#brkHigh = regions.brkStart;
    const pages = (regions.mmapEnd - regions.mmapStart) / PAGE;
    this.#mapped = new Uint8Array(pages);
    this.#used = new Uint8Array(pages);
  }

  /** The state to keep with a snapshot, and to start every later call from. */
  capture(): MemoryState {
    return { brk: this.#brk, brkHigh: this.#brkHigh, mapped: this.#mapped.slice(), used: this.#used.slice() };
  }

  restore(s: MemoryState): void {
    this.#brk = s.brk;
    this.#brkHigh = s.brkHigh;
    this.#mapped.set(s.mapped);
    this.#used.set(s.used);
  }

  /** The guest access this memory zeroes through (a new shell's, at each call). */
  use(guest: GuestAccess): void {
    this.#guest = guest;
  }

  /** brk(2): 0 asks; an address inside the range moves the break (grown bytes read as zero); else unchanged. */
  brk(addr: bigint): bigint {
    if (addr === 0n || addr < BigInt(this.regions.brkStart) || addr > BigInt(this.regions.brkEnd)) return BigInt(this.#brk);
    const to = Number(addr);
    if (to > this.#brk) {
      // bytes that were break before and given back since are not zero any more
      const dirtyEnd = Math.min(to, this.#brkHigh);
      if (dirtyEnd > this.#brk) this.#zero(this.#brk, dirtyEnd - this.#brk);
    }
    this.#brk = to;
    this.#brkHigh = Math.max(this.#brkHigh, to);
    return addr;
  }

  /**
   * mmap(2) of anonymous private memory: `len` bytes (rounded up to pages) at a free place, or at
   * `fixed` (MAP_FIXED, inside the region). Returns the address or a negative errno.
   */
  map(len: bigint, fixed?: bigint): bigint {
    const pages = this.#pages(len);
    if (pages === undefined) return -22n; // EINVAL
    let first: number;
    if (fixed !== undefined) {
      const i = this.#index(fixed);
      if (i === undefined || fixed % BigInt(PAGE) !== 0n || i + pages > this.#mapped.length) return -12n; // ENOMEM: outside the region
      first = i;
    } else {
      const free = this.#findFree(pages);
      if (free === undefined) return -12n; // ENOMEM
      first = free;
    }
    this.#handOut(first, pages);
    return BigInt(this.regions.mmapStart + first * PAGE);
  }

  /** munmap(2): the pages of [addr, addr+len) inside the region are free again. */
  unmap(addr: bigint, len: bigint): bigint {
    const first = this.#index(addr);
    const pages = this.#pages(len);
    if (first === undefined || pages === undefined || addr % BigInt(PAGE) !== 0n) return -22n; // EINVAL
    this.#mapped.fill(0, first, Math.min(first + pages, this.#mapped.length));
    return 0n;
  }

  /**
   * mremap(2): shrinks in place, grows in place when the pages after are free, else moves (with
   * MREMAP_MAYMOVE) copying the contents. Returns the new address or a negative errno.
   */
  remap(addr: bigint, oldLen: bigint, newLen: bigint, mayMove: boolean): bigint {
    const first = this.#index(addr);
    const oldPages = this.#pages(oldLen);
    const newPages = this.#pages(newLen);
    if (first === undefined || oldPages === undefined || newPages === undefined || newPages === 0 || addr % BigInt(PAGE) !== 0n) return -22n;
    if (first + oldPages > this.#mapped.length || !this.#mapped.subarray(first, first + oldPages).every((m) => m === 1)) return -14n; // EFAULT: not all mapped
    if (newPages <= oldPages) {
      this.#mapped.fill(0, first + newPages, first + oldPages);
      return addr;
    }
    const tail = this.#mapped.subarray(first + oldPages, first + newPages);
    if (first + newPages <= this.#mapped.length && tail.every((m) => m === 0)) {
      this.#handOut(first + oldPages, newPages - oldPages);
      return addr;
    }
    if (!mayMove) return -12n;
    const moved = this.#findFree(newPages);
    if (moved === undefined) return -12n;
    this.#handOut(moved, newPages);
    const to = this.regions.mmapStart + moved * PAGE;
    const from = this.regions.mmapStart + first * PAGE;
    // page by page: the host never holds more than a page of the copy, however large the mapping
    for (let p = 0; p < oldPages; p++) this.#guest.write(to + p * PAGE, this.#guest.read(from + p * PAGE, PAGE, "mremap's source"), "mremap's target");
    this.#mapped.fill(0, first, first + oldPages);
    return BigInt(to);
  }

  /** madvise(MADV_DONTNEED): the range reads as zero from now on (only inside the mmap region). */
  dontNeed(addr: bigint, len: bigint): bigint {
    const first = this.#index(addr);
    const pages = this.#pages(len);
    if (first === undefined || pages === undefined || addr % BigInt(PAGE) !== 0n) return -22n;
    const end = Math.min(first + pages, this.#mapped.length);
    for (let p = first; p < end; p++) if (this.#mapped[p]) this.#zero(this.regions.mmapStart + p * PAGE, PAGE);
    return 0n;
  }

  /** Bytes currently handed out by mmap (for reports). */
  get mappedBytes(): number {
    let n = 0;
    for (const m of this.#mapped) n += m;
    return n * PAGE;
  }

  #handOut(first: number, pages: number): void {
    for (let p = first; p < first + pages; p++) {
      if (this.#used[p]) this.#zero(this.regions.mmapStart + p * PAGE, PAGE);
      this.#mapped[p] = 1;
      this.#used[p] = 1;
    }
  }

  /** The highest run of `pages` free pages (Linux maps top-down), or undefined. */
  #findFree(pages: number): number | undefined {
    let run = 0;
    for (let p = this.#mapped.length - 1; p >= 0; p--) {
      run = this.#mapped[p] ? 0 : run + 1;
      if (run === pages) return p;
    }
    return undefined;
  }

  #index(addr: bigint): number | undefined {
    const off = addr - BigInt(this.regions.mmapStart);
    if (off < 0n || off >= BigInt(this.regions.mmapEnd - this.regions.mmapStart)) return undefined;
    return Number(off) / PAGE | 0;
  }

  /** A length in whole pages; undefined when it is 0 or larger than any region. */
  #pages(len: bigint): number | undefined {
    if (len <= 0n || len > 2n ** 40n) return undefined;
    return Number((len + BigInt(PAGE) - 1n) / BigInt(PAGE));
  }

  #zero(addr: number, len: number): void {
    for (let at = addr; at < addr + len; at += PAGE) this.#guest.write(at, ZERO_PAGE.subarray(0, Math.min(PAGE, addr + len - at)), "zeroed memory");
  }
}
