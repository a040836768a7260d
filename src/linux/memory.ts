// A Linux guest's dynamic memory: the program break (brk) and anonymous private mappings (mmap),
// handed out inside regions of guest memory the host fixed, never past them (-ENOMEM, never a host
// error). The state lives in the process's own memory (block.ts: the break and its high mark, a
// state byte per page of the mmap region), so that the in-VM layer (guests/linux/layer.zig), which
// answers the same calls with the same algorithm, and the host always agree. Pages handed out
// again after they were used are zeroed, as Linux gives zeroed pages; pages never used since the
// start are zero already.
import { LinuxPage } from "../abi/guest-abi.ts";
import type { GuestAccess } from "../memory/guest-access.ts";
import type { ProcessBlock } from "./block.ts";

const PAGE = 4096;
const ZERO_PAGE = new Uint8Array(PAGE);
const { MAPPED, USED, PROTECTED } = LinuxPage;

export interface MemoryRegions {
  /** the program break's range: [brkStart, brkEnd) (after the executable's last segment) */
  brkStart: number;
  brkEnd: number;
  /** where anonymous mappings go: [mmapStart, mmapEnd), handed out from the top down as Linux does */
  mmapStart: number;
  mmapEnd: number;
}

export class ProcessMemory {
  readonly regions: MemoryRegions;
  readonly #guest: GuestAccess;
  readonly #block: ProcessBlock;

  constructor(guest: GuestAccess, block: ProcessBlock, regions: MemoryRegions) {
    const aligned = (n: number) => n % PAGE === 0;
    if (!aligned(regions.brkStart) || !aligned(regions.brkEnd) || !aligned(regions.mmapStart) || !aligned(regions.mmapEnd)) throw new RangeError("memory regions must be page-aligned");
    if (regions.brkEnd < regions.brkStart || regions.mmapEnd < regions.mmapStart) throw new RangeError("a memory region ends before it starts");
    this.regions = regions;
    this.#guest = guest;
    this.#block = block;
  }

  /** brk(2): 0 asks; an address inside the range moves the break (grown bytes read as zero); else unchanged. */
  brk(addr: bigint): bigint {
    const b = this.#block;
    const brk = b.brk;
    if (addr === 0n || addr < BigInt(this.regions.brkStart) || addr > BigInt(this.regions.brkEnd)) return BigInt(brk);
    const to = Number(addr);
    const high = b.brkHigh;
    if (to > brk) {
      // bytes that were break before and given back since are not zero any more
      const dirtyEnd = Math.min(to, high);
      if (dirtyEnd > brk) this.#zero(brk, dirtyEnd - brk);
    }
    b.brk = to;
    if (to > high) b.brkHigh = to;
    return addr;
  }

  /**
   * mmap(2) of anonymous private memory: `len` bytes (rounded up to pages) at a free place, or at
   * `fixed` (MAP_FIXED, inside the region). Returns the address or a negative errno.
   */
  map(len: bigint, fixed?: bigint): bigint {
    const pages = this.#pages(len);
    if (pages === undefined) return -22n; // EINVAL
    const states = this.#block.pages;
    let first: number;
    if (fixed !== undefined) {
      const i = this.#index(fixed);
      if (i === undefined || fixed % BigInt(PAGE) !== 0n || i + pages > states.length) return -12n; // ENOMEM: outside the region
      first = i;
    } else {
      const free = this.#findFree(states, pages);
      if (free === undefined) return -12n; // ENOMEM
      first = free;
    }
    this.#handOut(states, first, pages);
    return BigInt(this.regions.mmapStart + first * PAGE);
  }

  /** munmap(2): the pages of [addr, addr+len) inside the region are free again. */
  unmap(addr: bigint, len: bigint): bigint {
    const first = this.#index(addr);
    const pages = this.#pages(len);
    if (first === undefined || pages === undefined || addr % BigInt(PAGE) !== 0n) return -22n; // EINVAL
    const states = this.#block.pages;
    const end = Math.min(first + pages, states.length);
    for (let p = first; p < end; p++) states[p] &= ~MAPPED;
    this.#block.markPages(first, end - first);
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
    const states = this.#block.pages;
    if (first + oldPages > states.length || !allMapped(states, first, first + oldPages)) return -14n; // EFAULT: not all mapped
    if (newPages <= oldPages) {
      for (let p = first + newPages; p < first + oldPages; p++) states[p] &= ~MAPPED;
      this.#block.markPages(first + newPages, oldPages - newPages);
      return addr;
    }
    if (first + newPages <= states.length && noneMapped(states, first + oldPages, first + newPages)) {
      this.#handOut(states, first + oldPages, newPages - oldPages);
      return addr;
    }
    if (!mayMove) return -12n;
    const moved = this.#findFree(states, newPages);
    if (moved === undefined) return -12n;
    this.#handOut(states, moved, newPages);
    const to = this.regions.mmapStart + moved * PAGE;
    const from = this.regions.mmapStart + first * PAGE;
    // page by page: the host never holds more than a page of the copy, however large the mapping
    for (let p = 0; p < oldPages; p++) this.#guest.write(to + p * PAGE, this.#guest.read(from + p * PAGE, PAGE, "mremap's source"), "mremap's target");
    for (let p = first; p < first + oldPages; p++) states[p] &= ~MAPPED;
    this.#block.markPages(first, oldPages);
    return BigInt(to);
  }

