// Snapshot files of Linux programs (issue 13, part 4), on the real /dev/kvm: a program that
// initializes and calls wasp_snapshot() is written to a file — memory, registers, and its process
// section — and every call restored from it (in this process, on workers, from the command line)
// resumes there with its own input. The file is untrusted: the host's pages in it are never used
// (they are rebuilt from the executable), its process section is checked, the files its program
// was granted come with it (placed in its memory, checked against their hashes), and its process's
// state, in its memory, is checked where the host uses it.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compileC } from "../src/linux/c.ts";
import { BadArgsError, BadSnapshotError, Virtine, WorkerPool } from "../src/index.ts";
import { LinuxProgram } from "../src/virtine/linux.ts";
import { DATA_OFFSET, HEADER } from "../src/snapshot/file.ts";
import { LINUX_LOW } from "../src/linux/address-space.ts";
import { kvm_sregs } from "../ffi/kvm.ts";
import { Layout } from "../src/abi/guest-abi.ts";
import { decodeProcessFile } from "../src/linux/process-file.ts";
import { slow, wasp, fdTable, fdsOpenedSince, withProcessSection } from "./support.ts";

const tmp = mkdtempSync(join(tmpdir(), "wasp-linux-snapfile-"));
const cacheDir = join(tmp, "cache");
const workers = new WorkerPool({ size: 2 });
afterAll(async () => {
  await workers.close();
  rmSync(tmp, { recursive: true, force: true });
});

// initializes (a table on the heap, a big mapping, a file read half-way, TLS), snapshots, answers
const SERVICE = `#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <wasp.h>
static __thread int tls_value;
int main(int argc, char **argv) {
  int *squares = malloc(1000 * sizeof *squares);
  for (int i = 0; i < 1000; i++) squares[i] = i * i;
  char *big = malloc(8 << 20);
  strcpy(big, "kept");
  int fd = open("/etc/data", O_RDONLY);
  char head[4] = {0};
  read(fd, head, 3);
  tls_value = 41;
  fprintf(stderr, "init %s\\n", argc > 1 ? argv[1] : "-");
  int resumed = wasp_snapshot();
  tls_value++;
  char rest[64] = {0};
  ssize_t n = read(fd, rest, sizeof rest - 1);
  int q;
  while (scanf("%d", &q) == 1) printf("%d ", q >= 0 && q < 1000 ? squares[q] : -1);
  printf("| resumed=%d tls=%d head=%s rest=%.*s big=%s arg=%s\\n", resumed, tls_value, head, (int)n, rest, big, argc > 1 ? argv[1] : "-");
  return 0;
}`;
const DATA = new TextEncoder().encode("abcdefgh");
const files = { "/etc/data": DATA };
const tail = (arg: string) => `| resumed=1 tls=42 head=abc rest=defgh big=kept arg=${arg}\n`;
const text = (b: Uint8Array) => new TextDecoder().decode(b);

let prog = "";
let snap = "";
beforeAll(async () => {
  prog = (await compileC(SERVICE, { cacheDir, name: "service" })).path;
  snap = join(tmp, "service.snap");
  using p = LinuxProgram.fromFile(prog, { files });
  expect(text(p.run(["first"], { input: "2" }).stdout)).toBe("4 | resumed=0 tls=42 head=abc rest=defgh big=kept arg=first\n");
  const info = p.writeSnapshot(snap);
  expect(info.linux).toBe(true);
  expect(info.processBytes).toBeGreaterThan(readFileSync(prog).length);
}, slow(600_000));

