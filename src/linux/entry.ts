// How a Linux guest's `syscall` reaches the host. SYSCALL (EFER.SCE on) jumps to LSTAR at CPL0 with
// the return RIP in RCX and RFLAGS in R11; the entry below — a few instructions in a host page the
// guest cannot write — moves to a stack of its own (the guest's stack, red zone included, is never
// touched), exits to the host with an OUT to Port.LINUX_SYSCALL (the host reads the number and
// arguments from the registers and writes the result to RAX), then returns with IRETQ from a frame
// it builds from RCX, R11 and the saved RSP. Not SYSRETQ: KVM on PVM emulates CPL0 code and its
// emulator lacks SYSRET (a triple fault); the floor's `syscall` series measures this same shape.
// SFMASK clears TF, IF, DF, IOPL, NT and AC on entry, so nothing the guest sets in RFLAGS reaches CPL0.
import { Port } from "../abi/guest-abi.ts";
import { SEL_KERNEL_CODE, SEL_USER_CODE, SEL_USER_DATA } from "../image/boot.ts";

/**
 * The entry's code page: executable, read-only. It has the user bit, as has the entry's stack: KVM
 * on PVM checks the accesses of the code SYSCALL enters as user-mode ones (src/linux/address-space.ts).
 */
export const LINUX_ENTRY = 0x1d000;
/** The entry's stack page, its top, and the slot above it where the guest's RSP is kept. NX. */
export const LINUX_ENTRY_STACK_PAGE = 0x8000;
export const LINUX_ENTRY_STACK = 0x8ff0;
export const LINUX_SAVED_RSP = 0x8ff8;

/** MSR numbers (Intel SDM vol. 4). */
export const MSR = { EFER: 0xc0000080, STAR: 0xc0000081, LSTAR: 0xc0000082, SFMASK: 0xc0000084, FS_BASE: 0xc0000100, GS_BASE: 0xc0000101 } as const;
/** EFER bits a Linux guest runs with beyond long mode's: SYSCALL enabled, the NX bit honoured. */
export const EFER_SCE = 1n;
export const EFER_NXE = 1n << 11n;
/** RFLAGS bits SYSCALL clears, as Linux does: TF (8), IF (9), DF (10), IOPL (12-13), NT (14), AC (18). */
export const SFMASK = (1n << 8n) | (1n << 9n) | (1n << 10n) | (3n << 12n) | (1n << 14n) | (1n << 18n);

/** The MSRs of a Linux guest's vCPU: SYSCALL's CPL0 selector (STAR[47:32]), its entry and mask. */
export function linuxSyscallMsrs(): [number, bigint][] {
  return [
    [MSR.STAR, BigInt(SEL_KERNEL_CODE) << 32n],
    [MSR.LSTAR, BigInt(LINUX_ENTRY)],
    [MSR.SFMASK, SFMASK],
  ];
}

const u32le = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];

/** The entry's machine code (tests/linux-entry.test.ts checks it against the assembler's). */
export function linuxEntryCode(): Uint8Array {
  if (SEL_USER_DATA > 0x7f || SEL_USER_CODE > 0x7f) throw new RangeError("user selectors must fit push imm8");
  return new Uint8Array([
    ...[0x48, 0x89, 0x24, 0x25, ...u32le(LINUX_SAVED_RSP)], // mov [SAVED_RSP], rsp
    ...[0x48, 0xc7, 0xc4, ...u32le(LINUX_ENTRY_STACK)], // mov rsp, ENTRY_STACK
    ...[0xe6, Port.LINUX_SYSCALL], // out LINUX_SYSCALL, al: the host answers, RAX = result
    ...[0x6a, SEL_USER_DATA], // push SS
    ...[0xff, 0x34, 0x25, ...u32le(LINUX_SAVED_RSP)], // push qword [SAVED_RSP]: RSP
    ...[0x41, 0x53], // push r11: RFLAGS
    ...[0x6a, SEL_USER_CODE], // push CS
    0x51, // push rcx: RIP
    ...[0x48, 0xcf], // iretq
  ]);
}

/** The six arguments of a system call, from the registers at the entry's exit (x86-64 Linux ABI). */
export function syscallArgs(reg: (name: "rdi" | "rsi" | "rdx" | "r10" | "r8" | "r9") => bigint): bigint[] {
  return [reg("rdi"), reg("rsi"), reg("rdx"), reg("r10"), reg("r8"), reg("r9")];
}
