// A KVM virtual machine: one VM fd, its memory slots and its vCPUs.
import * as libc from "../../ffi/libc.ts";
import { KVM, KVM_MEM_LOG_DIRTY_PAGES, kvm_dirty_log, kvm_userspace_memory_region } from "../../ffi/kvm.ts";
import type { Kvm } from "./system.ts";
import { Vcpu } from "./vcpu.ts";

export class Vm {
  #closed = false;
  readonly #region = new Uint8Array(kvm_userspace_memory_region.size);
  readonly #regionView = new DataView(this.#region.buffer);

  constructor(
    readonly kvm: Kvm,
    readonly fd: number,
  ) {}

  /** Maps `size` bytes of host memory at `hostAddr` as guest-physical `guestAddr` in `slot`. */
  setMemoryRegion(slot: number, guestAddr: number, size: number, hostAddr: number, opts: { logDirty?: boolean } = {}): void {
    kvm_userspace_memory_region.write(this.#regionView, 0, {
      slot,
      flags: opts.logDirty ? KVM_MEM_LOG_DIRTY_PAGES : 0,
      guest_phys_addr: guestAddr,
      memory_size: size,
      userspace_addr: hostAddr,
    });
    libc.ioctl(this.fd, KVM.SET_USER_MEMORY_REGION, this.#region, "KVM_SET_USER_MEMORY_REGION");
  }

  /**
   * An argument for getDirtyLog: a kvm_dirty_log naming `slot` and the bitmap (one bit per page) at
   * host address `bitmapAddr`, which must not move (an mmap'd buffer); built once per slot so that
   * fetching the log allocates nothing.
   */
  dirtyLogArg(slot: number, bitmapAddr: number): Uint8Array {
    const arg = new Uint8Array(kvm_dirty_log.size);
    kvm_dirty_log.write(new DataView(arg.buffer), 0, { slot, dirty_bitmap: bitmapAddr });
    return arg;
  }

  /** Fetches (and clears) the dirty-page bitmap of a slot logged with `logDirty`. */
  getDirtyLog(arg: Uint8Array): void {
    libc.ioctl(this.fd, KVM.GET_DIRTY_LOG, arg, "KVM_GET_DIRTY_LOG");
  }

  createVcpu(id = 0): Vcpu {
    const fd = libc.ioctl(this.fd, KVM.CREATE_VCPU, id, "KVM_CREATE_VCPU");
    try {
      return new Vcpu(this, fd);
    } catch (e) {
      libc.raw.close(fd);
      throw e;
    }
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
