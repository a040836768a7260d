// A snapshot file keeps the page protections a program set itself (issue 24: a dynamically linked
// program's loader maps its libraries' code with mmap and mprotect). The restore builds the page
// tables from the executable's headers and from the section's protected runs, read from the
// snapshot's own tables when it was written; a run on a page that is not the program's to protect
// (wasp's pages, the host's, past its memory) is refused, whatever the rest of the file says.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compileC } from "../src/linux/c.ts";
import { BadSnapshotError, GuestFaultError } from "../src/errors.ts";
import { LinuxProgram } from "../src/virtine/linux.ts";
import { DATA_OFFSET, HEADER } from "../src/snapshot/file.ts";
import { decodeProcessFile } from "../src/linux/process-file.ts";
import { Layout } from "../src/abi/guest-abi.ts";
import { slow, withProcessSection } from "./support.ts";

const tmp = mkdtempSync(join(tmpdir(), "wasp-linux-protect-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// code written into a mapping and made executable, a mapping made read-only, one made
// inaccessible, all before the snapshot; then what the call's input asks
const PROGRAM = `#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <wasp.h>
static const unsigned char code[] = { 0xb8, 42, 0, 0, 0, 0xc3 }; /* mov eax, 42; ret */
int main(void) {
  unsigned char *x = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  memcpy(x, code, sizeof code);
  if (mprotect(x, 4096, PROT_READ | PROT_EXEC) != 0) return 10;
  char *ro = mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  strcpy(ro, "sealed");
  if (mprotect(ro, 8192, PROT_READ) != 0) return 11;
  char *none = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mprotect(none, 4096, PROT_NONE) != 0) return 12;
  int resumed = wasp_snapshot();
  char cmd[16] = {0};
  if (read(0, cmd, sizeof cmd - 1) < 0) return 13;
  if (!strcmp(cmd, "run")) printf("%d %s resumed=%d\\n", ((int (*)(void))x)(), ro, resumed);
  else if (!strcmp(cmd, "write")) { ro[4096] = 'X'; printf("wrote\\n"); }
  else if (!strcmp(cmd, "none")) printf("%d\\n", none[0]);
  else if (!strcmp(cmd, "patch")) { x[0] = 0x90; printf("patched\\n"); }
  else printf("?\\n");
  return 0;
}`;
const text = (b: Uint8Array) => new TextDecoder().decode(b);

let snap = "";
let layout: LinuxProgram["layout"];
beforeAll(async () => {
  const prog = (await compileC(PROGRAM, { cacheDir: join(tmp, "cache"), name: "protect" })).path;
  snap = join(tmp, "protect.snap");
  using p = LinuxProgram.fromFile(prog);
  layout = p.layout;
  expect(text(p.run({ input: "run" }).stdout)).toBe("42 sealed resumed=0\n");
  p.writeSnapshot(snap);
}, slow(600_000));

const memSize = () => Number(new DataView(readFileSync(snap).buffer).getBigUint64(HEADER.MEM_SIZE, true));
const sectionOf = (path: string) => decodeProcessFile(new Uint8Array(readFileSync(path)).subarray(DATA_OFFSET + memSize()));

/** A copy with its process section changed (sizes and checksums made right). */
const withSection = (name: string, change: (s: ReturnType<typeof decodeProcessFile>) => void) => withProcessSection(snap, join(tmp, name), change);

describe("a snapshot file keeps the protections the program set", () => {
  test("the section names them: the code page r-x, the two pages read-only, the page inaccessible", () => {
    const runs = sectionOf(snap).protections;
    expect(runs.filter((r) => r.prot === 5 && r.pages === 1).length).toBeGreaterThanOrEqual(1);
    expect(runs.filter((r) => r.prot === 1 && r.pages >= 2).length).toBeGreaterThanOrEqual(1);
    expect(runs.filter((r) => r.prot === 0 && r.pages === 1).length).toBeGreaterThanOrEqual(1);
    // all of them in the program's mappings (the executable's own pages are as its headers say)
    for (const r of runs) expect(r.addr >= layout.regions.mmapStart && r.addr + r.pages * 4096 <= layout.regions.mmapEnd).toBe(true);
  });

  test("restored: the code runs, the read-only page stays read-only, the inaccessible one inaccessible, the code unwritable", () => {
    using p = LinuxProgram.fromSnapshotFile(snap);
    for (let i = 0; i < 3; i++) {
      expect(text(p.run({ input: "run" }).stdout)).toBe("42 sealed resumed=1\n");
      expect(() => p.run({ input: "write" })).toThrow(GuestFaultError);
      expect(() => p.run({ input: "none" })).toThrow(GuestFaultError);
      expect(() => p.run({ input: "patch" })).toThrow(GuestFaultError);
    }
  });

  test("a restored program writes the same protections again", () => {
    const again = join(tmp, "again.snap");
    {
      using p = LinuxProgram.fromSnapshotFile(snap);
      p.writeSnapshot(again);
    }
    expect(sectionOf(again).protections).toEqual(sectionOf(snap).protections);
  });

  test("without its runs the code page is the data its headers give: not executable (what the runs are for)", () => {
    const bare = withSection("bare.snap", (s) => {
      s.protections = [];
    });
    using p = LinuxProgram.fromSnapshotFile(bare);
    expect(() => p.run({ input: "run" })).toThrow(GuestFaultError);
  });
});

describe("a hostile file's protections", () => {
  const refused = (name: string, runs: { addr: number; pages: number; prot: number }[], why: RegExp) => {
    const path = withSection(name, (s) => {
      s.protections = runs;
    });
    expect(() => LinuxProgram.fromSnapshotFile(path)).toThrow(BadSnapshotError);
    expect(() => LinuxProgram.fromSnapshotFile(path)).toThrow(why);
  };

  test("on wasp's pages (the process block, the stubs, the placed files), the host's, the guard or past the memory: refused", () => {
    refused("block.snap", [{ addr: layout.io.start, pages: 1, prot: 7 }], /is not the program's to protect/);
    refused("stubs.snap", [{ addr: layout.io.sites, pages: 1, prot: 7 }], /is not the program's to protect/);
    refused("readonly.snap", [{ addr: layout.io.readOnly, pages: 1, prot: 3 }], /is not the program's to protect/);
    refused("tables.snap", [{ addr: Layout.PML4, pages: 1, prot: 3 }], /is not the program's to protect/);
    refused("guard.snap", [{ addr: layout.guard[0], pages: 1, prot: 3 }], /is not the program's to protect/);
    // a run that starts in the program's stack and runs past the end of its memory
    refused("past.snap", [{ addr: layout.stack[1] - 4096, pages: 2, prot: 3 }], /past the end of its memory/);
    // one bad page at the end of an otherwise good run
    refused("straddle.snap", [{ addr: layout.regions.mmapEnd - 4096, pages: 2, prot: 7 }], /page 0x[0-9a-f]+ is not the program's/);
  });

  test("on the program's own pages any protections are its own business: the file loads", () => {
    const path = withSection("own.snap", (s) => {
      s.protections = [{ addr: layout.regions.brkStart, pages: 4, prot: 7 }];
    });
    using p = LinuxProgram.fromSnapshotFile(path);
    // its mapped code is not executable any more (the runs are the file's), the rest runs
    expect(() => p.run({ input: "run" })).toThrow(GuestFaultError);
    expect(text(p.run({ input: "x" }).stdout)).toBe("?\n");
  });
});
