// The KVM ABI of linux/kvm.h for x86-64: ioctl request numbers derived from the _IOC encoding and
// the argument structs' sizes, constants, and struct layouts. tests/ffi-layout.test.ts checks
// every number here against the kernel header bundled with zig.
import { IO, IOR, IOW, IOWR } from "./ioctl.ts";
import { Struct, type Field } from "./struct.ts";

const KVMIO = 0xae;

const u64 = (offset: number): Field => [offset, "u64"];
const u32 = (offset: number): Field => [offset, "u32"];
const u16 = (offset: number): Field => [offset, "u16"];
const u8 = (offset: number): Field => [offset, "u8"];
const bytes = (offset: number, n: number): Field => [offset, { bytes: n }];

const REG_NAMES = [
  "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp",
  "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags",
] as const;
export type RegName = (typeof REG_NAMES)[number];

export const kvm_regs = new Struct(
  "struct kvm_regs",
  144,
  Object.fromEntries(REG_NAMES.map((r, i) => [r, u64(i * 8)])) as Record<RegName, Field>,
);

export const kvm_segment = new Struct("struct kvm_segment", 24, {
  base: u64(0), limit: u32(8), selector: u16(12), type: u8(14), present: u8(15), dpl: u8(16),
  db: u8(17), s: u8(18), l: u8(19), g: u8(20), avl: u8(21), unusable: u8(22),
});
export type SegmentName = "cs" | "ds" | "es" | "fs" | "gs" | "ss" | "tr" | "ldt";
export const SEGMENTS: readonly SegmentName[] = ["cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt"];

export const kvm_dtable = new Struct("struct kvm_dtable", 16, { base: u64(0), limit: u16(8) });

export const kvm_sregs = new Struct("struct kvm_sregs", 312, {
  cs: bytes(0, 24), ds: bytes(24, 24), es: bytes(48, 24), fs: bytes(72, 24),
  gs: bytes(96, 24), ss: bytes(120, 24), tr: bytes(144, 24), ldt: bytes(168, 24),
  gdt: bytes(192, 16), idt: bytes(208, 16),
  cr0: u64(224), cr2: u64(232), cr3: u64(240), cr4: u64(248), cr8: u64(256),
  efer: u64(264), apic_base: u64(272), interrupt_bitmap: bytes(280, 32),
});

export const kvm_fpu = new Struct("struct kvm_fpu", 416, {
  fpr: bytes(0, 128), fcw: u16(128), fsw: u16(130), ftwx: u8(132), last_opcode: u16(134),
  last_ip: u64(136), last_dp: u64(144), xmm: bytes(152, 256), mxcsr: u32(408),
});

/**
 * The vCPU's XSAVE area (x87, SSE with MXCSR, and any extended state). wasp saves and restores FPU
 * state through it: KVM_GET_FPU/KVM_SET_FPU leave MXCSR out on this machine (measured).
 */
export const kvm_xsave = new Struct("struct kvm_xsave", 4096, { region: bytes(0, 4096) });
/** MXCSR's offset in the legacy (FXSAVE) part of an XSAVE area (Intel SDM vol. 1, 10.5.1). */
export const XSAVE_MXCSR = 24;

export const kvm_userspace_memory_region = new Struct("struct kvm_userspace_memory_region", 32, {
  slot: u32(0), flags: u32(4), guest_phys_addr: u64(8), memory_size: u64(16), userspace_addr: u64(24),
});

export const kvm_cpuid2 = new Struct("struct kvm_cpuid2", 8, { nent: u32(0), entries: bytes(8, 0) });
export const kvm_cpuid_entry2 = new Struct("struct kvm_cpuid_entry2", 40, {
  function: u32(0), index: u32(4), flags: u32(8), eax: u32(12), ebx: u32(16), ecx: u32(20), edx: u32(24),
});

export const kvm_dirty_log = new Struct("struct kvm_dirty_log", 16, { slot: u32(0), dirty_bitmap: u64(8) });

export const kvm_clear_dirty_log = new Struct("struct kvm_clear_dirty_log", 24, {
  slot: u32(0), num_pages: u32(4), first_page: u64(8), dirty_bitmap: u64(16),
});

