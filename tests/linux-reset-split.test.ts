// A call's mprotect of part of a 2 MiB page splits it (src/linux/protect.ts), and the split re-adds
// the memory slot, which drops KVM's log of the pages the call had written until then. Those
// pages must still be restored by the reset and taken by a capture: a call that wrote a page,
// then split a mapping, must leave nothing to the next call, and a snapshot taken after such a
// split must hold what the program wrote before it (Python's start-up does exactly this).
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LinuxProgram } from "../src/virtine/linux.ts";

const cacheDir = mkdtempSync(join(tmpdir(), "wasp-split-"));
afterAll(() => rmSync(cacheDir, { recursive: true, force: true }));

const SOURCE = `
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
static int calls;
static unsigned char before[64 << 10];
static void split(void) {
  /* 6 MiB: the page in its middle lies in a 2 MiB page of its own, which the mprotect splits */
  unsigned char *p = mmap(0, 6 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED || mprotect(p + (3 << 20), 4096, PROT_READ) != 0) _exit(9);
}
int main(void) {
  calls++;
  unsigned seen = 0;                          /* zero at every start: nothing of an earlier call */
  for (unsigned i = 0; i < sizeof before; i++) seen += before[i];
  memset(before, 0x5a, sizeof before);        /* pages written before the split, never after it */
  split();
  int r = access("/dev/wasp/snapshot", F_OK); /* the snapshot point, where snapshots are on */
  unsigned sum = 0;                           /* read only where resumed: untouched after the split */
  if (r == 1) for (unsigned i = 0; i < sizeof before; i++) sum += before[i];
  printf("calls=%d seen=%u sum=%u r=%d\\n", calls, seen, sum, r);
  calls += 100;
  return 0;
}`;

describe("a split of a 2 MiB page during a call", () => {
  for (const layer of [true, false]) {
    test(`the reset restores the pages written before it (layer ${layer ? "on" : "off"})`, async () => {
      using p = await LinuxProgram.fromC(SOURCE, { cacheDir, name: "split", layer, snapshot: false });
      const out = () => new TextDecoder().decode(p.run().stdout);
      for (let i = 0; i < 4; i++) expect(out()).toBe("calls=1 seen=0 sum=0 r=0\n");
    });

    test(`a capture after it holds them (layer ${layer ? "on" : "off"})`, async () => {
      using p = await LinuxProgram.fromC(SOURCE, { cacheDir, name: "split", layer });
      const out = () => new TextDecoder().decode(p.run().stdout);
      expect(out()).toBe("calls=1 seen=0 sum=0 r=0\n");
      expect(p.snapshotTaken).toBe(true);
      for (let i = 0; i < 3; i++) expect(out()).toBe(`calls=1 seen=0 sum=${64 * 1024 * 0x5a} r=1\n`);
    });
  }
});
