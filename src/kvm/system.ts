// The KVM system object: one open /dev/kvm. It checks the API version and the capabilities wasp
// relies on, and keeps what is the same for every VM (the vCPU mmap size, the supported CPUID).
import * as libc from "../../ffi/libc.ts";
import { KVM, KVM_API_VERSION, KVM_CAP, KVM_MAX_CPUID_ENTRIES, kvm_cpuid2, kvm_cpuid_entry2, kvm_msr_list } from "../../ffi/kvm.ts";
import { msrCount } from "./msrs.ts";
import { TRAMPOLINE_XSAVE_AT, guestCpuid, limitXstate, userXcr0, xcrsOf } from "./xfeatures.ts";
import type { Vcpu } from "./vcpu.ts";
import { KvmUnavailableError, SyscallError } from "../errors.ts";
import { Vm } from "./vm.ts";

export const KVM_DEVICE = "/dev/kvm";

/**
 * Model-specific registers a privileged (raw, CPL0) guest can write with `wrmsr` and a later call
 * could read back — system-call targets, segment bases, SYSENTER, PAT — restored by the reset
 * (EFER travels with the special registers). Intel SDM vol. 4; readable by KVM_GET_MSRS in this
 * order (KVM stops at the first it cannot read).
 */
export const GUEST_WRITABLE_MSRS = [
  0xc0000081, // STAR
  0xc0000082, // LSTAR
  0xc0000083, // CSTAR
  0xc0000084, // SFMASK
  0xc0000100, // FS_BASE
  0xc0000101, // GS_BASE
  0xc0000102, // KERNEL_GS_BASE
  0x174, // SYSENTER_CS
  0x175, // SYSENTER_ESP
  0x176, // SYSENTER_EIP
  0x277, // PAT
] as const;

/** A fresh vCPU's privileged state (Kvm.privilegedResetState); undefined parts KVM cannot save and restore. */
export interface PrivilegedState {
  /** struct kvm_msrs: every register that reads and writes back, with a fresh vCPU's values */
  msrs: Uint8Array;
  /** struct kvm_debugregs */
  debugregs: Uint8Array | undefined;
  /** struct kvm_xcrs */
  xcrs: Uint8Array | undefined;
}

/**
 * The registers of `indices` that `vcpu` both reads and writes back, with its values. KVM stops a
 * KVM_GET_MSRS or KVM_SET_MSRS at the first register it refuses: that one is dropped and the rest
 * tried again.
 */
function restorableMsrs(vcpu: Vcpu, indices: number[]): Uint8Array {
  let list = indices.slice();
  for (;;) {
    const got = msrCount(vcpu.getMsrs(list));
    if (got === list.length) break;
    list.splice(got, 1);
  }
  for (;;) {
    const values = vcpu.getMsrs(list);
    const refused = vcpu.trySetMsrs(values);
    if (refused === undefined) return values;
    list = list.filter((_, i) => i !== refused);
  }
}

/**
 * A fresh vCPU's state, the base every entry state is built from (Kvm.vcpuResetState): special
 * registers, XSAVE area and model-specific registers as KVM_CREATE_VCPU and KVM_SET_CPUID2 leave
 * them, and the XCR0 a CPL3 guest runs with (struct kvm_xcrs; undefined: XSAVE stays off).
 */
export interface VcpuResetState {
  sregs: Uint8Array;
  fpu: Uint8Array;
  msrs: Uint8Array;
  xcrs: Uint8Array | undefined;
}

/** A VM with its vCPU 0: CPUID set, never run, no memory slot (Kvm.takeFreshVm). */
export interface FreshVm {
  vm: Vm;
  vcpu: Vcpu;
}

export class Kvm {
  readonly fd: number;
  readonly vcpuMmapSize: number;
  /**
   * KVM_GET_SUPPORTED_CPUID's answer as a ready kvm_cpuid2 buffer for KVM_SET_CPUID2, with XSAVE
   * and AVX where KVM can set XCR0 (xfeatures.ts, guestCpuid).
   */
  readonly cpuid: Uint8Array;
  /**
   * The XSAVE features (XCR0) a CPL3 guest runs with, CR4.OSXSAVE set with them: what KVM supports
   * of USER_XFEATURES (src/kvm/xfeatures.ts); 0 without XSAVE in the guest's CPUID or without
   * KVM_CAP_XSAVE and KVM_CAP_XCRS (then the guest has x87 and SSE only, OSXSAVE clear).
   */
  readonly userXcr0: bigint;
  #closed = false;