export const kvm_enable_cap = new Struct("struct kvm_enable_cap", 104, { cap: u32(0), flags: u32(4), args: bytes(8, 32) });

export const kvm_msrs = new Struct("struct kvm_msrs", 8, { nmsrs: u32(0), entries: bytes(8, 0) });
export const kvm_msr_entry = new Struct("struct kvm_msr_entry", 16, { index: u32(0), reserved: u32(4), data: u64(8) });

/** KVM_GET_MSR_INDEX_LIST's argument: the count in, the MSRs KVM saves and restores out. */
export const kvm_msr_list = new Struct("struct kvm_msr_list", 4, { nmsrs: u32(0), indices: bytes(4, 0) });

/** DR0-DR3, DR6 and DR7: a privileged guest can load them and leave them set for the next call. */
export const kvm_debugregs = new Struct("struct kvm_debugregs", 128, { db: bytes(0, 32), dr6: u64(32), dr7: u64(40), flags: u64(48), reserved: bytes(56, 72) });

/** The extended control registers (XCR0: the XSAVE features a privileged guest enabled with xsetbv). */
export const kvm_xcrs = new Struct("struct kvm_xcrs", 392, { nr_xcrs: u32(0), flags: u32(4), xcrs: bytes(8, 256), padding: bytes(264, 128) });

export const kvm_signal_mask = new Struct("struct kvm_signal_mask", 4, { len: u32(0), sigset: bytes(4, 0) });

/** The sync-regs area inside kvm_run (KVM_CAP_SYNC_REGS): registers without extra ioctls. */
export const kvm_sync_regs = new Struct("struct kvm_sync_regs", 520, {
  regs: bytes(0, 144), sregs: bytes(144, 312), events: bytes(456, 64),
});

/** The shared kvm_run page, with the exit unions wasp decodes. */
export const kvm_run = new Struct("struct kvm_run", 2352, {
  request_interrupt_window: u8(0), immediate_exit: u8(1), exit_reason: u32(8),
  ready_for_interrupt_injection: u8(12), if_flag: u8(13), flags: u16(14), cr8: u64(16), apic_base: u64(24),
  "hw.hardware_exit_reason": u64(32),
  "fail_entry.hardware_entry_failure_reason": u64(32), "fail_entry.cpu": u32(40),
  "ex.exception": u32(32), "ex.error_code": u32(36),
  "io.direction": u8(32), "io.size": u8(33), "io.port": u16(34), "io.count": u32(36), "io.data_offset": u64(40),
  "mmio.phys_addr": u64(32), "mmio.data": bytes(40, 8), "mmio.len": u32(48), "mmio.is_write": u8(52),
  "internal.suberror": u32(32), "internal.ndata": u32(36), "internal.data": bytes(40, 128),
  "system_event.type": u32(32), "system_event.ndata": u32(36),
  kvm_valid_regs: u64(288), kvm_dirty_regs: u64(296), s: bytes(304, 2048),
});

/** Offsets into kvm_run of the synced registers, for the hot path. */
export const SYNC_REGS = kvm_run.off("s") + kvm_sync_regs.off("regs");
export const SYNC_SREGS = kvm_run.off("s") + kvm_sync_regs.off("sregs");

