// What the CPU state in a snapshot file may be. A file is input like any other: well-formed (its
// header CRC recomputed) it can still claim anything. Each check here holds a field to what wasp
// itself would have written, so that a file can never make the host give a guest more than its
// image kind gets: a native (CPL3) guest runs on the host's own page tables, descriptor tables and
// control registers, whatever the file says; and a privileged (raw) guest's state is restored in
// full by every reset, whatever the file lists. Every failure is one line naming the field.
import { kvm_msr_entry, kvm_msrs, kvm_sregs, kvm_segment, XSAVE_MXCSR } from "../../ffi/kvm.ts";
import { SEL_USER_DATA, TRAMPOLINE_CODE_BYTES, longModeTablePieces, trampolineCode, type StackGuard } from "../image/boot.ts";
import { GUEST_WRITABLE_MSRS, type PrivilegedState } from "../kvm/system.ts";
import { Layout } from "../abi/guest-abi.ts";

/** What this host would have written, to compare a file with. */
export interface HostState {
  /** the special registers of host-built CPL3 long mode */
  longModeSregs: Uint8Array;
  /** a fresh vCPU's model-specific registers (GUEST_WRITABLE_MSRS, struct kvm_msrs) */
  resetMsrs: Uint8Array;
  /** a fresh vCPU's privileged state (Kvm.privilegedResetState), asked only for a raw image's file */
  privileged: () => PrivilegedState;
  /** the XSAVE features KVM lets a guest enable */
  supportedXcr0: bigint;
  /** the XCR0 a CPL3 guest runs with here (Kvm.userXcr0; 0: XSAVE off, CR4.OSXSAVE clear) */
  userXcr0: bigint;
  /** the MXCSR bits this CPU accepts (FXSAVE's MXCSR_MASK) */
  mxcsrMask: number;
}

// The XSAVE area (Intel SDM vol. 1, 13.4): the legacy part, then a 64-byte header at 512 with
// XSTATE_BV and XCOMP_BV; the rest of the header is reserved and must be zero.
const MXCSR_MASK_AT = 28;
const XSTATE_BV = 512;
const XCOMP_BV = 520;
const HEADER_RESERVED = [528, 576] as const;
/** MXCSR_MASK when the CPU stores 0 there (Intel SDM vol. 1, 11.6.6). */
const DEFAULT_MXCSR_MASK = 0xffbf;

/** The MXCSR bits a CPU accepts, from an XSAVE area it wrote. */
export function mxcsrMaskOf(xsave: Uint8Array): number {
  const m = new DataView(xsave.buffer, xsave.byteOffset).getUint32(MXCSR_MASK_AT, true);
  return m === 0 ? DEFAULT_MXCSR_MASK : m;
}

/**
 * An XSAVE area KVM_SET_XSAVE takes and a reset can always load: MXCSR within the CPU's mask,
 * only supported features, the standard (not compacted) format, the reserved header bytes zero.
 */
export function checkXsave(xsave: Uint8Array, host: HostState): string | undefined {
  const dv = new DataView(xsave.buffer, xsave.byteOffset, xsave.byteLength);
  const mxcsr = dv.getUint32(XSAVE_MXCSR, true);
  if ((mxcsr & ~host.mxcsrMask) >>> 0 !== 0) return `MXCSR 0x${mxcsr.toString(16)} sets bits this CPU does not have (mask 0x${host.mxcsrMask.toString(16)})`;
  const bv = dv.getBigUint64(XSTATE_BV, true);
  if ((bv & ~host.supportedXcr0) !== 0n) return `the XSAVE area holds features 0x${bv.toString(16)} beyond what KVM supports (0x${host.supportedXcr0.toString(16)})`;
  if (dv.getBigUint64(XCOMP_BV, true) !== 0n) return "the XSAVE area is in the compacted format";
  for (let i = HEADER_RESERVED[0]; i < HEADER_RESERVED[1]; i++) if (xsave[i] !== 0) return "the XSAVE header's reserved bytes are not zero";
  return undefined;
}

const X87_SSE = 3n;
const AVX = 4n;
const AVX512 = 0xe0n;

