// Snapshot files of Linux programs granted directories (--dir, `dirs`), on the real /dev/kvm. The
// program opens a file in its granted directory and reads part of it, opens the directory for
// listing, then takes its snapshot with both fds open; calls resumed from the file read the rest,
// list the directory and open a file they had not opened. The file names the directories by their
// guest paths only and the files opened there by path and SHA-256: a restore grants the same guest
// paths again, from any host directory holding the same bytes; a changed file is a
// BadSnapshotError, a missing or other grant a BadArgsError naming what to give.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BadArgsError, BadSnapshotError, Virtine, WorkerPool } from "../src/index.ts";
import { LinuxProgram } from "../src/virtine/linux.ts";
import { DATA_OFFSET, HEADER } from "../src/snapshot/file.ts";
import { decodeProcessFile } from "../src/linux/process-file.ts";
import { compileC } from "../src/linux/c.ts";
import { slow, wasp } from "./support.ts";

const tmp = mkdtempSync(join(tmpdir(), "wasp-snap-dirs-"));
const cacheDir = join(tmp, "cache");
const workers = new WorkerPool({ size: 2 });
afterAll(async () => {
  await workers.close();
  rmSync(tmp, { recursive: true, force: true });
});

const SOURCE = `
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static char head[16];
int main(void) {
  int fd = open("/data/words.txt", O_RDONLY);
  if (fd < 0) return 10;
  if (read(fd, head, 6) != 6) return 11;
  DIR *dir = opendir("/data");
  if (!dir) return 12;
  int r = access("/dev/wasp/snapshot", F_OK);
  char rest[256];
  ssize_t n = read(fd, rest, sizeof rest - 1);
  rest[n > 0 ? n : 0] = 0;
  char names[256] = "";
  struct dirent *e;
  while ((e = readdir(dir)) != 0) {
    strcat(names, e->d_name);
    strcat(names, " ");
  }
  char other[64] = "-";
  int ofd = open("/data/sub/other.txt", O_RDONLY);
  if (ofd >= 0) {
    ssize_t m = read(ofd, other, sizeof other - 1);
    other[m > 0 ? m : 0] = 0;
    close(ofd);
  }
  char in[64];
  ssize_t k = read(0, in, sizeof in - 1);
  in[k > 0 ? k : 0] = 0;
  printf("r=%d head=%s rest=%s dir=%sother=%s in=%s\\n", r, head, rest, names, other, in);
  return 0;
}`;

const WORDS = "alpha beta gamma delta";
/** A directory granted as /data: words.txt, sub/other.txt. */
function dataDir(name: string, words = WORDS, other = "o1"): string {
  const d = join(tmp, name);
  mkdirSync(join(d, "sub"), { recursive: true });
  writeFileSync(join(d, "words.txt"), words);
  writeFileSync(join(d, "sub", "other.txt"), other);
  return d;
}
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const expected = (r: number, input: string, other = "o1") => `r=${r} head=alpha  rest=beta gamma delta dir=. .. sub words.txt other=${other} in=${input}\n`;

let dirA = "";
let snap = "";
beforeAll(async () => {
  dirA = dataDir("a");
  snap = join(tmp, "dirs.snap");
  using p = await LinuxProgram.fromC(SOURCE, { cacheDir, name: "snapdirs", dirs: { "/data": dirA } });
  expect(text(p.run({ input: "first" }).stdout)).toBe(expected(0, "first"));
  expect(text(p.run({ input: "again" }).stdout)).toBe(expected(1, "again"));
  const info = p.writeSnapshot(snap);
  expect(info.linux).toBe(true);
}, slow(600_000));

/** The snapshot file's process section, decoded. */
function section(path: string) {
  const bytes = new Uint8Array(readFileSync(path));
  const memSize = Number(new DataView(bytes.buffer).getBigUint64(HEADER.MEM_SIZE, true));
  return decodeProcessFile(bytes.subarray(DATA_OFFSET + memSize));
}