describe("restored in this process", () => {
  test("every call resumes at wasp_snapshot(): heap, mapping, file offset, TLS and arguments as they were", () => {
    using p = LinuxProgram.fromSnapshotFile(snap, { files, poolSize: 2 });
    expect(p.snapshotTaken).toBe(true);
    for (let i = 0; i < 8; i++) {
      const r = p.run({ input: `${i} ${i + 1}` });
      expect(text(r.stderr)).toBe(""); // no initialization
      expect(text(r.stdout)).toBe(`${i * i} ${(i + 1) * (i + 1)} ${tail("first")}`);
      if (i % 2) p.cleanIdle();
    }
    expect(() => p.run(["other"])).toThrow(BadArgsError);
    expect(text(p.run(["first"], { input: "3" }).stdout)).toBe(`9 ${tail("first")}`);
  });

  test("a restored program writes the same snapshot again", () => {
    using p = LinuxProgram.fromSnapshotFile(snap, { files });
    const again = join(tmp, "again.snap");
    p.writeSnapshot(again);
    using q = LinuxProgram.fromSnapshotFile(again, { files });
    expect(text(q.run({ input: "5" }).stdout)).toBe(`25 ${tail("first")}`);
  });

  test("the files its program was granted come with it (in its memory); a grant must be the same; memory and stack are the file's", () => {
    using bare = LinuxProgram.fromSnapshotFile(snap);
    expect(text(bare.run({ input: "1" }).stdout)).toBe(`1 ${tail("first")}`);
    expect([...bare.files.keys()]).toEqual(["/etc/data"]);
    expect(() => LinuxProgram.fromSnapshotFile(snap, { files: { "/etc/data": new TextEncoder().encode("ABCDEFGHIJ") } })).toThrow(/holds the files its program was granted \(\/etc\/data\).*grant exactly those/);
    expect(() => LinuxProgram.fromSnapshotFile(snap, { files: { ...files, "/etc/more": DATA } })).toThrow(BadArgsError);
    expect(() => LinuxProgram.fromSnapshotFile(snap, { files, memory: 32 << 20 })).toThrow(BadArgsError);
  });

  test("Virtine.load of the file: kind linux, on this thread and on workers", async () => {
    await using v = await Virtine.load(snap, { workers, files });
    expect(v.kind).toBe("linux");
    expect(text(v.runSync({ input: "7" }).output)).toBe(`49 ${tail("first")}`);
    const runs = await Promise.all(Array.from({ length: 10 }, (_, i) => v.run({ input: String(i) })));
    expect(runs.map((r) => [r.status, r.console, text(r.output)])).toEqual(Array.from({ length: 10 }, (_, i) => [0, "", `${i * i} ${tail("first")}`]));
    await using bare = await Virtine.load(snap, { workers });
    expect(text((await bare.run({ input: "3" })).output)).toBe(`9 ${tail("first")}`);
  });

  test("closing a restored program leaves nothing open", () => {
    const before = fdTable();
    for (let i = 0; i < 3; i++) {
      const p = LinuxProgram.fromSnapshotFile(snap, { files });
      p.run({ input: "1" });
      p.close();
    }
    expect(fdsOpenedSince(before)).toEqual([]);
  });
});

