// A KVM virtual machine: one VM fd, its memory slots and its vCPUs.
import * as libc from "../../ffi/libc.ts";
import { KVM, KVM_MEM_LOG_DIRTY_PAGES, kvm_clear_dirty_log, kvm_dirty_log, kvm_enable_cap, kvm_userspace_memory_region } from "../../ffi/kvm.ts";
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
   * Makes KVM forget every translation it derived from the guest's memory: the last slot set is
   * deleted (KVM then discards all of its shadow pages, `kvm_arch_flush_shadow_memslot`) and added
   * back unchanged. Needed after the host rewrote pages that may hold the guest's page tables behind
   * KVM's back (a reset copying them back): shadow paging keeps what it derived from the old tables.
   * Deleting the slot also drops its dirty log and, with manual protection, write-protects the
   * whole slot again.
   */
  refreshSlot(): void {
    const sizeAt = kvm_userspace_memory_region.off("memory_size");
    const size = this.#regionView.getBigUint64(sizeAt, true);
    this.#regionView.setBigUint64(sizeAt, 0n, true);
    try {
      libc.ioctl(this.fd, KVM.SET_USER_MEMORY_REGION, this.#region, "KVM_SET_USER_MEMORY_REGION (delete)");
    } finally {
      this.#regionView.setBigUint64(sizeAt, size, true);
    }
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

  /** KVM_ENABLE_CAP on this VM with its first argument. */
  enableCap(cap: number, arg0: number, name: string): void {
    const buf = new Uint8Array(kvm_enable_cap.size);
    const dv = new DataView(buf.buffer);
    kvm_enable_cap.write(dv, 0, { cap });
    dv.setBigUint64(kvm_enable_cap.off("args"), BigInt(arg0), true);
    libc.ioctl(this.fd, KVM.ENABLE_CAP, buf, `KVM_ENABLE_CAP(${name})`);
  }

  /**
   * An argument for clearDirtyLog: all `pages` pages of `slot`, with the bitmap at `bitmapAddr`
   * naming the pages to clear (and write-protect again).
   */
  clearDirtyLogArg(slot: number, pages: number, bitmapAddr: number): Uint8Array {
    const arg = new Uint8Array(kvm_clear_dirty_log.size);
    kvm_clear_dirty_log.write(new DataView(arg.buffer), 0, { slot, num_pages: pages, first_page: 0, dirty_bitmap: bitmapAddr });
    return arg;
  }

  /** With manual dirty-log protection: clears the named pages' dirty bits and write-protects them. */
  clearDirtyLog(arg: Uint8Array): void {
    libc.ioctl(this.fd, KVM.CLEAR_DIRTY_LOG, arg, "KVM_CLEAR_DIRTY_LOG");
  }

  /** Fetches the dirty-page bitmap of a slot logged with `logDirty` (and clears it, unless manual protection is on). */
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
