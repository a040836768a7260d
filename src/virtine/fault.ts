// Turns an exit the run loop does not expect into a typed error that names what happened.
import { exitReasonName } from "../../ffi/kvm.ts";
import type { Vcpu } from "../kvm/vcpu.ts";
import type { GuestMemory } from "../memory/guest-memory.ts";
import { FAULT_FRAME, type StackGuard } from "../image/boot.ts";
import { GuestFaultError, MemoryFaultError, StackOverflowError } from "../errors.ts";

const hex = (v: bigint) => `0x${v.toString(16)}`;

export function guestFault(vcpu: Vcpu, reason: number): GuestFaultError | MemoryFaultError {
  const rip = vcpu.reg("rip");
  const exit = vcpu.exit(reason);
  switch (exit.kind) {
    case "mmio": {
      const access = exit.isWrite ? "write" : "read";
      return new MemoryFaultError(
        `the guest tried to ${access} ${exit.length} bytes at guest-physical ${hex(exit.address)}, outside its RAM (at RIP ${hex(rip)})`,
        exit.address,
        access,
      );
    }
    case "shutdown":
      return new GuestFaultError(`the guest triple-faulted (KVM_EXIT_SHUTDOWN) at RIP ${hex(rip)}`, exitReasonName(reason), rip, vcpu.regs());
    case "fail_entry":
      return new GuestFaultError(`KVM could not enter the guest (hardware reason ${hex(exit.hardwareReason)}) at RIP ${hex(rip)}`, exitReasonName(reason), rip, vcpu.regs());
    case "internal_error":
      return new GuestFaultError(`KVM reported an internal error (suberror ${exit.suberror}) at RIP ${hex(rip)}`, exitReasonName(reason), rip, vcpu.regs());
    default:
      return new GuestFaultError(`the guest stopped with an unexpected exit, ${exitReasonName(reason)}, at RIP ${hex(rip)}`, exitReasonName(reason), rip, vcpu.regs());
  }
}


const EXCEPTIONS: Record<number, [string, string]> = {
  0: ["#DE", "divide error"], 1: ["#DB", "debug"], 2: ["NMI", "non-maskable interrupt"], 3: ["#BP", "breakpoint"],
  4: ["#OF", "overflow"], 5: ["#BR", "bound range exceeded"], 6: ["#UD", "invalid opcode"], 7: ["#NM", "device not available"],
  8: ["#DF", "double fault"], 10: ["#TS", "invalid TSS"], 11: ["#NP", "segment not present"], 12: ["#SS", "stack-segment fault"],
  13: ["#GP", "general protection"], 14: ["#PF", "page fault"], 16: ["#MF", "x87 floating-point error"], 17: ["#AC", "alignment check"],
  18: ["#MC", "machine check"], 19: ["#XM", "SIMD floating-point exception"], 20: ["#VE", "virtualization exception"], 21: ["#CP", "control protection"],
};

/**
 * The report of the host-built exception handlers (src/image/boot.ts): RAX = vector, RBX = error
 * code, RCX = CR2, RDX = the faulting RIP. Values come from the guest's side and are only printed.
 */
export function exceptionFault(vcpu: Vcpu, mem: GuestMemory, stack?: { guard: StackGuard; size: number }): GuestFaultError | StackOverflowError {
  const vector = Number(vcpu.reg("rax") & 0xffn);
  const error = vcpu.reg("rbx");
  const cr2 = vcpu.reg("rcx");
  const rip = vcpu.reg("rdx");
  // The guest's registers: the handler's, with what it saved or the CPU pushed put back.
  const regs = vcpu.regs();
  const sp = vcpu.reg("rsp");
  try {
    const slot = (k: keyof typeof FAULT_FRAME) => mem.readU64(sp + BigInt(FAULT_FRAME[k] * 8), "fault frame");
    for (const k of ["rax", "rbx", "rcx", "rdx", "rip", "rflags", "rsp"] as const) regs[k] = slot(k);
  } catch {
    // a fault frame outside RAM cannot happen with the host's TSS; report the raw registers then
  }
  // a page fault in the stack's guard pages: the stack ran out
  if (vector === 14 && stack && cr2 >= BigInt(stack.guard.start) && cr2 < BigInt(stack.guard.end)) return new StackOverflowError(stack.size, cr2, rip);
  const [mnemonic, name] = EXCEPTIONS[vector] ?? [`#${vector}`, "exception"];
  let detail = "";
  if (vector === 14) {
    const kind = error & 0x10n ? "an instruction fetch from" : error & 2n ? "a write to" : "a read of";
    detail = ` on ${kind} 0x${cr2.toString(16)} (${error & 1n ? "protection violation" : "page not present"})`;
  } else if (vector === 13 && error !== 0n) {
    detail = ` (error code 0x${error.toString(16)})`;
  }
  return new GuestFaultError(
    `the guest took an exception: ${name} (${mnemonic}, vector ${vector})${detail} at RIP ${hex(rip)}`,
    `exception ${mnemonic}`,
    rip,
    regs,
    vector,
  );
}
