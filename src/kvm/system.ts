// The KVM system object: one open /dev/kvm. It checks the API version and the capabilities wasp
// relies on, and keeps what is the same for every VM (the vCPU mmap size, the supported CPUID).
import * as libc from "../../ffi/libc.ts";
import { KVM, KVM_API_VERSION, KVM_CAP, KVM_MAX_CPUID_ENTRIES, kvm_cpuid2, kvm_cpuid_entry2 } from "../../ffi/kvm.ts";
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

export class Kvm {
  readonly fd: number;
  readonly vcpuMmapSize: number;
  /** KVM_GET_SUPPORTED_CPUID's answer as a ready kvm_cpuid2 buffer for KVM_SET_CPUID2. */
  readonly cpuid: Uint8Array;
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
      this.cpuid = supportedCpuid(fd);
    } catch (e) {
      libc.raw.close(fd);
      throw e;
    }
  }

  #resetState: { sregs: Uint8Array; fpu: Uint8Array; msrs: Uint8Array } | undefined;

  /**
   * The special registers and FPU state (an XSAVE area) of a vCPU just after KVM_CREATE_VCPU and KVM_SET_CPUID2,
   * read once per process from a throwaway VM: the base every boot state is built from.
   */
  vcpuResetState(): { sregs: Uint8Array; fpu: Uint8Array; msrs: Uint8Array } {
    if (!this.#resetState) {
      using vm = this.createVm();
      using vcpu = vm.createVcpu(0);
      vcpu.setCpuid(this.cpuid);
      this.#resetState = { sregs: vcpu.getSregs(), fpu: vcpu.getXsave(), msrs: vcpu.getMsrs(GUEST_WRITABLE_MSRS) };
    }
    return this.#resetState;
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
