// The snapshot file header is untrusted input: validate() must turn any bytes into either a checked
// state or one BadSnapshotError, never another exception, and whatever it accepts must hold the
// invariants the rest of wasp relies on. Property-based, on synthetic headers (no VM needed).
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { runs } from "./fuzz.ts";
import { validate, HEADER, DATA_OFFSET, FORMAT_VERSION, SNAPSHOT_MAGIC, FLAG_NATIVE, FLAG_PRIVILEGED } from "../src/snapshot/file.ts";
import type { HostState } from "../src/snapshot/file-state.ts";
import { longModeSregs } from "../src/image/boot.ts";
import { kvm_msr_entry, kvm_msrs, kvm_sregs, XSAVE_MXCSR } from "../ffi/kvm.ts";
import { GUEST_WRITABLE_MSRS } from "../src/kvm/system.ts";
import { BadSnapshotError } from "../src/errors.ts";
import type { CpuIdentity } from "../src/snapshot/cpu.ts";

const MEM = 16 * 1024 * 1024;
const cpu: CpuIdentity = { vendor: "AuthenticAMD", features: [1, 2, 3, 4, 5, 6, 7] };

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
const host: HostState = {
  longModeSregs: longModeSregs(new Uint8Array(kvm_sregs.size)),
  resetMsrs: resetMsrs(),
  privileged: () => ({ msrs: privilegedMsrs, debugregs: undefined, xcrs: undefined }),
  supportedXcr0: 3n,
  mxcsrMask: 0xffbf,
};

/** A header this host accepts: a native image's CPL3 state, every MSR, a plain XSAVE area. */
function goodHeader(native = true): Uint8Array {
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
  h.set(new TextEncoder().encode(cpu.vendor), HEADER.CPU_VENDOR);
  cpu.features.forEach((f, i) => dv.setUint32(HEADER.CPU_FEATURES + i * 4, f, true));
  h.set(host.longModeSregs, HEADER.SREGS);
  dv.setUint32(HEADER.XSAVE + XSAVE_MXCSR, 0x1f80, true);
  h.set(host.resetMsrs, HEADER.MSRS);
  return seal(h);
}

function seal(h: Uint8Array): Uint8Array {
  const dv = new DataView(h.buffer, h.byteOffset);
  dv.setUint32(HEADER.CHECKSUM, 0, true);
  dv.setUint32(HEADER.CHECKSUM, Bun.hash.crc32(h), true);
  return h;
}

const sreg = (s: Uint8Array, r: "cr0" | "cr3" | "cr4" | "efer") => new DataView(s.buffer, s.byteOffset).getBigUint64(kvm_sregs.off(r), true);
const check = (h: Uint8Array, fileSize = DATA_OFFSET + MEM) => validate("x.snap", h, h.length, fileSize, cpu, host);

describe("validate", () => {
  test("the synthetic headers are accepted (the properties below start from something valid)", () => {
    expect(check(goodHeader(true)).info.native).toBe(true);
    expect(check(goodHeader(false)).info.privileged).toBe(true);
  });

  test("any change to any header byte (CRC recomputed) gives a checked state or one BadSnapshotError", () => {
    fc.assert(
      fc.property(fc.boolean(), fc.array(fc.tuple(fc.integer({ min: 0, max: 1024 + 312 + 600 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), (native, edits) => {
        const h = goodHeader(native);
        // the bytes that matter live below REGS + 1024 (fields, registers) and in the MSR list
        for (const [at, v] of edits) h[at < 1024 + 312 ? at : HEADER.MSRS + (at - 1024 - 312)] = v;
        seal(h);
        let result;
        try {
          result = check(h);
        } catch (e) {
          if (e instanceof BadSnapshotError) return e.message.startsWith("x.snap: ") && !e.message.includes("\n");
          throw e;
        }
        // what is accepted holds the invariants
        const { info, msrs } = result;
        const flags = new DataView(h.buffer).getUint32(HEADER.FLAGS, true);
        const count = new DataView(msrs.buffer).getUint32(0, true);
        return (
          (flags === FLAG_NATIVE || flags === FLAG_PRIVILEGED) &&
          info.native !== info.privileged &&
          info.memSize % 4096 === 0 &&
          info.imageEnd <= info.memSize &&
          info.dataSize + info.imageEnd <= info.memSize &&
          count === (info.privileged ? GUEST_WRITABLE_MSRS.length + 3 : GUEST_WRITABLE_MSRS.length) &&
          (!info.native || (["cr0", "cr3", "cr4", "efer"] as const).every((r) => sreg(h.subarray(HEADER.SREGS), r) === sreg(host.longModeSregs, r)))
        );
      }),
      { numRuns: runs(3000) },
    );
  });

  test("random bytes and truncated files are refused with BadSnapshotError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: DATA_OFFSET }), fc.nat({ max: 2 ** 40 }), fc.boolean(), (bytes, size, magic) => {
        const h = new Uint8Array(DATA_OFFSET);
        h.set(bytes);
        if (bytes.length >= 8 && magic) new DataView(h.buffer).setBigUint64(0, SNAPSHOT_MAGIC, true);
        try {
          validate("x.snap", h, bytes.length, size, cpu, host);
          return false; // nothing random is a valid file
        } catch (e) {
          return e instanceof BadSnapshotError;
        }
      }),
      { numRuns: runs(2000) },
    );
  });
});
