// CPU and memory state in which images are entered.
// Native images: 64-bit long mode at CPL3, built by the host: identity page tables with the user bit
// (supervisor-only for the host's own pages), a GDT with user segments and a TSS, CR0/CR3/CR4/EFER
// with SSE on (and XSAVE with AVX where the host enables it: src/kvm/xfeatures.ts), RFLAGS.IOPL=3 so
// that OUT is allowed. No guest boot code runs.
// Raw images: 16-bit real mode, CS base 0, IP and SP 0x8000 (Wasp's convention).
import { kvm_dtable, kvm_segment, kvm_sregs } from "../../ffi/kvm.ts";
import { Layout, Port } from "../abi/guest-abi.ts";
import { TRAMPOLINE_XSAVE_AT } from "../kvm/xfeatures.ts";

// Page-table entry bits (Intel SDM vol. 3, 4.5); also the Linux guests' tables (src/linux/address-space.ts).
export const PTE_P = 1n;
export const PTE_RW = 2n;
export const PTE_US = 4n;
export const PTE_PS = 0x80n;
// Accessed and dirty, set in advance: otherwise the CPU writes them into the page tables at the
// guest's first accesses, and every call would dirty (and the reset copy back) the table pages.
export const PTE_A = 0x20n;
export const PTE_D = 0x40n;
/** no execution from the page (honoured with EFER.NXE) */
export const PTE_NX = 1n << 63n;

// The same bits as numbers, for the tables of host-built long mode: every entry there maps below
// 1 GiB without NX, so it is its low 32 bits (the upper half stays the zero of a fresh buffer). This
// code runs once per process before the JIT has compiled it: BigInt arithmetic cost ~1.5 µs an entry,
// ~2.5 ms of every `wasp invoke` for the template and a stack guard's table; numbers ~0.1 µs
// (docs/benchmarks.md, "Start and creation").
const P = Number(PTE_P);
const RW = Number(PTE_RW);
const US = Number(PTE_US);
const PS = Number(PTE_PS);
const A = Number(PTE_A);
const D = Number(PTE_D);

const CR0_PE = 1n << 0n;
const CR0_MP = 1n << 1n;
const CR0_ET = 1n << 4n;
const CR0_NE = 1n << 5n;
const CR0_WP = 1n << 16n;
const CR0_AM = 1n << 18n;
const CR0_PG = 1n << 31n;
const CR4_PAE = 1n << 5n;
const CR4_OSFXSR = 1n << 9n;
const CR4_OSXMMEXCPT = 1n << 10n;
/** XSETBV/XGETBV, XSAVE/XRSTOR and the features XCR0 enables (AVX...) are on */
export const CR4_OSXSAVE = 1n << 18n;
const EFER_LME = 1n << 8n;
const EFER_LMA = 1n << 10n;

/** RFLAGS at entry: bit 1 is always set; IOPL=3 (bits 12-13) lets CPL3 code use OUT. */
export const RFLAGS_NATIVE = 0x3002n;
export const RFLAGS_REAL = 0x2n;

// GDT selectors; the user ones carry RPL 3.
export const SEL_KERNEL_CODE = 0x08;
export const SEL_KERNEL_DATA = 0x10;
export const SEL_USER_CODE = 0x18 | 3;
export const SEL_USER_DATA = 0x20 | 3;
export const SEL_TSS = 0x28;
const GDT_ENTRIES = 7; // null, kcode, kdata, ucode, udata, tss (two slots)
// The 64-bit TSS is 104 bytes; an I/O permission bitmap follows it with one bit per port (all clear:
// every port allowed, so every OUT/IN reaches the host as an exit that names its port) and the
// terminating 0xff byte the CPU requires. IOPL=3 alone is not enough here: KVM on PVM runs the
// guest's user mode with the hardware IOPL at 0 and checks the bitmap.
const TSS_BASE_SIZE = 104;
const IO_BITMAP_BYTES = 65536 / 8;
const TSS_SIZE = TSS_BASE_SIZE + IO_BITMAP_BYTES + 1;

