// Static Linux executables in a virtine (issue 13), on the real /dev/kvm: C programs compiled with
// the bundled zig cc run unchanged — arguments, environment, stdin, stdout, stderr, exit status,
// malloc, printf, libm — every system call answered by the host; hostile programs (writes into
// their own code, jumps into data, stack overflow, random system calls with hostile pointers, a fork
// bomb, memory and output floods, endless loops) end in a typed error or an errno and the host
// survives, leaking nothing. Each program also runs natively, as the baseline of what it must print.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compileC } from "../src/linux/c.ts";
import { GuestFaultError, StackOverflowError, TimeoutError } from "../src/errors.ts";
import { LinuxProgram, type LinuxOptions } from "../src/virtine/linux.ts";
import { slow, WASP, fdTable, fdsOpenedSince } from "./support.ts";

const cacheDir = mkdtempSync(join(tmpdir(), "wasp-linux-run-"));
afterAll(() => rmSync(cacheDir, { recursive: true, force: true }));

const SOURCES = {
  hello: `#include <stdio.h>
int main(int argc, char **argv) { printf("hello from %s with %d args\\n", argv[0], argc - 1); fprintf(stderr, "to stderr\\n"); return 7; }`,
  argv: `#include <stdio.h>
#include <stdlib.h>
extern char **environ;
int main(int argc, char **argv) {
  for (int i = 0; i < argc; i++) printf("argv[%d]=%s\\n", i, argv[i]);
  for (char **e = environ; *e; e++) printf("env %s\\n", *e);
  const char *k = getenv("K");
  return k ? atoi(k) : 0;
}`,
  upper: `#include <stdio.h>
#include <ctype.h>
int main(void) { int c; long n = 0; while ((c = getchar()) != EOF) { putchar(toupper(c)); n++; } fprintf(stderr, "%ld bytes\\n", n); return 0; }`,
  libc: `#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }
int main(void) {
  size_t n = 200000; double *v = malloc(n * sizeof *v);           /* 1.6 MB: mmap */
  char *small = malloc(100); strcpy(small, "ok");                  /* brk */
  for (size_t i = 0; i < n; i++) v[i] = sin((double)i) * 1000.0;
  qsort(v, n, sizeof *v, cmp);
  printf("%s min=%.4f max=%.4f sqrt2=%.6f strtod=%.2f\\n", small, v[0], v[n - 1], sqrt(2.0), strtod("3.25e2", NULL));
  free(v); free(small);
  return 0;
}`,
  fault: `#include <stdlib.h>
#include <string.h>
static int data_word = 0xc3;                       /* ret, in a data page */
int main(int argc, char **argv) {
  if (!strcmp(argv[1], "write-text")) { *(volatile char *)(void *)main = 0; }
  if (!strcmp(argv[1], "exec-data")) { ((void (*)(void))(void *)&data_word)(); }
  if (!strcmp(argv[1], "null")) { return *(volatile int *)0; }
  if (!strcmp(argv[1], "host-page")) { return *(volatile int *)0x6000; }
  if (!strcmp(argv[1], "abort")) abort();
  return 0;
}`,
  recurse: `#include <stdio.h>
static int down(int n) {
  volatile char pad[4096]; pad[0] = (char)n;
  if (n == 0) return 0;
  int r = down(n - 1);
  __asm__ volatile("" : : "r"(pad) : "memory");   /* pad is live after the call: no tail recursion */
  return r + pad[0];
}
int main(int argc, char **argv) { (void)argv; return down(argc * 1000000); }`,
  // indexed by argc, so the compiler must allocate the whole 2 MiB frame (big[0] alone it put in the red zone)
  bigframe: `int main(int argc, char **argv) { (void)argv; volatile char big[2 << 20]; big[argc] = (char)argc; return big[argc]; }`,
  denied: `#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/random.h>
int main(void) {
  struct timespec ts; char buf[8];
  int t = clock_gettime(CLOCK_REALTIME, &ts); int te = errno;
  ssize_t r = getrandom(buf, sizeof buf, 0); int re = errno;
  int fd = open("/etc/passwd", O_RDONLY); int fe = errno;
  pid_t p = fork(); int pe = errno;
  printf("clock %d %s | getrandom %zd %s | open %d %s | fork %d %s\\n", t, strerror(te), r, strerror(re), fd, strerror(fe), (int)p, strerror(pe));
  return 0;
}`,
  granted: `#include <stdio.h>
#include <time.h>
#include <sys/random.h>
#include <fcntl.h>
#include <unistd.h>
int main(void) {
  struct timespec ts; unsigned char buf[16]; char file[64] = {0};
  int t = clock_gettime(CLOCK_REALTIME, &ts);
  ssize_t r = getrandom(buf, sizeof buf, 0);
  int fd = open("/etc/greeting", O_RDONLY);
  ssize_t n = read(fd, file, sizeof file - 1);
  printf("clock %d %d | getrandom %zd | file %zd %s", t, ts.tv_sec > 1700000000, r, n, file);
  return 0;
}`,
  spin: `int main(void) { for (;;) { __asm__ volatile(""); } }`,
  forkbomb: `#include <unistd.h>
#include <stdio.h>
int main(void) { int failed = 0; for (int i = 0; i < 1000; i++) if (fork() < 0) failed++; printf("%d forks failed\\n", failed); return 0; }`,
  flood: `#include <stdio.h>
#include <string.h>
int main(void) { static char line[4096]; memset(line, 'x', sizeof line - 1); for (int i = 0; i < 1024; i++) puts(line); return 0; }`,
  // the pointer is volatile: a malloc whose result is only written to, clang removes as if it
  // never failed (the loop then spins for ever, natively too)
  hog: `#include <stdio.h>
#include <stdlib.h>
int main(void) { size_t total = 0; for (;;) { char *volatile p = malloc(1 << 20); if (!p) break; p[0] = 1; total += 1 << 20; } printf("got %zu MiB\\n", total >> 20); return 0; }`,
  snapshot: `#include <stdio.h>
#include <wasp.h>
int main(void) { int r = wasp_snapshot(); printf("snapshot %d\\n", r); return 0; }`,
  // thousands of random system calls (fixed seed) with hostile arguments: pointers into the host's
  // pages, the guard, past memory, into the program's code, or a scratch buffer; the fuzzer keeps
  // its own state in static variables the random calls cannot reach (no pointer is aimed there)
  fuzz: `#include <stdio.h>
int main(void);
static unsigned long long state = 0x9e3779b97f4a7c15ULL;
static unsigned long long next(void) { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state; }
static char scratch[1 << 20];   /* pointers aim at its first 64 KiB: a call writing up to 8 KiB there stays inside */
static long raw(long nr, long a, long b, long c, long d, long e, long f) {
  register long r10 __asm__("r10") = d; register long r8 __asm__("r8") = e; register long r9 __asm__("r9") = f;
  long ret; __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9) : "rcx", "r11", "memory");
  return ret;
}
static long arg(void) {
  switch (next() % 8) {
    case 0: return 0;
    case 1: return (long)(next() % 4096);
    case 2: return 0x1000 + (long)(next() % 0x1d000);          /* the host's pages */
    case 3: return (long)(next() | 0x8000000000000000ULL);       /* not canonical */
    case 4: return 0x40000000 + (long)(next() % 0x1000000);      /* past memory */
    case 5: return (long)(void *)main + (long)(next() % 256);     /* the program's code */
    case 6: return (long)(scratch + next() % 65536);             /* writable scratch */
    default: return (long)next();
  }
}
int main(void) {
  long counts[3] = {0};
  for (int i = 0; i < 5000; i++) {
    long nr = (long)(next() % 340);
    if (nr == 60 || nr == 231 || nr == 158 || nr == 15) continue;   /* exit, exit_group, arch_prctl, rt_sigreturn */
    long a = arg(), b = arg(), c = arg(), d = arg(), e = arg(), f = arg();
    if (nr == 3 && (a == 1 || a == 2)) continue;                     /* keep stdout and stderr open for the report */
    long r = raw(nr, a, b, c, d, e, f);
    counts[r < 0 ? (r == -38 ? 2 : 1) : 0]++;
  }
  printf("ok %ld errno %ld enosys %ld\\n", counts[0], counts[1], counts[2]);
  return 0;
}`,
} as const;

