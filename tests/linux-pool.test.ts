// Linux programs as an image kind (issue 13, part 4), on the real /dev/kvm: calls run on warm
// shells of a pool, each reset to the program's snapshot — nothing a call writes (globals, the
// heap, mappings, the stack, TLS, its open files, the FS base) reaches the next one — and a
// program that calls wasp_snapshot() is resumed there by every later call, with its process
// (break, mappings, open files and their offsets, TLS) as the snapshot left it and its own input.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compileC } from "../src/linux/c.ts";
import { BadArgsError, GuestFaultError } from "../src/errors.ts";
import { LinuxProgram, type LinuxOptions } from "../src/virtine/linux.ts";
import { slow, fdTable, fdsOpenedSince } from "./support.ts";

const cacheDir = mkdtempSync(join(tmpdir(), "wasp-linux-pool-"));
afterAll(() => rmSync(cacheDir, { recursive: true, force: true }));

const SOURCES = {
  // what a call leaves behind, and whether the next call sees it: a global, a TLS variable, the
  // heap (brk and an mmap-sized block), bytes under the stack pointer, an fd left open
  leftovers: `#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
static char global[8192];
static __thread int tls_counter;
int main(int argc, char **argv) {
  volatile char probe[4096];
  int seen_stack = 0;
  for (size_t i = 0; i < sizeof probe; i++) if (probe[i] == 'S') seen_stack++;
  char *small = malloc(100);
  char *big = malloc(4 << 20);
  int seen_small = small[0] == 'H', seen_big = big[12345] == 'M';
  int fd = open("/etc/data", O_RDONLY);
  printf("global=%s tls=%d small=%d big=%d stack=%d fd=%d\\n", global, ++tls_counter, seen_small, seen_big, seen_stack > 0, fd);
  if (argc > 1) {
    strcpy(global, argv[1]);
    memset((char *)probe, 'S', sizeof probe);
    small[0] = 'H';
    big[12345] = 'M';
  }
  return 0;
}`,
  // initializes (a table, the heap, a file read half-way, TLS), snapshots, then answers on stdin
  service: `#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <wasp.h>
static __thread int tls_value;
int main(int argc, char **argv) {
  int *squares = malloc(1000 * sizeof *squares);
  for (int i = 0; i < 1000; i++) squares[i] = i * i;
  char *big = malloc(8 << 20); /* mmap-sized */
  strcpy(big, "kept in a mapping");
  int fd = open("/etc/data", O_RDONLY);
  char head[4] = {0};
  read(fd, head, 3);
  tls_value = 41;
  fprintf(stderr, "init %s\\n", argc > 1 ? argv[1] : "-");
  int resumed = wasp_snapshot();
  tls_value++;
  char rest[64] = {0};
  ssize_t n = read(fd, rest, sizeof rest - 1);
  char *more = malloc(1 << 20); /* the heap after the snapshot */
  memset(more, 1, 1 << 20);
  int q;
  while (scanf("%d", &q) == 1) printf("%d ", q >= 0 && q < 1000 ? squares[q] : -1);
  printf("| resumed=%d tls=%d head=%s rest=%.*s big=%s arg=%s\\n", resumed, tls_value, head, (int)n, rest, big, argc > 1 ? argv[1] : "-");
  return 0;
}`,
  crash: `#include <stdio.h>
#include <string.h>
#include <wasp.h>
static char state[64] = "clean";
int main(void) {
  wasp_snapshot();
  char q[16] = {0};
  fgets(q, sizeof q, stdin);
  printf("%s\\n", state);
  strcpy(state, "dirty");
  if (q[0] == 'x') *(volatile int *)0 = 1;
  return 0;
}`,
} as const;

type Name = keyof typeof SOURCES;
const elfs = {} as Record<Name, Awaited<ReturnType<typeof compileC>>["elf"]>;
const files = { "/etc/data": new TextEncoder().encode("abcdefgh") };

beforeAll(async () => {
  for (const name of Object.keys(SOURCES) as Name[]) elfs[name] = (await compileC(SOURCES[name], { cacheDir, name })).elf;
}, slow(600_000));

const text = (b: Uint8Array) => new TextDecoder().decode(b);
function program(name: Name, opts: LinuxOptions = {}): LinuxProgram {
  return new LinuxProgram(elfs[name], { files, ...opts });
}

