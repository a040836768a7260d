// A Linux guest's address space: where its executable, program break, anonymous mappings and stack
// go in guest memory, and the page tables that give each page the permissions Linux would — text
// readable and executable but not writable, read-only data neither writable nor executable, data,
// bss, heap and stack writable but not executable (NX), guard pages under the stack and everything
// past the memory not present. Virtual addresses are physical ones (an identity map, as for native
// guests), so the host's checked access walks these tables like any other; the host's own pages
// (below LINUX_LOW: page tables, GDT, IDT, TSS, the system-call entry) are supervisor-only or not
// mapped at all. Pure: no VM is needed to build the tables or to check them (tests walk them).
import { Layout, LinuxBlock, LinuxCall, LinuxFiles, LinuxLayer, LinuxLog } from "../abi/guest-abi.ts";
import { PTE_A, PTE_D, PTE_NX, PTE_P, PTE_PS, PTE_RW, PTE_US } from "../image/boot.ts";
import { BadArgsError, BadImageError } from "../errors.ts";
import type { ElfExecutable } from "./elf.ts";
import type { MemoryRegions } from "./memory.ts";
import type { AccessRules } from "../memory/guest-access.ts";
import { LINUX_ENTRY, LINUX_ENTRY_STACK_PAGE } from "./entry.ts";

const PAGE = 4096;
const REGION = 0x200000; // what one page-directory entry maps
const MIB = 1024 * 1024;

/**
 * The lowest address a Linux program may occupy: below it are the host's pages and the page tables
 * of the regions that need 4 KiB pages. GNU ld links static programs at 0x400000, lld at 0x200000.
 */
export const LINUX_LOW = REGION;
/** Where a static-PIE's segments are placed (their addresses are relative to it). */
export const PIE_BASE = 0x400000;
/** Page tables of the regions mapped with 4 KiB pages go here, up to the in-VM layer's pages. */
export const TABLES = Layout.HOST_END;
export const TABLES_END = LinuxLayer.CODE;
const MAX_TABLES = (TABLES_END - TABLES) / PAGE;
/** The windows of a call's standard streams (the layer's: src/linux/io.ts): stdin's, stdout's, stderr's bytes in guest memory. */
export const IN_WINDOW = 64 * 1024;
export const OUT_WINDOW = 64 * 1024;
export const ERR_WINDOW = 16 * 1024;
/** The log of a recorded call's system calls answered in the VM: LOG_ENTRIES of LinuxLog.SIZE bytes. */
export const LOG_ENTRIES = 512;
/** The rewritten system-call sites' records and stubs (src/linux/sites.ts): SITE_SLOT bytes each. */
export const SITES_SIZE = 32 * 1024;
export const SITE_SLOT = 128;
/** The default stack (Linux gives 8 MiB; a virtine's calls are small): 1 MiB, at most a quarter of memory. */
export const DEFAULT_LINUX_STACK = MIB;
const GUARD = 16 * PAGE;
/** The least room a program gets for its break and mappings together. */
const MIN_HEAP = 256 * 1024;


/** What one page of a Linux guest is. */
export interface PagePermission {
  present: boolean;
  user: boolean;
  write: boolean;
  exec: boolean;
}
const ABSENT: PagePermission = { present: false, user: false, write: false, exec: false };
const HOST: PagePermission = { present: true, user: false, write: true, exec: false };
/** the host's code the CPU enters at CPL0 by an exception: the handlers (in the IDT's page) */
const HOST_CODE: PagePermission = { present: true, user: false, write: false, exec: true };
/**
 * The system-call entry and its stack (src/linux/entry.ts). KVM on PVM runs the code SYSCALL enters
 * with user-mode page checks (an exception's handler it runs with supervisor ones): on a
 * supervisor page the entry's first fetch faults. So both pages carry the user bit — the code
 * read-only, the stack no-execute. Neither gives a guest anything: the code is wasp's own, public
 * and unwritable, and runs harmlessly at CPL3 too; the stack holds only the RSP the guest had at
 * its `syscall`, written by the entry before it is read back, with no guest instruction between.
 */
