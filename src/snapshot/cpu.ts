// The CPU identity a snapshot's state depends on: the vendor and the feature bits of the CPUID
// that KVM gives guests here. A snapshot may be restored where every feature bit it was taken with
// is present (the guest may already have chosen code paths by them).
import { cpuidEntryRegister, supportedXcr0Of } from "../kvm/xfeatures.ts";
import type { Kvm } from "../kvm/system.ts";

export interface CpuIdentity {
  vendor: string;
  /** leaf 1 ECX, EDX; leaf 7.0 EBX, ECX, EDX; leaf 0x80000001 ECX, EDX */
  features: number[];
}

const FEATURE_WORDS: [leaf: number, reg: "eax" | "ebx" | "ecx" | "edx", name: string][] = [
  [1, "ecx", "leaf 1 ECX"],
  [1, "edx", "leaf 1 EDX"],
  [7, "ebx", "leaf 7 EBX"],
  [7, "ecx", "leaf 7 ECX"],
  [7, "edx", "leaf 7 EDX"],
  [0x80000001, "ecx", "leaf 0x80000001 ECX"],
  [0x80000001, "edx", "leaf 0x80000001 EDX"],
];

/** One register of the guest CPUID's entry for `leaf` (subleaf `index`), or 0 if KVM gives none. */
export function cpuidRegister(kvm: Kvm, leaf: number, reg: "eax" | "ebx" | "ecx" | "edx", index = 0): number {
  return cpuidEntryRegister(kvm.cpuid, leaf, reg, index);
}

export function cpuIdentity(kvm: Kvm): CpuIdentity {
  const find = (leaf: number, reg: "eax" | "ebx" | "ecx" | "edx") => cpuidRegister(kvm, leaf, reg);
  const vendorBytes = new Uint8Array(12);
  const vdv = new DataView(vendorBytes.buffer);
  vdv.setUint32(0, find(0, "ebx"), true);
  vdv.setUint32(4, find(0, "edx"), true);
  vdv.setUint32(8, find(0, "ecx"), true);
  return {
    vendor: new TextDecoder().decode(vendorBytes).replace(/\0+$/, ""),
    features: FEATURE_WORDS.map(([leaf, reg]) => find(leaf, reg)),
  };
}

/** The XSAVE features (XCR0 bits) KVM lets a guest enable: CPUID leaf 0xD, subleaf 0, EDX:EAX. */
export function supportedXcr0(kvm: Kvm): bigint {
  return supportedXcr0Of(kvm.cpuid);
}

/** Which of `snapshot`'s feature bits `here` lacks, as text, or "" if none. */
export function missingFeatures(snapshot: CpuIdentity, here: CpuIdentity): string {
  const out: string[] = [];
  FEATURE_WORDS.forEach(([, , name], i) => {
    const lacking = (snapshot.features[i] & ~here.features[i]) >>> 0;
    if (lacking !== 0) out.push(`${name} bits 0x${lacking.toString(16)}`);
  });
  return out.join(", ");
}
