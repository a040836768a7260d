// The snapshot file header is untrusted input: validate() must turn any bytes into either a checked
// state or one BadSnapshotError, never another exception, and whatever it accepts must hold the
// invariants the rest of wasp relies on. Property-based, on synthetic headers (no VM needed).
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { runs } from "./fuzz.ts";
import { closeSync, mkdtempSync, openSync, readdirSync, rmSync, truncateSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SnapshotFile, loadSnapshotFile, validate, HEADER, DATA_OFFSET, SNAPSHOT_MAGIC, FLAG_NATIVE, FLAG_PRIVILEGED } from "../src/snapshot/file.ts";
import { longModeTablePieces, stackGuard, trampolinePage } from "../src/image/boot.ts";
import { Layout } from "../src/abi/guest-abi.ts";
import { kvm_sregs } from "../ffi/kvm.ts";
import { GUEST_WRITABLE_MSRS } from "../src/kvm/system.ts";
import { BadSnapshotError } from "../src/errors.ts";
import { MEM, cpu, goodHeader, host, seal } from "./snapshot-fixture.ts";

const sreg = (s: Uint8Array, r: "cr0" | "cr3" | "cr4" | "efer") => new DataView(s.buffer, s.byteOffset).getBigUint64(kvm_sregs.off(r), true);
const check = (h: Uint8Array, fileSize = DATA_OFFSET + MEM) => validate("x.snap", h, h.length, fileSize, cpu, host);