const ENTRY_CODE: PagePermission = { present: true, user: true, write: false, exec: true };
const ENTRY_STACK: PagePermission = { present: true, user: true, write: true, exec: false };
/** the entry trampoline: the guest runs it at CPL3 (FPU state, then the program's entry), never writes it */
const TRAMPOLINE: PagePermission = { present: true, user: true, write: false, exec: true };
const DATA: PagePermission = { present: true, user: true, write: true, exec: false };
/** The in-VM layer's code and the rewritten sites' stubs: the program's own privilege, read-only. */
const LAYER_CODE: PagePermission = { present: true, user: true, write: false, exec: true };
/** the layer's config page, the table of placed files, the files, the input window: the guest reads them, only the host writes them */
const READ_ONLY: PagePermission = { present: true, user: true, write: false, exec: false };

/** A file placed in guest memory, read-only: its guest path, where its bytes are, their count. */
export interface PlacedFile {
  path: string;
  addr: number;
  size: number;
}

/**
 * wasp's pages inside the program's memory, above its mappings (the layer's and the host's alike,
 * kept by snapshots): the process block, the call page, the anonymous mappings' page states, the
 * stdout and stderr windows (writable); the stdin window, the table of placed files, the files
 * (read-only). Each page-aligned.
 */
export interface LinuxIo {
  start: number;
  end: number;
  block: number;
  call: number;
  pages: number;
  out: number;
  err: number;
  /** the log of a recorded call (writable) */
  log: number;
  /** the rewritten sites' slots: executable, read-only for the guest (their stubs run there) */
  sites: number;
  /** the first read-only page: the stdin window, then the files' table and bytes */
  readOnly: number;
  in: number;
  table: number;
  tableBytes: number;
  files: PlacedFile[];
}

/** What a granted file is to the plan: its path and size (its bytes go in at the entry state). */
export interface FileSpec {
  path: string;
  size: number;
}

const up = (n: number) => Math.ceil(n / PAGE) * PAGE;

/** The bytes of the placed files' table (LinuxFiles) for these paths. */
export function fileTableBytes(files: readonly FileSpec[]): number {
  return LinuxFiles.ENTRIES + files.length * LinuxFiles.ENTRY_SIZE + files.reduce((n, f) => n + new TextEncoder().encode(f.path).length, 0);
}

/** The io region's size for an mmap region of at most `mmapPages` pages and these files. */
function ioSize(mmapPages: number, files: readonly FileSpec[]): number {
  return up(LinuxBlock.SIZE) + up(LinuxCall.SIZE) + up(mmapPages) + OUT_WINDOW + ERR_WINDOW + up(LOG_ENTRIES * LinuxLog.SIZE) + SITES_SIZE + IN_WINDOW + up(fileTableBytes(files)) + files.reduce((n, f) => n + up(f.size), 0);
}

/** Lays the io region out from `start` (page-aligned). */
export function planIo(start: number, mmapPages: number, files: readonly FileSpec[]): LinuxIo {
  let at = start;
  const take = (n: number) => {
    const a = at;
    at += up(n);
    return a;
  };
  const block = take(LinuxBlock.SIZE);
  const call = take(LinuxCall.SIZE);
  const pages = take(mmapPages);
  const out = take(OUT_WINDOW);
  const err = take(ERR_WINDOW);
  const log = take(LOG_ENTRIES * LinuxLog.SIZE);
  const sites = take(SITES_SIZE);
  const readOnly = at;
  const inWindow = take(IN_WINDOW);
  const tableBytes = fileTableBytes(files);
  const table = take(tableBytes);
  const placed = files.map((f) => ({ path: f.path, addr: take(f.size), size: f.size }));
  return { start, end: at, block, call, pages, out, err, log, sites, readOnly, in: inWindow, table, tableBytes, files: placed };
}

