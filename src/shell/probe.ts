// What the reset must cover depends on the KVM underneath, and is measured, not assumed.
//
// A CPL3 guest can load its data segment selectors (DS, ES, FS, GS) with a null or a user
// selector, and on plain KVM the next call on the same vCPU would see what it loaded: the reset
// must then reload the special registers (KVM_SET_SREGS, ~5 µs here). KVM on PVM shows a CPL3 guest
// null data selectors whatever it loads (measured), so there is nothing to reset. One probe per
// process tells which: a guest loads the user data selector into DS and reads DS back.
import { Port } from "../abi/guest-abi.ts";
import { KVM_EXIT } from "../../ffi/kvm.ts";
import { buildNativeImage, parseImage } from "../image/image.ts";
import { SEL_USER_DATA } from "../image/boot.ts";
import type { Kvm } from "../kvm/system.ts";
import { Snapshot } from "../snapshot/snapshot.ts";
import { Shell } from "./shell.ts";

const results = new WeakMap<Kvm, boolean>();

/** True when a CPL3 guest sees the data segment selectors it loads (so they must be reset). */
export function userSelectorsVisible(kvm: Kvm): boolean {
  let r = results.get(kvm);
  if (r === undefined) {
    r = probe(kvm);
    results.set(kvm, r);
  }
  return r;
}

function probe(kvm: Kvm): boolean {
  const code = [
    0x66, 0xba, SEL_USER_DATA, 0x00, // mov dx, SEL_USER_DATA
    0x8e, 0xda, // mov ds, dx
    0x31, 0xc0, // xor eax, eax
    0x8c, 0xd8, // mov ax, ds
    0xe6, Port.EXIT, // out EXIT, al
  ];
  using snapshot = Snapshot.entry(parseImage(buildNativeImage(code), "selector-probe"), 2 * 1024 * 1024, kvm.vcpuResetState());
  using shell = new Shell(kvm, snapshot, { oneShot: true });
  shell.loadRegisters([]);
  // Anything unexpected: assume the selectors are visible (the safe answer).
  if (shell.vcpu.enter() !== KVM_EXIT.IO || shell.vcpu.ioPort() !== Port.EXIT) return true;
  return (shell.vcpu.reg("rax") & 0xffffn) !== 0n;
}