  /** madvise(MADV_DONTNEED): the range reads as zero from now on (only inside the mmap region). */
  dontNeed(addr: bigint, len: bigint): bigint {
    const first = this.#index(addr);
    const pages = this.#pages(len);
    if (first === undefined || pages === undefined || addr % BigInt(PAGE) !== 0n) return -22n;
    const states = this.#block.pages;
    const end = Math.min(first + pages, states.length);
    for (let p = first; p < end; p++) if (states[p] & MAPPED) this.#zero(this.regions.mmapStart + p * PAGE, PAGE);
    return 0n;
  }

  /** Whether any page of [addr, addr+len) in the mmap region has had its protections changed (mprotect). */
  anyProtected(addr: bigint, len: bigint): boolean {
    const [first, end] = this.#span(addr, len);
    const states = this.#block.pages;
    for (let p = first; p < end; p++) if (states[p] & PROTECTED) return true;
    return false;
  }

  /** Whether [addr, addr+len) is whole pages of the mmap region (where MAP_FIXED may map). */
  inside(addr: bigint, len: bigint): boolean {
    const first = this.#index(addr);
    const pages = this.#pages(len);
    return first !== undefined && pages !== undefined && addr % BigInt(PAGE) === 0n && first + pages <= this.#block.pages.length;
  }

  /** Whether every page of [addr, addr+len) is a mapping handed out now (none: outside the region). */
  allMapped(addr: bigint, len: bigint): boolean {
    const first = this.#index(addr);
    const pages = this.#pages(len);
    if (first === undefined || pages === undefined || first + pages > this.#block.pages.length) return false;
    return allMapped(this.#block.pages, first, first + pages);
  }

  /** Marks the mmap region's pages of [addr, addr+len) as protected otherwise than read-write, or not. */
  markProtected(addr: bigint, len: bigint, protectedNow: boolean): void {
    const [first, end] = this.#span(addr, len);
    const states = this.#block.pages;
    for (let p = first; p < end; p++) states[p] = protectedNow ? states[p] | PROTECTED : states[p] & ~PROTECTED;
    this.#block.markPages(first, end - first);
  }

  /** The mmap region's page indexes [first, end) that [addr, addr+len) covers (empty outside it). */
  #span(addr: bigint, len: bigint): [number, number] {
    const start = BigInt(this.regions.mmapStart);
    const stop = BigInt(this.regions.mmapEnd);
    const from = addr < start ? start : addr;
    const to = addr + len > stop ? stop : addr + len;
    if (to <= from) return [0, 0];
    return [Math.floor(Number(from - start) / PAGE), Math.ceil(Number(to - start) / PAGE)];
  }

  /** Bytes currently handed out by mmap (for reports). */
  get mappedBytes(): number {
    let n = 0;
    for (const s of this.#block.pages) if (s & MAPPED) n++;
    return n * PAGE;
  }

  #handOut(states: Uint8Array, first: number, pages: number): void {
    for (let p = first; p < first + pages; p++) {
      if (states[p] & USED) this.#zero(this.regions.mmapStart + p * PAGE, PAGE);
      states[p] |= MAPPED | USED;
    }
    this.#block.markPages(first, pages);
  }

  /** The highest run of `pages` free pages (Linux maps top-down), or undefined. */
  #findFree(states: Uint8Array, pages: number): number | undefined {
    let run = 0;
    for (let p = states.length - 1; p >= 0; p--) {
      run = states[p] & MAPPED ? 0 : run + 1;
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

function allMapped(states: Uint8Array, from: number, to: number): boolean {
  for (let p = from; p < to; p++) if (!(states[p] & MAPPED)) return false;
  return true;
}

function noneMapped(states: Uint8Array, from: number, to: number): boolean {
  for (let p = from; p < to; p++) if (states[p] & MAPPED) return false;
  return true;
}
