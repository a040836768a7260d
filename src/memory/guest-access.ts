// Guest memory as the guest itself may touch it. Every byte the host reads or writes on a guest's
// behalf (a hypercall's buffer, the call's input and output, the info page) goes through here: a
// guest address is translated through the guest's own page tables, and the access is allowed only
// where the guest could make it itself at CPL3 — every level of the walk present and user, and
// writable for a write — and only into RAM that is not one of the host's own pages. A guest can
// therefore never have the host write where it could not write (its page tables, IDT, GDT, TSS, the
// read-only entry trampoline): the host is no confused deputy. Privileged guests (raw images, which
// own every byte of their VM) address physical memory, bounds-checked.
import { MemoryFaultError } from "../errors.ts";
import { PAGE_SIZE, type GuestMemory } from "./guest-memory.ts";

/** How a guest addresses memory, and which physical pages the host keeps for itself. */
export interface AccessRules {
  /**
   * Guest-physical address of the guest's PML4 (its CR3), for a guest that runs at CPL3 on page
   * tables the host built and the guest cannot change. Undefined: the guest addresses physical
   * memory directly (a privileged guest).
   */
  root?: number;
  /** physical ranges [start, end) that no access made for the guest may reach, whatever maps them */
  hostRanges: readonly (readonly [number, number])[];
}

export type Access = "read" | "write";

// Page-table entry bits (Intel SDM vol. 3, 4.5): present, writable, user, page size.
const P = 1;
const RW = 2;
const US = 4;
const PS = 0x80;
/** Bits 12-31 of an entry's physical address (the low word); bits 32-51 are the high word's 0xfffff. */
const ADDR_LO = 0xfffff000;
const ADDR_HI = 0xfffff;
const TWO_32 = 2 ** 32;
/** Linear addresses are 48 bits; the lower canonical half ends at 2^47. */
const HALF = 2n ** 47n;
const LOWER_END = 2 ** 47;
const UPPER = 2n ** 64n - HALF;
const LOW48 = 2n ** 48n - 1n;

const hex = (v: number | bigint) => `0x${v.toString(16)}`;

export class GuestAccess {
  readonly #mem: GuestMemory;
  readonly #rules: AccessRules;
  /** called with every physical range written (the reset must restore it: KVM does not log host writes) */
  readonly #onWrite: (phys: number, len: number) => void;
  /** the last translation: physical address and the bytes left in its mapping (no allocation per call) */
  #phys = 0;
  #span = 0;

  constructor(mem: GuestMemory, rules: AccessRules, onWrite: (phys: number, len: number) => void = () => {}) {
    this.#mem = mem;
    this.#rules = rules;
    this.#onWrite = onWrite;
  }

