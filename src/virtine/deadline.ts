// Deadlines that hold even while a guest spins without ever exiting.
//
// The thread that runs vCPUs blocks DEADLINE_SIGNAL, so it can never be delivered to the thread's
// own code. Each vCPU gets KVM_SET_SIGNAL_MASK with that signal *unblocked*: it can interrupt only
// KVM_RUN. Before entering, a one-shot POSIX timer (timer_create with SIGEV_THREAD_ID to this
// thread) is armed for the deadline; when it fires inside KVM_RUN, the ioctl returns EINTR, and
// rt_sigtimedwait with a zero timeout consumes the pending signal. After the run the timer is
// disarmed, and if it had already fired (between the guest's exit and the disarm) the signal is
// consumed then: a late timer can never reach the next invocation.
import { ptr } from "bun:ffi";
import * as libc from "../../ffi/libc.ts";
import { Errno } from "../../ffi/errno.ts";
import { KVM, kvm_signal_mask } from "../../ffi/kvm.ts";
import { itimerspec, sigevent } from "../../ffi/signal.ts";

/**
 * SIGRTMIN+8 in glibc's numbering (the kernel's 42). Bun and JavaScriptCore catch SIGPWR and SIGSYS
 * (and the fault signals); libc keeps 32-34 for itself. No one else here uses 42.
 */
export const DEADLINE_SIGNAL = 42;
const SIGNAL_BIT = 1n << BigInt(DEADLINE_SIGNAL - 1);

export class DeadlineTimer {
  readonly tid: number;
  readonly #timerId: number;
  /** the signal mask every vCPU of this thread runs with: the thread's own, minus the deadline signal */
  readonly #vcpuMask: Uint8Array;
  readonly #arm = new BigInt64Array(4);
  readonly #old = new BigInt64Array(4);
  readonly #zero = new BigInt64Array(4);
  readonly #set = new BigUint64Array([SIGNAL_BIT]);
  readonly #noWait = new BigInt64Array(2);
  #armed = false;

  private constructor() {
    this.tid = libc.gettid();
    const set = new BigUint64Array([SIGNAL_BIT]);
    const old = new BigUint64Array(1);
    libc.syscall(libc.SYS.rt_sigprocmask, "rt_sigprocmask", libc.SIG_BLOCK, ptr(set), ptr(old), libc.KERNEL_SIGSET_BYTES);
    this.#vcpuMask = new Uint8Array(kvm_signal_mask.size + libc.KERNEL_SIGSET_BYTES);
    const dv = new DataView(this.#vcpuMask.buffer);
    kvm_signal_mask.write(dv, 0, { len: libc.KERNEL_SIGSET_BYTES });
    dv.setBigUint64(kvm_signal_mask.off("sigset"), old[0] & ~SIGNAL_BIT, true);

    const sev = new Uint8Array(sigevent.size);
    sigevent.write(new DataView(sev.buffer), 0, { sigev_signo: DEADLINE_SIGNAL, sigev_notify: libc.SIGEV_THREAD_ID, sigev_notify_thread_id: this.tid });
    const id = new Int32Array(1);
    libc.syscall(libc.SYS.timer_create, "timer_create", libc.CLOCK_MONOTONIC, ptr(sev), ptr(id));
    this.#timerId = id[0];
  }

  static #thisThread: DeadlineTimer | undefined;

  /** The deadline timer of the calling thread (module state is per thread: one per Worker). */
  static forThisThread(): DeadlineTimer {
    DeadlineTimer.#thisThread ??= new DeadlineTimer();
    return DeadlineTimer.#thisThread;
  }

  /** Lets the deadline signal interrupt this vCPU's KVM_RUN (once per vCPU). */
  attach(vcpuFd: number): void {
    libc.ioctl(vcpuFd, KVM.SET_SIGNAL_MASK, this.#vcpuMask, "KVM_SET_SIGNAL_MASK");
  }

  /** Arms the timer to fire `ms` milliseconds from now (ms > 0). */
  arm(ms: number): void {
    const ns = BigInt(Math.max(1, Math.round(ms * 1e6)));
    this.#arm[2] = ns / 1_000_000_000n;
    this.#arm[3] = ns % 1_000_000_000n;
    libc.syscall(libc.SYS.timer_settime, "timer_settime", this.#timerId, 0, ptr(this.#arm), 0);
    this.#armed = true;
  }

  /**
   * Disarms the timer. If it had fired already (its remaining time reads zero), consumes the
   * pending signal so that it cannot interrupt a later run.
   */
  disarm(): void {
    if (!this.#armed) return;
    this.#armed = false;
    libc.syscall(libc.SYS.timer_settime, "timer_settime", this.#timerId, 0, ptr(this.#zero), ptr(this.#old));
    if (this.#old[2] === 0n && this.#old[3] === 0n) this.consume();
  }

  /** Consumes a pending deadline signal; true if there was one (the deadline has passed). */
  consume(): boolean {
    const r = libc.raw.syscall(libc.SYS.rt_sigtimedwait, ptr(this.#set), 0, ptr(this.#noWait), libc.KERNEL_SIGSET_BYTES) as number;
    if (r === DEADLINE_SIGNAL) return true;
    if (r === -1 && libc.errno() !== Errno.EAGAIN) libc.fail("rt_sigtimedwait");
    return false;
  }
}
