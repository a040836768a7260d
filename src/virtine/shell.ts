// A VM shell: a VM with its guest RAM in slot 0 and one vCPU with CPUID set, ready for an image.
// Creating one is the expensive part of a cold start (KVM_CREATE_VM, the memory slot, the vCPU);
// a warm shell is reused by reloading the image and resetting registers.
import { GuestMemory } from "../memory/guest-memory.ts";
import type { Kvm } from "../kvm/system.ts";
import type { Vm } from "../kvm/vm.ts";
import type { Vcpu } from "../kvm/vcpu.ts";
import { longModeSregs, realModeSregs, writeLongModeTables } from "../image/boot.ts";

/** Special-register images shared by every shell of the process (built from the first vCPU). */
let bootSregs: { long: Uint8Array; real: Uint8Array } | undefined;

export class Shell {
  readonly vm: Vm;
  readonly vcpu: Vcpu;
  readonly mem: GuestMemory;
  readonly sregs: { long: Uint8Array; real: Uint8Array };
  /** the special registers loaded at the last entry: "long" ones persist (CPL3 cannot change them) */
  loadedSregs: "long" | "real" | undefined;
  #closed = false;

  constructor(kvm: Kvm, memorySize: number, longMode: boolean) {
    const mem = new GuestMemory(memorySize);
    let vm: Vm | undefined;
    try {
      vm = kvm.createVm();
      vm.setMemoryRegion(0, 0, memorySize, mem.hostAddr);
      const vcpu = vm.createVcpu(0);
      try {
        vcpu.setCpuid(kvm.cpuid);
        if (!bootSregs) {
          const reset = vcpu.getSregs();
          bootSregs = { long: longModeSregs(reset), real: realModeSregs(reset) };
        }
      } catch (e) {
        vcpu.close();
        throw e;
      }
      this.vcpu = vcpu;
    } catch (e) {
      vm?.close();
      mem.close();
      throw e;
    }
    this.vm = vm;
    this.mem = mem;
    this.sregs = bootSregs;
    if (longMode) writeLongModeTables(mem);
  }

  /** Highest usable stack address (16-byte aligned, top of RAM). */
  get stackTop(): bigint {
    return BigInt(this.mem.size);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.vcpu.close();
    this.vm.close();
    this.mem.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