  /**
   * Checks that the guest may `access` all of [addr, addr+len) and that it is one physically
   * contiguous range of RAM; returns its physical address. For the host's own fixed ranges (the
   * info page) and short fields; buffers of any size go through read/write/randomize.
   */
  check(addr: bigint | number, len: number, access: Access, what: string): number {
    const lin = this.#linear(addr, len, access, what);
    this.#translate(lin, access, what, addr, len);
    if (this.#span < len) {
      // contiguous in guest memory but not one mapping: accept only if physically contiguous too
      const start = this.#phys;
      for (let done = this.#span; done < len; done += this.#span) {
        this.#translate(lin + done, access, what, addr, len);
        if (this.#phys !== start + done) throw fault(what, addr, len, access, "does not map to one contiguous range of guest memory");
      }
      this.#phys = start;
    }
    this.#checkPhysical(this.#phys, len, access, what, addr);
    return this.#phys;
  }

  /** A copy of guest bytes the guest may read. */
  read(addr: bigint | number, len: number, what: string): Uint8Array {
    const out = new Uint8Array(len);
    const ram = this.#mem.bytes;
    this.#each(addr, len, "read", what, (phys, n, done) => out.set(ram.subarray(phys, phys + n), done));
    return out;
  }

  /** Writes `data` where the guest may write. All of the range is checked before any byte is written. */
  write(addr: bigint | number, data: Uint8Array, what: string): void {
    const ram = this.#mem.bytes;
    this.#all(addr, data.length, "write", what);
    this.#each(addr, data.length, "write", what, (phys, n, done) => {
      ram.set(data.subarray(done, done + n), phys);
      this.#onWrite(phys, n);
    });
    this.#observer?.(addr, data);
  }

  /** Fills a range the guest may write with random bytes (the `random` hypercall). */
  randomize(addr: bigint | number, len: number, what: string): void {
    const ram = this.#mem.bytes;
    this.#all(addr, len, "write", what);
    const observed = this.#observer ? new Uint8Array(len) : undefined;
    this.#each(addr, len, "write", what, (phys, n, done) => {
      crypto.getRandomValues(ram.subarray(phys, phys + n));
      observed?.set(ram.subarray(phys, phys + n), done);
      this.#onWrite(phys, n);
    });
    if (observed) this.#observer?.(addr, observed);
  }

  #observer: ((addr: bigint | number, data: Uint8Array) => void) | undefined;

  /**
   * Calls `observer` with every write made through this object from now on — the guest address
   * and the bytes (a recording keeps what a hypercall wrote); undefined stops it.
   */
  observeWrites(observer: ((addr: bigint | number, data: Uint8Array) => void) | undefined): void {
    this.#observer = observer;
  }

  /** Checks a whole range first, so that a write is all or nothing. */
  #all(addr: bigint | number, len: number, access: Access, what: string): void {
    this.#each(addr, len, access, what, () => {});
  }

  /** Calls `fn(phys, n, done)` for each physically contiguous piece of the range, in order. */
  #each(addr: bigint | number, len: number, access: Access, what: string, fn: (phys: number, n: number, done: number) => void): void {
    if (len === 0) return;
    const lin = this.#linear(addr, len, access, what);
    for (let done = 0; done < len; ) {
      this.#translate(lin + done, access, what, addr, len);
      const n = Math.min(this.#span, len - done);
      this.#checkPhysical(this.#phys, n, access, what, addr);
      fn(this.#phys, n, done);
      done += n;
    }
  }

  /** The guest address as a 48-bit linear address, after checking it is canonical and the range does not wrap. */
  #linear(addr: bigint | number, len: number, access: Access, what: string): number {
    if (!Number.isSafeInteger(len) || len < 0) throw fault(what, addr, len, access, "has an invalid length");
    // the host's own addresses (the info page, the data window) are small numbers: no bigint work
    // on the per-call path
    if (typeof addr === "number" && addr >= 0 && addr + len <= (this.#rules.root === undefined ? this.#mem.size : LOWER_END)) return addr;
    const a = BigInt.asUintN(64, BigInt(addr));
    if (this.#rules.root === undefined) {
      // physical addressing: the range must lie in RAM
      if (a > BigInt(this.#mem.size) || BigInt(len) > BigInt(this.#mem.size) - a) throw fault(what, addr, len, access, `is outside guest RAM (${this.#mem.size} bytes)`);
      return Number(a);
    }
    const end = a + BigInt(len);
    const lower = a < HALF && end <= HALF;
    const upper = a >= UPPER && end <= 2n ** 64n;
    if (!lower && !upper) throw fault(what, addr, len, access, "is not a canonical address range");
    return Number(a & LOW48);
  }

  /**
   * Translates one linear address for a user-mode `access`: sets #phys and #span (bytes to the end
   * of the page or large page that maps it), or throws naming why the guest could not do it.
   */
  #translate(lin: number, access: Access, what: string, addr: bigint | number, len: number): void {
    const root = this.#rules.root;
    if (root === undefined) {
      this.#phys = lin;
      this.#span = this.#mem.size - lin;
      return;
    }
    const dv = this.#mem.view;
    const size = this.#mem.size;
    let table = root;
    // levels: PML4 (bits 39-47), PDPT (30-38, may map 1 GiB), PD (21-29, may map 2 MiB), PT (12-20)
    for (let shift = 39; ; shift -= 9) {
      const index = Math.floor(lin / 2 ** shift) % 512;
      const at = table + index * 8;
      if (at < 0 || at + 8 > size) throw fault(what, addr, len, access, `is mapped through a page table outside guest RAM (${hex(table)})`);
      const lo = dv.getUint32(at, true);
      const hi = dv.getUint32(at + 4, true);
      if ((lo & P) === 0) throw fault(what, addr, len, access, `is not mapped (linear ${hex(lin)})`);
      if ((lo & US) === 0) throw fault(what, addr, len, access, `is not accessible to the guest (the page at linear ${hex(lin)} is supervisor-only)`);
      if (access === "write" && (lo & RW) === 0) throw fault(what, addr, len, access, `is not writable by the guest (the page at linear ${hex(lin)} is read-only)`);
      const next = (hi & ADDR_HI) * TWO_32 + ((lo & ADDR_LO) >>> 0);
      if (shift === 12 || ((lo & PS) !== 0 && (shift === 30 || shift === 21))) {
        const pageSize = 2 ** shift;
        const offset = lin % pageSize;
        this.#phys = next - (next % pageSize) + offset;
        this.#span = pageSize - offset;
        return;
      }
      table = next;
    }
  }

  /** The physical range must be RAM and must not touch a host page. */
  #checkPhysical(phys: number, len: number, access: Access, what: string, addr: bigint | number): void {
    if (phys + len > this.#mem.size) throw fault(what, addr, len, access, `maps to guest-physical ${hex(phys)}, outside guest RAM (${this.#mem.size} bytes)`);
    for (const [start, end] of this.#rules.hostRanges) {
      if (phys < end && phys + len > start) throw fault(what, addr, len, access, `maps to a host page (guest-physical ${hex(Math.max(phys, start) & ~(PAGE_SIZE - 1))})`);
    }
  }
}

function fault(what: string, addr: bigint | number, len: number, access: Access, why: string): MemoryFaultError {
  const a = BigInt.asUintN(64, BigInt(addr));
  return new MemoryFaultError(`${what} [${hex(a)}, +${hex(len)}) ${why}`, a, access);
}
