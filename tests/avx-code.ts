// Machine code of the native test guests that look at a virtine's CPU features and vector state:
// CPUID, XGETBV, the upper halves of the YMM registers (AVX). Hand-encoded (Intel SDM vol. 2; each
// checked with objdump -D -b binary -mi386:x86-64), as tests/reset.test.ts's secret guest is.
import { X86, nativeImage } from "./support.ts";

const imm32 = (v: number) => [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff];

/** mov eax, leaf; mov ecx, subleaf; cpuid; then `reg` into RAX (zero-extended). */
export function cpuidCode(leaf: number, subleaf: number, reg: "eax" | "ebx" | "ecx" | "edx"): number[] {
  const into = { eax: [], ebx: [0x89, 0xd8], ecx: [0x89, 0xc8], edx: [0x89, 0xd0] }[reg]; // mov eax, r32
  return [0xb8, ...imm32(leaf), 0xb9, ...imm32(subleaf), 0x0f, 0xa2, ...into, 0x89, 0xc0]; // ...; mov eax, eax
}

/** xor ecx, ecx; xgetbv; shl rdx, 32; or rax, rdx: XCR0 in RAX (#UD where CR4.OSXSAVE is off). */
export const XGETBV = [0x31, 0xc9, 0x0f, 0x01, 0xd0, 0x48, 0xc1, 0xe2, 0x20, 0x48, 0x09, 0xd0];
/** xor ecx, ecx; mov eax, 3; xor edx, edx; xsetbv: privileged, a #GP at CPL3. */
export const XSETBV = [0x31, 0xc9, 0xb8, ...imm32(3), 0x31, 0xd2, 0x0f, 0x01, 0xd1];

/** YMM0-15 all set to RSI in each 64-bit lane: movq xmm0, rsi; vpbroadcastq ymm0, xmm0; vmovdqa ymmN, ymm0. */
export const FILL_YMM: number[] = [
  0x66, 0x48, 0x0f, 0x6e, 0xc6, // movq xmm0, rsi
  0xc4, 0xe2, 0x7d, 0x59, 0xc0, // vpbroadcastq ymm0, xmm0 (AVX2)
  ...Array.from({ length: 15 }, (_, i) => i + 1).flatMap((n) => [0xc5, n < 8 ? 0xfd : 0x7d, 0x6f, 0xc0 | ((n & 7) << 3)]), // vmovdqa ymmN, ymm0
];

/** EAX = how many of YMM0-15 hold RSI in the low lane of their upper half: vextracti128 xmm0, ymmN, 1; movq rdx, xmm0; cmp rdx, rsi. */
export const COUNT_YMM: number[] = [
  0x31, 0xc0, // xor eax, eax
  ...Array.from({ length: 16 }, (_, n) => [
    0xc4, n < 8 ? 0xe3 : 0x63, 0x7d, 0x39, 0xc0 | ((n & 7) << 3), 0x01, // vextracti128 xmm0, ymmN, 1 (ymm0 first: it is the scratch)
    0x66, 0x48, 0x0f, 0x7e, 0xc2, // movq rdx, xmm0
    0x48, 0x39, 0xf2, // cmp rdx, rsi
    0x0f, 0x94, 0xc1, 0x0f, 0xb6, 0xc9, 0x01, 0xc8, // sete cl; movzx ecx, cl; add eax, ecx
  ]).flat(),
];

/** A native image of `code` followed by the exit (RAX is the call's value). */
export function probeImage(code: number[]): Uint8Array {
  return nativeImage([...code, ...X86.exit]);
}

/**
 * The YMM secret guest: RDI = 1 fills YMM0-15 with RSI; RDI = 2 counts the registers whose upper
 * half holds RSI (RAX); anything else does both in one call (it can see what it left).
 */
export function ymmSecretImage(): Uint8Array {
  const fill = [...FILL_YMM, ...X86.exit];
  const count = [...COUNT_YMM, ...X86.exit];
  const both = [...FILL_YMM, ...COUNT_YMM, ...X86.exit];
  // cmp rdi, 1; jne +fill; <fill> ; cmp rdi, 2; jne +count; <count>; <both>
  const jne = (n: number) => [0x0f, 0x85, ...imm32(n)];
  return nativeImage([0x48, 0x83, 0xff, 0x01, ...jne(fill.length), ...fill, 0x48, 0x83, 0xff, 0x02, ...jne(count.length), ...count, ...both]);
}

/**
 * The YMM snapshot guest: fills YMM0-15 with RSI, takes the snapshot (hypercall 5), then counts
 * the registers whose upper half holds RSI (RAX, the call's value) and overwrites them all with
 * ~RSI — what a resumed call must never hand to the next.
 */
export function ymmSnapshotImage(): Uint8Array {
  return nativeImage([
    ...FILL_YMM,
    0xb8, ...imm32(5), ...X86.hypercall, // mov eax, 5 (snapshot); out 0xfb, al
    ...COUNT_YMM,
    0x48, 0x89, 0xc3, // mov rbx, rax
    0x48, 0xf7, 0xd6, // not rsi
    ...FILL_YMM,
    0x48, 0xf7, 0xd6, // not rsi
    0x48, 0x89, 0xd8, // mov rax, rbx
    ...X86.exit,
  ]);
}
