// The run loop every engine's call goes through (the Runner's native and raw images, a
// LinuxProgram's executables): enter, take the exit, dispatch it, until the call ends. What an exit
// means beyond what is common — the ports a kind owns, a HLT, a fault it recovers from — is the
// kind's table (`CallExits`, made once per call); what is common is here: the host IDT's fault
// reports (a debugger's first), the deadline and cancellation (the thread's signal), and every
// other exit as a typed error. Allocates nothing per exit.
import { KVM_EXIT, KVM_EXIT_IO_OUT, kvm_run } from "../../ffi/kvm.ts";
import { Port } from "../abi/guest-abi.ts";
import type { StackGuard } from "../image/boot.ts";
import { EXIT_INTERRUPTED } from "../kvm/vcpu.ts";
import { CancelledError, TimeoutError } from "../errors.ts";
import type { Shell } from "../shell/shell.ts";
import type { DeadlineTimer } from "./deadline.ts";
import { DEBUG_TICK_MS, type DebugHook } from "./debug-hook.ts";
import { exceptionFault, guestFault } from "./fault.ts";

const IO_DIRECTION = kvm_run.off("io.direction");

/** What a port handler returns to run the guest on. */
export const RUN_ON: unique symbol = Symbol("run on");

/** One call's meaning of its exits, beyond what every call shares. `exits` counts the guest's own. */
export interface CallExits<E> {
  /** after every exit the guest made (a recorded Linux call takes its layer's log here) */
  afterExit?(): void;
  /** port I/O (`out` false: an IN): the call's end, RUN_ON, or undefined for a port the kind does not own */
  io(port: number, out: boolean, exits: number): E | typeof RUN_ON | undefined;
  /** a HLT: the call's end, or undefined when a HLT ends nothing for this kind */
  halt?(exits: number): E | undefined;
  /** an exception the host's IDT reported that the kind answers itself (the Linux layer's -EFAULT): true to run on */
  recover?(): boolean;
  /** the error of port I/O the kind does not own, worded as the kind says it */
  violation(port: number, out: boolean): Error;
}

export interface LoopOptions {
  deadline: DeadlineTimer;
  timeoutMs: number;
  /** asked when the thread's signal interrupts the guest: true cancels the call */
  interrupted?: () => boolean;
  /** a debugger attached to the call: no deadline, its traps are not the guest's exits */
  debug?: DebugHook;
  /** the stack and its guard, to tell an overflow from other page faults */
  stack?: { guard: StackGuard; size: number };
}

/** Runs `shell`'s vCPU until `call` says the call has ended; a fault, the deadline or a cancellation is a typed error. */
export function runLoop<E>(shell: Shell, call: CallExits<E>, opts: LoopOptions): E {
  const { vcpu, mem } = shell;
  const { deadline, debug } = opts;
  deadline.start(debug ? DEBUG_TICK_MS : opts.timeoutMs);
  debug?.start(vcpu, mem);
  let exits = 0;
  for (;;) {
    const reason = vcpu.enter();
    exits++;
    if (reason !== EXIT_INTERRUPTED) call.afterExit?.();
    if (reason === KVM_EXIT.IO) {
      const port = vcpu.ioPort();
      const out = vcpu.run.getUint8(IO_DIRECTION) === KVM_EXIT_IO_OUT;
      if (port === Port.FAULT && out) {
        if (debug?.exception(vcpu, mem)) {
          exits--; // a breakpoint or a step: the debugger's, not the guest's
          continue;
        }
        if (call.recover?.()) continue;
        throw exceptionFault(vcpu, mem, opts.stack);
      }
      const r = call.io(port, out, exits);
      if (r === RUN_ON) continue;
      if (r === undefined) throw call.violation(port, out);
      return r;
    }
    if (reason === KVM_EXIT.HLT && call.halt) {
      const r = call.halt(exits);
      if (r !== undefined) return r;
    }
    if (reason === EXIT_INTERRUPTED) {
      exits--; // the host's signal, not the guest's doing: a call's exits are its own, whatever the host's load
      // this call's deadline; or a late timer of an earlier call, or another signal for this thread: then run on
      deadline.consume();
      if (opts.interrupted?.()) throw new CancelledError();
      if (debug) {
        debug.interrupted(vcpu, mem);
        deadline.start(DEBUG_TICK_MS);
        continue;
      }
      if (deadline.expired()) throw new TimeoutError(opts.timeoutMs);
      deadline.recheck();
      continue;
    }
    throw guestFault(vcpu, reason);
  }
}
