// mprotect(2) and mmap's protections for a Linux guest: the host changes the page tables (the
// guest, at CPL3, cannot: they are the host's pages), a 2 MiB page split into 4 KiB ones where a
// range covers part of it. KVM shadows the guest's tables here (PVM): a host write to them takes
// effect only once KVM drops what it derived from the old entries — measured in tools/floor.c
// (`floor.bin --determinism`, probes pte_restrict_*; series flush_*): reloading the special
// registers does not, an MMU-notifier invalidation of the data pages' host mapping does (their
// translations are zapped and rebuilt from the new entries at the next access, ~as cheap as a
// run), and deleting and re-adding the memory slot does (every translation, ~5x a run). A leaf
// change is followed by the former, a split (a table entry changed) by the latter. The reset puts
// the snapshot's tables back the same way (src/shell/shell.ts, translationsChanged).
import { Layout } from "../abi/guest-abi.ts";
import { PTE_A, PTE_D, PTE_NX, PTE_P, PTE_PS, PTE_RW, PTE_US } from "../image/boot.ts";
import type { GuestMemory } from "../memory/guest-memory.ts";
import { pagePermission, permissionProt, protectable, TABLES, TABLES_END, type LinuxLayout, type ProtectionRun } from "./address-space.ts";
import type { ElfExecutable } from "./elf.ts";

const PAGE = 4096;
const REGION = 0x200000;
const ADDR_MASK = 0x000ffffffffff000n;
/** PROT_READ, PROT_WRITE, PROT_EXEC */
export const PROT = { READ: 1, WRITE: 2, EXEC: 4 } as const;

/** What changed: the guest ranges whose translations KVM must drop, and whether a table entry changed (a split). */
export interface Retranslate {
  ranges: [number, number][];
  split: boolean;
}

/** The entry of a page with protections `prot` (PROT bits): not present for PROT_NONE. */
function leaf(addr: number, prot: number): bigint {
  if ((prot & (PROT.READ | PROT.WRITE | PROT.EXEC)) === 0) return 0n;
  return BigInt(addr) | PTE_P | PTE_US | PTE_A | PTE_D | ((prot & PROT.WRITE) !== 0 ? PTE_RW : 0n) | ((prot & PROT.EXEC) !== 0 ? 0n : PTE_NX);
}

/**
 * Sets the protections of the program's pages [addr, addr+len) (page-aligned, inside its
 * memory, above wasp's pages: the caller checked) in `mem`'s page tables; `mark` records each
 * table the host writes. Returns what must be retranslated, or undefined when no table is left
 * to split a 2 MiB page with (the tables between Layout.HOST_END and the layer's pages).
 */
export function protectPages(mem: GuestMemory, layout: LinuxLayout, addr: number, len: number, prot: number, mark: (at: number, len: number) => void): Retranslate | undefined {
  const dv = mem.view;
  const pd = (r: number) => Layout.PD + r * 8;
  let split = false;
  for (let r = Math.floor(addr / REGION); r * REGION < addr + len; r++) {
    const e = dv.getBigUint64(pd(r), true);
    if ((e & PTE_P) !== 0n && (e & PTE_PS) !== 0n) {
      // a 2 MiB page: a table of 512 pages with its permissions takes its place
      const table = freeTable(mem, layout);
      if (table === undefined) return undefined;
      const flags = e & (PTE_P | PTE_RW | PTE_US | PTE_A | PTE_D | PTE_NX);
      for (let i = 0; i < 512; i++) dv.setBigUint64(table + i * 8, BigInt(r * REGION + i * PAGE) | flags, true);
      mark(table, PAGE);
      dv.setBigUint64(pd(r), BigInt(table) | PTE_P | PTE_RW | PTE_US | PTE_A, true);
      mark(pd(r), 8);
      split = true;
    } else if ((e & PTE_P) === 0n) return undefined; // not mapped at all: the caller's checks keep us off such regions
  }
  for (let page = addr; page < addr + len; page += PAGE) {
    const table = Number(dv.getBigUint64(pd(Math.floor(page / REGION)), true) & ADDR_MASK);
    const at = table + ((page % REGION) / PAGE) * 8;
    dv.setBigUint64(at, leaf(page, prot), true);
    mark(at, 8);
  }
  return { ranges: [[addr, addr + len]], split };
}

/** The protections of the page at `addr` as its entry gives them (PROT bits; 0: not present). */
export function pageProtection(mem: GuestMemory, addr: number): number {
  const dv = mem.view;
  const e = dv.getBigUint64(Layout.PD + Math.floor(addr / REGION) * 8, true);
  if ((e & PTE_P) === 0n) return 0;
  let entry = e;
  if ((e & PTE_PS) === 0n) entry = dv.getBigUint64(Number(e & ADDR_MASK) + ((addr % REGION) >> 12) * 8, true);
  if ((entry & PTE_P) === 0n) return 0;
  return PROT.READ | ((entry & PTE_RW) !== 0n ? PROT.WRITE : 0) | ((entry & PTE_NX) === 0n ? PROT.EXEC : 0);
}

/** A page of the table area that no directory entry uses, or undefined. */
function freeTable(mem: GuestMemory, layout: LinuxLayout): number | undefined {
  const dv = mem.view;
  const used = new Set<number>();
  for (let r = 0; r < Math.ceil(layout.memory / REGION); r++) {
    const e = dv.getBigUint64(Layout.PD + r * 8, true);
    if ((e & PTE_P) !== 0n && (e & PTE_PS) === 0n) used.add(Number(e & ADDR_MASK));
  }
  for (let t = TABLES; t < TABLES_END; t += PAGE) if (!used.has(t)) return t;
  return undefined;
}

/**
 * The protections the program set on its pages, where they differ from its executable's headers,
 * read from a snapshot's memory (`memory`: the whole guest memory, its page tables the host's own —
 * no guest writes them): the runs a snapshot file keeps so that its restore's tables are these.
 */
export function savedProtections(memory: Uint8Array, elf: ElfExecutable, layout: LinuxLayout): ProtectionRun[] {
  const dv = new DataView(memory.buffer, memory.byteOffset, memory.byteLength);
  const runs: ProtectionRun[] = [];
  const start = Math.min(layout.low, layout.regions.brkStart, layout.regions.mmapStart, layout.stack[0]);
  for (let addr = start; addr < layout.memory; addr += PAGE) {
    if (!protectable(layout, addr)) continue;
    const e = dv.getBigUint64(Layout.PD + Math.floor(addr / REGION) * 8, true);
    let leafEntry = e;
    if ((e & PTE_P) !== 0n && (e & PTE_PS) === 0n) leafEntry = dv.getBigUint64(Number(e & ADDR_MASK) + ((addr % REGION) / PAGE) * 8, true);
    const prot = (e & PTE_P) === 0n || (leafEntry & PTE_P) === 0n ? 0 : PROT.READ | ((leafEntry & PTE_RW) !== 0n ? PROT.WRITE : 0) | ((leafEntry & PTE_NX) === 0n ? PROT.EXEC : 0);
    if (prot === permissionProt(pagePermission(elf, layout, addr))) continue;
    const last = runs[runs.length - 1];
    if (last && last.prot === prot && last.addr + last.pages * PAGE === addr) last.pages++;
    else runs.push({ addr, pages: 1, prot });
  }
  return runs;
}
