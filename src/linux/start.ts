// The state a Linux guest starts in, as a pure function of its executable, its memory layout and
// the call's process start (argv, envp, random bytes): the pieces written into guest memory (the
// host's GDT, IDT and TSS as native guests have them, the Linux page tables, the system-call entry,
// the trampoline, the executable's segments, the initial stack), the registers and special
// registers, and the MSRs that point SYSCALL at the entry. The kind applies it; nothing here needs
// a VM (tests/linux-start.test.ts reads it back through the checked access).
import { kvm_sregs } from "../../ffi/kvm.ts";
import { Layout } from "../abi/guest-abi.ts";
import { BadArgsError } from "../errors.ts";
import { RFLAGS_NATIVE, longModeSregs, longModeTablePieces, trampolinePage, type EntryReset } from "../image/boot.ts";
import { linuxPageTables, segmentPieces, type LinuxLayout, type ProtectionRun } from "./address-space.ts";
import type { ElfExecutable } from "./elf.ts";
import { EFER_NXE, EFER_SCE, LINUX_ENTRY, linuxEntryCode, linuxSyscallMsrs } from "./entry.ts";
import { AT, initialStack } from "./stack.ts";
import { layerHostPieces, processPieces } from "./layer.ts";

export interface LinuxStart {
  /** argv[0] first */
  argv: readonly string[];
  envp: readonly string[];
  /** AT_RANDOM's 16 bytes */
  random: Uint8Array;
  /** AT_HWCAP: CPUID.1:EDX as the guest's vCPU reports it (what Linux passes) */
  hwcap: bigint;
}

export interface LinuxEntryState {
  pieces: [number, Uint8Array][];
  rip: bigint;
  rsp: bigint;
  rflags: bigint;
  sregs: Uint8Array;
  msrs: [number, bigint][];
}

const UID = 1000n;

/** The auxiliary vector's numeric entries for `elf` placed by `layout` (stack.ts adds the pointers). */
export function linuxAuxv(elf: ElfExecutable, layout: LinuxLayout, hwcap: bigint): [number, bigint][] {
  return [
    [AT.PHDR, BigInt(elf.phdr + layout.bias)],
    [AT.PHENT, BigInt(elf.phent)],
    [AT.PHNUM, BigInt(elf.phnum)],
    [AT.PAGESZ, 4096n],
    [AT.BASE, BigInt(layout.interp?.bias ?? 0)], // where the interpreter is loaded (0: none)
    [AT.FLAGS, 0n],
    [AT.ENTRY, BigInt(elf.entry + layout.bias)],
    [AT.UID, UID],
    [AT.EUID, UID],
    [AT.GID, UID],
    [AT.EGID, UID],
    [AT.SECURE, 0n],
    [AT.HWCAP, hwcap],
    [AT.HWCAP2, 0n],
    [AT.CLKTCK, 100n],
  ];
}

/**
 * Everything a Linux guest starts from but its initial stack (which a call writes: its arguments,
 * environment and random bytes): the host's tables, the Linux page tables, the system-call entry,
 * the trampoline, the executable's segments; RSP at the top of memory. `reset` is a fresh vCPU's
 * special registers and XSAVE area, and the XCR0 the guest runs with (the trampoline loads that state
 * at CPL3, as for native guests).
 */
export function linuxBaseState(elf: ElfExecutable, layout: LinuxLayout, reset: EntryReset, files: ReadonlyMap<string, Uint8Array> = new Map()): LinuxEntryState {
  const sregs = longModeSregs(reset.sregs, reset.xcrs !== undefined).slice();
  const dv = new DataView(sregs.buffer);
  const eferAt = kvm_sregs.off("efer");
  dv.setBigUint64(eferAt, dv.getBigUint64(eferAt, true) | EFER_SCE | EFER_NXE, true);
  return {
    pieces: [
      ...linuxHostPieces(elf, layout),
      [Layout.TRAMPOLINE, trampolinePage(entryPoint(elf, layout), reset.fpu, reset.xcrs !== undefined)],
      ...segmentPieces(elf, layout),
      ...processPieces(layout, files),
    ],
    rip: BigInt(Layout.TRAMPOLINE),
    rsp: BigInt(layout.memory),
    rflags: RFLAGS_NATIVE,
    sregs,
    msrs: linuxSyscallMsrs(),
  };
}

/** Where the program starts: its interpreter's entry when it has one (which runs the program's, AT_ENTRY), else its own. */
export function entryPoint(elf: ElfExecutable, layout: LinuxLayout): bigint {
  return BigInt(layout.interp ? layout.interp.elf.entry + layout.interp.bias : elf.entry + layout.bias);
}

/**
 * The host's pages of a Linux guest below LINUX_LOW, but for the trampoline (the guest's own CPL3
 * code): GDT, IDT and TSS as native guests have them, the Linux page tables, the system-call entry,
 * the in-VM layer's sled, code and config page. What keeps the guest at CPL3: a snapshot file's are
 * rebuilt from these, never read.
 */
export function linuxHostPieces(elf: ElfExecutable, layout: LinuxLayout, protections: readonly ProtectionRun[] = []): [number, Uint8Array][] {
  // later pieces overwrite earlier ones: the native GDT, IDT and TSS stay, the tables are Linux's
  return [...longModeTablePieces(), ...linuxPageTables(elf, layout, protections), [LINUX_ENTRY, linuxEntryCode()], ...layerHostPieces(layout)];
}

/**
 * A call's initial stack at the top of `layout`'s memory (argc, argv, envp, auxv and their
 * strings): its bytes and the RSP to start with. Arguments that leave less than a page of the stack
 * are a BadArgsError.
 */
export function linuxCallStack(elf: ElfExecutable, layout: LinuxLayout, start: LinuxStart): { rsp: number; bytes: Uint8Array } {
  const stack = initialStack(layout.memory, {
    argv: start.argv,
    envp: start.envp,
    auxv: linuxAuxv(elf, layout, start.hwcap),
    random: start.random,
    execfn: start.argv[0] ?? elf.name,
  });
  if (stack.rsp < layout.stack[0] + 4096) {
    throw new BadArgsError(`the arguments and environment take ${layout.memory - stack.rsp} bytes of the initial stack, leaving less than a page of the ${layout.stack[1] - layout.stack[0]}-byte stack: raise the stack size`);
  }
  return stack;
}

/** Everything a Linux guest starts from: its base state with the call's initial stack. */
export function linuxEntryState(elf: ElfExecutable, layout: LinuxLayout, start: LinuxStart, reset: EntryReset): LinuxEntryState {
  const stack = linuxCallStack(elf, layout, start);
  const base = linuxBaseState(elf, layout, reset);
  return { ...base, pieces: [...base.pieces, [stack.rsp, stack.bytes]], rsp: BigInt(stack.rsp) };
}