describe("a hostile file", () => {
  /** A copy of the snapshot with `edit` applied to its bytes, the header's CRC (and the process section's, if asked) made right again. */
  function forged(name: string, edit: (bytes: Uint8Array, dv: DataView) => void): string {
    const bytes = new Uint8Array(readFileSync(snap));
    const dv = new DataView(bytes.buffer);
    edit(bytes, dv);
    dv.setUint32(HEADER.CHECKSUM, 0, true);
    dv.setUint32(HEADER.CHECKSUM, Bun.hash.crc32(bytes.subarray(0, DATA_OFFSET)), true);
    const path = join(tmp, name);
    writeFileSync(path, bytes);
    return path;
  }
  const memSize = () => Number(new DataView(readFileSync(snap).buffer).getBigUint64(HEADER.MEM_SIZE, true));
  /** A copy with its process section changed (sizes and checksums made right). */
  const withSection = (name: string, change: (s: ReturnType<typeof decodeProcessFile>) => void) => withProcessSection(snap, join(tmp, name), change);

  test("its host pages are never used: garbage there changes nothing, the program runs as before", () => {
    const path = forged("garbage-host-pages.snap", (b) => {
      // every page below LINUX_LOW but the trampoline (the guest's own code): page tables, GDT,
      // IDT, TSS, the system-call entry — set to bytes that would make supervisor pages the guest's
      b.fill(0xff, DATA_OFFSET + 0x1000, DATA_OFFSET + Layout.TRAMPOLINE);
      b.fill(0xe7, DATA_OFFSET + Layout.TRAMPOLINE + 0x1000, DATA_OFFSET + LINUX_LOW);
    });
    using p = LinuxProgram.fromSnapshotFile(path, { files });
    expect(text(p.run({ input: "4" }).stdout)).toBe(`16 ${tail("first")}`);
  });

  test("a changed process section byte is a checksum error; forged sections are refused by name", () => {
    const flipped = forged("flipped.snap", (b) => {
      b[DATA_OFFSET + memSize() + 40] ^= 1;
    });
    expect(() => LinuxProgram.fromSnapshotFile(flipped, { files })).toThrow(/process section's checksum/);
    const hash = withSection("hash.snap", (s) => {
      s.files[0].sha256 = "00".repeat(32);
    });
    expect(() => LinuxProgram.fromSnapshotFile(hash)).toThrow(/placed file \/etc\/data is not the file the snapshot names/);
    const renamed = withSection("renamed.snap", (s) => {
      s.files[0].path = "/etc/shadow";
    });
    expect(() => LinuxProgram.fromSnapshotFile(renamed, { files })).toThrow(BadArgsError);
    const moved = withSection("moved.snap", (s) => {
      s.files.push({ path: "/x", size: 1 << 20, sha256: "00".repeat(32) });
    });
    expect(() => LinuxProgram.fromSnapshotFile(moved)).toThrow(BadSnapshotError);
    const notElf = withSection("notelf.snap", (s) => {
      s.elf = new Uint8Array(64);
    });
    expect(() => LinuxProgram.fromSnapshotFile(notElf, { files })).toThrow(/its executable/);
  });

  test("its flags, its MSR list and its sizes are checked", () => {
    const msrs = forged("msrs.snap", (_b, dv) => {
      dv.setUint32(HEADER.MSRS, 1, true);
      dv.setUint32(HEADER.MSRS + 8, 0xc0000082, true); // LSTAR: the guest's syscall entry would be the file's
    });
    expect(() => LinuxProgram.fromSnapshotFile(msrs, { files })).toThrow(/lists model-specific registers/);
    const short = forged("short.snap", (_b, dv) => {
      dv.setBigUint64(HEADER.PROCESS_BYTES, 0n, true);
    });
    expect(() => LinuxProgram.fromSnapshotFile(short, { files })).toThrow(BadSnapshotError);
    const efer = forged("efer.snap", (_b, dv) => {
      dv.setBigUint64(HEADER.SREGS + kvm_sregs.off("efer"), 0n, true); // long mode off: no SYSCALL, no NX
    });
    expect(() => LinuxProgram.fromSnapshotFile(efer, { files })).toThrow(/EFER/);
  });
});

describe("the command line", () => {
  test("wasp snapshot PROG -o FILE, then wasp invoke FILE resumes with stdin; inspect and --verify describe it", () => {
    const named = join(tmp, "svc");
    copyFileSync(prog, named);
    chmodSync(named, 0o755);
    const hostData = join(tmp, "data.txt");
    writeFileSync(hostData, "abcdefgh");
    const file = join(tmp, "cli.snap");
    const input = (name: string, data: string) => {
      writeFileSync(join(tmp, name), data);
      return join(tmp, name);
    };
    const made = wasp(["snapshot", named, "cli", "-o", file, "--file", `/etc/data=${hostData}`, "-i", input("in1", "6")]);
    expect(made.status).toBe(0);
    expect(made.stdout).toBe("36 | resumed=0 tls=42 head=abc rest=defgh big=kept arg=cli\n");
    expect(made.stderr).toMatch(/^init cli\nwasp: wrote .*cli\.snap: 64 MiB of guest memory, \d+ pages stored/);
    const run = wasp(["invoke", file, "--file", `/etc/data=${hostData}`, "-i", input("in2", "8 9")]);
    expect([run.status, run.stdout, run.stderr]).toEqual([0, `64 81 ${tail("cli")}`, ""]);
    // the file brings the files: no grant needed; another file is refused
    const bare = wasp(["invoke", file, "-i", input("in3", "2")]);
    expect([bare.status, bare.stdout]).toEqual([0, `4 ${tail("cli")}`]);
    writeFileSync(join(tmp, "other.txt"), "other");
    const other = wasp(["invoke", file, "--file", `/etc/data=${join(tmp, "other.txt")}`]);
    expect(other.status).not.toBe(0);
    expect(other.stderr).toMatch(/^wasp: .*grant exactly those/);
    expect(wasp(["inspect", file]).stdout).toMatch(/image +svc \(Linux executable\)/);
    expect(wasp(["snapshot", "--verify", file]).status).toBe(0);
  }, slow(120_000));
});
