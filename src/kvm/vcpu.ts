// A virtual CPU: its fd, its mmapped kvm_run page and the registers synced through it
// (KVM_CAP_SYNC_REGS), so that a warm run needs no KVM_SET_REGS / KVM_SET_SREGS ioctl.
import { toArrayBuffer } from "bun:ffi";
import * as libc from "../../ffi/libc.ts";
import { Errno } from "../../ffi/errno.ts";
import {
  KVM, KVM_EXIT, KVM_EXIT_IO_OUT, KVM_SYNC_X86_REGS, KVM_SYNC_X86_SREGS, SYNC_REGS, SYNC_SREGS,
  kvm_debugregs, kvm_msr_entry, kvm_msrs, kvm_regs, kvm_run, kvm_sregs, kvm_xcrs, kvm_xsave, exitReasonName, type RegName,
} from "../../ffi/kvm.ts";
import type { Vm } from "./vm.ts";
import type { VcpuExit } from "./exit.ts";
import { ClosedError } from "../errors.ts";

const EXIT_REASON = kvm_run.off("exit_reason");
const VALID_REGS = kvm_run.off("kvm_valid_regs");
const DIRTY_REGS = kvm_run.off("kvm_dirty_regs");
const IO_PORT = kvm_run.off("io.port");

/** KVM_RUN was interrupted by a signal (EINTR): the deadline mechanism's exit. */
export const EXIT_INTERRUPTED = -1;

export class Vcpu {
  readonly fd: number;
  // SAFETY: both views alias the kvm_run mapping, which lives until close(); they are handed out
  // only while the vCPU is open (after it they would point at unmapped memory: a crash).
  readonly #run: DataView;
  readonly #runBytes: Uint8Array;
  /** offset of the synced general registers (struct kvm_regs) in the kvm_run page */
  readonly syncRegsOffset = SYNC_REGS;
  readonly #runAddr: number;
  readonly #runSize: number;
  #closed = false;