  constructor(path = KVM_DEVICE) {
    let fd: number;
    try {
      fd = libc.open(path, libc.O_RDWR);
    } catch (e) {
      const why = e instanceof SyscallError ? e.errnoName : String(e);
      throw new KvmUnavailableError(`cannot open ${path} (${why}): KVM must be available and this user allowed to use it`, { cause: e });
    }
    this.fd = fd;
    try {
      const version = libc.raw.ioctl(fd, KVM.GET_API_VERSION, 0);
      if (version !== KVM_API_VERSION) throw new KvmUnavailableError(`${path} speaks KVM API ${version}, wasp needs ${KVM_API_VERSION}`);
      for (const [name, cap] of [["SYNC_REGS", KVM_CAP.SYNC_REGS], ["USER_MEMORY", KVM_CAP.USER_MEMORY]] as const) {
        if (libc.raw.ioctl(fd, KVM.CHECK_EXTENSION, cap) <= 0) throw new KvmUnavailableError(`${path} lacks KVM_CAP_${name}, which wasp needs`);
      }
      this.vcpuMmapSize = libc.ioctl(fd, KVM.GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE");
      const has = (cap: number) => libc.raw.ioctl(fd, KVM.CHECK_EXTENSION, cap) > 0;
      const canSetXcrs = has(KVM_CAP.XSAVE) && has(KVM_CAP.XCRS);
      this.cpuid = guestCpuid(supportedCpuid(fd), canSetXcrs);
      this.userXcr0 = userXcr0(this.cpuid, canSetXcrs, 4096 - TRAMPOLINE_XSAVE_AT);
    } catch (e) {
      libc.raw.close(fd);
      throw e;
    }
  }

  #resetState: VcpuResetState | undefined;
  #privilegedState: PrivilegedState | undefined;
  /** the VM the reset state was read from, kept for `takeFreshVm` */
  #fresh: FreshVm | undefined;

  /**
   * The special registers and FPU state (an XSAVE area) of a vCPU just after KVM_CREATE_VCPU and
   * KVM_SET_CPUID2, read once per process from a VM made for it: the base every boot state is built
   * from. With `keepVm` (a one-shot virtine, whose VM is the process's only one), that VM is not
   * closed but kept for `takeFreshVm`: its vCPU has only been read, so it is as fresh as a new one,
   * and the first VM costs one creation and teardown instead of two (~1.5-2 ms of a `wasp invoke`).
   */
  vcpuResetState(opts: { keepVm?: boolean } = {}): VcpuResetState {
    if (!this.#resetState) {
      const vm = this.createVm();
      let vcpu: Vcpu | undefined;
      try {
        vcpu = vm.createVcpu(0);
        vcpu.setCpuid(this.cpuid);
        const xcrs = this.userXcr0 !== 0n ? xcrsOf(this.userXcr0) : undefined;
        // the XSAVE area as a CPL3 guest's vCPU has it: with its XCR0 (every shell loads it too)
        if (xcrs) vcpu.setXcrs(xcrs);
        const fpu = vcpu.getXsave();
        if (xcrs) limitXstate(fpu, this.userXcr0);
        this.#resetState = { sregs: vcpu.getSregs(), fpu, msrs: vcpu.getMsrs(GUEST_WRITABLE_MSRS), xcrs };
      } catch (e) {
        vcpu?.close();
        vm.close();
        throw e;
      }
      if (opts.keepVm) this.#fresh = { vm, vcpu };
      else {
        vcpu.close();
        vm.close();
      }
    }
    return this.#resetState;
  }

  /**
   * The VM `vcpuResetState({ keepVm: true })` kept, if it is still here: no memory slot, vCPU 0
   * with the supported CPUID set, never run. The caller owns it from here on (a second call gives
   * undefined).
   */
  takeFreshVm(): FreshVm | undefined {
    const fresh = this.#fresh;
    this.#fresh = undefined;
    return fresh;
  }

  /**
   * What a privileged (raw, CPL0) guest can change besides its registers and FPU state, as a fresh
   * vCPU has it: every model-specific register KVM saves and restores (KVM_GET_MSR_INDEX_LIST)
   * that reads and writes back here, the debug registers and XCR0. Every reset of a privileged
   * guest's shell loads it (or the snapshot's values), so no call can leave anything in them for
   * the next. Made once per process from a throwaway VM, on first use: only raw guests need it.
   */
  privilegedResetState(): PrivilegedState {
    if (!this.#privilegedState) {
      using vm = this.createVm();
      using vcpu = vm.createVcpu(0);
      vcpu.setCpuid(this.cpuid);
      const listed = this.msrIndexList();
      // the registers wasp has always restored first, so that a KVM that lacks one of the others
      // can still never drop them
      const indices = [...GUEST_WRITABLE_MSRS, ...listed.filter((i) => !(GUEST_WRITABLE_MSRS as readonly number[]).includes(i))];
      const msrs = restorableMsrs(vcpu, indices);
      const has = (cap: number) => this.checkExtension(cap) > 0;
      this.#privilegedState = {
        msrs,
        debugregs: has(KVM_CAP.DEBUGREGS) ? vcpu.getDebugRegs() : undefined,
        xcrs: has(KVM_CAP.XCRS) ? vcpu.getXcrs() : undefined,
      };
    }
    return this.#privilegedState;
  }