/**
 * Pages only the host (CPL0) may touch: page tables, GDT, IDT (pages 1-6), the TSS with the fault
 * stack, and the stack guard's page table; the trampoline between them is the guest's, read-only.
 */
function isHostPage(page: number): boolean {
  const addr = page * 4096;
  return (addr >= Layout.PML4 && addr < Layout.INFO) || (addr >= Layout.TSS && addr < Layout.HOST_END && addr !== Layout.TRAMPOLINE);
}

/** Unmapped pages right below a native guest's stack: an overflow faults there instead of writing the heap. */
export interface StackGuard {
  /** the first guard page (the heap ends here) */
  start: number;
  /** the end of the guard: the stack's lowest address */
  end: number;
}

const PAGE = 4096;
const REGION = 0x200000; // what one page-directory entry maps
/** The guard's size: 16 pages, fewer only where the stack starts less than that above a 2 MiB boundary. */
export const GUARD_BYTES = 16 * PAGE;

/**
 * The guard below a stack whose lowest address is `stackBottom` (page-aligned): up to 16 pages,
 * never crossing a 2 MiB boundary, so that one page table holds it — at least one page.
 */
export function stackGuard(stackBottom: number): StackGuard {
  const region = Math.floor((stackBottom - 1) / REGION) * REGION;
  return { start: Math.max(stackBottom - GUARD_BYTES, region), end: stackBottom };
}

/**
 * The identity page tables, GDT, IDT and TSS of host-built long mode, as (guest address, bytes)
 * pieces of a template built once per process; the I/O bitmap's zero pages are left out (a fresh
 * memfd reads as zero, and an untouched page costs nothing). With a `guard`, its pages are not
 * mapped: in the first 2 MiB by the template's own page table, above by a page table of its
 * 2 MiB region (Layout.STACK_PT) that the page directory points to instead of a 2 MiB page.
 */
export function longModeTablePieces(guard?: StackGuard): [number, Uint8Array][] {
  // Every virtine of the same memory plan has the same guard, so its tables are made once per
  // process (~90 µs each time here: a copy of the template and a page table of 512 entries) and
  // shared, like the template's: the pieces are only ever read (copied into RAM or a memfd).
  const key = guard ? `${guard.start}:${guard.end}` : "";
  let pieces = guardedPieces.get(key);
  if (!pieces) {
    pieces = buildTablePieces(guard);
    if (guardedPieces.size >= GUARDED_PIECES_KEPT) guardedPieces.clear();
    guardedPieces.set(key, pieces);
  }
  return pieces.slice();
}

/** The table pieces of each guard seen, by "start:end" (a few: one per memory plan in use). */
const guardedPieces = new Map<string, [number, Uint8Array][]>();
/** Past this many plans the cache starts over: a process making virtines of ever new sizes. */
const GUARDED_PIECES_KEPT = 16;

function buildTablePieces(guard: StackGuard | undefined): [number, Uint8Array][] {
  const t = (template ??= buildTemplate());
  const tss: [number, Uint8Array][] = [
    [Layout.TSS, t.tssHead],
    [Layout.TSS + TSS_BASE_SIZE + IO_BITMAP_BYTES, TSS_END],
  ];
  if (!guard) return [[Layout.PML4, t.tables], ...tss];
  if (guard.start % PAGE !== 0 || guard.end % PAGE !== 0 || guard.end <= guard.start || Math.floor(guard.start / REGION) !== Math.floor((guard.end - 1) / REGION)) {
    throw new RangeError(`stack guard [0x${guard.start.toString(16)}, 0x${guard.end.toString(16)}) is not whole pages within one 2 MiB region`);
  }
  const tables = t.tables.slice();
  const dv = new DataView(tables.buffer);
  const entry = (addr: number) => addr - Layout.PML4;
  const region = Math.floor(guard.start / REGION);
  if (region === 0) {
    for (let a = guard.start; a < guard.end; a += PAGE) dv.setUint32(entry(Layout.PT + (a / PAGE) * 8), 0, true);
    return [[Layout.PML4, tables], ...tss];
  }
  if (region >= 512) throw new RangeError(`stack guard at 0x${guard.start.toString(16)} lies beyond the identity map`);
  const pt = new Uint8Array(PAGE);
  const pdv = new DataView(pt.buffer);
  for (let i = 0; i < 512; i++) {
    const a = region * REGION + i * PAGE;
    if (a >= guard.start && a < guard.end) continue; // not present
    pdv.setUint32(i * 8, a | P | RW | US | A | D, true);
  }
  dv.setUint32(entry(Layout.PD + region * 8), Layout.STACK_PT | P | RW | US | A, true);
  return [[Layout.PML4, tables], ...tss, [Layout.STACK_PT, pt]];
}