/**
 * The XCR0 a file carries (offset 232): for a CPL3 guest (`cpl3`) the one it ran with, which this
 * host must enable too — wasp's choice, never the guest's, so at most this host's, with x87 and SSE,
 * and 0 exactly when XSAVE is off here as there (the special registers' CR4.OSXSAVE must match) —
 * with the XSAVE area's features (XSTATE_BV) within it, as the trampoline's XRSTOR requires; for a
 * privileged guest the one it set with XSETBV (0: a KVM without XCRS wrote it, the fresh vCPU's is
 * loaded), which XSETBV itself would have taken: x87 on, AVX only with SSE, AVX-512's three states
 * together and with AVX, nothing KVM does not support.
 */
export function checkXcr0(xcr0: bigint, xsave: Uint8Array, cpl3: boolean, host: HostState): string | undefined {
  const hex = (v: bigint) => `0x${v.toString(16)}`;
  const xstateBv = new DataView(xsave.buffer, xsave.byteOffset, xsave.byteLength).getBigUint64(XSTATE_BV, true);
  if (cpl3) {
    if (xcr0 === 0n && host.userXcr0 !== 0n) return `XCR0 is 0: the file was written where XSAVE was off for CPL3 guests, and this host enables ${hex(host.userXcr0)}; write it again here`;
    if (xcr0 !== 0n && host.userXcr0 === 0n) return `XCR0 ${hex(xcr0)}: the file needs XSAVE features, which this host does not enable for CPL3 guests`;
    if (xcr0 === 0n) return undefined;
    if ((xcr0 & ~host.userXcr0) !== 0n) return `XCR0 ${hex(xcr0)} enables features this host does not give CPL3 guests (${hex(host.userXcr0)})`;
    if ((xcr0 & X87_SSE) !== X87_SSE) return `XCR0 ${hex(xcr0)} lacks x87 or SSE`;
    if ((xstateBv & ~xcr0) !== 0n) return `the XSAVE area holds features ${hex(xstateBv)} beyond its XCR0 ${hex(xcr0)}`;
    return undefined;
  }
  if (xcr0 === 0n) return undefined;
  if (!host.privileged().xcrs) return `XCR0 ${hex(xcr0)} is recorded, and KVM here cannot restore it (no KVM_CAP_XCRS)`;
  if ((xcr0 & 1n) === 0n) return `XCR0 ${hex(xcr0)} has x87 (bit 0) clear`;
  if ((xcr0 & ~host.supportedXcr0) !== 0n) return `XCR0 ${hex(xcr0)} enables features KVM does not support (${hex(host.supportedXcr0)})`;
  if ((xcr0 & AVX) !== 0n && (xcr0 & 2n) === 0n) return `XCR0 ${hex(xcr0)} enables AVX without SSE`;
  if ((xcr0 & AVX512) !== 0n && ((xcr0 & AVX512) !== AVX512 || (xcr0 & AVX) === 0n)) return `XCR0 ${hex(xcr0)} enables part of AVX-512's state, or it without AVX`;
  return undefined;
}

/**
 * A CPL3 guest's trampoline page (its own code, at CPL3) must hold the host's trampoline code: it
 * is what resets the FPU/SSE/AVX registers at every call's entry, so a file cannot carry one that
 * leaves them to the next call. Its jump target and XSAVE area are the guest's.
 */
export function checkTrampoline(page: Uint8Array, host: HostState): string | undefined {
  const want = trampolineCode(host.userXcr0 !== 0n);
  const got = page.subarray(0, TRAMPOLINE_CODE_BYTES);
  return same(got, want) ? undefined : `the trampoline page at 0x${Layout.TRAMPOLINE.toString(16)} does not hold the host's trampoline code`;
}

/**
 * The model-specific registers a reset restores: always every one of `base` (a fresh vCPU's: for a
 * privileged guest every register KVM restores), with the file's values where it has them. The
 * file may list only GUEST_WRITABLE_MSRS, each once, with its reserved field zero. Returns the
 * struct kvm_msrs, or why not.
 */
