// Snapshot files: written atomically, verified, restored copy-on-write by many virtines and
// processes; every bad file refused with a clear error.
import { describe, expect, test, beforeAll, afterAll } from "bun:test";
import { mkdtempSync, rmSync, readFileSync, writeFileSync, statSync, copyFileSync, chmodSync, truncateSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Runner } from "../src/virtine/runner.ts";
import { SnapshotFile, HEADER, DATA_OFFSET, FORMAT_VERSION, FLAG_NATIVE, FLAG_PRIVILEGED } from "../src/snapshot/file.ts";
import { kvm_sregs, kvm_segment, XSAVE_MXCSR } from "../ffi/kvm.ts";
import { slow, kvmShadowPaging, fdTable, fdsOpenedSince } from "./support.ts";
import { systemKvm } from "../src/kvm/system.ts";
import { EXIT_STATUS, WaspError } from "../src/errors.ts";
import { guest, wasp } from "./support.ts";
import { Layout } from "../src/abi/guest-abi.ts";

let dir: string;
let snap: string;

// inittable's values (tests/inittable.test.ts has the derivation)
const SEED = 0x5eed0f7ab1en;
const R = 220;
function mix(x0: bigint): bigint {
  let z = BigInt.asUintN(64, x0 + 0x9e3779b97f4a7c15n);
  z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
  z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
  return z ^ (z >> 31n);
}
function expected(i: number): bigint {
  let x = BigInt(i % (1 << 20)) ^ SEED;
  for (let r = 0; r < R; r++) x = mix(x);
  return x;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "wasp-snap-"));
  snap = join(dir, "inittable.snap");
  const r = wasp(["snapshot", guest("inittable"), "3", "-o", snap]);
  if (r.status !== 0) throw new Error(`wasp snapshot failed: ${r.stderr}`);
}, slow(120_000));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A copy of the good file (or of `source`) with `edit` applied to its bytes (and the header checksum fixed if asked). */
function variant(name: string, edit: (b: Uint8Array, dv: DataView) => void, fixChecksum = true, source = snap): string {
  const bytes = new Uint8Array(readFileSync(source));
  edit(bytes, new DataView(bytes.buffer));
  if (fixChecksum) {
    const header = bytes.slice(0, DATA_OFFSET);
    new DataView(header.buffer).setUint32(HEADER.CHECKSUM, 0, true);
    new DataView(bytes.buffer).setUint32(HEADER.CHECKSUM, Bun.hash.crc32(header), true);
  }
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
}

function refused(path: string): WaspError {
  try {
    new SnapshotFile(path, systemKvm()).close();
  } catch (e) {
    if (e instanceof WaspError) return e;
    throw e;
  }
  throw new Error("the file was accepted");
}