const TSS_END = new Uint8Array([0xff]); // the byte after the I/O bitmap must have all bits set
let template: { tables: Uint8Array; tssHead: Uint8Array } | undefined;

function buildTemplate(): { tables: Uint8Array; tssHead: Uint8Array } {
  const tables = new Uint8Array(Layout.INFO - Layout.PML4);
  const dv = new DataView(tables.buffer);
  const w = (addr: number, v: bigint) => dv.setBigUint64(addr - Layout.PML4, v, true);
  // the page tables' entries as numbers (see P above): written inline, a call per entry costs too
  const at = (addr: number) => addr - Layout.PML4;
  dv.setUint32(at(Layout.PML4), Layout.PDPT | P | RW | US | A, true);
  dv.setUint32(at(Layout.PDPT), Layout.PD | P | RW | US | A, true);
  // The first 2 MiB through 4 KiB pages: page 0 absent (null pointers fault), the host's pages
  // supervisor-only, the rest user read/write.
  dv.setUint32(at(Layout.PD), Layout.PT | P | RW | US | A, true);
  const pt = at(Layout.PT);
  for (let i = 1; i < 512; i++) {
    const access = isHostPage(i) ? RW : i * 4096 === Layout.TRAMPOLINE ? US : RW | US;
    dv.setUint32(pt + i * 8, (i * 4096) | P | A | D | access, true);
  }
  // The rest of the first GiB in 2 MiB pages. Addresses past guest RAM stay mapped so that an access
  // there reaches KVM as an MMIO exit that names the address, instead of a bare page fault.
  const pd = at(Layout.PD);
  for (let i = 1; i < 512; i++) dv.setUint32(pd + i * 8, (i * REGION) | P | RW | US | PS | A | D, true);
  // GDT: flat segments; descriptor bits per Intel SDM vol. 3, 3.4.5. The accessed bit is set in
  // advance (type 0xb/0x3), for the same reason as the page tables' A/D bits.
  w(Layout.GDT + SEL_KERNEL_CODE, 0x00af9b000000ffffn); // 64-bit code, DPL0
  w(Layout.GDT + SEL_KERNEL_DATA, 0x00cf93000000ffffn); // data, DPL0
  w(Layout.GDT + (SEL_USER_CODE & ~3), 0x00affb000000ffffn); // 64-bit code, DPL3
  w(Layout.GDT + (SEL_USER_DATA & ~3), 0x00cff3000000ffffn); // data, DPL3
  w(Layout.GDT + SEL_TSS, tssDescriptorLow(BigInt(Layout.TSS), BigInt(TSS_SIZE - 1)));
  w(Layout.GDT + SEL_TSS + 8, BigInt(Layout.TSS) >> 32n);
  writeIdt(tables);
  // TSS (Intel SDM vol. 3, 8.7): RSP0 at offset 4, the I/O bitmap's offset at 102.
  const tssHead = new Uint8Array(TSS_BASE_SIZE);
  const tss = new DataView(tssHead.buffer);
  tss.setBigUint64(4, BigInt(Layout.FAULT_STACK_TOP), true);
  tss.setUint16(102, TSS_BASE_SIZE, true);
  return { tables, tssHead };
}

/** Exceptions that push an error code (Intel SDM vol. 3, table 6-1). */
const HAS_ERROR_CODE = new Set([8, 10, 11, 12, 13, 14, 17, 21, 29, 30]);
export const IDT_VECTORS = 32;
const IDT_STUBS = Layout.IDT + IDT_VECTORS * 16;