export function mergeMsrs(file: Uint8Array, count: number, base: Uint8Array): Uint8Array | string {
  const out = base.slice();
  const odv = new DataView(out.buffer);
  const nOut = odv.getUint32(kvm_msrs.off("nmsrs"), true);
  const fdv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const seen = new Set<number>();
  for (let i = 0; i < count; i++) {
    const at = kvm_msrs.size + i * kvm_msr_entry.size;
    const index = fdv.getUint32(at + kvm_msr_entry.off("index"), true);
    if (!(GUEST_WRITABLE_MSRS as readonly number[]).includes(index)) return `model-specific register 0x${index.toString(16)} is not one wasp restores`;
    if (seen.has(index)) return `model-specific register 0x${index.toString(16)} is listed twice`;
    seen.add(index);
    if (fdv.getUint32(at + kvm_msr_entry.off("reserved"), true) !== 0) return `model-specific register 0x${index.toString(16)} has a non-zero reserved field`;
    const value = fdv.getBigUint64(at + kvm_msr_entry.off("data"), true);
    const wrong = msrValueProblem(index, value);
    if (wrong) return `model-specific register 0x${index.toString(16)} ${wrong}`;
    let placed = false;
    for (let j = 0; j < nOut; j++) {
      const o = kvm_msrs.size + j * kvm_msr_entry.size;
      if (odv.getUint32(o + kvm_msr_entry.off("index"), true) !== index) continue;
      odv.setBigUint64(o + kvm_msr_entry.off("data"), value, true);
      placed = true;
    }
    if (!placed) return `model-specific register 0x${index.toString(16)} is not one this KVM lets wasp restore`;
  }
  return out;
}

/** The MSRs that hold an address: it must be canonical (48-bit, sign-extended). */
const ADDRESS_MSRS = new Set([0xc0000082, 0xc0000083, 0xc0000100, 0xc0000101, 0xc0000102, 0x175, 0x176]);
/** PAT's valid memory types: UC, WC, WT, WP, WB, UC- (2, 3 and 8 and up are reserved). */
const PAT_TYPES = new Set([0, 1, 4, 5, 6, 7]);

/**
 * Why `value` cannot be MSR `index`'s, or undefined. Checked by wasp itself, not left to KVM: KVM on
 * hardware refuses such values, but KVM on PVM was seen to take a reserved PAT type.
 */
function msrValueProblem(index: number, value: bigint): string | undefined {
  if (ADDRESS_MSRS.has(index)) {
    const top = value >> 47n;
    if (top !== 0n && top !== (1n << 17n) - 1n) return `holds a non-canonical address 0x${value.toString(16)}`;
  }
  if (index === 0x277) {
    for (let i = 0n; i < 8n; i++) if (!PAT_TYPES.has(Number((value >> (8n * i)) & 0xffn))) return `(PAT) holds a reserved memory type in entry ${i}`;
  }
  return undefined;
}

const SEGMENT_BYTES = kvm_segment.size;
const sregsBytes = (s: Uint8Array, field: Parameters<typeof kvm_sregs.off>[0], len: number) => s.subarray(kvm_sregs.off(field), kvm_sregs.off(field) + len);
const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((v, i) => v === b[i]);

/**
 * A native guest's special registers: those of the host's CPL3 long mode (code and stack segment,
 * TSS, LDT, GDT, IDT, CR0, CR3, CR4, EFER), no interrupt pending. The data segments are the one
 * thing a CPL3 guest may have changed: each holds the user data selector or a null one.
 */
export function checkNativeSregs(sregs: Uint8Array, host: HostState): string | undefined {
  for (const seg of ["cs", "ss", "tr", "ldt"] as const) {
    if (!same(sregsBytes(sregs, seg, SEGMENT_BYTES), sregsBytes(host.longModeSregs, seg, SEGMENT_BYTES))) return `the ${seg.toUpperCase()} segment is not the host's CPL3 long-mode one`;
  }
  for (const table of ["gdt", "idt"] as const) {
    if (!same(sregsBytes(sregs, table, 10), sregsBytes(host.longModeSregs, table, 10))) return `the ${table.toUpperCase()} register is not the host's`;
  }
  const dv = new DataView(sregs.buffer, sregs.byteOffset, sregs.byteLength);
  const hv = new DataView(host.longModeSregs.buffer, host.longModeSregs.byteOffset);
  for (const reg of ["cr0", "cr3", "cr4", "efer"] as const) {
    const got = dv.getBigUint64(kvm_sregs.off(reg), true);
    const want = hv.getBigUint64(kvm_sregs.off(reg), true);
    if (got !== want) return `${reg.toUpperCase()} is 0x${got.toString(16)}, not the host's 0x${want.toString(16)}`;
  }
  for (const seg of ["ds", "es", "fs", "gs"] as const) {
    const selector = dv.getUint16(kvm_sregs.off(seg) + kvm_segment.off("selector"), true);
    if (selector === 0) continue;
    if (selector !== SEL_USER_DATA || !same(sregsBytes(sregs, seg, SEGMENT_BYTES), sregsBytes(host.longModeSregs, "ds", SEGMENT_BYTES))) {
      return `the ${seg.toUpperCase()} segment (selector 0x${selector.toString(16)}) is neither null nor the host's user data segment`;
    }
  }
  if (sregsBytes(sregs, "interrupt_bitmap", 32).some((b) => b !== 0)) return "an interrupt is pending";
  return undefined;
}