describe("a snapshot file of a program granted directories", () => {
  test("names the directories by guest path, never the host's, and what was opened there by path and hash", () => {
    const s = section(snap);
    expect(s.dirs).toEqual(["/data"]);
    expect(s.opened.map((e) => e.path)).toEqual(["/data/words.txt", "/data"]);
    expect(s.opened[0].sha256).toBe(new Bun.CryptoHasher("sha256").update(WORDS).digest("hex"));
    // no byte of the file names the host directory
    expect(Buffer.from(readFileSync(snap)).indexOf(dirA)).toBe(-1);
  });

  test("restored with the same directory: every call resumes with the fds open, the listing, and files not opened before", () => {
    using p = LinuxProgram.fromSnapshotFile(snap, { dirs: { "/data": dirA }, poolSize: 2 });
    expect(p.snapshotTaken).toBe(true);
    for (let i = 0; i < 5; i++) {
      expect(text(p.run({ input: `c${i}` }).stdout)).toBe(expected(1, `c${i}`));
      if (i % 2) p.cleanIdle();
    }
  });

  test("restored from another host directory holding the same bytes: the same calls", () => {
    const dirB = dataDir("b", WORDS, "o2");
    using p = LinuxProgram.fromSnapshotFile(snap, { dirs: { "/data": dirB } });
    // other.txt was not open at the snapshot: it is read from the directory granted now
    expect(text(p.run({ input: "b" }).stdout)).toBe(expected(1, "b", "o2"));
    expect(text(p.run({ input: "b2" }).stdout)).toBe(expected(1, "b2", "o2"));
  });

  test("a file it had open, changed on the host (or gone), is a BadSnapshotError at its first use; so is a changed listing", () => {
    const changed = dataDir("changed", "ALPHA beta gamma delta");
    using p = LinuxProgram.fromSnapshotFile(snap, { dirs: { "/data": changed } });
    expect(() => p.run({ input: "x" })).toThrow(BadSnapshotError);
    expect(() => p.run({ input: "x" })).toThrow(/had \/data\/words.txt open, and the granted directory no longer holds the same bytes/);
    const gone = dataDir("gone");
    rmSync(join(gone, "words.txt"));
    writeFileSync(join(gone, "words2.txt"), WORDS);
    using q = LinuxProgram.fromSnapshotFile(snap, { dirs: { "/data": gone } });
    expect(() => q.run({ input: "x" })).toThrow(/had \/data\/words.txt open, and the granted directory no longer holds the same file \(it is gone\)/);
    const listed = dataDir("listed");
    writeFileSync(join(listed, "extra.txt"), "x");
    using l = LinuxProgram.fromSnapshotFile(snap, { dirs: { "/data": listed } });
    expect(() => l.run({ input: "x" })).toThrow(/had \/data open/);
  });

  test("the directories must be granted again at the same guest paths: missing, another path or one more is a BadArgsError naming what to give", () => {
    expect(() => LinuxProgram.fromSnapshotFile(snap)).toThrow(BadArgsError);
    expect(() => LinuxProgram.fromSnapshotFile(snap)).toThrow(/dirs\.snap was taken with directories granted: give --dir HOST=\/data \(dirs\)$/);
    expect(() => LinuxProgram.fromSnapshotFile(snap, { dirs: { "/other": dirA } })).toThrow(/give --dir HOST=\/data; leave out \/other, which it was not granted \(dirs\)$/);
    expect(() => LinuxProgram.fromSnapshotFile(snap, { dirs: { "/data": dirA, "/more": dirA } })).toThrow(/leave out \/more/);
    // the guest path normalized as a grant is: /data/ is /data
    using p = LinuxProgram.fromSnapshotFile(snap, { dirs: { "/data/": dirA } });
    expect(text(p.run({ input: "n" }).stdout)).toBe(expected(1, "n"));
  });

  test("a snapshot taken without directories refuses them", async () => {
    const plain = join(tmp, "plain.snap");
    {
      using p = await LinuxProgram.fromC(`#include <unistd.h>\n#include <stdio.h>\nint main(void) { int r = access("/dev/wasp/snapshot", F_OK); printf("r=%d\\n", r); return 0; }`, { cacheDir, name: "nodirs" });
      p.run();
      p.writeSnapshot(plain);
    }
    expect(section(plain).dirs).toEqual([]);
    expect(() => LinuxProgram.fromSnapshotFile(plain, { dirs: { "/data": dirA } })).toThrow(/plain\.snap was taken with no directories granted: grant it none/);
    using p = LinuxProgram.fromSnapshotFile(plain, { dirs: {} });
    expect(text(p.run().stdout)).toBe("r=1\n");
  });

  test("a restored program writes the same snapshot again (its table, read or not, kept)", () => {
    using p = LinuxProgram.fromSnapshotFile(snap, { dirs: { "/data": dirA } });
    const again = join(tmp, "again.snap");
    p.writeSnapshot(again);
    expect(section(again).opened).toEqual(section(snap).opened);
    using q = LinuxProgram.fromSnapshotFile(again, { dirs: { "/data": dirA } });
    expect(text(q.run({ input: "g" }).stdout)).toBe(expected(1, "g"));
  });

  test("Virtine.load of the file with dirs: on this thread and on workers; without them refused", async () => {
    await using v = await Virtine.load(snap, { workers, dirs: { "/data": dirA } });
    expect(text(v.runSync({ input: "local" }).output)).toBe(expected(1, "local"));
    const runs = await Promise.all(Array.from({ length: 6 }, (_, i) => v.run({ input: `w${i}` })));
    expect(runs.map((r) => [r.status, text(r.output)])).toEqual(Array.from({ length: 6 }, (_, i) => [0, expected(1, `w${i}`)]));
    await expect(Virtine.load(snap, { workers })).rejects.toThrow(/give --dir HOST=\/data/);
  });
});

describe("the CLI", () => {
  test("wasp snapshot PROG --dir, wasp invoke FILE --dir; without --dir one line; wasp inspect lists the directories", async () => {
    const prog = (await compileC(SOURCE, { cacheDir, name: "snapdirs" })).path;
    const file = join(tmp, "cli.snap");
    const input = (name: string, content: string) => {
      const p = join(tmp, name);
      writeFileSync(p, content);
      return p;
    };
    const made = wasp(["snapshot", prog, "-o", file, "--dir", `${dirA}=/data`, "-i", input("in1", "one")]);
    expect(made.stderr).toMatch(/^wasp: wrote /m);
    expect(made.status).toBe(0);
    expect(made.stdout).toBe(expected(0, "one"));
    const dirB = dataDir("cli-b", WORDS, "o3");
    const run = wasp(["invoke", file, "--dir", `${dirB}=/data`, "-i", input("in2", "two")]);
    expect([run.status, run.stdout, run.stderr]).toEqual([0, expected(1, "two", "o3"), ""]);
    const bare = wasp(["invoke", file, "-i", input("in3", "three")]);
    expect(bare.status).not.toBe(0);
    expect(bare.stdout).toBe("");
    expect(bare.stderr).toMatch(/^wasp: .*cli\.snap was taken with directories granted: give --dir HOST=\/data \(dirs\)\n$/);
    const inspect = wasp(["inspect", file]);
    expect(inspect.status).toBe(0);
    expect(inspect.stdout).toMatch(/^directories +\/data \(granted when it was taken/m);
    expect(JSON.parse(wasp(["inspect", "--json", file]).stdout).directories).toEqual(["/data"]);
    expect(wasp(["snapshot", "--verify", file]).status).toBe(0);
  }, slow(120_000));
});