const STUB_SIZE = 16;

/**
 * A tiny IDT for the 32 exception vectors. Each gate (DPL0 interrupt gate, kernel code) leads to
 * a stub that pushes the vector (and a zero where the CPU pushes no error code), then to common
 * code that saves the guest's RAX-RDX and reports through one exit: `out Port.FAULT` with
 * RAX = vector, RBX = error code, RCX = CR2, RDX = the faulting RIP (see FAULT_FRAME). It runs only on the fault path (at CPL0, emulated under PVM),
 * on the fault stack named by TSS.RSP0.
 */
function writeIdt(tables: Uint8Array): void {
  const at = (addr: number) => addr - Layout.PML4;
  const dv = new DataView(tables.buffer);
  const common = IDT_STUBS + IDT_VECTORS * STUB_SIZE;
  for (let v = 0; v < IDT_VECTORS; v++) {
    const stub = IDT_STUBS + v * STUB_SIZE;
    const code: number[] = [];
    if (!HAS_ERROR_CODE.has(v)) code.push(0x6a, 0x00); // push 0
    code.push(0x6a, v); // push vector
    const rel = common - (stub + code.length + 5);
    code.push(0xe9, rel & 0xff, (rel >> 8) & 0xff, (rel >> 16) & 0xff, (rel >>> 24) & 0xff); // jmp common
    tables.fill(0xcc, at(stub), at(stub) + STUB_SIZE);
    tables.set(code, at(stub));
    // 64-bit interrupt gate: offset 15:0, selector, IST 0, type 0x8e (present, DPL0), offset 31:16, 63:32
    const g = at(Layout.IDT + v * 16);
    dv.setUint16(g, stub & 0xffff, true);
    dv.setUint16(g + 2, SEL_KERNEL_CODE, true);
    dv.setUint8(g + 4, 0);
    dv.setUint8(g + 5, 0x8e);
    dv.setUint16(g + 6, (stub >>> 16) & 0xffff, true);
    dv.setUint32(g + 8, 0, true);
  }
  tables.set(
    [
      0x50, 0x53, 0x51, 0x52, // push rax, rbx, rcx, rdx: the guest's, for the report
      0x48, 0x8b, 0x44, 0x24, 0x20, // mov rax, [rsp+32]: the vector
      0x48, 0x8b, 0x5c, 0x24, 0x28, // mov rbx, [rsp+40]: the error code
      0x48, 0x8b, 0x54, 0x24, 0x30, // mov rdx, [rsp+48]: the faulting RIP
      0x0f, 0x20, 0xd1, // mov rcx, cr2
      0xe6, Port.FAULT, // out Port.FAULT, al
      0xeb, 0xfe, // jmp $ (the host never resumes it)
    ],
    at(common),
  );
}

/**
 * The fault stack as the handlers leave it, in 8-byte slots from RSP at the report: the saved
 * RDX, RCX, RBX, RAX, then the vector and error code, then the CPU's frame (RIP, CS, RFLAGS, RSP, SS).
 */
export const FAULT_FRAME = { rdx: 0, rcx: 1, rbx: 2, rax: 3, vector: 4, error: 5, rip: 6, cs: 7, rflags: 8, rsp: 9, ss: 10 } as const;

function tssDescriptorLow(base: bigint, limit: bigint): bigint {
  const type = 0x8bn; // present, 64-bit TSS, busy (as TR is loaded)
  return (limit & 0xffffn) | ((base & 0xffffffn) << 16n) | (type << 40n) | (((limit >> 16n) & 0xfn) << 48n) | (((base >> 24n) & 0xffn) << 56n);
}

/** What an entry state is built from: a fresh vCPU's special registers and XSAVE area, and the XCR0 a CPL3 guest runs with (struct kvm_xcrs; none: x87 and SSE only). */
export interface EntryReset {
  sregs: Uint8Array;
  fpu: Uint8Array;
  xcrs?: Uint8Array;
}