  constructor(
    readonly vm: Vm,
    fd: number,
  ) {
    this.fd = fd;
    this.#runSize = vm.kvm.vcpuMmapSize;
    this.#runAddr = libc.mmap(this.#runSize, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED, fd, 0);
    const ab = toArrayBuffer(this.#runAddr, 0, this.#runSize);
    this.#run = new DataView(ab);
    this.#runBytes = new Uint8Array(ab);
    // Ask KVM to copy the general registers into kvm_run at every exit.
    this.#run.setBigUint64(VALID_REGS, BigInt(KVM_SYNC_X86_REGS), true);
  }

  /** The kvm_run page; a ClosedError once the vCPU is closed. */
  get run(): DataView {
    if (this.#closed) throw new ClosedError("vCPU");
    return this.#run;
  }

  get runBytes(): Uint8Array {
    if (this.#closed) throw new ClosedError("vCPU");
    return this.#runBytes;
  }

  setCpuid(cpuid: Uint8Array): void {
    libc.ioctl(this.fd, KVM.SET_CPUID2, cpuid, "KVM_SET_CPUID2");
  }

  /**
   * Enters the guest until its next exit. Returns the exit reason, or EXIT_INTERRUPTED when KVM_RUN
   * was interrupted by a signal. Allocates nothing.
   */
  enter(): number {
    if (libc.raw.ioctl(this.fd, KVM.RUN, 0) < 0) {
      const e = libc.errno();
      if (e === Errno.EINTR) return EXIT_INTERRUPTED;
      libc.fail("ioctl(KVM_RUN)");
    }
    return this.run.getUint32(EXIT_REASON, true);
  }

  /** The port of the last KVM_EXIT_IO. */
  ioPort(): number {
    return this.run.getUint16(IO_PORT, true);
  }

  // --- registers through the sync area (valid after an exit; written ones are flagged dirty)

  reg(name: RegName): bigint {
    return this.run.getBigUint64(SYNC_REGS + kvm_regs.off(name), true);
  }

  setReg(name: RegName, value: bigint): void {
    this.run.setBigUint64(SYNC_REGS + kvm_regs.off(name), value, true);
  }

  /** Zeroes every general register in the sync area (then set what matters). */
  clearRegs(): void {
    this.runBytes.fill(0, SYNC_REGS, SYNC_REGS + kvm_regs.size);
  }

  /** Marks the sync-area registers as written, so that the next KVM_RUN loads them. */
  markRegsDirty(sregsToo: boolean): void {
    this.run.setBigUint64(DIRTY_REGS, BigInt(KVM_SYNC_X86_REGS | (sregsToo ? KVM_SYNC_X86_SREGS : 0)), true);
  }

  /** Flags the sync area's general registers as written, keeping a pending special-register load. */
  addRegsDirty(): void {
    this.run.setBigUint64(DIRTY_REGS, this.run.getBigUint64(DIRTY_REGS, true) | BigInt(KVM_SYNC_X86_REGS), true);
  }

  /**
   * The special registers the next entry will have: the sync area's when they wait there to be
   * loaded (a shell's first entry), else KVM's (KVM_GET_SREGS).
   */
  nextSregs(): Uint8Array {
    if (this.run.getBigUint64(DIRTY_REGS, true) & BigInt(KVM_SYNC_X86_SREGS)) return this.runBytes.slice(SYNC_SREGS, SYNC_SREGS + kvm_sregs.size);
    return this.getSregs();
  }

  /** Copies a kvm_regs image into the sync area (flag it with markRegsDirty). */
  putRegs(regs: Uint8Array): void {
    this.runBytes.set(regs, SYNC_REGS);
  }

  /** Copies a kvm_sregs image into the sync area (flag it with markRegsDirty(true)). */
  putSregs(sregs: Uint8Array): void {
    this.runBytes.set(sregs, SYNC_SREGS);
  }

  /** The special registers, through KVM_GET_SREGS (slow path: faults, set-up). */
  getSregs(): Uint8Array {
    const buf = new Uint8Array(kvm_sregs.size);
    libc.ioctl(this.fd, KVM.GET_SREGS, buf, "KVM_GET_SREGS");
    return buf;
  }

  setSregs(sregs: Uint8Array): void {
    libc.ioctl(this.fd, KVM.SET_SREGS, sregs, "KVM_SET_SREGS");
  }

  /**
   * Reads the model-specific registers `indices` into a struct kvm_msrs buffer. KVM stops at the
   * first it cannot read: the buffer holds (and its nmsrs says) only those before it.
   */
  getMsrs(indices: readonly number[]): Uint8Array {
    const buf = new Uint8Array(kvm_msrs.size + indices.length * kvm_msr_entry.size);
    const dv = new DataView(buf.buffer);
    indices.forEach((index, i) => kvm_msr_entry.write(dv, kvm_msrs.size + i * kvm_msr_entry.size, { index }));
    kvm_msrs.write(dv, 0, { nmsrs: indices.length });
    const got = libc.ioctl(this.fd, KVM.GET_MSRS, buf, "KVM_GET_MSRS");
    kvm_msrs.write(dv, 0, { nmsrs: got });
    return buf.slice(0, kvm_msrs.size + got * kvm_msr_entry.size);
  }

  /** The guest's TSC frequency in kHz (KVM_GET_TSC_KHZ). */
  tscKhz(): number {
    return libc.ioctl(this.fd, KVM.GET_TSC_KHZ, 0, "KVM_GET_TSC_KHZ");
  }

  /** Writes the model-specific registers of a kvm_msrs buffer (from getMsrs). */
  setMsrs(msrs: Uint8Array): void {
    const set = this.trySetMsrs(msrs);
    if (set !== undefined) throw new RangeError(`KVM_SET_MSRS set ${set} of ${new DataView(msrs.buffer, msrs.byteOffset).getUint32(0, true)} model-specific registers`);
  }

  /**
   * Writes the model-specific registers of a kvm_msrs buffer; undefined when all were set, else the
   * position of the first one KVM refused (it stops there).
   */
  trySetMsrs(msrs: Uint8Array): number | undefined {
    const want = new DataView(msrs.buffer, msrs.byteOffset).getUint32(0, true);
    const set = libc.ioctl(this.fd, KVM.SET_MSRS, msrs, "KVM_SET_MSRS");
    return set === want ? undefined : set;
  }

  /** The x87/SSE/extended state (struct kvm_xsave). */
  getXsave(): Uint8Array {
    const buf = new Uint8Array(kvm_xsave.size);
    libc.ioctl(this.fd, KVM.GET_XSAVE, buf, "KVM_GET_XSAVE");
    return buf;
  }

  setXsave(xsave: Uint8Array): void {
    libc.ioctl(this.fd, KVM.SET_XSAVE, xsave, "KVM_SET_XSAVE");
  }

  /** DR0-DR3, DR6, DR7 (struct kvm_debugregs). */
  getDebugRegs(): Uint8Array {
    const buf = new Uint8Array(kvm_debugregs.size);
    libc.ioctl(this.fd, KVM.GET_DEBUGREGS, buf, "KVM_GET_DEBUGREGS");
    return buf;
  }

  setDebugRegs(regs: Uint8Array): void {
    libc.ioctl(this.fd, KVM.SET_DEBUGREGS, regs, "KVM_SET_DEBUGREGS");
  }

  /** The extended control registers, XCR0 (struct kvm_xcrs). */
  getXcrs(): Uint8Array {
    const buf = new Uint8Array(kvm_xcrs.size);
    libc.ioctl(this.fd, KVM.GET_XCRS, buf, "KVM_GET_XCRS");
    return buf;
  }

  setXcrs(xcrs: Uint8Array): void {
    libc.ioctl(this.fd, KVM.SET_XCRS, xcrs, "KVM_SET_XCRS");
  }

  /** All general registers from the sync area, for reports. */
  regs(): Record<RegName, bigint> {
    return kvm_regs.read(this.run, SYNC_REGS);
  }

  /** Decodes the last exit into a tagged union (slow path; the run loop reads fields directly). */
  exit(reason: number): VcpuExit {
    const r = this.run;
    const at = (f: Parameters<typeof kvm_run.off>[0]) => kvm_run.off(f);
    switch (reason) {
      case EXIT_INTERRUPTED:
        return { kind: "interrupted" };
      case KVM_EXIT.IO:
        return {
          kind: "io",
          direction: r.getUint8(at("io.direction")) === KVM_EXIT_IO_OUT ? "out" : "in",
          size: r.getUint8(at("io.size")),
          port: r.getUint16(at("io.port"), true),
          count: r.getUint32(at("io.count"), true),
          dataOffset: Number(r.getBigUint64(at("io.data_offset"), true)),
        };
      case KVM_EXIT.MMIO:
        return {
          kind: "mmio",
          address: r.getBigUint64(at("mmio.phys_addr"), true),
          length: r.getUint32(at("mmio.len"), true),
          isWrite: r.getUint8(at("mmio.is_write")) !== 0,
        };
      case KVM_EXIT.HLT:
        return { kind: "hlt" };
      case KVM_EXIT.SHUTDOWN:
        return { kind: "shutdown" };
      case KVM_EXIT.FAIL_ENTRY:
        return { kind: "fail_entry", hardwareReason: r.getBigUint64(at("fail_entry.hardware_entry_failure_reason"), true) };
      case KVM_EXIT.INTERNAL_ERROR:
        return { kind: "internal_error", suberror: r.getUint32(at("internal.suberror"), true) };
      case KVM_EXIT.SYSTEM_EVENT:
        return { kind: "system_event", type: r.getUint32(at("system_event.type"), true) };
      default:
        return { kind: "other", reason, name: exitReasonName(reason) };
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    libc.munmap(this.#runAddr, this.#runSize);
    libc.close(this.fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