describe("calls on a pool's warm shells start clean", () => {
  test("a call's globals, TLS, heap, stack and open files never reach the next call on the same shell", () => {
    using p = program("leftovers", { poolSize: 1 });
    const clean = "global= tls=1 small=0 big=0 stack=0 fd=3\n";
    for (let i = 0; i < 6; i++) {
      const r = p.run(i % 2 ? ["secret"] : []);
      expect([r.status, text(r.stdout)]).toEqual([0, clean]);
      p.cleanIdle();
    }
    // one shell, reset between the calls (not a new VM each time)
    expect(p.poolStats.created).toBe(1);
    expect(p.poolStats.cleaned).toBeGreaterThanOrEqual(5);
    expect(p.poolStats.pagesRestored).toBeGreaterThan(0);
  });

  test("a reset that has not happened yet happens before the shell is handed out again", () => {
    using p = program("leftovers", { poolSize: 1 });
    p.run(["secret"]);
    // no cleanIdle(): the next call must clean the shell itself
    expect(text(p.run().stdout)).toBe("global= tls=1 small=0 big=0 stack=0 fd=3\n");
  });

  test("the `cow` reset strategy is as clean", () => {
    using p = program("leftovers", { poolSize: 1, resetStrategy: "cow" });
    p.run(["secret"]);
    p.cleanIdle();
    expect(text(p.run().stdout)).toBe("global= tls=1 small=0 big=0 stack=0 fd=3\n");
  });
});

describe("wasp_snapshot(): later calls resume there", () => {
  test("the process resumes as the snapshot left it: heap, mapping, file offset, TLS; each call its own input", () => {
    using p = program("service");
    const first = p.run({ input: "3 4" });
    expect(text(first.stderr)).toBe("init -\n");
    expect(text(first.stdout)).toBe("9 16 | resumed=0 tls=42 head=abc rest=defgh big=kept in a mapping arg=-\n");
    expect(p.snapshotTaken).toBe(true);
    for (const [input, squares] of [["10", "100 "], ["", ""], ["999 0 -5", "998001 0 -1 "]]) {
      const r = p.run({ input });
      expect(text(r.stderr)).toBe(""); // no initialization: it resumed after it
      expect(text(r.stdout)).toBe(`${squares}| resumed=1 tls=42 head=abc rest=defgh big=kept in a mapping arg=-\n`);
      expect(r.syscalls).toBeLessThan(first.syscalls);
    }
  });

  test("the snapshotting call's arguments stay; a resumed call with others is refused", () => {
    using p = program("service");
    expect(text(p.run(["alpha"], { input: "1" }).stdout)).toContain("arg=alpha");
    expect(text(p.run(["alpha"], { input: "2" }).stdout)).toBe("4 | resumed=1 tls=42 head=abc rest=defgh big=kept in a mapping arg=alpha\n");
    expect(text(p.run({ input: "2" }).stdout)).toContain("arg=alpha"); // no arguments given: the snapshot's
    expect(() => p.run(["beta"])).toThrow(BadArgsError);
    expect(() => p.run({ input: "1", env: ["K=v"] })).toThrow(BadArgsError);
  });

  test("many resumed calls on a small pool, with resets in between, all alike", () => {
    using p = program("service", { poolSize: 2 });
    p.run({ input: "1" });
    for (let i = 0; i < 30; i++) {
      expect(text(p.run({ input: String(i) }).stdout)).toBe(`${i * i} | resumed=1 tls=42 head=abc rest=defgh big=kept in a mapping arg=-\n`);
      if (i % 3 === 0) p.cleanIdle();
    }
    expect(p.poolStats.created).toBeLessThanOrEqual(4);
  });

  test("with snapshots off every call initializes", () => {
    using p = program("service", { snapshot: false });
    for (let i = 0; i < 3; i++) {
      const r = p.run({ input: "2" });
      expect(text(r.stderr)).toBe("init -\n");
      expect(text(r.stdout)).toContain("resumed=0");
    }
    expect(p.snapshotTaken).toBe(false);
  });

  test("a resumed call that faults fails alone: its shell is discarded, the next call is clean", () => {
    using p = program("crash");
    expect(text(p.run({ input: "a" }).stdout)).toBe("clean\n");
    expect(text(p.run({ input: "b" }).stdout)).toBe("clean\n");
    expect(() => p.run({ input: "x" })).toThrow(GuestFaultError);
    expect(text(p.run({ input: "c" }).stdout)).toBe("clean\n");
  });

  test("a call that faults after it captured the snapshot leaves none", () => {
    using p = program("crash");
    expect(() => p.run({ input: "x" })).toThrow(GuestFaultError); // captured, then faulted: dropped
    expect(p.snapshotTaken).toBe(false);
    expect(text(p.run({ input: "a" }).stdout)).toBe("clean\n");
    expect(p.snapshotTaken).toBe(true);
  });
});

test("closed programs hold nothing: fds come back, calls are refused", () => {
  const before = fdTable();
  for (let i = 0; i < 3; i++) {
    const p = program("service", { poolSize: 2 });
    p.ensure(2);
    p.run({ input: "1" });
    p.run({ input: "2" });
    p.close();
    expect(() => p.run()).toThrow(BadArgsError);
  }
  expect(fdsOpenedSince(before)).toEqual([]);
});
