// Deadlines that hold even while a guest spins without ever exiting.
//
// The thread that runs vCPUs blocks DEADLINE_SIGNAL, so it can never be delivered to the thread's
// own code. Each vCPU gets KVM_SET_SIGNAL_MASK with that signal *unblocked*: it can interrupt only
// KVM_RUN. Before entering, a one-shot POSIX timer (timer_create with SIGEV_THREAD_ID to this
// thread) is armed for the deadline; when it fires inside KVM_RUN, the ioctl returns EINTR, and
// rt_sigtimedwait with a zero timeout consumes the pending signal.
//
// The timer is not disarmed after a call that ends in time (that would cost a syscall per call),
// and not re-armed per call either while the one set fires no later than the new deadline (see
// `start`). A timer of an earlier call that fires in between either
// reaches the do-nothing handler (while the event loop waits with signals unblocked) or stays
// pending; then it makes the next KVM_RUN return EINTR at once, and the run loop, finding the
// *current* deadline not reached (`expired`), consumes it and goes on. A late timer can therefore
// never end the wrong invocation. The deadline itself is judged by the clock, not by the signal.
import { ptr } from "bun:ffi";
import * as libc from "../../ffi/libc.ts";
import { Errno } from "../../ffi/errno.ts";
import { KVM, kvm_signal_mask } from "../../ffi/kvm.ts";
import { sigaction, sigevent } from "../../ffi/signal.ts";

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
  readonly #zero = new BigInt64Array(4);
  /** performance.now() at which the current call's deadline passes (Infinity: none) */
  #expiresAt = Number.POSITIVE_INFINITY;
  /** performance.now() at which the armed timer fires (-Infinity: not armed) */
  #armedUntil = Number.NEGATIVE_INFINITY;
  readonly #set = new BigUint64Array([SIGNAL_BIT]);
  readonly #noWait = new BigInt64Array(2);

  private constructor() {
    this.tid = libc.gettid();
    // A handler that does nothing, so that the signal can never end the process: Bun's event loop
    // waits with all signals unblocked (epoll_pwait with an empty mask — measured: a timer firing
    // while the loop slept killed the process), and there a late timer's signal is delivered.
    libc.ignoreByHandler(DEADLINE_SIGNAL, { size: sigaction.size, handler: sigaction.off("sa_handler") });
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

  /** Deletes this thread's timer (a worker that stops) and drops a pending signal. */
  static releaseThisThread(): void {
    const t = DeadlineTimer.#thisThread;
    if (!t) return;
    DeadlineTimer.#thisThread = undefined;
    libc.syscall(libc.SYS.timer_delete, "timer_delete", t.#timerId);
    t.consume();
  }

  /** Lets the deadline signal interrupt this vCPU's KVM_RUN (once per vCPU). */
  attach(vcpuFd: number): void {
    libc.ioctl(vcpuFd, KVM.SET_SIGNAL_MASK, this.#vcpuMask, "KVM_SET_SIGNAL_MASK");
  }

  /**
   * Starts a call's deadline, `ms` milliseconds from now (0: none). Arming the timer costs a
   * syscall that reprograms the clock (~4 µs in this nested VM), so it is armed only when the
   * timer already set would fire too late or has fired: a timer set for an earlier call's deadline
   * fires *before* this one's, and then `recheck` re-arms it for the rest. Calls a few ms apart
   * with a 10 s deadline arm the timer about once every 10 s.
   */
  start(ms: number): void {
    if (ms <= 0) {
      this.#expiresAt = Number.POSITIVE_INFINITY;
      return;
    }
    const now = performance.now();
    this.#expiresAt = now + ms;
    if (this.#armedUntil <= now || this.#armedUntil > this.#expiresAt) this.#armFor(ms, this.#expiresAt);
  }

  /**
   * After an interruption that was not this call's deadline: if the timer has fired (it was set
   * for an earlier deadline), arm it again for the rest of this call's time.
   */
  recheck(): void {
    const now = performance.now();
    if (this.#expiresAt !== Number.POSITIVE_INFINITY && this.#armedUntil <= now + 0.05) this.#armFor(this.#expiresAt - now, this.#expiresAt);
  }

  #armFor(ms: number, until: number): void {
    const ns = BigInt(Math.max(1000, Math.round(ms * 1e6)));
    this.#arm[2] = ns / 1_000_000_000n;
    this.#arm[3] = ns % 1_000_000_000n;
    libc.syscall(libc.SYS.timer_settime, "timer_settime", this.#timerId, 0, ptr(this.#arm), 0);
    this.#armedUntil = until;
  }

  /**
   * Whether the current call's deadline has passed. The timer and performance.now() both follow
   * CLOCK_MONOTONIC; the 50 µs of slack covers their rounding.
   */
  expired(): boolean {
    return performance.now() >= this.#expiresAt - 0.05;
  }

  /**
   * Pauses the call's deadline (a served program waiting between requests): nothing expires until
   * `start` again, which re-arms the timer only if it would fire too late; a signal of the timer
   * already set is one the run loop takes as not this call's deadline.
   */
  pause(): void {
    this.#expiresAt = Number.POSITIVE_INFINITY;
  }

  /** Disarms the timer (when the thread stops running virtines) and drops a pending signal. */
  stop(): void {
    this.#expiresAt = Number.POSITIVE_INFINITY;
    this.#armedUntil = Number.NEGATIVE_INFINITY;
    libc.syscall(libc.SYS.timer_settime, "timer_settime", this.#timerId, 0, ptr(this.#zero), 0);
    this.consume();
  }

  /** Consumes a pending deadline signal; true if there was one (the deadline has passed). */
  consume(): boolean {
    const r = libc.raw.syscall(libc.SYS.rt_sigtimedwait, ptr(this.#set), 0, ptr(this.#noWait), libc.KERNEL_SIGSET_BYTES) as number;
    if (r === DEADLINE_SIGNAL) return true;
    if (r === -1 && libc.errno() !== Errno.EAGAIN) libc.fail("rt_sigtimedwait");
    return false;
  }
}