/** An ELF object loaded at `bias` (its addresses plus the bias), occupying [low, high). */
export interface LoadedObject {
  elf: ElfExecutable;
  bias: number;
  low: number;
  high: number;
}

export interface LinuxLayout {
  /** bytes of guest memory */
  memory: number;
  /** what is added to the executable's addresses: 0 for ET_EXEC, PIE_BASE for a static-PIE */
  bias: number;
  /** the executable's pages, after the bias: [low, high) — with its interpreter's, when it has one */
  low: number;
  high: number;
  /** a dynamically linked program's interpreter, loaded above it (a page apart) as the kernel would load it */
  interp?: LoadedObject;
  /** the program break and anonymous mappings (memory.ts) */
  regions: MemoryRegions;
  /** wasp's pages in the program's memory: the process block, the call page, the windows, the placed files */
  io: LinuxIo;
  /** unmapped pages below the stack */
  guard: [number, number];
  /** the stack: [bottom, top); top is the end of memory, where the initial stack's strings go */
  stack: [number, number];
  /** the program was granted host directories: a path its placed files lack is the host's to answer (the layer hands it over) */
  dirs: boolean;
  /** a served program: the stdout window's second half is its connection's (what it sends, until the host's next exit sends it) */
  net: boolean;
}

/**
 * Where everything goes in `memory` bytes for `elf` with a stack of `stackSize` bytes (undefined:
 * the default). A program that does not fit is a BadImageError naming what it needs; a stack size
 * that is not whole pages or leaves no room is a BadArgsError.
 */
export function planLinux(elf: ElfExecutable, memory: number, stackSize?: number, files: readonly FileSpec[] = [], interpElf?: ElfExecutable, dirs = false, net = false): LinuxLayout {
  if (!Number.isSafeInteger(memory) || memory % PAGE !== 0 || memory > Layout.MAPPED) throw new BadArgsError(`memory size ${memory} is not whole pages within ${Layout.MAPPED / MIB} MiB`);
  const stack = stackSize ?? Math.min(DEFAULT_LINUX_STACK, Math.floor(memory / 4 / PAGE) * PAGE);
  if (!Number.isSafeInteger(stack) || stack <= 0 || stack % PAGE !== 0) throw new BadArgsError(`stack size ${stackSize} is not a positive number of whole 4 KiB pages`);
  const bias = elf.pie ? PIE_BASE : 0;
  const low = elf.low + bias;
  if (low < LINUX_LOW) {
    throw new BadImageError(`${elf.name}: its segments start at 0x${low.toString(16)}, below 0x${LINUX_LOW.toString(16)} where wasp keeps its own pages (link it at the usual 0x400000, or as a static-PIE)`);
  }
  if ((elf.interp !== undefined) !== (interpElf !== undefined)) throw new RangeError("a dynamically linked program, and only it, is planned with its interpreter");
  // the interpreter (position-independent) a page above the program, its own pages below the break
  let interp: LoadedObject | undefined;
  if (interpElf) {
    if (!interpElf.pie || interpElf.interp !== undefined) throw new BadImageError(`${elf.name}: its interpreter ${interpElf.name} is not a position-independent object without an interpreter of its own`);
    const at = elf.high + bias + PAGE;
    interp = { elf: interpElf, bias: at - interpElf.low, low: at, high: at + (interpElf.high - interpElf.low) };
  }
  const high = interp ? interp.high : elf.high + bias;
  const stackBottom = memory - stack;
  const guardStart = stackBottom - GUARD;
  // wasp's pages (the io region) go right below the guard, sized for the largest mmap region
  // (the page states' array sized for the largest mmap region the layout could have)
  const maxPages = Math.max(0, guardStart - high) / PAGE;
  const io = maxPages > 0 ? ioSize(maxPages, files) : 0;
  const need = high + MIN_HEAP + io + GUARD + stack;
  if (need > memory || guardStart < high) {
    const placed = files.reduce((n, f) => n + f.size, 0);
    throw new BadImageError(`${elf.name}: it needs ${Math.ceil(need / MIB)} MiB of guest memory (its segments end at 0x${high.toString(16)}, then at least ${MIN_HEAP / 1024} KiB of heap, ${Math.ceil(io / 1024)} KiB of wasp's own pages${placed > 0 ? ` with the ${files.length} granted file(s) placed in them` : ""} and a ${stack / 1024} KiB stack), more than the ${memory / MIB} MiB it would get`);
  }
  const ioStart = guardStart - io;
  // the free memory between the program and wasp's pages: the first half for the break (glibc and
  // musl grow it first), the rest for mappings, handed out from the top down
  const free = ioStart - high;
  const brkEnd = high + Math.floor(free / 2 / PAGE) * PAGE;
  return {
    memory,
    bias,
    low,
    high,
    ...(interp && { interp }),
    regions: { brkStart: high, brkEnd, mmapStart: brkEnd, mmapEnd: ioStart },
    io: planIo(ioStart, maxPages, files),
    guard: [guardStart, stackBottom],
    stack: [stackBottom, memory],
    dirs,
    net,
  };
}