/**
 * A native guest's host pages — page tables (with its stack guard unmapped), GDT, IDT and its
 * handlers, TSS with its I/O bitmap, the fault stack, the guard's page table — must be exactly the
 * host's, byte for byte: they are what keeps the guest at CPL3. `memory` is the snapshot's memory
 * from guest-physical 0 (at least up to Layout.HOST_END). The trampoline page is the guest's own
 * code (it runs at CPL3) and is not compared.
 */
export function checkHostPages(memory: Uint8Array, guard: StackGuard | undefined): string | undefined {
  for (const [at, bytes] of hostPages(guard)) {
    const got = memory.subarray(at, at + bytes.length);
    if (Buffer.compare(got, bytes) === 0) continue;
    let i = 0;
    while (got[i] === bytes[i]) i++;
    return `the host page at 0x${((at + i) & ~0xfff).toString(16)} differs from the host's own (byte 0x${(at + i).toString(16)})`;
  }
  return undefined;
}

/** The host's pages as they must be: [PML4, INFO), [TSS, TRAMPOLINE) and [STACK_PT, HOST_END). */
function hostPages(guard: StackGuard | undefined): [number, Uint8Array][] {
  const ranges: [number, number][] = [
    [Layout.PML4, Layout.INFO],
    [Layout.TSS, Layout.TRAMPOLINE],
    [Layout.STACK_PT, Layout.HOST_END],
  ];
  const out = ranges.map(([start, end]): [number, Uint8Array] => [start, new Uint8Array(end - start)]);
  for (const [at, bytes] of longModeTablePieces(guard)) {
    const r = out.find(([start, buf]) => at >= start && at + bytes.length <= start + buf.length);
    if (!r) throw new RangeError(`a host table piece at 0x${at.toString(16)} lies outside the host's pages`);
    r[1].set(bytes, at - r[0]);
  }
  return out;
}

/** EFER bits a Linux guest runs with beyond native long mode's: SYSCALL (SCE) and NX (NXE). */
const EFER_LINUX = 1n | (1n << 11n);

/**
 * A Linux guest's special registers: a native guest's (checkNativeSregs), with SYSCALL and NX
 * enabled in EFER, and FS and GS bases anywhere in the user half (arch_prctl sets them for TLS).
 */
export function checkLinuxSregs(sregs: Uint8Array, host: HostState): string | undefined {
  const copy = sregs.slice();
  const dv = new DataView(copy.buffer);
  const hv = new DataView(host.longModeSregs.buffer, host.longModeSregs.byteOffset);
  const efer = dv.getBigUint64(kvm_sregs.off("efer"), true);
  const want = hv.getBigUint64(kvm_sregs.off("efer"), true) | EFER_LINUX;
  if (efer !== want) return `EFER is 0x${efer.toString(16)}, not the host's 0x${want.toString(16)}`;
  dv.setBigUint64(kvm_sregs.off("efer"), hv.getBigUint64(kvm_sregs.off("efer"), true), true);
  for (const seg of ["fs", "gs"] as const) {
    const at = kvm_sregs.off(seg) + kvm_segment.off("base");
    const base = dv.getBigUint64(at, true);
    if (base >= 1n << 47n) return `the ${seg.toUpperCase()} base 0x${base.toString(16)} is not a user address`;
    // the rest of the segment is held to the native rules
    dv.setBigUint64(at, hv.getBigUint64(kvm_sregs.off("ds") + kvm_segment.off("base"), true), true);
  }
  return checkNativeSregs(copy, host);
}
