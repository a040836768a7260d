// CPU features in virtines (issue 24): a CPL3 guest's CPUID agrees with what it may execute — XSAVE
// and AVX enabled (CR4.OSXSAVE, XCR0 by KVM_SET_XCRS), XGETBV reading the XCR0 wasp chose — and the
// vector state those features add is reset per call, restored from a snapshot and from a snapshot
// file: no call's YMM registers reach the next. Against real KVM.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Runner } from "../src/virtine/runner.ts";
import { parseImage } from "../src/image/image.ts";
import { systemKvm } from "../src/kvm/system.ts";
import { CPUID1_ECX_OSXSAVE, XFEATURE } from "../src/kvm/xfeatures.ts";
import { LinuxProgram } from "../src/virtine/linux.ts";
import { writeSnapshotFile } from "../src/snapshot/file.ts";
import { GuestFaultError } from "../src/errors.ts";
import { XGETBV, XSETBV, cpuidCode, probeImage, ymmSecretImage, ymmSnapshotImage } from "./avx-code.ts";
import { slow } from "./support.ts";

const SECRET = 0x5ec2e75ec2e7n;
const dir = mkdtempSync(join(tmpdir(), "wasp-xsave-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const once = (name: string, code: number[]) => {
  using v = new Runner(parseImage(probeImage(code), name));
  return v.run().value;
};

/** This KVM gives CPL3 guests AVX (the tests below need it: on this machine's PVM it does). */
function avxXcr0(): bigint {
  const xcr0 = systemKvm().userXcr0;
  if ((xcr0 & XFEATURE.AVX) === 0n) throw new Error(`this KVM gives CPL3 guests XCR0 0x${xcr0.toString(16)}, without AVX: the test needs AVX`);
  return xcr0;
}

describe("what a CPL3 guest sees of its CPU", () => {
  test("CPUID says OSXSAVE and AVX, and XGETBV reads the XCR0 wasp enabled", () => {
    const xcr0 = avxXcr0();
    const ecx = Number(once("cpuid1", cpuidCode(1, 0, "ecx")));
    expect(ecx & CPUID1_ECX_OSXSAVE).toBe(CPUID1_ECX_OSXSAVE);
    expect(ecx & (1 << 28)).toBe(1 << 28); // AVX
    expect(once("xgetbv", XGETBV)).toBe(xcr0);
    // CPUID 0xD.0 EBX: the XSAVE area XCR0's features need (576 + 256 for AVX), as KVM derives it from XCR0
    expect(Number(once("cpuid-d", cpuidCode(0xd, 0, "ebx")))).toBeGreaterThanOrEqual(0x340);
  });

  test("XSETBV is privileged: a guest cannot change its XCR0", () => {
    avxXcr0();
    expect(() => once("xsetbv", XSETBV)).toThrow(GuestFaultError);
    expect(() => once("xsetbv", XSETBV)).toThrow(/general protection \(#GP, vector 13\)/);
  });
});

describe("no call's AVX registers reach the next", () => {
  test("the YMM guest sees what it left within one call (it can see)", () => {
    avxXcr0();
    using v = new Runner(parseImage(ymmSecretImage(), "ymm"));
    expect(v.run([3n, SECRET]).value).toBe(16n);
  });

  test("a warm shell's next call finds the upper halves of YMM0-15 reset (on demand and in idle time)", async () => {
    avxXcr0();
    using v = new Runner(parseImage(ymmSecretImage(), "ymm"), { poolSize: 1 });
    for (let i = 0; i < 3; i++) {
      v.run([1n, SECRET]);
      expect(v.run([2n, SECRET]).value).toBe(0n);
    }
    v.run([1n, SECRET]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(v.poolStats.cleanedIdle).toBeGreaterThan(0);
    expect(v.run([2n, SECRET]).value).toBe(0n);
    expect(v.poolStats.created).toBe(1);
  });

  test("a snapshot keeps the YMM state it was taken with: every resumed call starts from it, none from the last call's", () => {
    avxXcr0();
    using v = new Runner(parseImage(ymmSnapshotImage(), "ymm-snap"), { poolSize: 1 });
    // the capturing call counts its own 16; each resumed call sees the snapshot's 16 though the
    // call before it overwrote them all with ~SECRET
    for (let i = 0; i < 4; i++) expect(v.run([0n, SECRET]).value).toBe(16n);
    expect(v.poolStats.created).toBeLessThanOrEqual(2);
  });

  test("a snapshot file carries the YMM state and XCR0: restored, every call starts from them", () => {
    const xcr0 = avxXcr0();
    const path = join(dir, "ymm.snap");
    {
      const image = ymmSnapshotImage();
      using v = new Runner(parseImage(image, "ymm-snap"));
      expect(v.run([0n, SECRET]).value).toBe(16n);
      const info = writeSnapshotFile(path, v.pool.snapshot, image, systemKvm());
      expect(info.xcr0).toBe(Number(xcr0));
    }
    using r = Runner.fromSnapshotFile(path, { poolSize: 1 });
    for (let i = 0; i < 3; i++) expect(r.run().value).toBe(16n);
  });
});

describe("a Linux program's vector state", () => {
  // fd 0's first byte: 'w' fills YMM1, 7 and 15 with the secret and exits, 'r' counts the registers
  // holding it (the exit status), 'b' does both in one call
  const SOURCE = `#include <unistd.h>
int main(void) {
  char c = 0;
  if (read(0, &c, 1) != 1) return 100;
  unsigned long secret = 0x5ec2e75ec2e7UL, n = 0;
  if (c == 'w' || c == 'b') {
    __asm__ volatile("movq %0, %%xmm0\\n vpbroadcastq %%xmm0, %%ymm0\\n vmovdqa %%ymm0, %%ymm1\\n vmovdqa %%ymm0, %%ymm7\\n vmovdqa %%ymm0, %%ymm15" :: "r"(secret) : "xmm0", "xmm1", "xmm7", "xmm15");
    if (c == 'w') return 0;
  }
  unsigned long v;
#define LOOK(r) __asm__ volatile("vextracti128 $1, %%" r ", %%xmm2\\n movq %%xmm2, %0" : "=r"(v) :: "xmm2"); n += v == secret;
  LOOK("ymm1") LOOK("ymm7") LOOK("ymm15")
  return (int)n;
}`;

  test("a pooled program's next call finds YMM reset; within a call, it sees what it wrote", async () => {
    avxXcr0();
    using p = await LinuxProgram.fromC(SOURCE, { name: "ymm", optimize: "fast", flags: ["-mavx2"], cacheDir: join(dir, "cache"), poolSize: 1 });
    expect(p.run([], { input: "b" }).status).toBe(3);
    for (let i = 0; i < 3; i++) {
      expect(p.run([], { input: "w" }).status).toBe(0);
      expect(p.run([], { input: "r" }).status).toBe(0);
    }
  }, slow(600_000));
});