/** ioctl requests, each derived from its number and argument struct. */
export const KVM = {
  GET_API_VERSION: IO(KVMIO, 0x00),
  CREATE_VM: IO(KVMIO, 0x01),
  CHECK_EXTENSION: IO(KVMIO, 0x03),
  GET_VCPU_MMAP_SIZE: IO(KVMIO, 0x04),
  GET_MSR_INDEX_LIST: IOWR(KVMIO, 0x02, kvm_msr_list.size),
  GET_SUPPORTED_CPUID: IOWR(KVMIO, 0x05, kvm_cpuid2.size),
  CREATE_VCPU: IO(KVMIO, 0x41),
  GET_DIRTY_LOG: IOW(KVMIO, 0x42, kvm_dirty_log.size),
  SET_USER_MEMORY_REGION: IOW(KVMIO, 0x46, kvm_userspace_memory_region.size),
  SET_TSS_ADDR: IO(KVMIO, 0x47),
  RUN: IO(KVMIO, 0x80),
  GET_REGS: IOR(KVMIO, 0x81, kvm_regs.size),
  SET_REGS: IOW(KVMIO, 0x82, kvm_regs.size),
  GET_SREGS: IOR(KVMIO, 0x83, kvm_sregs.size),
  SET_SREGS: IOW(KVMIO, 0x84, kvm_sregs.size),
  GET_MSRS: IOWR(KVMIO, 0x88, kvm_msrs.size),
  SET_MSRS: IOW(KVMIO, 0x89, kvm_msrs.size),
  SET_SIGNAL_MASK: IOW(KVMIO, 0x8b, kvm_signal_mask.size),
  GET_FPU: IOR(KVMIO, 0x8c, kvm_fpu.size),
  SET_FPU: IOW(KVMIO, 0x8d, kvm_fpu.size),
  SET_CPUID2: IOW(KVMIO, 0x90, kvm_cpuid2.size),
  GET_DEBUGREGS: IOR(KVMIO, 0xa1, kvm_debugregs.size),
  SET_DEBUGREGS: IOW(KVMIO, 0xa2, kvm_debugregs.size),
  ENABLE_CAP: IOW(KVMIO, 0xa3, kvm_enable_cap.size),
  GET_XSAVE: IOR(KVMIO, 0xa4, kvm_xsave.size),
  SET_XSAVE: IOW(KVMIO, 0xa5, kvm_xsave.size),
  GET_XCRS: IOR(KVMIO, 0xa6, kvm_xcrs.size),
  SET_XCRS: IOW(KVMIO, 0xa7, kvm_xcrs.size),
  CLEAR_DIRTY_LOG: IOWR(KVMIO, 0xc0, kvm_clear_dirty_log.size),
  /** the vCPU's TSC frequency in kHz (the ioctl's return value) */
  GET_TSC_KHZ: IO(KVMIO, 0xa3),
} as const;

export const KVM_API_VERSION = 12;

export const KVM_CAP = {
  USER_MEMORY: 3,
  SET_TSS_ADDR: 4,
  EXT_CPUID: 7,
  DEBUGREGS: 50,
  XSAVE: 55,
  XCRS: 56,
  SYNC_REGS: 74,
  IMMEDIATE_EXIT: 136,
  MANUAL_DIRTY_LOG_PROTECT2: 168,
  /** the size KVM_GET_XSAVE2 needs: above 4096 only with AMX's state permitted (wasp never asks for it) */
  XSAVE2: 208,
} as const;

export const KVM_EXIT = {
  UNKNOWN: 0,
  EXCEPTION: 1,
  IO: 2,
  HYPERCALL: 3,
  DEBUG: 4,
  HLT: 5,
  MMIO: 6,
  IRQ_WINDOW_OPEN: 7,
  SHUTDOWN: 8,
  FAIL_ENTRY: 9,
  INTR: 10,
  INTERNAL_ERROR: 17,
  SYSTEM_EVENT: 24,
} as const;

export const KVM_EXIT_IO_IN = 0;
export const KVM_EXIT_IO_OUT = 1;

export const KVM_SYNC_X86_REGS = 1;
export const KVM_SYNC_X86_SREGS = 2;
export const KVM_SYNC_X86_EVENTS = 4;

export const KVM_MEM_LOG_DIRTY_PAGES = 1;
/** KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2: KVM_GET_DIRTY_LOG no longer re-protects; KVM_CLEAR_DIRTY_LOG does */
export const KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE = 1;
export const KVM_MEM_READONLY = 2;

export const KVM_MAX_CPUID_ENTRIES = 256;

/** A readable name of an exit reason, for messages. */
export function exitReasonName(reason: number): string {
  for (const [name, value] of Object.entries(KVM_EXIT)) if (value === reason) return `KVM_EXIT_${name}`;
  return `exit reason ${reason}`;
}
