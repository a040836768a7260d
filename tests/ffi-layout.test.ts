// Every struct size, field offset, ioctl number and constant that wasp hand-encodes is checked here
// against the kernel's own headers: a C program is generated from wasp's tables, compiled with the
// bundled zig (against its copy of linux/kvm.h), and its output compared with the tables.
import { describe, expect, test, beforeAll } from "bun:test";
import * as kvm from "../ffi/kvm.ts";
import * as libc from "../ffi/libc.ts";
import * as sig from "../ffi/signal.ts";
import { Errno } from "../ffi/errno.ts";
import { fieldSize, type Struct } from "../ffi/struct.ts";
import { slow, cLayouts } from "./support.ts";

const structs: Struct<string>[] = [
  kvm.kvm_regs, kvm.kvm_segment, kvm.kvm_dtable, kvm.kvm_sregs, kvm.kvm_fpu, kvm.kvm_userspace_memory_region,
  kvm.kvm_xsave, kvm.kvm_cpuid2, kvm.kvm_cpuid_entry2, kvm.kvm_dirty_log, kvm.kvm_clear_dirty_log, kvm.kvm_enable_cap, kvm.kvm_msrs, kvm.kvm_msr_entry, kvm.kvm_msr_list, kvm.kvm_debugregs, kvm.kvm_xcrs, kvm.kvm_signal_mask, kvm.kvm_sync_regs, kvm.kvm_run,
  sig.sigevent, sig.itimerspec, sig.timespec, sig.siginfo, sig.sigaction,
];

/** name → [value wasp uses, C expression that must equal it] */
const constants: [string, number, string][] = [
  ...Object.entries(kvm.KVM).map(([k, v]): [string, number, string] => [`KVM_${k}`, v, `KVM_${k}`]),
  ...Object.entries(kvm.KVM_CAP).map(([k, v]): [string, number, string] => [`KVM_CAP_${k}`, v, `KVM_CAP_${k}`]),
  ...Object.entries(kvm.KVM_EXIT).map(([k, v]): [string, number, string] => [`KVM_EXIT_${k}`, v, `KVM_EXIT_${k}`]),
  ...Object.entries(Errno).map(([k, v]): [string, number, string] => [k, v, k]),
  ["KVM_API_VERSION", kvm.KVM_API_VERSION, "KVM_API_VERSION"],
  ["KVM_EXIT_IO_IN", kvm.KVM_EXIT_IO_IN, "KVM_EXIT_IO_IN"],
  ["KVM_EXIT_IO_OUT", kvm.KVM_EXIT_IO_OUT, "KVM_EXIT_IO_OUT"],
  ["KVM_SYNC_X86_REGS", kvm.KVM_SYNC_X86_REGS, "KVM_SYNC_X86_REGS"],
  ["KVM_SYNC_X86_SREGS", kvm.KVM_SYNC_X86_SREGS, "KVM_SYNC_X86_SREGS"],
  ["KVM_SYNC_X86_EVENTS", kvm.KVM_SYNC_X86_EVENTS, "KVM_SYNC_X86_EVENTS"],
  ["KVM_MEM_LOG_DIRTY_PAGES", kvm.KVM_MEM_LOG_DIRTY_PAGES, "KVM_MEM_LOG_DIRTY_PAGES"],
  ["KVM_MEM_READONLY", kvm.KVM_MEM_READONLY, "KVM_MEM_READONLY"],
  ["KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE", kvm.KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE, "KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE"],
  ["O_RDWR", libc.O_RDWR, "O_RDWR"],
  ["O_CLOEXEC", libc.O_CLOEXEC, "O_CLOEXEC"],
  ["PROT_READ", libc.PROT_READ, "PROT_READ"],
  ["PROT_WRITE", libc.PROT_WRITE, "PROT_WRITE"],
  ["MAP_SHARED", libc.MAP_SHARED, "MAP_SHARED"],
  ["MAP_PRIVATE", libc.MAP_PRIVATE, "MAP_PRIVATE"],
  ["MAP_FIXED", libc.MAP_FIXED, "MAP_FIXED"],
  ["MAP_ANONYMOUS", libc.MAP_ANONYMOUS, "MAP_ANONYMOUS"],
  ["MAP_NORESERVE", libc.MAP_NORESERVE, "MAP_NORESERVE"],
  ["MADV_DONTNEED", libc.MADV_DONTNEED, "MADV_DONTNEED"],
  ["MFD_CLOEXEC", libc.MFD_CLOEXEC, "MFD_CLOEXEC"],
  ["MFD_ALLOW_SEALING", libc.MFD_ALLOW_SEALING, "MFD_ALLOW_SEALING"],
  ["F_ADD_SEALS", libc.F_ADD_SEALS, "F_ADD_SEALS"],
  ["F_SEAL_SEAL", libc.F_SEAL_SEAL, "F_SEAL_SEAL"],
  ["F_SEAL_SHRINK", libc.F_SEAL_SHRINK, "F_SEAL_SHRINK"],
  ["F_SEAL_GROW", libc.F_SEAL_GROW, "F_SEAL_GROW"],
  ["F_SEAL_WRITE", libc.F_SEAL_WRITE, "F_SEAL_WRITE"],
  ["RLIMIT_NOFILE", libc.RLIMIT_NOFILE, "RLIMIT_NOFILE"],
  ["SEEK_DATA", libc.SEEK_DATA, "SEEK_DATA"],
  ["SEEK_HOLE", libc.SEEK_HOLE, "SEEK_HOLE"],
  ["SIG_BLOCK", libc.SIG_BLOCK, "SIG_BLOCK"],
  ["SIG_UNBLOCK", libc.SIG_UNBLOCK, "SIG_UNBLOCK"],
  ["SIGEV_THREAD_ID", libc.SIGEV_THREAD_ID, "SIGEV_THREAD_ID"],
  ["CLOCK_MONOTONIC", libc.CLOCK_MONOTONIC, "CLOCK_MONOTONIC"],
  ["KERNEL_SIGSET_BYTES (_NSIG / 8)", libc.KERNEL_SIGSET_BYTES, "_NSIG / 8"],
  ...Object.entries(libc.SYS).map(([k, v]): [string, number, string] => [`SYS_${k}`, v, `SYS_${k}`]),
];