type Name = keyof typeof SOURCES;
const paths = {} as Record<Name, string>;
const programs = {} as Record<Name, LinuxProgram>;

beforeAll(async () => {
  for (const name of Object.keys(SOURCES) as Name[]) {
    const { elf, path } = await compileC(SOURCES[name], { cacheDir, name, optimize: name === "fault" || name === "recurse" || name === "fuzz" ? "fast" : "safe" });
    paths[name] = path;
    programs[name] = new LinuxProgram(elf);
  }
}, slow(600_000));

const text = (b: Uint8Array) => new TextDecoder().decode(b);
function run(name: Name, args: string[] = [], input?: string, opts?: LinuxOptions) {
  // a program with options of its own is made for the call and closed after it
  const own = opts ? new LinuxProgram(programs[name].elf, opts) : undefined;
  try {
    const r = (own ?? programs[name]).run(args, { input: input === undefined ? undefined : new TextEncoder().encode(input) });
    return { ...r, out: text(r.stdout), err: text(r.stderr) };
  } finally {
    own?.close();
  }
}
afterAll(() => {
  for (const p of Object.values(programs)) p.close();
});
/** The same program run natively: what the virtine must match. */
function native(name: Name, args: string[] = [], input = "", env: Record<string, string> = {}) {
  const r = Bun.spawnSync([paths[name], ...args], { stdin: Buffer.from(input), env });
  return { status: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
}

describe("static C programs run unchanged", () => {
  test("hello: stdout, stderr and the exit status, as natively", () => {
    const r = run("hello", ["a", "b"]);
    expect({ status: r.status, out: r.out, err: r.err }).toEqual({ status: 7, out: "hello from hello with 2 args\n", err: "to stderr\n" });
    const n = native("hello", ["a", "b"]);
    expect(n.status).toBe(7);
    expect(n.err).toBe("to stderr\n");
    expect(r.syscalls).toBeGreaterThan(0);
  });

  test("arguments and the environment, empty by default", () => {
    const r = run("argv", ["one", "two words", "ünï", ""]);
    expect(r.out).toBe("argv[0]=argv\nargv[1]=one\nargv[2]=two words\nargv[3]=ünï\nargv[4]=\n");
    const e = run("argv", [], undefined, { env: ["K=42", "HOME=/"] });
    expect(e.out).toBe("argv[0]=argv\nenv K=42\nenv HOME=/\n");
    expect(e.status).toBe(42);
  });

  test("stdin is the call's input; many calls, each its own", () => {
    for (const input of ["banana", "", "x".repeat(100_000)]) {
      const r = run("upper", [], input);
      expect(r.out).toBe(input.toUpperCase());
      expect(r.err).toBe(`${input.length} bytes\n`);
    }
  });

  test("malloc (brk and mmap), qsort, printf with floats, libm, strtod: the same output as natively", () => {
    const r = run("libc");
    expect(r.status).toBe(0);
    expect(r.out).toBe(native("libc").out);
    expect(r.out).toMatch(/^ok min=-1000\.0000 max=1000\.0000 sqrt2=1\.414214 strtod=325\.00\n$/);
  });

  test("from TypeScript: LinuxProgram.fromC, a string input, env as a record, a file by host path", async () => {
    const { LinuxProgram: LP } = await import("../src/index.ts");
    const p = await LP.fromC(`#include <stdio.h>\n#include <stdlib.h>\nint main(int c, char **v) { char b[64]; size_t n = fread(b, 1, sizeof b, stdin); printf("%s %.*s %s\\n", v[1], (int)n, b, getenv("WHO")); return 3; }`, { cacheDir, env: { WHO: "me" } });
    const r = p.run(["arg"], { input: "data" });
    expect([r.status, text(r.stdout)]).toEqual([3, "arg data me\n"]);
    const again = p.run({ args: ["other"], input: new TextEncoder().encode("bytes"), env: ["WHO=you"] });
    expect(text(again.stdout)).toBe("other bytes you\n");
  });

  test("wasp_snapshot() from wasp.h: 0 to the call that takes the snapshot, 1 to the calls resumed from it, 0 where snapshots are off", () => {
    expect(run("snapshot").out).toBe("snapshot 0\n");
    expect(programs.snapshot.snapshotTaken).toBe(true);
    expect(run("snapshot").out).toBe("snapshot 1\n");
    expect(run("snapshot").out).toBe("snapshot 1\n");
    expect(run("snapshot", [], undefined, { snapshot: false }).out).toBe("snapshot 0\n");
    expect(run("snapshot", [], undefined, { oneShot: true }).out).toBe("snapshot 0\n");
  });
});

describe("the examples (examples/linux/) run as their comments say", () => {
  test("stats.c, lookup.c (it sieves once, then resumes from its snapshot), wc.zig", async () => {
    const { compileZigLinux } = await import("../src/linux/c.ts");
    const { readFileSync } = await import("node:fs");
    const { ROOT } = await import("./support.ts");
    const src = (f: string) => readFileSync(join(ROOT, "examples/linux", f), "utf8");
    const stats = new LinuxProgram((await compileC(src("stats.c"), { cacheDir, name: "stats" })).elf);
    expect(text(stats.run([], { input: "3 1.5 4 1 5.25 9 2.5 6\n" }).stdout)).toBe("n=8 min=1 max=9 mean=4.0312 median=3.5 stddev=2.4763\n");
    const lookup = new LinuxProgram((await compileC(src("lookup.c"), { cacheDir, name: "lookup" })).elf);
    const l = lookup.run([], { input: "97\n#1000\n1999993\n100\n" });
    expect(text(l.stdout)).toBe("97 is prime\nprime #1000 is 7919\n1999993 is prime\n100 is not prime\n");
    expect(text(l.stderr)).toBe("lookup: sieved\n");
    const resumed = lookup.run([], { input: "#1\n4\n" });
    expect(text(resumed.stdout)).toBe("prime #1 is 2\n4 is not prime\n");
    expect(text(resumed.stderr)).toBe("lookup: from the snapshot\n"); // no sieve: it resumed after it
    expect(resumed.syscalls).toBeLessThan(l.syscalls);
    stats.close();
    lookup.close();
    const wc = new LinuxProgram((await compileZigLinux(src("wc.zig"), { cacheDir, name: "wc" })).elf);
    expect(text(wc.run([], { input: "two words\nthree more words\n" }).stdout)).toBe("2 5 27\n");
    wc.close();
  }, slow(300_000));
});

describe("the host answers, and refuses, as docs/linux-guests.md says", () => {
  test("without grants: no clock, no randomness, no files, no processes", () => {
    const r = run("denied");
    expect(r.out).toBe("clock -1 Operation not permitted | getrandom -1 Operation not permitted | open -1 No such file or directory | fork -1 Function not implemented\n");
    expect([...r.unsupported.keys()]).toContain(57); // fork, counted
  });

  test("with the time and random grants and a granted file", () => {
    const r = run("granted", [], undefined, { allow: ["time", "random"], files: { "/etc/greeting": new TextEncoder().encode("hi there\n") } });
    expect(r.out).toBe("clock 0 1 | getrandom 16 | file 9 hi there\n");
  });
});

describe("hostile programs: a typed error or an errno, the host survives, nothing leaks", () => {
  test("writing its own code, executing its data, null and host-page reads fault with what happened", () => {
    const fault = (what: string) => {
      try {
        run("fault", [what]);
      } catch (e) {
        return e;
      }
      throw new Error(`${what} did not fault`);
    };
    const wt = fault("write-text");
    expect(wt).toBeInstanceOf(GuestFaultError);
    expect((wt as Error).message).toMatch(/page fault \(#PF, vector 14\) on a write to 0x[0-9a-f]+ \(protection violation\)/);
    expect((fault("exec-data") as Error).message).toMatch(/on an instruction fetch from 0x[0-9a-f]+ \(protection violation\)/);
    expect((fault("null") as Error).message).toMatch(/on a read of 0x0 \(page not present\)/);
    expect((fault("host-page") as Error).message).toMatch(/on a read of 0x6000 \(protection violation\)/);
    expect((fault("abort") as Error)).toBeInstanceOf(GuestFaultError); // musl's abort: a crash, no signal to deliver
    expect(run("fault", ["nothing"]).status).toBe(0); // the next call is clean
  });

  test("unbounded recursion hits the guard under the stack: a StackOverflowError", () => {
    expect(() => run("recurse")).toThrow(StackOverflowError);
  });

  test("a stack frame larger than the stack is probed page by page into the guard, never past it", () => {
    // without stack-clash protection the write would land 2 MiB down, in the mappings under the guard
    expect(() => run("bigframe")).toThrow(StackOverflowError);
  });

  test("5,000 random system calls with hostile pointers: each answered, none a host error", () => {
    const r = run("fuzz");
    expect(r.status).toBe(0);
    // (a random write to fd 1 may come before the report: it is the last line)
    const m = r.out.match(/ok (\d+) errno (\d+) enosys (\d+)\n$/);
    expect(m).not.toBeNull();
    const [ok, errno, enosys] = m!.slice(1).map(Number);
    expect(ok + errno + enosys).toBeGreaterThan(4900);
    expect(errno).toBeGreaterThan(100); // EFAULT, EBADF, EINVAL...
  });

  test("a fork bomb forks nothing", () => {
    expect(run("forkbomb").out).toBe("1000 forks failed\n");
  });

  test("output past the cap is dropped and said", () => {
    const r = run("flood", [], undefined, { maxOutput: 100_000 });
    expect(r.stdout.length).toBe(100_000);
    expect(r.stdoutTruncated).toBe(true);
  });

  test("malloc until it fails: the program sees NULL, the host its limit", () => {
    const r = run("hog", [], undefined, { memory: 32 * 1024 * 1024 });
    expect(r.out).toMatch(/^got (\d|1\d|2\d) MiB\n$/);
  });

  test("an endless loop ends at the deadline", () => {
    expect(() => run("spin", [], undefined, { timeoutMs: 200 })).toThrow(TimeoutError);
  });

  test("no fd or mapping outlives a call", () => {
    // each program's pool holds its warm shell: made before counting
    run("hello");
    run("upper", [], "x");
    expect(() => run("fault", ["null"])).toThrow(GuestFaultError);
    const before = fdTable();
    for (let i = 0; i < 20; i++) run(i % 2 ? "hello" : "upper", [], "x");
    for (let i = 0; i < 5; i++) expect(() => run("fault", ["null"])).toThrow(GuestFaultError);
    expect(fdsOpenedSince(before)).toEqual([]);
  });
});

describe("wasp invoke PROG", () => {
  // the programs under their own names (the cache names them by hash): argv[0] is the file's name
  const named = {} as Record<Name, string>;
  beforeAll(() => {
    const dir = mkdtempSync(join(tmpdir(), "wasp-linux-named-"));
    for (const name of Object.keys(SOURCES) as Name[]) {
      named[name] = join(dir, name);
      copyFileSync(paths[name], named[name]);
      chmodSync(named[name], 0o755);
    }
  });
  const wasp = (args: string[], input = "") => {
    const r = Bun.spawnSync([WASP, ...args], { stdin: Buffer.from(input), env: { ...process.env, WASP_CACHE_DIR: cacheDir } });
    return { status: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
  };

  test("behaves like running the program: stdout, stderr, exit status", () => {
    expect(wasp(["invoke", named.hello, "x"])).toEqual({ status: 7, out: "hello from hello with 1 args\n", err: "to stderr\n" });
    expect(wasp(["invoke", named.upper, "--input", "-"], "abc").out).toBe("ABC");
    expect(wasp(["invoke", named.argv, "--env", "K=3", "--", "-v", "--flag"])).toMatchObject({ status: 3, out: "argv[0]=argv\nargv[1]=-v\nargv[2]=--flag\nenv K=3\n" });
  });

  test("--file grants one host file read-only; --trace prints each system call", () => {
    const dir = mkdtempSync(join(tmpdir(), "wasp-linux-cli-"));
    try {
      writeFileSync(join(dir, "g.txt"), "hi there\n");
      const r = wasp(["invoke", named.granted, "--allow", "time,random", "--file", `/etc/greeting=${join(dir, "g.txt")}`]);
      expect(r.out).toBe("clock 0 1 | getrandom 16 | file 9 hi there\n");
      const t = wasp(["invoke", named.hello, "--trace"]);
      expect(t.err).toMatch(/^writev\(1, .*\) = \d+$/m);
      expect(t.err).toMatch(/^exit_group\(7\)/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("--json, inspect, and what does not apply to a Linux program", () => {
    const j = JSON.parse(wasp(["invoke", named.hello, "--json"]).out);
    expect(j.status).toBe(7);
    expect(Buffer.from(j.stdout, "base64").toString()).toBe("hello from hello with 0 args\n");
    expect(j.stderr).toBe("to stderr\n");
    // system calls and exits apart: each call the host answered cost an exit, the layer's none
    expect(j.syscalls).toBeGreaterThan(0);
    expect(j.syscallsInVm).toBeGreaterThanOrEqual(0);
    expect(j.syscallsInVm).toBeLessThanOrEqual(j.syscalls);
    expect(j.exits).toBeGreaterThanOrEqual(j.syscalls - j.syscallsInVm);
    const v = wasp(["invoke", named.hello, "--verbose"]).err;
    const counts = v.match(/exit status 7, (\d+) system call\(s\) \((\d+) answered in the VM\), (\d+) exit\(s\)/);
    expect(counts).not.toBeNull();
    expect(counts!.slice(1).map(Number)).toEqual([j.syscalls, j.syscallsInVm, j.exits]);
    expect(wasp(["inspect", named.hello]).out).toMatch(/kind\s+linux \(static x86-64 ELF\)/);
    expect(wasp(["invoke", named.hello, "--data-size", "1M"]).err).toBe("wasp: --data-size is for native guests: a Linux program reads its input on fd 0\n");
    expect(wasp(["invoke", "fib", "3", "--trace"]).err).toBe("wasp: --trace is for Linux programs (static ELF executables); fib is not one\n");
    // a dynamically linked program of the host's: its interpreter and libraries found and granted
    const t = wasp(["invoke", "/bin/false"]);
    expect([t.status, t.err]).toEqual([1, ""]);
  });
});
