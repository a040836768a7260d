// The in-VM system-call layer (guests/linux/layer.zig) call by call against the host's answers, on
// the real /dev/kvm: the same programs with the layer on and off give the same outputs, statuses
// and system call counts, and with it on a call resumed from its snapshot (or a program's call
// from its entry, once the first has trained it) leaves its VM once. What the layer's rewritten
// sites must keep: the red zone below RSP, every register. A program that corrupts the state it
// shares with the layer ends only its own call; nothing of call N reaches call N+1.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compileC } from "../src/linux/c.ts";
import { LinuxProgram, type LinuxOptions, type LinuxRunResult } from "../src/virtine/linux.ts";
import { GuestFaultError } from "../src/errors.ts";
import type { ElfExecutable } from "../src/linux/elf.ts";
import { slow, fdTable, fdsOpenedSince, type FdTable } from "./support.ts";
import { decodeLinuxRecording, linuxStartOf, replayLinuxCall, runRecordedLinux } from "../src/virtine/record-linux.ts";

const dir = mkdtempSync(join(tmpdir(), "wasp-layer-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SOURCES = {
  // stdin in pieces (read, readv), stdout and stderr (write, writev, stdio), files (open, read,
  // pread, lseek, fstat, stat, access, close), memory (brk, mmap, munmap, mremap, madvise),
  // identity and limits, poll, fcntl, ioctl: each result printed
  mix: `#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/resource.h>
#include <sys/ioctl.h>
int main(int argc, char **argv) {
  char a[5] = {0}, b[7] = {0}, rest[4096] = {0};
  struct iovec iv[2] = {{a, 4}, {b, 6}};
  printf("readv %zd [%s|%s]\\n", readv(0, iv, 2), a, b);
  ssize_t n = read(0, rest, sizeof rest - 1);
  printf("read %zd %zu\\n", n, strlen(rest));
  printf("eof %zd\\n", read(0, rest, 10));
  int fd = open("/etc/./data/../data/file.txt", O_RDONLY);
  char f[16] = {0};
  printf("open %d read %zd [%s] ", fd, read(fd, f, 5), f);
  printf("pread %zd lseek %ld ", pread(fd, f, 3, 10), (long)lseek(fd, -2, SEEK_END));
  struct stat st; printf("fstat %d %ld stat %d access %d/%d\\n", fstat(fd, &st), (long)st.st_size, stat("/etc/data/file.txt", &st), access("/etc/data/file.txt", R_OK), access("/nope", R_OK));
  printf("close %d %d, open missing %d, write fd %d, rdwr %d\\n", close(fd), close(fd), open("/etc/passwd", O_RDONLY), open("/etc/data/file.txt", O_WRONLY), (int)write(fd, "x", 1));
  char *p = sbrk(0); printf("brk grows %d ", brk(p + 100000) == 0);
  char *m = mmap(0, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  memset(m, 7, 3 * 4096);
  char *m2 = mremap(m, 3 * 4096, 40 * 4096, MREMAP_MAYMOVE);
  printf("mremap keeps %d ", m2[4096] == 7);
  madvise(m2, 4096, MADV_DONTNEED);
  printf("dontneed %d munmap %d\\n", m2[0], munmap(m2, 40 * 4096));
  struct utsname u; uname(&u);
  struct rlimit rl; getrlimit(RLIMIT_NOFILE, &rl);
  printf("pid %d uid %d %s %s nofile %ld\\n", getpid(), getuid(), u.sysname, u.machine, (long)rl.rlim_cur);
  struct pollfd pf[3] = {{0, POLLIN, 0}, {1, POLLOUT, 0}, {99, POLLIN, 0}};
  printf("poll %d %d %d %d fcntl %d %d ioctl %d\\n", poll(pf, 3, 0), pf[0].revents, pf[1].revents, pf[2].revents, fcntl(1, F_GETFL), fcntl(0, F_GETFL), ioctl(1, TIOCGWINSZ, &rl));
  fprintf(stderr, "to stderr %s\\n", argc > 1 ? argv[1] : "-");
  struct iovec ov[2] = {{"wri", 3}, {"tev\\n", 4}};
  writev(1, ov, 2);
  return 7;
}`,
  // more output than the stdout window holds, and one write larger than it
  flood: `#include <stdio.h>
#include <string.h>
#include <unistd.h>
static char big[200000];
int main(void) { for (int i = 0; i < 3000; i++) printf("line %d of the flood\\n", i); fflush(stdout); memset(big, 'x', sizeof big); write(1, big, sizeof big); write(2, big, 40000); return 0; }`,
  // what a resumed call makes: reads its input, writes a reply
  echo: `#include <stdio.h>
#include <ctype.h>
#include <wasp.h>
int main(void) { wasp_snapshot(); char buf[256]; size_t n = fread(buf, 1, sizeof buf, stdin); for (size_t i = 0; i < n; i++) buf[i] = (char)toupper((unsigned char)buf[i]); fwrite(buf, 1, n, stdout); return 0; }`,
  // a CGI-style program called from its entry every time
  cgi: `#include <stdio.h>
#include <stdlib.h>
int main(void) { char b[256]; size_t n = fread(b, 1, sizeof b, stdin); const char *q = getenv("QUERY_STRING"); printf("Content-Type: text/plain\\r\\n\\r\\nq=%s n=%zu\\n", q ? q : "-", n); return 0; }`,
  // the red zone: 128 bytes below RSP filled, an inline system call, the bytes checked after it
  // (a leaf in assembly, so that nothing moves RSP), every register but RAX, RCX and R11 kept
  redzone: `#include <stdio.h>
#include <wasp.h>
long probe(void);
__asm__(".globl probe\\n.type probe,@function\\nprobe:\\n"
  "  movabs $0x1122334455667788, %rdi\\n"
  "  mov $-128, %rdx\\n"
  "1: mov %rdi, (%rsp,%rdx)\\n add $8, %rdx\\n jnz 1b\\n"
  "  movabs $0x0102030405060708, %rbx\\n mov %rbx, %r12\\n mov %rbx, %r13\\n mov %rbx, %r14\\n mov %rbx, %r15\\n mov %rbx, %rbp\\n mov %rbx, %r8\\n mov %rbx, %r9\\n mov %rbx, %r10\\n"
  "  mov $39, %eax\\n"
  "  syscall\\n"
  "  mov $-128, %rdx\\n xor %rax, %rax\\n"
  "2: cmp %rdi, (%rsp,%rdx)\\n jne 3f\\n add $8, %rdx\\n jnz 2b\\n"
  "  movabs $0x0102030405060708, %rsi\\n"
  "  cmp %rsi, %rbx\\n jne 4f\\n cmp %rsi, %r12\\n jne 4f\\n cmp %rsi, %r15\\n jne 4f\\n cmp %rsi, %rbp\\n jne 4f\\n cmp %rsi, %r8\\n jne 4f\\n cmp %rsi, %r10\\n jne 4f\\n"
  "  mov $1, %rax\\n ret\\n"
  "3: mov $-1, %rax\\n ret\\n"
  "4: mov $-2, %rax\\n ret\\n"
  ".size probe, .-probe\\n");
int main(void) { wasp_snapshot(); long r = 1; for (int i = 0; i < 3 && r == 1; i++) r = probe(); printf("probe %ld\\n", r); return 0; }`,
  // overwrites what it shares with the layer: its process block, its call page, the layer's stack
  corrupt: `#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wasp.h>
int main(int argc, char **argv) {
  wasp_snapshot();
  char cmd[32] = {0}; read(0, cmd, sizeof cmd - 1);
  unsigned long block = strtoul(argv[1], 0, 16), call = strtoul(argv[2], 0, 16);
  if (!strncmp(cmd, "fds", 3)) memset((void *)(block + 64), 0xee, 64 * 16);
  if (!strncmp(cmd, "brk", 3)) *(unsigned long *)(block + 8) = 0x10;
  if (!strncmp(cmd, "outlen", 6)) *(unsigned long *)(call + 32) = 1ul << 40;
  if (!strncmp(cmd, "inpos", 5)) *(unsigned long *)(call + 24) = 1ul << 40;
  if (!strncmp(cmd, "ok", 2)) { puts("fine"); return 0; }
  char c[8]; write(1, "x", 1); read(0, c, 1); sbrk(4096);
  puts("survived");
  return 0;
}`,
  // call N leaves its traces where call N+1 could look: memory, the stdout window, the input window
  traces: `#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wasp.h>
static char heap_mark[64];
int main(int argc, char **argv) {
  wasp_snapshot();
  char in[64] = {0}; read(0, in, sizeof in - 1);
  unsigned long out = strtoul(argv[1], 0, 16), inw = strtoul(argv[2], 0, 16);
  printf("saw [%s] [%.6s] [%.6s] ", heap_mark, (char *)out + 20, (char *)inw + 6);
  strcpy(heap_mark, in);
  printf("%s --", in);
  fflush(stdout);
  return 0;
}`,
};

type Name = keyof typeof SOURCES;
const elves = {} as Record<Name, ElfExecutable>;
beforeAll(async () => {
  for (const name of Object.keys(SOURCES) as Name[]) elves[name] = (await compileC(SOURCES[name], { cacheDir: join(dir, "cache"), name })).elf;
}, slow(600_000));

const FILES = { "/etc/data/file.txt": new TextEncoder().encode("hello, granted file\n") };
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const shape = (r: LinuxRunResult) => ({ status: r.status, stdout: text(r.stdout), stderr: text(r.stderr), syscalls: r.syscalls, truncated: [r.stdoutTruncated, r.stderrTruncated] });

function program(name: Name, opts: LinuxOptions = {}): LinuxProgram {
  return new LinuxProgram(elves[name], { files: FILES, ...opts });
}

describe("the layer on and off: the same answers", () => {
  test("a program of every kind of system call the layer answers: the same outputs, status and count, call after call", () => {
    using on = program("mix");
    using off = program("mix", { layer: false });
    const input = "abcdefghij" + "k".repeat(100);
    for (let i = 0; i < 4; i++) {
      const a = on.run([`n${i}`], { input });
      const b = off.run([`n${i}`], { input });
      expect(shape(a)).toEqual(shape(b));
      expect(a.status).toBe(7);
      expect(text(a.stdout)).toContain("readv 10 [abcd|efghij]");
      expect(text(a.stdout)).toContain("open 3 read 5 [hello] pread 3 lseek 18 fstat 0 20 stat 0 access 0/-1");
      expect(text(a.stdout)).toContain("mremap keeps 1 dontneed 0 munmap 0");
      expect(text(a.stdout)).toContain("poll 3 1 4 32 fcntl 1 0 ioctl -1"); // fd 99: POLLNVAL, counted as Linux counts it
      expect(text(a.stdout)).toContain("writev\n");
      expect(b.syscallsInVm).toBe(0);
      expect(a.exits).toBeLessThanOrEqual(b.exits);
      on.cleanIdle();
      off.cleanIdle();
    }
    // once the first call trained it, the layer answers most of them
    const r = on.run(["n9"], { input });
    expect(r.syscallsInVm).toBeGreaterThan(r.syscalls / 2);
  });

  test("output beyond the windows, and a write larger than one, come out whole and in order; the cap holds", () => {
    using on = program("flood");
    using off = program("flood", { layer: false });
    for (let i = 0; i < 2; i++) {
      const a = on.run();
      const b = off.run();
      expect(shape(a)).toEqual(shape(b));
      expect(a.stdout.length).toBe(Array.from({ length: 3000 }, (_, k) => `line ${k} of the flood\n`).join("").length + 200000);
      on.cleanIdle();
    }
    using capped = program("flood", { maxOutput: 1000 });
    capped.run();
    const c = capped.run();
    expect([c.stdout.length, c.stdoutTruncated, c.stderr.length, c.stderrTruncated]).toEqual([1000, true, 1000, true]);
  });

  test("an input larger than the stdin window is read whole", () => {
    using on = program("echo");
    const big = "z".repeat(200_000);
    on.run({ input: "a" });
    const r = on.run({ input: big });
    expect(text(r.stdout)).toBe("Z".repeat(256)); // the program reads 256 bytes
  });
});

describe("one exit a call", () => {
  test("a call resumed from its snapshot leaves its VM once; from its entry too, once the first call has trained the program", () => {
    using echo = program("echo");
    echo.run({ input: "first" });
    for (let i = 0; i < 3; i++) {
      const r = echo.run({ input: `hello ${i}` });
      expect([text(r.stdout), r.exits, r.syscallsInVm]).toEqual([`HELLO ${i}`, 1, r.syscalls]);
      echo.cleanIdle();
    }
    using cgi = program("cgi", { snapshot: false });
    expect(cgi.run({ env: ["QUERY_STRING=a"], input: "x" }).exits).toBeGreaterThan(1); // the first: exits as it learns
    for (let i = 0; i < 3; i++) {
      const r = cgi.run({ env: [`QUERY_STRING=q${i}`], input: "body" });
      expect([text(r.stdout), r.exits]).toEqual([`Content-Type: text/plain\r\n\r\nq=q${i} n=4\n`, 1]);
      cgi.cleanIdle();
    }
  });

  test("recording a call costs no exit: the layer logs what it answers, the clock and random bytes included; the replay answers each the same", async () => {
    const clock = (await compileC(`#include <stdio.h>\n#include <time.h>\n#include <sys/random.h>\n#include <wasp.h>\nint main(void) { wasp_snapshot(); struct timespec ts; clock_gettime(CLOCK_REALTIME, &ts); unsigned char r[8]; getrandom(r, 8, 0); char in[16] = {0}; fread(in, 1, 15, stdin); printf("%ld.%09ld %02x%02x %s\\n", (long)ts.tv_sec, ts.tv_nsec, r[0], r[7], in); return 0; }`, { cacheDir: join(dir, "cache"), name: "clockrec" })).elf;
    using p = new LinuxProgram(clock, { allow: ["time", "random"] });
    p.run({ input: "train" });
    p.writeSnapshot(join(dir, "clock.snap"));
    using file = LinuxProgram.fromSnapshotFile(join(dir, "clock.snap"), { allow: ["time", "random"] });
    file.run({ input: "warm" });
    for (let i = 0; i < 2; i++) {
      const r = runRecordedLinux(file, linuxStartOf(file, join(dir, "clock.snap")), { input: `call ${i}` });
      // one exit: the end, which the host records (every other system call answered and logged in the VM)
      expect([r.exits, r.syscallsInVm]).toEqual([1, r.syscalls - 1]);
      const rec = decodeLinuxRecording(r.recording, "clock.rec");
      expect(rec.events.map((e) => e.type === "syscall" && e.nr)).toContain(228); // clock_gettime, answered in the VM, recorded
      using again = LinuxProgram.fromSnapshotFile(join(dir, "clock.snap"), { allow: ["time", "random"], oneShot: true });
      const back = replayLinuxCall(rec, again);
      expect(text(back.result?.stdout ?? new Uint8Array(0))).toBe(text(r.stdout));
      file.cleanIdle();
    }
  });

  test("a rewritten site keeps the red zone below RSP and every register but RAX, RCX and R11", () => {
    using p = program("redzone");
    for (let i = 0; i < 3; i++) {
      const r = p.run();
      expect(text(r.stdout)).toBe("probe 1\n");
      if (i > 0) expect(r.syscallsInVm).toBeGreaterThanOrEqual(3); // the probe's getpid answered by the layer
      p.cleanIdle();
    }
  });
});

describe("what the layer shares with the host is the program's: it harms only its own call", () => {
  test("a process block or call page overwritten with nonsense ends that call with a typed error; the next call is fine", () => {
    using p = program("corrupt", { poolSize: 1 });
    const io = p.layout.io;
    const args = [io.block.toString(16), io.call.toString(16)];
    expect(text(p.run(args, { input: "ok" }).stdout)).toBe("fine\n");
    let before: FdTable | undefined;
    for (const cmd of ["brk", "fds", "brk", "outlen", "inpos"]) {
      // (the first round makes what the error path and the next shell need, before fds are counted)
      if (before === undefined && cmd === "fds") before = fdTable();
      let outcome: string;
      try {
        const r = p.run(args, { input: cmd });
        outcome = `status ${r.status} ${text(r.stdout).trim()}`;
      } catch (e) {
        expect(e).toBeInstanceOf(GuestFaultError);
        outcome = (e as Error).message;
      }
      // either the host refused the state it found (naming it), or the program got errors back
      expect([cmd, outcome]).toEqual([cmd, expect.stringMatching(/process state|status 0/)]);
      expect(text(p.run(args, { input: "ok" }).stdout)).toBe("fine\n");
    }
    expect(fdsOpenedSince(before!)).toEqual([]);
  });

  test("nothing of call N is visible in call N+1: its memory, its output window, its input window", () => {
    using p = program("traces", { poolSize: 1 });
    const io = p.layout.io;
    const args = [io.out.toString(16), io.in.toString(16)];
    p.run(args, { input: "first" });
    let prev = "";
    for (const secret of ["alpha-1", "bravo-2", "charlie-3"]) {
      const r = p.run(args, { input: secret });
      const out = text(r.stdout);
      expect(out.startsWith("saw [] [")).toBe(true); // the heap as the snapshot left it
      if (prev) expect(out).not.toContain(prev.slice(0, 5));
      expect(out.endsWith(`${secret} --`)).toBe(true);
      prev = secret;
      p.cleanIdle();
    }
  });
});
