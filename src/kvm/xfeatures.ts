// The XSAVE features a CPL3 guest (a native image, a Linux program) runs with: what wasp enables in
// XCR0 and CR4.OSXSAVE for it, from what KVM supports here, so that the CPUID it reads — the
// supported CPUID, whose OSXSAVE bit KVM derives from CR4 — agrees with what it may execute
// (glibc, OpenSSL and Zig's std choose their AVX and AES-NI paths by CPUID and XGETBV). A CPL3
// guest cannot change XCR0 (XSETBV is privileged), so it is loaded once per shell; the registers
// the features add are reset per call by the entry trampoline's XRSTOR (image/boot.ts).
import { kvm_cpuid2, kvm_cpuid_entry2, kvm_xcrs } from "../../ffi/kvm.ts";

/** XCR0's bits (Intel SDM vol. 1, 13.1): x87, SSE, AVX, and AVX-512's opmask, ZMM_Hi256, Hi16_ZMM. */
export const XFEATURE = { X87: 1n, SSE: 2n, AVX: 4n, OPMASK: 0x20n, ZMM_HI256: 0x40n, HI16_ZMM: 0x80n } as const;
const AVX512 = XFEATURE.OPMASK | XFEATURE.ZMM_HI256 | XFEATURE.HI16_ZMM;
/**
 * The user-state features wasp gives a CPL3 guest. Not MPX (deprecated, bits 3-4), not PKRU (bit 9:
 * CR4.PKE stays off), not AMX (bits 17-18: the host process would need arch_prctl's permission, and
 * its 8 KiB of tiles do not fit the trampoline page); the supervisor states are XSS's, not XCR0's.
 */
export const USER_XFEATURES = XFEATURE.X87 | XFEATURE.SSE | XFEATURE.AVX | AVX512;

/** CPUID.1:ECX's XSAVE bit (the CPU has XSAVE/XRSTOR and XCR0) and its OSXSAVE bit (CR4.OSXSAVE). */
export const CPUID1_ECX_XSAVE = 1 << 26;
export const CPUID1_ECX_OSXSAVE = 1 << 27;

/**
 * Where in the entry trampoline's page the XSAVE area it loads sits (64-byte aligned, as XRSTOR
 * needs): the features a CPL3 guest gets must fit between it and the page's end.
 */
export const TRAMPOLINE_XSAVE_AT = 0x100;

/** The legacy region and the XSAVE header: where the first extended component may start. */
const XSAVE_LEGACY_AND_HEADER = 576;

/** One register of a kvm_cpuid2 buffer's entry for `leaf` (subleaf `index`), or 0 if it has none. */
export function cpuidEntryRegister(cpuid: Uint8Array, leaf: number, reg: "eax" | "ebx" | "ecx" | "edx", index = 0): number {
  const dv = new DataView(cpuid.buffer, cpuid.byteOffset, cpuid.byteLength);
  const nent = dv.getUint32(kvm_cpuid2.off("nent"), true);
  for (let i = 0; i < nent; i++) {
    const at = kvm_cpuid2.size + i * kvm_cpuid_entry2.size;
    if (at + kvm_cpuid_entry2.size > cpuid.byteLength) break;
    if (dv.getUint32(at + kvm_cpuid_entry2.off("function"), true) === leaf && dv.getUint32(at + kvm_cpuid_entry2.off("index"), true) === index) {
      return dv.getUint32(at + kvm_cpuid_entry2.off(reg), true);
    }
  }
  return 0;
}

/** CPUID.1:ECX's AVX bit. */
const CPUID1_ECX_AVX = 1 << 28;

/**
 * The CPUID a vCPU is given (KVM_SET_CPUID2): KVM_GET_SUPPORTED_CPUID's answer, with CPUID.1:ECX's
 * XSAVE bit (and AVX's, with AVX's state) set where KVM can save and set XCR0 (`canSetXcrs`:
 * KVM_CAP_XSAVE and KVM_CAP_XCRS) and its leaf 0xD supports more than x87 and SSE. KVM on PVM leaves
 * XSAVE out of its answer (with AES-NI, AVX and most of leaf 1's ECX) though its leaf 0xD supports
 * XCR0 0x7 and it takes CR4.OSXSAVE and XCR0 once the bit is set; a CPL3 guest there sees the CPU's
 * own features in CPUID and can execute AVX whatever wasp enables (measured, docs/linux-guests.md,
 * "CPU features"). KVM takes the guest's OSXSAVE bit from its CR4 at every CPUID.
 */
export function guestCpuid(supported: Uint8Array, canSetXcrs: boolean): Uint8Array {
  const out = supported.slice();
  const xcr0 = supportedXcr0Of(out);
  if (!canSetXcrs || (xcr0 & (XFEATURE.X87 | XFEATURE.SSE | XFEATURE.AVX)) !== (XFEATURE.X87 | XFEATURE.SSE | XFEATURE.AVX)) return out;
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const nent = dv.getUint32(kvm_cpuid2.off("nent"), true);
  for (let i = 0; i < nent; i++) {
    const at = kvm_cpuid2.size + i * kvm_cpuid_entry2.size;
    if (at + kvm_cpuid_entry2.size > out.byteLength) break;
    if (dv.getUint32(at + kvm_cpuid_entry2.off("function"), true) !== 1) continue;
    const ecx = at + kvm_cpuid_entry2.off("ecx");
    dv.setUint32(ecx, (dv.getUint32(ecx, true) | CPUID1_ECX_XSAVE | CPUID1_ECX_AVX) >>> 0, true);
  }
  return out;
}

