// A `syscall` whose instructions before it cannot run elsewhere (a branch right before it, as in
// glibc's wrappers) is rewritten with the jump over the site itself and the instructions after it
// (src/linux/sites.ts): the call stopped at that very exit goes on in the stub, the result and the
// flags the layer left reach the displaced instructions, RCX and R11 are as Linux leaves them, the
// red zone is untouched; the same outputs with the layer on and off, and with it on a warm call
// leaves its VM once.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LinuxProgram } from "../src/virtine/linux.ts";

const cacheDir = mkdtempSync(join(tmpdir(), "wasp-site-after-"));
afterAll(() => rmSync(cacheDir, { recursive: true, force: true }));

// write(2) through a wrapper shaped as glibc's: a branch right before the `syscall`, a compare of
// (its constants avoid bytes 0x70-0x7f, which the conservative scan of branch targets would take for
// a jcc landing inside the jump: a refusal, as it would be for such code anywhere)
// the result right after it whose flags the next branch uses; the red zone holds a canary across it
const SOURCE = `
static long wrapped_write(long fd, const char *buf, long n, long *canary, long *flag, long *rcx) {
  long ret, c, f, r;
  __asm__ volatile(
    "movabsq $0x0102030405060708, %%r8\\n"
    "movq %%r8, -8(%%rsp)\\n"         /* the red zone's canary */
    "movl $1, %%eax\\n"
    "testq %%rdi, %%rdi\\n"
    "jns 1f\\n"                       /* a branch right before the syscall */
    "1: syscall\\n"
    "2: cmpq $-4096, %%rax\\n"        /* displaced into the stub: its flags reach the seta */
    "seta %%r9b\\n"
    "movzbq %%r9b, %%r9\\n"
    "leaq 2b(%%rip), %%r10\\n"
    "subq %%rcx, %%r10\\n"            /* 0 when RCX is the address after the syscall, as Linux leaves it */
    "movq -8(%%rsp), %%r8\\n"
    "movq %%r8, %1\\n"
    "movq %%r9, %2\\n"
    "movq %%r10, %3\\n"
    : "=a"(ret), "=&r"(c), "=&r"(f), "=&r"(r)
    : "D"(fd), "S"(buf), "d"(n)
    : "rcx", "r8", "r9", "r10", "r11", "memory", "cc");
  *canary = c; *flag = f; *rcx = r;
  return ret;
}
int main(void) {
  long canary, flag, rcx;
  char line[4];
  for (int i = 0; i < 3; i++) {
    line[0] = 'a'; line[1] = '0' + i; line[2] = '\\n';
    long r = wrapped_write(1, line, 3, &canary, &flag, &rcx);
    if (r != 3) return 10 + i;
    if (canary != 0x0102030405060708L) return 20 + i;
    if (flag != 0 || rcx != 0) return 30 + i;
  }
  long bad = wrapped_write(1, (const char *)8, 4, &canary, &flag, &rcx);
  if (bad != -14 || flag != 1 || rcx != 0 || canary != 0x0102030405060708L) return 40;
  return 0;
}`;

describe("a site rewritten over itself", () => {
  test("the same output and status with the layer on and off; warm calls leave the VM once", async () => {
    using on = await LinuxProgram.fromC(SOURCE, { cacheDir, name: "after", layer: true });
    using off = await LinuxProgram.fromC(SOURCE, { cacheDir, name: "after", layer: false });
    const want = "a0\na1\na2\n";
    for (let i = 0; i < 4; i++) {
      const a = on.run();
      const b = off.run();
      expect(new TextDecoder().decode(a.stdout)).toBe(want);
      expect(new TextDecoder().decode(b.stdout)).toBe(want);
      expect(a.status).toBe(0);
      expect(b.status).toBe(0);
      expect(a.syscalls).toBe(b.syscalls);
      if (i > 0) expect(a.exits).toBe(1);
      expect(b.exits).toBe(b.syscalls);
    }
  });
});