const sregsCache = new WeakMap<Uint8Array, { long?: Uint8Array; longXsave?: Uint8Array; real?: Uint8Array }>();

/**
 * The special registers of host-built CPL3 long mode, starting from a vCPU's reset state (cached);
 * with `osxsave`, CR4.OSXSAVE set (the XCR0 of the guest's shells enables more than x87 and SSE).
 */
export function longModeSregs(resetState: Uint8Array, osxsave: boolean): Uint8Array {
  const c = sregsCache.get(resetState) ?? {};
  sregsCache.set(resetState, c);
  if (osxsave) c.longXsave ??= buildLongModeSregs(resetState, CR4_OSXSAVE);
  else c.long ??= buildLongModeSregs(resetState, 0n);
  return (osxsave ? c.longXsave : c.long) as Uint8Array;
}

/** Real mode with every segment at base 0 (the reset state has CS at 0xffff0000); cached. */
export function realModeSregs(resetState: Uint8Array): Uint8Array {
  const c = sregsCache.get(resetState) ?? {};
  sregsCache.set(resetState, c);
  c.real ??= buildRealModeSregs(resetState);
  return c.real;
}

function buildLongModeSregs(resetState: Uint8Array, cr4Extra: bigint): Uint8Array {
  const sregs = resetState.slice();
  const dv = new DataView(sregs.buffer);
  const code = { base: 0, limit: 0xffffffff, selector: SEL_USER_CODE, type: 11, present: 1, dpl: 3, db: 0, s: 1, l: 1, g: 1, avl: 0, unusable: 0 };
  const data = { base: 0, limit: 0xffffffff, selector: SEL_USER_DATA, type: 3, present: 1, dpl: 3, db: 1, s: 1, l: 0, g: 1, avl: 0, unusable: 0 };
  kvm_segment.write(dv, kvm_sregs.off("cs"), code);
  for (const seg of ["ds", "es", "fs", "gs", "ss"] as const) kvm_segment.write(dv, kvm_sregs.off(seg), data);
  kvm_segment.write(dv, kvm_sregs.off("tr"), {
    base: Layout.TSS, limit: TSS_SIZE - 1, selector: SEL_TSS, type: 11, present: 1, dpl: 0, db: 0, s: 0, l: 0, g: 0, avl: 0, unusable: 0,
  });
  kvm_dtable.write(dv, kvm_sregs.off("gdt"), { base: Layout.GDT, limit: GDT_ENTRIES * 8 - 1 });
  kvm_dtable.write(dv, kvm_sregs.off("idt"), { base: Layout.IDT, limit: IDT_VECTORS * 16 - 1 });
  kvm_sregs.write(dv, 0, {
    cr0: CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_PG,
    cr3: Layout.PML4,
    cr4: CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT | cr4Extra,
    efer: EFER_LME | EFER_LMA,
    cr2: 0,
  });
  return sregs;
}

function buildRealModeSregs(resetState: Uint8Array): Uint8Array {
  const sregs = resetState.slice();
  const dv = new DataView(sregs.buffer);
  for (const seg of ["cs", "ds", "es", "fs", "gs", "ss"] as const) {
    kvm_segment.write(dv, kvm_sregs.off(seg), { base: 0, selector: 0, limit: 0xffff });
  }
  return sregs;
}

/** Where in the trampoline page the jump target and the XSAVE (or FXSAVE) image sit. */
const TRAMPOLINE_TARGET = Layout.TRAMPOLINE + 0x40;
const TRAMPOLINE_FX = Layout.TRAMPOLINE + TRAMPOLINE_XSAVE_AT; // FXRSTOR needs 16-byte alignment, XRSTOR 64
/** The trampoline's code and its filler: the bytes before the jump target. */
export const TRAMPOLINE_CODE_BYTES = TRAMPOLINE_TARGET - Layout.TRAMPOLINE;
/** The legacy (FXSAVE) part of an XSAVE area: x87, MXCSR, XMM0-15. */
const FXSAVE_BYTES = 512;