/** The XSAVE features (XCR0 bits) KVM lets a guest enable: CPUID leaf 0xD, subleaf 0, EDX:EAX. */
export function supportedXcr0Of(cpuid: Uint8Array): bigint {
  return (BigInt(cpuidEntryRegister(cpuid, 0xd, "edx")) << 32n) | BigInt(cpuidEntryRegister(cpuid, 0xd, "eax"));
}

/** Where component `bit`'s state ends in the standard (non-compacted) XSAVE format: CPUID 0xD.bit's EBX (offset) + EAX (size). */
export function xsaveComponentEnd(cpuid: Uint8Array, bit: number): number {
  if (bit < 2) return XSAVE_LEGACY_AND_HEADER;
  return cpuidEntryRegister(cpuid, 0xd, "ebx", bit) + cpuidEntryRegister(cpuid, 0xd, "eax", bit);
}

/** The bytes of a standard-format XSAVE area that hold the features of `xcr0`. */
export function xsaveBytes(cpuid: Uint8Array, xcr0: bigint): number {
  let end = XSAVE_LEGACY_AND_HEADER;
  for (let bit = 2; bit < 64; bit++) if ((xcr0 >> BigInt(bit)) & 1n) end = Math.max(end, xsaveComponentEnd(cpuid, bit));
  return end;
}

/**
 * The XCR0 a CPL3 guest runs with: USER_XFEATURES that KVM supports (AVX only with SSE, AVX-512's
 * three states together, as XSETBV requires), each fitting in `room` bytes of XSAVE area (the
 * trampoline's); 0 when the guest's CPU has no XSAVE, or KVM cannot set XCR0 (then CR4.OSXSAVE
 * stays off and the guest gets x87 and SSE alone, as before).
 */
export function userXcr0(cpuid: Uint8Array, canSetXcrs: boolean, room: number): bigint {
  if (!canSetXcrs || (cpuidEntryRegister(cpuid, 1, "ecx") & CPUID1_ECX_XSAVE) === 0) return 0n;
  let xcr0 = supportedXcr0Of(cpuid) & USER_XFEATURES;
  if ((xcr0 & (XFEATURE.X87 | XFEATURE.SSE)) !== (XFEATURE.X87 | XFEATURE.SSE)) return 0n;
  if ((xcr0 & AVX512) !== AVX512 || !(xcr0 & XFEATURE.AVX)) xcr0 &= ~AVX512;
  for (let bit = 2; bit < 8; bit++) {
    if ((xcr0 >> BigInt(bit)) & 1n && xsaveComponentEnd(cpuid, bit) > room) xcr0 &= bit === 2 ? ~(XFEATURE.AVX | AVX512) : ~AVX512;
  }
  return xcr0;
}

/** XSTATE_BV's offset in an XSAVE area (the header after the legacy region): the features it holds state of. */
const XSTATE_BV = 512;

/**
 * Keeps an XSAVE area's XSTATE_BV within `xcr0`: XRSTOR faults on a feature the area holds that XCR0
 * does not enable (KVM's area may mark one its host saved), and a feature marked unused is loaded
 * in its initial state, which a guest without it could not have left otherwise.
 */
export function limitXstate(xsave: Uint8Array, xcr0: bigint): void {
  const dv = new DataView(xsave.buffer, xsave.byteOffset, xsave.byteLength);
  dv.setBigUint64(XSTATE_BV, dv.getBigUint64(XSTATE_BV, true) & xcr0, true);
}

/** A struct kvm_xcrs setting XCR0 alone to `xcr0`. */
export function xcrsOf(xcr0: bigint): Uint8Array {
  const buf = new Uint8Array(kvm_xcrs.size);
  const dv = new DataView(buf.buffer);
  dv.setUint32(kvm_xcrs.off("nr_xcrs"), 1, true);
  // xcrs[0] = { u32 xcr (0: XCR0), u32 reserved, u64 value }
  dv.setBigUint64(kvm_xcrs.off("xcrs") + 8, xcr0, true);
  return buf;
}

/** XCR0 in a struct kvm_xcrs (0 if it lists none). */
export function xcr0Of(xcrs: Uint8Array): bigint {
  const dv = new DataView(xcrs.buffer, xcrs.byteOffset, xcrs.byteLength);
  const n = Math.min(dv.getUint32(kvm_xcrs.off("nr_xcrs"), true), 16);
  for (let i = 0; i < n; i++) {
    const at = kvm_xcrs.off("xcrs") + i * 16;
    if (dv.getUint32(at, true) === 0) return dv.getBigUint64(at + 8, true);
  }
  return 0n;
}
