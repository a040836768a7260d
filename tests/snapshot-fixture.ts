// Synthetic snapshot files for the tests that need no VM: a header this host accepts (for the host
// state and CPU described here), and the memory a native image's file holds.
import { HEADER, DATA_OFFSET, FORMAT_VERSION, SNAPSHOT_MAGIC, FLAG_NATIVE, FLAG_PRIVILEGED } from "../src/snapshot/file.ts";
import type { HostState } from "../src/snapshot/file-state.ts";
import { longModeSregs } from "../src/image/boot.ts";
import { kvm_msr_entry, kvm_msrs, kvm_sregs, XSAVE_MXCSR } from "../ffi/kvm.ts";
import { GUEST_WRITABLE_MSRS } from "../src/kvm/system.ts";
import { xcrsOf } from "../src/kvm/xfeatures.ts";
import type { CpuIdentity } from "../src/snapshot/cpu.ts";

export const MEM = 16 * 1024 * 1024;
export const cpu: CpuIdentity = { vendor: "AuthenticAMD", features: [1, 2, 3, 4, 5, 6, 7] };

function resetMsrs(): Uint8Array {
  const buf = new Uint8Array(kvm_msrs.size + GUEST_WRITABLE_MSRS.length * kvm_msr_entry.size);
  const dv = new DataView(buf.buffer);
  dv.setUint32(0, GUEST_WRITABLE_MSRS.length, true);
  GUEST_WRITABLE_MSRS.forEach((index, i) => dv.setUint32(kvm_msrs.size + i * kvm_msr_entry.size, index, true));
  return buf;
}
const privilegedMsrs = (() => {
  const indices = [...GUEST_WRITABLE_MSRS, 0x10, 0x1a0, 0xc0000103]; // and TSC, MISC_ENABLE, TSC_AUX
  const buf = new Uint8Array(kvm_msrs.size + indices.length * kvm_msr_entry.size);
  const dv = new DataView(buf.buffer);
  dv.setUint32(0, indices.length, true);
  indices.forEach((index, i) => dv.setUint32(kvm_msrs.size + i * kvm_msr_entry.size, index, true));
  return buf;
})();
/** A host like this machine: XSAVE on for CPL3 guests with x87, SSE and AVX (XCR0 7), KVM_CAP_XCRS. */
export const host: HostState = {
  longModeSregs: longModeSregs(new Uint8Array(kvm_sregs.size), true),
  resetMsrs: resetMsrs(),
  privileged: () => ({ msrs: privilegedMsrs, debugregs: undefined, xcrs: xcrsOf(1n) }),
  supportedXcr0: 7n,
  userXcr0: 7n,
  mxcsrMask: 0xffbf,
};

/** A header this host accepts: a native image's CPL3 state with its XCR0, every MSR, a plain XSAVE area. */
export function goodHeader(native = true, stackSize = 0): Uint8Array {
  const h = new Uint8Array(DATA_OFFSET);
  const dv = new DataView(h.buffer);
  dv.setBigUint64(HEADER.MAGIC, SNAPSHOT_MAGIC, true);
  dv.setUint32(HEADER.FORMAT_VERSION, FORMAT_VERSION, true);
  dv.setUint32(HEADER.HEADER_BYTES, DATA_OFFSET, true);
  dv.setUint32(HEADER.FLAGS, native ? FLAG_NATIVE : FLAG_PRIVILEGED, true);
  dv.setBigUint64(HEADER.MEM_SIZE, BigInt(MEM), true);
  dv.setBigUint64(HEADER.DATA_OFFSET, BigInt(DATA_OFFSET), true);
  dv.setBigUint64(HEADER.IMAGE_END, 0x110000n, true);
  dv.setBigUint64(HEADER.DATA_SIZE, native ? 1024n * 1024n : 0n, true);
  dv.setBigUint64(HEADER.STACK_SIZE, BigInt(stackSize), true);
  h.set(new TextEncoder().encode(cpu.vendor), HEADER.CPU_VENDOR);
  cpu.features.forEach((f, i) => dv.setUint32(HEADER.CPU_FEATURES + i * 4, f, true));
  h.set(host.longModeSregs, HEADER.SREGS);
  dv.setUint32(HEADER.XSAVE + XSAVE_MXCSR, 0x1f80, true);
  dv.setBigUint64(HEADER.XCR0, native ? host.userXcr0 : 0n, true);
  h.set(host.resetMsrs, HEADER.MSRS);
  return seal(h);
}

export function seal(h: Uint8Array): Uint8Array {
  const dv = new DataView(h.buffer, h.byteOffset);
  dv.setUint32(HEADER.CHECKSUM, 0, true);
  dv.setUint32(HEADER.CHECKSUM, Bun.hash.crc32(h), true);
  return h;
}