const fromC = new Map<string, number>();

beforeAll(() => {
  const headers = ["unistd.h", "errno.h", "fcntl.h", "sys/mman.h", "sys/resource.h", "sys/syscall.h", "signal.h", "time.h", "linux/kvm.h"];
  for (const [k, v] of cLayouts(structs, constants.map(([key, , expr]) => [key, expr] as const), headers)) fromC.set(k, v);
}, slow(180_000));

describe("KVM and libc ABI tables match the kernel headers", () => {
  for (const s of structs) {
    test(`${s.c}: size and every field offset and width`, () => {
      expect({ key: `${s.c}.sizeof`, v: s.size }).toEqual({ key: `${s.c}.sizeof`, v: fromC.get(`${s.c}.sizeof`) ?? -1 });
      for (const name of s.fieldNames) {
        const [offset, type] = s.fields[name];
        expect({ field: name, offset }).toEqual({ field: name, offset: fromC.get(`${s.c}.${name}.offset`) ?? -1 });
        if (fieldSize(type) > 0) {
          expect({ field: name, size: fieldSize(type) }).toEqual({ field: name, size: fromC.get(`${s.c}.${name}.size`) ?? -1 });
        }
      }
    });
  }
  test("ioctl request numbers, capabilities, exit reasons, errno and libc constants", () => {
    const mismatches = constants.filter(([key, value]) => fromC.get(key) !== value).map(([key, value]) => `${key}: wasp ${value}, header ${fromC.get(key)}`);
    expect(mismatches).toEqual([]);
    expect(constants.length).toBeGreaterThan(60);
  });
});