/**
 * The entry trampoline of a CPL3 guest: it loads the FPU/SSE/AVX state `xsave`, then `jmp [target]`
 * goes to `target` with every general register and RFLAGS untouched. Starting each call here resets
 * that state natively, in the guest, instead of by a KVM_SET_XSAVE ioctl (~5 µs here) per reset.
 *
 * With `xrstor` (the guest runs with CR4.OSXSAVE and an XCR0 beyond x87 and SSE), `xrstor64` loads
 * every feature XCR0 enables — a feature the area marks unused (XSTATE_BV) is set to its initial
 * state — so no call's AVX registers reach the next. XRSTOR takes its feature mask in EDX:EAX: the
 * trampoline saves both on the guest's stack below its red zone (the 128 bytes under RSP that a
 * leaf function may use; what lies below them is free by the ABI, as a signal frame would be), sets
 * the mask to all ones (XCR0 bounds it), and puts them back. Without `xrstor`, `fxrstor64` loads the
 * legacy part (x87, MXCSR, XMM0-15), all a guest has then.
 */
export function trampolinePage(target: bigint, xsave: Uint8Array, xrstor: boolean): Uint8Array {
  const page = new Uint8Array(4096);
  fillTrampoline(page, 0, target, xsave, xrstor);
  return page;
}

/** Writes the trampoline page (see trampolinePage) into guest RAM. */
export function writeTrampoline(ram: Uint8Array, target: bigint, xsave: Uint8Array, xrstor: boolean): void {
  fillTrampoline(ram, Layout.TRAMPOLINE, target, xsave, xrstor);
}

const abs32 = (a: number) => [a & 0xff, (a >> 8) & 0xff, (a >> 16) & 0xff, (a >>> 24) & 0xff];

/** The trampoline's code: every byte before the jump target (0xcc after the code). */
export function trampolineCode(xrstor: boolean): Uint8Array {
  const t = Layout.TRAMPOLINE;
  const fx = TRAMPOLINE_FX;
  const code = xrstor
    ? [
        0x48, 0x8d, 0x64, 0x24, 0x80, // lea rsp, [rsp - 128]: past the red zone
        0x50, // push rax
        0x52, // push rdx
        0xb8, 0xff, 0xff, 0xff, 0xff, // mov eax, -1
        0xba, 0xff, 0xff, 0xff, 0xff, // mov edx, -1: every feature XCR0 enables
        0x48, 0x0f, 0xae, 0x2c, 0x25, ...abs32(fx), // xrstor64 [fx]
        0x5a, // pop rdx
        0x58, // pop rax
        0x48, 0x8d, 0xa4, 0x24, 0x80, 0x00, 0x00, 0x00, // lea rsp, [rsp + 128]
        0xff, 0x25, // jmp qword [rip + disp32]
      ]
    : [
        0x48, 0x0f, 0xae, 0x0c, 0x25, ...abs32(fx), // fxrstor64 [fx]
        0xff, 0x25, // jmp qword [rip + disp32]
      ];
  code.push(...abs32(TRAMPOLINE_TARGET - (t + code.length + 4)));
  const out = new Uint8Array(TRAMPOLINE_CODE_BYTES).fill(0xcc);
  out.set(code);
  return out;
}

/** Writes the trampoline page's contents at `base` of `buf` (guest addresses in the code stay absolute). */
function fillTrampoline(buf: Uint8Array, base: number, target: bigint, xsave: Uint8Array, xrstor: boolean): void {
  const t = Layout.TRAMPOLINE;
  const at = (addr: number) => base + addr - t;
  buf.set(trampolineCode(xrstor), at(t));
  new DataView(buf.buffer, buf.byteOffset).setBigUint64(at(TRAMPOLINE_TARGET), target, true);
  // the whole area XCR0's features may use (xfeatures.ts keeps them within the page), or the legacy part
  const room = 4096 - TRAMPOLINE_XSAVE_AT;
  buf.set(xsave.subarray(0, xrstor ? Math.min(room, xsave.length) : FXSAVE_BYTES), at(TRAMPOLINE_FX));
}
