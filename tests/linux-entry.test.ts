// A Linux guest's system-call entry (src/linux/entry.ts): its machine code is exactly what the
// assembler makes of the documented sequence, with wasp's selectors, port and addresses; the MSRs
// point SYSCALL at it. Running it needs KVM (the Linux kind's tests); this needs only zig.
import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { slow, zigPath } from "./support.ts";
import { Port } from "../src/abi/guest-abi.ts";
import { SEL_KERNEL_CODE, SEL_USER_CODE, SEL_USER_DATA } from "../src/image/boot.ts";
import { LINUX_ENTRY, LINUX_ENTRY_STACK, LINUX_SAVED_RSP, MSR, SFMASK, linuxEntryCode, linuxSyscallMsrs, syscallArgs } from "../src/linux/entry.ts";

test("the entry is the assembler's code for: save RSP, own stack, OUT to the host, IRETQ frame from RCX/R11/RSP", () => {
  const dir = mkdtempSync(join(tmpdir(), "wasp-entry-"));
  try {
    const hex = (v: number) => `0x${v.toString(16)}`;
    writeFileSync(
      join(dir, "entry.S"),
      [
        ".intel_syntax noprefix",
        ".text",
        `mov qword ptr [${hex(LINUX_SAVED_RSP)}], rsp`,
        `mov rsp, ${hex(LINUX_ENTRY_STACK)}`,
        `out ${hex(Port.LINUX_SYSCALL)}, al`,
        `push ${hex(SEL_USER_DATA)}`,
        `push qword ptr [${hex(LINUX_SAVED_RSP)}]`,
        "push r11",
        `push ${hex(SEL_USER_CODE)}`,
        "push rcx",
        "iretq",
        "",
      ].join("\n"),
    );
    const as = Bun.spawnSync([zigPath(), "cc", "-target", "x86_64-linux-musl", "-c", join(dir, "entry.S"), "-o", join(dir, "entry.o")]);
    expect(as.stderr.toString()).toBe("");
    const copy = Bun.spawnSync([zigPath(), "objcopy", "-O", "binary", "--only-section=.text", join(dir, "entry.o"), join(dir, "entry.bin")]);
    expect(copy.exitCode).toBe(0);
    expect([...linuxEntryCode()]).toEqual([...readFileSync(join(dir, "entry.bin"))]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, slow(60_000));

test("the entry's data lies in host pages, its stack below its saved-RSP slot, and fits one page", () => {
  expect(LINUX_ENTRY % 4096).toBe(0);
  expect(linuxEntryCode().length).toBeLessThan(4096);
  expect(LINUX_SAVED_RSP).toBeGreaterThanOrEqual(LINUX_ENTRY_STACK); // the pushes never reach the slot
  expect(Math.floor(LINUX_SAVED_RSP / 4096)).toBe(Math.floor((LINUX_ENTRY_STACK - 5 * 8) / 4096));
});

test("SYSCALL enters the entry at CPL0 with TF, IF, DF, IOPL, NT and AC cleared (Linux's mask)", () => {
  const msrs = new Map(linuxSyscallMsrs());
  expect(msrs.get(MSR.LSTAR)).toBe(BigInt(LINUX_ENTRY));
  expect((msrs.get(MSR.STAR)! >> 32n) & 0xffffn).toBe(BigInt(SEL_KERNEL_CODE));
  expect(SFMASK).toBe(0x47700n);
  expect(msrs.get(MSR.SFMASK)).toBe(SFMASK);
});

test("a system call's arguments are RDI, RSI, RDX, R10, R8, R9 (not RCX: SYSCALL overwrote it)", () => {
  const regs: Record<string, bigint> = { rdi: 1n, rsi: 2n, rdx: 3n, r10: 4n, r8: 5n, r9: 6n, rcx: 99n };
  expect(syscallArgs((n) => regs[n])).toEqual([1n, 2n, 3n, 4n, 5n, 6n]);
});
