// struct kvm_msrs buffers: a u32 count, a u32 pad, then {u32 index, u32 reserved, u64 data} entries
// (linux/kvm.h). Built by KVM_GET_MSRS, loaded by KVM_SET_MSRS; these helpers read and combine them.
import { kvm_msr_entry, kvm_msrs } from "../../ffi/kvm.ts";

/** A kvm_msrs buffer for `indices`, data zero (what KVM_GET_MSRS fills in). */
export function msrBuffer(indices: readonly number[]): Uint8Array {
  const buf = new Uint8Array(kvm_msrs.size + indices.length * kvm_msr_entry.size);
  const dv = new DataView(buf.buffer);
  dv.setUint32(kvm_msrs.off("nmsrs"), indices.length, true);
  indices.forEach((index, i) => dv.setUint32(kvm_msrs.size + i * kvm_msr_entry.size + kvm_msr_entry.off("index"), index, true));
  return buf;
}

/** A kvm_msrs buffer holding these (index, value) pairs, in order (what KVM_SET_MSRS loads). */
export function msrValues(pairs: readonly (readonly [number, bigint])[]): Uint8Array {
  const buf = msrBuffer(pairs.map(([index]) => index));
  const dv = new DataView(buf.buffer);
  pairs.forEach(([, value], i) => dv.setBigUint64(kvm_msrs.size + i * kvm_msr_entry.size + kvm_msr_entry.off("data"), value, true));
  return buf;
}

export function msrCount(buf: Uint8Array): number {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getUint32(kvm_msrs.off("nmsrs"), true);
}

/** The register indices of a kvm_msrs buffer, in order. */
export function msrIndices(buf: Uint8Array): number[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return Array.from({ length: msrCount(buf) }, (_, i) => dv.getUint32(kvm_msrs.size + i * kvm_msr_entry.size + kvm_msr_entry.off("index"), true));
}

/** The index and value of entry `i`. */
export function msrEntry(buf: Uint8Array, i: number): { index: number; data: bigint } {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const at = kvm_msrs.size + i * kvm_msr_entry.size;
  return { index: dv.getUint32(at + kvm_msr_entry.off("index"), true), data: dv.getBigUint64(at + kvm_msr_entry.off("data"), true) };
}

/**
 * `base` with the values of `values` put in for the registers both hold: a full set of registers to
 * restore, whatever subset `values` has. Returns the index `values` has that `base` lacks, if any.
 */
export function overlayMsrs(base: Uint8Array, values: Uint8Array): Uint8Array | number {
  const out = base.slice();
  const odv = new DataView(out.buffer);
  const where = new Map(msrIndices(base).map((index, i) => [index, i]));
  for (let i = 0; i < msrCount(values); i++) {
    const { index, data } = msrEntry(values, i);
    const j = where.get(index);
    if (j === undefined) return index;
    odv.setBigUint64(kvm_msrs.size + j * kvm_msr_entry.size + kvm_msr_entry.off("data"), data, true);
  }
  return out;
}

/** Only the entries of `buf` whose index is in `keep`, in `buf`'s order. */
export function selectMsrs(buf: Uint8Array, keep: readonly number[]): Uint8Array {
  const entries = Array.from({ length: msrCount(buf) }, (_, i) => msrEntry(buf, i)).filter((e) => keep.includes(e.index));
  const out = msrBuffer(entries.map((e) => e.index));
  const dv = new DataView(out.buffer);
  entries.forEach((e, i) => dv.setBigUint64(kvm_msrs.size + i * kvm_msr_entry.size + kvm_msr_entry.off("data"), e.data, true));
  return out;
}
