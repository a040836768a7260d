// What a run loop tells a debugger attached to a call (src/debug/, `wasp invoke --gdb`): the start,
// every exception the host's IDT reports, the host's own interruptions (a debugger may have asked
// to stop the guest meanwhile) and the end. Between them the debugger may hold the guest as long as
// it likes; a call under a debugger has no deadline.
import type { Vcpu } from "../kvm/vcpu.ts";
import type { GuestMemory } from "../memory/guest-memory.ts";

/** How often a run loop under a debugger is interrupted to look for the debugger's Ctrl-C, in ms. */
export const DEBUG_TICK_MS = 100;

export interface DebugHook {
  /** before the call's first entry: the guest is stopped at its start */
  start(vcpu: Vcpu, mem: GuestMemory): void;
  /**
   * the host's IDT reported an exception (Port.FAULT): true when the debugger took it — a
   * breakpoint or a single step — and has set the guest up to go on; false for a fault that ends
   * the call (the debugger has shown it first)
   */
  exception(vcpu: Vcpu, mem: GuestMemory): boolean;
  /** the thread's signal interrupted the guest (the guest's registers are the vCPU's) */
  interrupted(vcpu: Vcpu, mem: GuestMemory): void;
  /** the call has ended: the guest's exit value or status, or the error that ended it */
  ended(outcome: { status: bigint } | { error: unknown }): void;
}