describe("wasp snapshot and restore", () => {
  test("the file is read-only, sparse, and verifies", () => {
    const st = statSync(snap);
    expect(st.mode & 0o777).toBe(0o444);
    expect(st.size).toBe(DATA_OFFSET + 16 * 1024 * 1024);
    expect(st.blocks * 512).toBeLessThan(st.size); // holes for the zero pages
    const v = wasp(["snapshot", "--verify", snap]);
    expect(v.status).toBe(0);
    expect(v.stdout).toMatch(new RegExp(`: ok \\(format ${FORMAT_VERSION}`));
  });

  test("wasp invoke FILE restores it and answers from the initialized state", () => {
    const r = wasp(["invoke", snap, "12345"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(`${expected(12345)}\n`);
  });

  test("the library restores it: many calls, each from the snapshot, one exit each", () => {
    using v = Runner.fromSnapshotFile(snap, { poolSize: 2 });
    for (const i of [0, 7, 99999, (1 << 20) - 1]) {
      const r = v.run([i, 16]);
      expect(r.value).toBe(expected(i));
      expect(r.exits).toBe(1);
    }
    expect(v.snapshotTaken).toBe(true);
  });

  test("an image without a snapshot hypercall cannot be snapshotted", () => {
    const r = wasp(["snapshot", "fib", "5", "-o", join(dir, "fib.snap")]);
    expect(r.status).toBe(EXIT_STATUS.WASP_BAD_IMAGE);
    expect(r.stderr).toMatch(/^wasp: fib\.bin: the image made no snapshot hypercall/);
  });

  test("wasp inspect describes a snapshot file; a snapshot file cannot be snapshotted again", () => {
    const r = wasp(["inspect", snap]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`kind\\s+snapshot file, format ${FORMAT_VERSION}`));
    expect(r.stdout).toMatch(/XCR0 0x[0-9a-f]+/);
    expect(r.stdout).toMatch(/image\s+inittable\.bin \(native\)/);
    const again = wasp(["snapshot", snap, "-o", join(dir, "again.snap")]);
    expect(again.status).toBe(EXIT_STATUS.WASP_BAD_IMAGE);
    expect(again.stderr).toMatch(/is a snapshot file already/);
  });

  test("without -o it says where to write", () => {
    const r = wasp(["snapshot", "inittable"]);
    expect(r.status).toBe(EXIT_STATUS.WASP_BAD_ARGS);
    expect(r.stderr).toMatch(/-o FILE/);
  });
});

describe("bad snapshot files are refused with one clear line", () => {
  test("truncated in the header", () => {
    const p = join(dir, "short.snap");
    copyFileSync(snap, p);
    chmodSync(p, 0o644);
    truncateSync(p, 100);
    expect(refused(p).message).toMatch(/truncated: the file is 100 bytes, shorter than the 8192-byte header/);
  });

  test("truncated in the memory", () => {
    const p = join(dir, "cut.snap");
    copyFileSync(snap, p);
    chmodSync(p, 0o644);
    truncateSync(p, DATA_OFFSET + 4096);
    expect(refused(p).message).toMatch(/truncated: the file is 12288 bytes, the header says/);
  });

  test("wrong magic", () => {
    expect(refused(variant("magic.snap", (b) => (b[0] ^= 0xff))).message).toMatch(/not a wasp snapshot file \(wrong magic\)/);
  });

  test("a newer format version", () => {
    const p = variant("newer.snap", (b) => new DataView(b.buffer).setUint32(HEADER.FORMAT_VERSION, FORMAT_VERSION + 1, true));
    expect(refused(p).message).toMatch(new RegExp(`format version ${FORMAT_VERSION + 1} is newer than this wasp reads \\(${FORMAT_VERSION}\\); it was written by wasp`));
  });

  test("a version 1 file (no XCR0; its trampoline restored SSE alone) is refused, saying to write it again", () => {
    const p = variant("v1.snap", (b) => new DataView(b.buffer).setUint32(HEADER.FORMAT_VERSION, 1, true));
    expect(refused(p).message).toMatch(/format version 1 \(written by wasp .*\) predates the XCR0 and AVX state snapshots carry since version 2: write the snapshot again with this wasp/);
  });

  test("a native file whose XCR0 is beyond this host's, or whose trampoline is not the host's, is refused", () => {
    const kvm = systemKvm();
    if (kvm.userXcr0 === 0n) throw new Error("this KVM enables no XSAVE features for CPL3 guests: the test needs one that does");
    const beyond = variant("xcr0-beyond.snap", (b) => new DataView(b.buffer).setBigUint64(HEADER.XCR0, kvm.userXcr0 | 0x200n, true));
    expect(refused(beyond).message).toMatch(/XCR0 0x[0-9a-f]+ enables features this host does not give CPL3 guests/);
    const zero = variant("xcr0-zero.snap", (b) => new DataView(b.buffer).setBigUint64(HEADER.XCR0, 0n, true));
    expect(refused(zero).message).toMatch(/XCR0 is 0: the file was written where XSAVE was off/);
    // a trampoline that jumps straight to its target: calls would keep each other's vector registers
    const tramp = variant("trampoline.snap", (b) => b.set([0xff, 0x25, 0x3a, 0x00, 0x00, 0x00], DATA_OFFSET + Layout.TRAMPOLINE));
    expect(refused(tramp).message).toMatch(/the trampoline page at 0x1c000 does not hold the host's trampoline code/);
  });

  test("a header checksum mismatch", () => {
    const p = variant("corrupt.snap", (b) => (b[HEADER.REGS] ^= 1), false);
    expect(refused(p).message).toMatch(/header checksum mismatch .* the file is corrupt/);
  });

  test("a memory size above the cap", () => {
    const p = variant("huge.snap", (b) => new DataView(b.buffer).setBigUint64(HEADER.MEM_SIZE, 2n ** 31n, true));
    expect(refused(p).message).toMatch(/memory size 2147483648 bytes is above the cap of 1024 MiB/);
  });

  test("a CPU of another vendor, or with features this one lacks", () => {
    const vendor = variant("vendor.snap", (b) => b.set(new TextEncoder().encode("OtherVendor!"), HEADER.CPU_VENDOR));
    expect(refused(vendor).message).toMatch(/written on a OtherVendor! CPU; this one is/);
    const feat = variant("features.snap", (b) => new DataView(b.buffer).setUint32(HEADER.CPU_FEATURES + 2 * 4, 0xffffffff, true));
    expect(refused(feat).message).toMatch(/written on a CPU with features this one lacks \(leaf 7 EBX bits 0x/);
  });

  test("memory that does not match its checksum fails --verify", () => {
    const p = variant("memflip.snap", (b) => (b[DATA_OFFSET + 0x100000 + 100] ^= 0xff));
    const r = wasp(["snapshot", "--verify", p]);
    expect(r.status).toBe(EXIT_STATUS.WASP_BAD_SNAPSHOT);
    expect(r.stderr).toMatch(/^wasp: .*memflip\.snap: the memory part does not match the header's checksum/);
  });

  test("a file truncated, rewritten or replaced after it was opened changes nothing and crashes nothing", () => {
    // in a child process: before the fix, touching a truncated mapped file killed the process (SIGBUS)
    const p = join(dir, "changing.snap");
    const other = join(dir, "other.snap");
    copyFileSync(snap, p);
    chmodSync(p, 0o644);
    const script = join(dir, "truncate.ts");
    writeFileSync(
      script,
      `import { truncateSync, writeFileSync, renameSync, copyFileSync } from "node:fs";
import { Runner } from ${JSON.stringify(join(import.meta.dir, "../src/virtine/runner.ts"))};
const [path, other] = process.argv.slice(2);
const v = Runner.fromSnapshotFile(path, { poolSize: 2 });
const out = [v.run([5]).value];
truncateSync(path, 0); // every page of the file gone
out.push(v.run([6]).value, v.run([7]).value);
writeFileSync(path, new Uint8Array(${DATA_OFFSET} + 16 * 1024 * 1024).fill(0xcc)); // rewritten in place
out.push(v.run([8]).value);
copyFileSync(${JSON.stringify(snap)}, other);
renameSync(other, path); // another file renamed over the path
out.push(v.run([9]).value);
v.close();
process.stdout.write(out.join(" "));
`,
    );
    const r = Bun.spawnSync([process.execPath, script, p, other]);
    expect(r.stderr.toString()).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout.toString()).toBe([5, 6, 7, 8, 9].map(expected).join(" "));
  });

  test("a snapshot file is never read whole to find out what it is, and a 1 GiB one loads", async () => {
    const { Virtine } = await import("../src/index.ts");
    // inittable initialized in 1 GiB of memory: a 1 GiB file, mostly holes
    const big = join(dir, "big.snap");
    const made = wasp(["snapshot", guest("inittable"), "3", "--mem", "1G", "-o", big]);
    expect(made.stderr).toBe("");
    const rss = process.memoryUsage().rss;
    await using v = await Virtine.load(big, { poolSize: 1 });
    expect(process.memoryUsage().rss - rss).toBeLessThan(256 * 1024 * 1024); // not 1 GiB read into memory
    expect(v.invokeSync(12345)).toBe(expected(12345));
  }, slow(120_000));

  test("a load refused after the file was restored (a bad option) leaks no fd and no mapping", async () => {
    const { Virtine } = await import("../src/index.ts");
    const maps = () => readFileSync("/proc/self/maps", "utf8").split("\n").length;
    // once first: one-time costs (the KVM handle, the host state, code) before the baseline
    await Virtine.load(snap, { timeoutMs: -1 }).catch(() => undefined);
    const fds0 = fdTable();
    const maps0 = maps();
    for (let i = 0; i < 200; i++) {
      const e = await Virtine.load(snap, { timeoutMs: -1 }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect((e as WaspError).code).toBe("WASP_BAD_ARGS");
    }
    expect(fdsOpenedSince(fds0)).toEqual([]);
    expect(maps()).toBeLessThanOrEqual(maps0 + 4);
  });

  test("an image file too big for its guest memory is refused before it is read", async () => {
    const { Virtine } = await import("../src/index.ts");
    const p = join(dir, "huge.bin");
    writeFileSync(p, new Uint8Array(0));
    truncateSync(p, 512 * 1024 * 1024); // 512 MiB of zeros: a raw image
    const rss = process.memoryUsage().rss;
    const e = await Virtine.load(p).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(WaspError);
    expect((e as WaspError).code).toBe("WASP_BAD_IMAGE");
    expect((e as WaspError).message).toMatch(/huge\.bin: the image is 536870912 bytes, more than the \d+ bytes that fit in its guest memory/);
    expect(process.memoryUsage().rss - rss).toBeLessThan(64 * 1024 * 1024);
    rmSync(p);
  });

  test("the CLI reports a bad file as WASP_BAD_SNAPSHOT", () => {
    const r = wasp(["invoke", variant("cli-newer.snap", (b) => new DataView(b.buffer).setUint32(HEADER.FORMAT_VERSION, 9, true))]);
    expect(r.status).toBe(EXIT_STATUS.WASP_BAD_SNAPSHOT);
    expect(r.stderr).toMatch(/^wasp: .*format version 9 is newer/);
  });
});

test("the virtines of a process share one sealed copy of the file, and none maps the file itself", () => {
  using file = new SnapshotFile(snap, systemKvm());
  const virtines = [0, 1, 2].map(() => new Runner(file.restore(), { poolSize: 1 }));
  try {
    // read every page of the table through each guest's view: make it resident in each mapping
    for (const v of virtines) for (let i = 0; i < 64; i++) expect(v.run([i * 16384]).value).toBe(expected(i * 16384));
    const smaps = readFileSync("/proc/self/smaps", "utf8").split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/);
    expect(smaps.some((b) => b.split("\n")[0].endsWith(snap))).toBe(false);
    const copies = smaps.filter((b) => b.split("\n")[0].includes("memfd:wasp-snapshot:inittable.snap"));
    expect(copies.length).toBeGreaterThanOrEqual(4); // the snapshot's own view and each shell's
    const shared = copies.map((b) => Number(/Shared_Clean:\s+(\d+) kB/.exec(b)?.[1] ?? 0)).reduce((a, b) => a + b, 0);
    if (!kvmShadowPaging()) expect(shared).toBeGreaterThan(0);
    // Under KVM's shadow paging (the emulated machine of tools/kvm-vm.sh, and KVM on PVM) the
    // guests' reads left no page shared (an open question, in the issue notes): said loudly
    // there, not asserted.
    else if (shared === 0) console.warn("snapshot-file: KVM with shadow paging: the sealed copy's pages were not shared between the views (asserted only with hardware paging)");
  } finally {
    for (const v of virtines) v.close();
  }
});

// A hostile review wrote well-formed files (the header CRC recomputed) that broke isolation: each
// of them is refused now, with one line naming the field.
describe("hostile snapshot files", () => {
  // A raw guest: snapshot hypercall, then with args[0] (info page) = 1 write args[1] into LSTAR's
  // low half, else read it. Real mode; DS = 0.
  const msrGuest = new Uint8Array([
    0x66, 0xb8, 0x05, 0x00, 0x00, 0x00, // mov eax, 5 (snapshot)
    0xe6, 0xfb, // out 0xfb, al
    0x66, 0x8b, 0x3e, 0x10, 0x70, // mov edi, [0x7010]
    0x66, 0x8b, 0x36, 0x18, 0x70, // mov esi, [0x7018]
    0x66, 0xb9, 0x82, 0x00, 0x00, 0xc0, // mov ecx, 0xc0000082 (LSTAR)
    0x66, 0x83, 0xff, 0x01, // cmp edi, 1
    0x75, 0x0a, // jne read
    0x66, 0x89, 0xf0, // mov eax, esi
    0x66, 0x31, 0xd2, // xor edx, edx
    0x0f, 0x30, // wrmsr
    0xf4, // hlt
    0x90,
    0x0f, 0x32, // read: rdmsr
    0xf4, // hlt
  ]);
  let raw: string;
  beforeAll(() => {
    const image = join(dir, "msr.bin");
    writeFileSync(image, msrGuest);
    raw = join(dir, "msr.snap");
    const r = wasp(["snapshot", image, "-o", raw]);
    if (r.status !== 0) throw new Error(`wasp snapshot failed: ${r.stderr}`);
  });
  const rawVariant = (name: string, edit: (b: Uint8Array, dv: DataView) => void) => variant(name, edit, true, raw);

  test("a raw guest's file passes nothing between calls through a model-specific register", () => {
    using v = Runner.fromSnapshotFile(raw, { poolSize: 1 });
    const before = v.run([2]).value;
    for (const secret of [0x1111, 0x2222, 0x3333]) {
      v.run([1, secret]);
      expect(v.run([2]).value).toBe(before);
    }
    expect(v.poolStats.created).toBe(1);
  });

  test("the privilege flag cleared on a raw guest's file is refused (the image kind decides privilege)", () => {
    const p = rawVariant("msr-noflag.snap", (_, dv) => dv.setUint32(HEADER.FLAGS, 0, true));
    expect(refused(p).message).toMatch(/flags 0x0 are neither a native image's \(0x1\), a raw image's \(0x2\) nor a Linux program's \(0x4\)/);
    const both = rawVariant("msr-both.snap", (_, dv) => dv.setUint32(HEADER.FLAGS, FLAG_NATIVE | FLAG_PRIVILEGED, true));
    expect(refused(both).message).toMatch(/flags 0x3 are neither/);
  });

  test("a model-specific register wasp does not restore, listed twice, or a bad reserved field is refused", () => {
    const entry = (i: number) => HEADER.MSRS + 8 + i * 16;
    const tsc = rawVariant("msr-tsc.snap", (_, dv) => dv.setUint32(entry(0), 0x10, true));
    expect(refused(tsc).message).toMatch(/model-specific register 0x10 is not one wasp restores/);
    const twice = rawVariant("msr-twice.snap", (_, dv) => dv.setUint32(entry(1), dv.getUint32(entry(0), true), true));
    expect(refused(twice).message).toMatch(/is listed twice/);
    const reserved = rawVariant("msr-reserved.snap", (_, dv) => dv.setUint32(entry(0) + 4, 1, true));
    expect(refused(reserved).message).toMatch(/non-zero reserved field/);
  });

  test("a file listing no model-specific registers still has all of them restored", () => {
    const p = rawVariant("msr-none.snap", (_, dv) => dv.setUint32(HEADER.MSRS, 0, true));
    using v = Runner.fromSnapshotFile(p, { poolSize: 1 });
    const before = v.run([2]).value;
    v.run([1, 0x4444]);
    expect(v.run([2]).value).toBe(before);
  });

  test("a reserved PAT is WASP_BAD_SNAPSHOT, and 200 tries leak no fd and no mapping", () => {
    // PAT with a reserved memory type (2) in every entry: wasp refuses it itself (KVM on hardware
    // refuses it too; KVM on PVM was seen to take it)
    const pat = rawVariant("msr-pat.snap", (_, dv) => {
      for (let i = 0; i < dv.getUint32(HEADER.MSRS, true); i++) {
        if (dv.getUint32(HEADER.MSRS + 8 + i * 16, true) === 0x277) dv.setBigUint64(HEADER.MSRS + 8 + i * 16 + 8, 0x0202020202020202n, true);
      }
    });
    const maps = () => readFileSync("/proc/self/maps", "utf8").split("\n").length;
    let fds0 = fdTable();
    let maps0 = maps();
    for (let i = 0; i < 200; i++) {
      if (i === 1) {
        // after the first try: the host's state for privileged guests is made once per process, on first use
        fds0 = fdTable();
        maps0 = maps();
      }
      let e: unknown;
      try {
        // refused when the runner is made (its constructor closes what it opened) or at its first
        // call (KVM with VMX/SVM loads the MSRs there): then the runner is closed by its owner
        using r = Runner.fromSnapshotFile(pat, { poolSize: 1 });
        r.run([2]);
      } catch (err) {
        e = err;
      }
      expect(e).toBeInstanceOf(WaspError);
      expect((e as WaspError).code).toBe("WASP_BAD_SNAPSHOT");
      expect((e as WaspError).message).toMatch(/model-specific register 0x277 \(PAT\) holds a reserved memory type/);
    }
    expect(fdsOpenedSince(fds0)).toEqual([]);
    expect(maps()).toBeLessThanOrEqual(maps0 + 4);
    const cli = wasp(["invoke", pat, "2"]);
    expect(cli.status).toBe(EXIT_STATUS.WASP_BAD_SNAPSHOT);
    expect(cli.stderr).toMatch(/^wasp: .*model-specific register 0x277 \(PAT\) holds a reserved memory type in entry 0\n$/);
  });

  test("an MSR holding a non-canonical address is refused before KVM sees it", () => {
    const p = rawVariant("msr-fsbase.snap", (_, dv) => {
      let found = false;
      for (let i = 0; i < dv.getUint32(HEADER.MSRS, true); i++) {
        if (dv.getUint32(HEADER.MSRS + 8 + i * 16, true) !== 0xc0000100) continue;
        dv.setBigUint64(HEADER.MSRS + 8 + i * 16 + 8, 0x0000800000000000n, true);
        found = true;
      }
      expect(found).toBe(true);
    });
    expect(refused(p).message).toMatch(/model-specific register 0xc0000100 holds a non-canonical address 0x800000000000/);
  });

  test("an XSAVE area KVM could not load is refused", () => {
    const p = rawVariant("xsave.snap", (_, dv) => dv.setUint32(HEADER.XSAVE + XSAVE_MXCSR, 0xffffffff, true));
    expect(refused(p).message).toMatch(/MXCSR 0xffffffff sets bits this CPU does not have/);
    const compacted = rawVariant("xcomp.snap", (_, dv) => dv.setBigUint64(HEADER.XSAVE + 520, 1n << 63n, true));
    expect(refused(compacted).message).toMatch(/compacted format/);
  });

  test("a native guest's file cannot run it at CPL0 or on tables of its own", () => {
    const cs = HEADER.SREGS + kvm_sregs.off("cs");
    const dpl0 = variant("cpl0.snap", (b) => {
      const dv = new DataView(b.buffer);
      dv.setUint16(cs + kvm_segment.off("selector"), 0x08, true);
      b[cs + kvm_segment.off("dpl")] = 0;
    });
    expect(refused(dpl0).message).toMatch(/must run at CPL3 on the host's tables: the CS segment is not the host's CPL3 long-mode one/);
    const cr3 = variant("cr3.snap", (b) => new DataView(b.buffer).setBigUint64(HEADER.SREGS + kvm_sregs.off("cr3"), 0x200000n, true));
    expect(refused(cr3).message).toMatch(/CR3 is 0x200000, not the host's 0x1000/);
    // an IDT gate made DPL3 (type 0xee): the review's way to CPL0
    const idt = variant("idt.snap", (b) => (b[DATA_OFFSET + 0x6000 + 3 * 16 + 5] = 0xee));
    expect(refused(idt).message).toMatch(/the host page at 0x6000 differs from the host's own \(byte 0x6035\)/);
    // the page-table entry mapping the page tables made user-accessible
    const pte = variant("pte.snap", (b) => (b[DATA_OFFSET + 0x4020] |= 4));
    expect(refused(pte).message).toMatch(/the host page at 0x4000 differs/);
    // claiming to be raw does not help: a raw image's snapshot has no data window
    const flags = variant("native-priv.snap", (b) => new DataView(b.buffer).setUint32(HEADER.FLAGS, FLAG_PRIVILEGED, true));
    expect(refused(flags).message).toMatch(/a raw image's snapshot cannot have a data window/);
  });
});