  /** The model-specific registers KVM saves and restores for a guest (KVM_GET_MSR_INDEX_LIST). */
  msrIndexList(): number[] {
    const probe = new Uint8Array(kvm_msr_list.size);
    // asked with room for none, KVM fails with E2BIG and says how many there are
    libc.raw.ioctl(this.fd, KVM.GET_MSR_INDEX_LIST, probe);
    const n = new DataView(probe.buffer).getUint32(kvm_msr_list.off("nmsrs"), true);
    const buf = new Uint8Array(kvm_msr_list.size + n * 4);
    new DataView(buf.buffer).setUint32(kvm_msr_list.off("nmsrs"), n, true);
    libc.ioctl(this.fd, KVM.GET_MSR_INDEX_LIST, buf, "KVM_GET_MSR_INDEX_LIST");
    const dv = new DataView(buf.buffer);
    const got = dv.getUint32(kvm_msr_list.off("nmsrs"), true);
    return Array.from({ length: Math.min(got, n) }, (_, i) => dv.getUint32(kvm_msr_list.size + i * 4, true));
  }

  checkExtension(cap: number): number {
    return libc.raw.ioctl(this.fd, KVM.CHECK_EXTENSION, cap);
  }

  createVm(): Vm {
    this.#assertOpen();
    return new Vm(this, libc.ioctl(this.fd, KVM.CREATE_VM, 0, "KVM_CREATE_VM"));
  }

  #assertOpen(): void {
    if (this.#closed) throw new KvmUnavailableError("the KVM system object is closed");
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#fresh?.vcpu.close();
    this.#fresh?.vm.close();
    this.#fresh = undefined;
    libc.close(this.fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function supportedCpuid(fd: number): Uint8Array {
  const buf = new Uint8Array(kvm_cpuid2.size + KVM_MAX_CPUID_ENTRIES * kvm_cpuid_entry2.size);
  const dv = new DataView(buf.buffer);
  kvm_cpuid2.write(dv, 0, { nent: KVM_MAX_CPUID_ENTRIES });
  libc.ioctl(fd, KVM.GET_SUPPORTED_CPUID, buf, "KVM_GET_SUPPORTED_CPUID");
  const nent = dv.getUint32(kvm_cpuid2.off("nent"), true);
  return buf.slice(0, kvm_cpuid2.size + nent * kvm_cpuid_entry2.size);
}

let shared: Kvm | undefined;

/**
 * The /dev/kvm handle of this thread (module state is per thread: the main thread's lives as long
 * as the process, a worker's until `closeSystemKvm` when the worker stops), opened on first use.
 */
export function systemKvm(): Kvm {
  shared ??= new Kvm(kvmDevicePath());
  return shared;
}

/** The device systemKvm opens: WASP_KVM_DEVICE points wasp at another node (tests use it to check the error path). */
export function kvmDevicePath(): string {
  return process.env.WASP_KVM_DEVICE || KVM_DEVICE;
}

/** Closes this thread's handle (a worker that stops); the next `systemKvm()` opens a new one. */
export function closeSystemKvm(): void {
  shared?.close();
  shared = undefined;
}
