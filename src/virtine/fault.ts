// Turns an exit the run loop does not expect into a typed error that names what happened.
import { exitReasonName } from "../../ffi/kvm.ts";
import type { Vcpu } from "../kvm/vcpu.ts";
import { GuestFaultError, MemoryFaultError } from "../errors.ts";

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