describe("validate", () => {
  const withXcr0 = (native: boolean, xcr0: bigint, xstateBv = 0n) => {
    const h = goodHeader(native);
    const dv = new DataView(h.buffer);
    dv.setBigUint64(HEADER.XCR0, xcr0, true);
    dv.setBigUint64(HEADER.XSAVE + 512, xstateBv, true);
    return seal(h);
  };

  test("XCR0: a native file's must be this host's CPL3 guests' (or within it); a raw file's what XSETBV would take", () => {
    expect(check(withXcr0(true, 7n, 7n)).info.xcr0).toBe(7);
    expect(check(withXcr0(true, 3n)).info.xcr0).toBe(3); // written with less enabled: the guest chose within it
    expect(() => check(withXcr0(true, 0xe7n))).toThrow(/XCR0 0xe7 enables features this host does not give CPL3 guests \(0x7\)/);
    expect(() => check(withXcr0(true, 0n))).toThrow(/XCR0 is 0: the file was written where XSAVE was off for CPL3 guests/);
    expect(() => check(withXcr0(true, 5n))).toThrow(/XCR0 0x5 lacks x87 or SSE/);
    expect(() => check(withXcr0(true, 3n, 4n))).toThrow(/the XSAVE area holds features 0x4 beyond its XCR0 0x3/);
    expect(check(withXcr0(false, 0n)).info.xcr0).toBe(0); // a fresh vCPU's is loaded
    expect(check(withXcr0(false, 7n)).info.xcr0).toBe(7);
    expect(() => check(withXcr0(false, 6n))).toThrow(/XCR0 0x6 has x87 \(bit 0\) clear/);
    expect(() => check(withXcr0(false, 5n))).toThrow(/XCR0 0x5 enables AVX without SSE/);
    expect(() => check(withXcr0(false, 0xfn))).toThrow(/XCR0 0xf enables features KVM does not support \(0x7\)/);
  });

  test("a version 1 file is refused, naming its writer and what to do", () => {
    const h = goodHeader(true);
    new DataView(h.buffer).setUint32(HEADER.FORMAT_VERSION, 1, true);
    expect(() => check(seal(h))).toThrow(/x.snap: format version 1 \(written by wasp .*\) predates the XCR0 and AVX state snapshots carry since version 2: write the snapshot again with this wasp \(wasp snapshot\)/);
  });

  test("the synthetic headers are accepted (the properties below start from something valid)", () => {
    expect(check(goodHeader(true)).info.native).toBe(true);
    expect(check(goodHeader(false)).info.privileged).toBe(true);
  });

  test("any change to any header byte (CRC recomputed) gives a checked state or one BadSnapshotError", () => {
    fc.assert(
      fc.property(fc.boolean(), fc.array(fc.tuple(fc.integer({ min: 0, max: 1024 + 312 + 600 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), (native, edits) => {
        // (the edited bytes include XCR0 at 232 and the XSAVE header's XSTATE_BV at 1024 + 512)
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
          // a CPL3 guest's XCR0 is this host's or within it, with x87 and SSE; a raw one's what XSETBV takes
          (info.privileged ? info.xcr0 === 0 || (info.xcr0 & 1) === 1 : (BigInt(info.xcr0) & ~host.userXcr0) === 0n && (info.xcr0 & 3) === 3) &&
          (BigInt(info.xcr0) & ~host.supportedXcr0) === 0n &&
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

// The load path without a VM: a synthetic native file (header above, the host's tables in its
// memory) copied into a sealed memfd, immune to whatever happens to the file afterwards.
describe("loadSnapshotFile", () => {
  const STACK = 1024 * 1024;
  /** A native image's snapshot file: the host's tables for its stack guard, a marked page at 2 MiB. */
  function writeFile(path: string, edit: (memory: Uint8Array) => void = () => {}, stackSize = STACK): void {
    const memory = new Uint8Array(0x201000);
    const guard = stackGuard(MEM - 1024 * 1024 - stackSize);
    for (const [at, bytes] of longModeTablePieces(guard)) memory.set(bytes, at);
    memory.fill(0x5a, 0x200000, 0x201000);
    memory.set(trampolinePage(0x200000n, new Uint8Array(4096), true), Layout.TRAMPOLINE);
    edit(memory);
    writeFileSync(path, goodHeader(true, STACK));
    const fd = openSync(path, "r+");
    writeSync(fd, memory, 0, memory.length, DATA_OFFSET);
    closeSync(fd);
    truncateSync(path, DATA_OFFSET + MEM);
  }

  test("the stored pages are copied into a sealed memfd: truncating or rewriting the file changes nothing", () => {
    const dir = mkdtempSync(join(tmpdir(), "wasp-load-"));
    const path = join(dir, "synthetic.snap");
    try {
      writeFile(path);
      const loaded = loadSnapshotFile(path, host, cpu);
      expect(loaded.info).toMatchObject({ native: true, memSize: MEM, dataSize: 1024 * 1024, stackSize: STACK });
      expect(loaded.populated[0x200000 / 4096]).toBe(1);
      expect(loaded.populated[0x300000 / 4096]).toBe(0); // a hole, not read
      const file = new SnapshotFile(loaded);
      const snapshot = file.restore();
      truncateSync(path, 0); // a mapped file would now raise SIGBUS at the next touch
      writeFileSync(path, "rewritten");
      expect(snapshot.memory[0x200000]).toBe(0x5a);
      expect(snapshot.memory[0x200fff]).toBe(0x5a);
      // nobody, not even this process, can change the copy
      expect(() => writeSync(loaded.fd, new Uint8Array([1]), 0, 1, 0x200000)).toThrow(/EPERM/);
      snapshot.close();
      file.close();
      closeSync(loaded.fd);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("host pages that are not the host's own, or a stack whose guard they do not unmap, are refused", () => {
    const dir = mkdtempSync(join(tmpdir(), "wasp-load-"));
    const path = join(dir, "hostile.snap");
    try {
      writeFile(path, (m) => (m[Layout.TRAMPOLINE + 5] = 0x90)); // a trampoline that skips saving RAX
      expect(() => loadSnapshotFile(path, host, cpu)).toThrow(/the trampoline page at 0x1c000 does not hold the host's trampoline code/);
      writeFile(path, (m) => (m[0x6000 + 3 * 16 + 5] = 0xee)); // a DPL3 IDT gate
      expect(() => loadSnapshotFile(path, host, cpu)).toThrow(/the host page at 0x6000 differs from the host's own/);
      writeFile(path, () => {}, 2 * STACK); // tables for another stack than the header says
      expect(() => loadSnapshotFile(path, host, cpu)).toThrow(/the host page at 0x1d000 differs/); // the guard region's page table
      const fds = readdirSync("/proc/self/fd").length;
      for (let i = 0; i < 50; i++) expect(() => loadSnapshotFile(path, host, cpu)).toThrow(BadSnapshotError);
      expect(readdirSync("/proc/self/fd").length).toBe(fds); // the file and the memfd closed each time
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
