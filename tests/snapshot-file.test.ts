// Snapshot files: written atomically, verified, restored copy-on-write by many virtines and
// processes; every bad file refused with a clear error.
import { describe, expect, test, beforeAll, afterAll } from "bun:test";
import { mkdtempSync, rmSync, readFileSync, writeFileSync, statSync, copyFileSync, chmodSync, truncateSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Runner } from "../src/virtine/runner.ts";
import { SnapshotFile, HEADER, DATA_OFFSET, FORMAT_VERSION } from "../src/snapshot/file.ts";
import { systemKvm } from "../src/kvm/system.ts";
import { EXIT_STATUS, WaspError } from "../src/errors.ts";
import { guest, wasp } from "./support.ts";

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
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A copy of the good file with `edit` applied to its bytes (and the header checksum fixed if asked). */
function variant(name: string, edit: (b: Uint8Array) => void, fixChecksum = true): string {
  const bytes = new Uint8Array(readFileSync(snap));
  edit(bytes);
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
    expect(v.stdout).toMatch(/: ok \(format 1/);
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
    expect(r.stdout).toMatch(/kind\s+snapshot file, format 1/);
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
    expect(refused(p).message).toMatch(/format version 2 is newer than this wasp reads \(1\); it was written by wasp/);
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

  test("a file changed after it was opened is not restored again", () => {
    const p = join(dir, "changing.snap");
    copyFileSync(snap, p);
    chmodSync(p, 0o644);
    using file = new SnapshotFile(p, systemKvm());
    file.restore().close();
    const later = new Date(Date.now() + 5000);
    require("node:fs").utimesSync(p, later, later);
    expect(() => file.restore()).toThrow(/changed after it was opened/);
  });

  test("the CLI reports a bad file as WASP_BAD_SNAPSHOT", () => {
    const r = wasp(["invoke", variant("cli-newer.snap", (b) => new DataView(b.buffer).setUint32(HEADER.FORMAT_VERSION, 9, true))]);
    expect(r.status).toBe(EXIT_STATUS.WASP_BAD_SNAPSHOT);
    expect(r.stderr).toMatch(/^wasp: .*format version 9 is newer/);
  });
});

test("two processes restoring the same file share its pages (Shared_Clean)", async () => {
  const script = join(dir, "hold.ts");
  writeFileSync(
    script,
    `import { Runner } from ${JSON.stringify(join(import.meta.dir, "../src/virtine/runner.ts"))};
const v = Runner.fromSnapshotFile(process.argv[2], { poolSize: 1 });
v.run([1]);
// read every page of the table through the guest's view: make it resident
for (let i = 0; i < 64; i++) v.run([i * 16384]);
process.stdout.write("ready\\n");
await new Promise((r) => process.stdin.once("data", r));
v.close();
`,
  );
  const procs = [0, 1].map(() => Bun.spawn([process.execPath, script, snap], { stdin: "pipe", stdout: "pipe" }));
  try {
    for (const p of procs) {
      const reader = p.stdout.getReader();
      const { value } = await reader.read();
      expect(new TextDecoder().decode(value)).toBe("ready\n");
      reader.releaseLock();
    }
    // the file's mapping in each process: its Shared_Clean pages are the page cache's, shared
    for (const p of procs) {
      const smaps = readFileSync(`/proc/${p.pid}/smaps`, "utf8");
      const blocks = smaps.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/).filter((b) => b.split("\n")[0].includes(snap));
      expect(blocks.length).toBeGreaterThan(0);
      const shared = blocks.map((b) => Number(/Shared_Clean:\s+(\d+) kB/.exec(b)?.[1] ?? 0)).reduce((a, b) => a + b, 0);
      expect(shared).toBeGreaterThan(0);
    }
  } finally {
    for (const p of procs) {
      p.stdin.write("x");
      p.stdin.end();
      await p.exited;
    }
  }
}, 60_000);