/** The permission of the page at `addr` (page-aligned) in `layout` of `elf`. */
export function pagePermission(elf: ElfExecutable, layout: LinuxLayout, addr: number): PagePermission {
  if (addr >= layout.memory || addr < PAGE) return ABSENT;
  if (addr === Layout.IDT) return HOST_CODE; // CPL0 only, not writable even there
  if (addr === LINUX_ENTRY) return ENTRY_CODE;
  if (addr === LINUX_ENTRY_STACK_PAGE) return ENTRY_STACK;
  if (addr === Layout.TRAMPOLINE) return TRAMPOLINE; // the guest's first instructions (start.ts)
  if (addr < Layout.HOST_END) return HOST; // the host's tables, GDT, TSS, the entry's stack: CPL0 only, NX
  if (addr >= LinuxLayer.CODE && addr < LinuxLayer.CODE + LinuxLayer.CODE_SIZE) return LAYER_CODE;
  if (addr >= LinuxLayer.STACK && addr < LinuxLayer.STACK_TOP) return DATA;
  if (addr === LinuxLayer.CONFIG) return READ_ONLY;
  if (addr < LINUX_LOW) return ABSENT; // the page tables of 4 KiB regions: walked by the CPU, never mapped
  if (addr >= layout.low && addr < layout.high) {
    const [object, bias] = layout.interp && addr >= layout.interp.low ? [layout.interp.elf, layout.interp.bias] : [elf, layout.bias];
    // a page shared by two segments gets both's permissions (the bytes of each are loaded in place)
    let perm: PagePermission | undefined;
    for (const s of object.segments) {
      const start = s.vaddr + bias - ((s.vaddr + bias) % PAGE);
      const end = Math.ceil((s.vaddr + bias + s.memsz) / PAGE) * PAGE;
      if (addr < start || addr >= end) continue;
      perm = perm ? { present: true, user: true, write: perm.write || s.write, exec: perm.exec || s.exec } : { present: true, user: true, write: s.write, exec: s.exec };
    }
    return perm ?? ABSENT; // a hole between segments, or between the program and its interpreter
  }
  if (addr >= layout.guard[0] && addr < layout.guard[1]) return ABSENT;
  if (addr >= layout.io.sites && addr < layout.io.readOnly) return LAYER_CODE; // the sites' stubs
  if (addr >= layout.io.readOnly && addr < layout.io.end) return READ_ONLY;
  if (addr >= layout.high) return DATA; // break, mappings, wasp's writable pages, stack
  return ABSENT; // between the host's pages and the program
}

