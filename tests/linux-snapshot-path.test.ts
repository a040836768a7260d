// access("/dev/wasp/snapshot") is the snapshot point of a program that cannot issue wasp.h's OUT
// (an interpreter): 0 in the call that captures, 1 in every call resumed there — through the
// in-VM layer (a rewritten site) and through the CPL0 entry (the layer off: the host makes the
// entry's return itself before the capture); what ran before it is not run again.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LinuxProgram } from "../src/virtine/linux.ts";

const cacheDir = mkdtempSync(join(tmpdir(), "wasp-snap-path-"));
afterAll(() => rmSync(cacheDir, { recursive: true, force: true }));

const SOURCE = `
#include <stdio.h>
#include <unistd.h>
static int before, after;
int main(void) {
  char buf[64];
  before++;
  int r = access("/dev/wasp/snapshot", F_OK);
  after++;
  ssize_t n = read(0, buf, sizeof buf - 1);
  buf[n > 0 ? n : 0] = 0;
  printf("r=%d before=%d after=%d in=%s\\n", r, before, after, buf);
  return 0;
}`;

describe("access(/dev/wasp/snapshot)", () => {
  for (const layer of [true, false]) {
    test(`captures once, later calls resume there (layer ${layer ? "on" : "off"})`, async () => {
      using p = await LinuxProgram.fromC(SOURCE, { cacheDir, name: "snappath", layer });
      const out = (i: number) => new TextDecoder().decode(p.run({ input: new TextEncoder().encode(`c${i}`) }).stdout);
      expect(out(0)).toBe("r=0 before=1 after=1 in=c0\n");
      expect(p.snapshotTaken).toBe(true);
      expect(out(1)).toBe("r=1 before=1 after=1 in=c1\n");
      expect(out(2)).toBe("r=1 before=1 after=1 in=c2\n");
    });
  }

  test("with snapshots off it answers 0 and nothing is kept", async () => {
    using p = await LinuxProgram.fromC(SOURCE, { cacheDir, name: "snappath", snapshot: false });
    for (let i = 0; i < 2; i++) expect(new TextDecoder().decode(p.run({ input: new TextEncoder().encode("x") }).stdout)).toBe("r=0 before=1 after=1 in=x\n");
    expect(p.snapshotTaken).toBe(false);
  });

  test("other paths under /dev/wasp/ do not exist", async () => {
    using p = await LinuxProgram.fromC(`#include <unistd.h>\n#include <fcntl.h>\nint main(void) { return (access("/dev/wasp/other", F_OK) == -1 ? 1 : 0) + (open("/dev/wasp/snapshot", O_RDONLY) == -1 ? 2 : 0); }`, { cacheDir, name: "snappath2" });
    expect(p.run().status).toBe(3);
  });
});