// the entry's bits as numbers: a table of 4 KiB pages is written as two 32-bit words an entry
// (a 256 MiB guest has 65,536 of them, built at every program's start and every restore)
const LOW_FLAGS = Number(PTE_P | PTE_A | PTE_D);
const RW = Number(PTE_RW);
const US = Number(PTE_US);
const NX_HIGH = Number(PTE_NX >> 32n);

/** Writes the 4 KiB page entry of `addr` (below 4 GiB) with permission `p` at `at` of `dv`. */
function setEntry(dv: DataView, at: number, addr: number, p: PagePermission): void {
  if (!p.present) {
    dv.setUint32(at, 0, true);
    dv.setUint32(at + 4, 0, true);
    return;
  }
  dv.setUint32(at, (addr | LOW_FLAGS | (p.write ? RW : 0) | (p.user ? US : 0)) >>> 0, true);
  dv.setUint32(at + 4, p.exec ? 0 : NX_HIGH, true);
}

function entry(addr: number, p: PagePermission, large: boolean): bigint {
  if (!p.present) return 0n;
  // A and D set in advance, as for native guests: the CPU never writes the tables (which would dirty them every call)
  return BigInt(addr) | PTE_P | PTE_A | PTE_D | (p.write ? PTE_RW : 0n) | (p.user ? PTE_US : 0n) | (p.exec ? 0n : PTE_NX) | (large ? PTE_PS : 0n);
}

const same = (a: PagePermission, b: PagePermission) => a.present === b.present && a.user === b.user && a.write === b.write && a.exec === b.exec;

/**
 * Pages whose protections the program set itself (mprotect, mmap with PROT_EXEC...) where they
 * differ from what its executable's headers give: a dynamically linked program's libraries, code
 * its loader mapped in its mappings, RELRO made read-only. A snapshot file keeps them (the process
 * section, src/linux/process-file.ts), the restore's tables put them back.
 */
export interface ProtectionRun {
  /** page-aligned */
  addr: number;
  pages: number;
  /** PROT bits (src/linux/protect.ts): 0 is not present */
  prot: number;
}

/** The permission of a program's page with PROT bits `prot`, as mprotect gives it. */
export function protPermission(prot: number): PagePermission {
  if ((prot & 7) === 0) return ABSENT;
  return { present: true, user: true, write: (prot & 2) !== 0, exec: (prot & 4) !== 0 };
}

/** PROT bits of a permission (a program's page: user-level). */
export function permissionProt(p: PagePermission): number {
  return p.present ? 1 | (p.write ? 2 : 0) | (p.exec ? 4 : 0) : 0;
}

/**
 * Whether the program may set the protections of the page at `addr`: its executable's and
 * interpreter's pages, its break, its mappings' area and its stack — where the host's mprotect
 * lets it (src/linux/process.ts), never wasp's pages among them (the process block, the windows,
 * the stubs, the placed files) nor the guard.
 */
export function protectable(layout: LinuxLayout, addr: number): boolean {
  const within = (s: number, e: number) => addr >= s && addr < e;
  const r = layout.regions;
  return within(layout.low, layout.high) || within(r.brkStart, r.brkEnd) || within(r.mmapStart, r.mmapEnd) || within(layout.stack[0], layout.stack[1]);
}

/** What is wrong with `runs` (sorted, apart, each of protectable pages) for `layout`, or undefined. */
export function checkProtections(layout: LinuxLayout, runs: readonly ProtectionRun[]): string | undefined {
  let end = 0;
  for (const run of runs) {
    const at = `protections of 0x${run.addr.toString(16)} (${run.pages} page(s))`;
    if (run.addr % PAGE !== 0 || run.pages < 1 || run.prot > 7 || run.addr < end) return `${at}: not sorted whole pages apart, with PROT bits`;
    end = run.addr + run.pages * PAGE;
    if (end > layout.memory) return `${at}: past the end of its memory`;
    // each page checked (runs are bounded by the memory, at most 2^16 pages for 256 MiB)
    for (let a = run.addr; a < end; a += PAGE) if (!protectable(layout, a)) return `${at}: page 0x${a.toString(16)} is not the program's to protect`;
  }
  return undefined;
}

/**
 * The page tables of `layout`: (guest address, bytes) pieces to write into memory, the PML4 at
 * Layout.PML4 (the CR3). A 2 MiB region whose pages are all alike is one large page; the others get
 * a table of 4 KiB pages from the host's table area. The guest must run with EFER.NXE set.
 */
export function linuxPageTables(elf: ElfExecutable, layout: LinuxLayout, protections: readonly ProtectionRun[] = []): [number, Uint8Array][] {
  // the program's own protections (checked: checkProtections) take the place of its headers'; pages come in order
  let k = 0;
  const permission = (addr: number): PagePermission => {
    while (k < protections.length && protections[k].addr + protections[k].pages * PAGE <= addr) k++;
    const run = protections[k];
    return run && addr >= run.addr ? protPermission(run.prot) : pagePermission(elf, layout, addr);
  };
  const top = new Uint8Array(Layout.PT - Layout.PML4); // PML4, PDPT, PD
  const tdv = new DataView(top.buffer);
  const dir = (table: number, index: number, v: bigint) => tdv.setBigUint64(table - Layout.PML4 + index * 8, v, true);
  dir(Layout.PML4, 0, BigInt(Layout.PDPT) | PTE_P | PTE_RW | PTE_US | PTE_A);
  dir(Layout.PDPT, 0, BigInt(Layout.PD) | PTE_P | PTE_RW | PTE_US | PTE_A);
  const pieces: [number, Uint8Array][] = [[Layout.PML4, top]];
  let next = TABLES;
  const regions = Math.ceil(layout.memory / REGION);
  for (let r = 0; r < regions; r++) {
    const base = r * REGION;
    const first = permission(base);
    let uniform = base + REGION <= layout.memory;
    const pt = new Uint8Array(PAGE);
    const pdv = new DataView(pt.buffer);
    for (let i = 0; i < 512; i++) {
      const addr = base + i * PAGE;
      const p = permission(addr);
      if (!same(p, first)) uniform = false;
      setEntry(pdv, i * 8, addr, p);
    }
    if (uniform) {
      dir(Layout.PD, r, entry(base, first, true));
      continue;
    }
    // region 0 (the host's pages) uses the native layout's table page; the others the table area
    let at: number;
    if (r === 0) at = Layout.PT;
    else {
      if (next >= LINUX_LOW) throw new BadImageError(`${elf.name}: its segments need more than ${MAX_TABLES} page tables`);
      at = next;
      next += PAGE;
    }
    pieces.push([at, pt]);
    dir(Layout.PD, r, BigInt(at) | PTE_P | PTE_RW | PTE_US | PTE_A);
  }
  return pieces;
}

/** (guest address, bytes) of the executable's file bytes (and its interpreter's), at their biased addresses; the rest (bss) is zero. */
export function segmentPieces(elf: ElfExecutable, layout: LinuxLayout): [number, Uint8Array][] {
  const of = (o: ElfExecutable, bias: number): [number, Uint8Array][] => o.segments.filter((s) => s.filesz > 0).map((s) => [s.vaddr + bias, o.bytes.subarray(s.offset, s.offset + s.filesz)]);
  return [...of(elf, layout.bias), ...(layout.interp ? of(layout.interp.elf, layout.interp.bias) : [])];
}

/**
 * What the host may touch for a Linux guest: what its own page tables (at Layout.PML4) let it touch
 * at CPL3, and never the host's pages below LINUX_LOW, whatever a table says.
 */
export function linuxAccessRules(): AccessRules {
  return { root: Layout.PML4, hostRanges: [[0, LINUX_LOW]] };
}
