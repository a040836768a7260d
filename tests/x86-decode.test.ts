// The x86-64 decoder (src/linux/x86-decode.ts) against the bundled assembler: lengths are exactly
// what `zig cc` makes of a few hundred instructions of every encoding family; the semantic fields
// the host relies on are checked on hand-picked cases; the properties hold for any bytes. Needs
// only zig.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runs } from "./fuzz.ts";
import { slow, zigPath } from "./support.ts";
import { decode, type Instruction } from "../src/linux/x86-decode.ts";

/** The sections of an ELF64 relocatable object, by name. */
function elfSections(obj: Uint8Array): Map<string, Uint8Array> {
  const dv = new DataView(obj.buffer, obj.byteOffset, obj.byteLength);
  expect([...obj.subarray(0, 5)]).toEqual([0x7f, 0x45, 0x4c, 0x46, 2]);
  const shoff = Number(dv.getBigUint64(0x28, true));
  const shentsize = dv.getUint16(0x3a, true);
  const shnum = dv.getUint16(0x3c, true);
  const header = (i: number) => {
    const o = shoff + i * shentsize;
    return { name: dv.getUint32(o, true), offset: Number(dv.getBigUint64(o + 0x18, true)), size: Number(dv.getBigUint64(o + 0x20, true)) };
  };
  const names = header(dv.getUint16(0x3e, true));
  const name = (n: number) => new TextDecoder().decode(obj.subarray(names.offset + n, obj.indexOf(0, names.offset + n)));
  const out = new Map<string, Uint8Array>();
  for (let i = 1; i < shnum; i++) {
    const h = header(i);
    out.set(name(h.name), obj.subarray(h.offset, h.offset + h.size));
  }
  return out;
}

/**
 * Assembles Intel-syntax lines with `zig cc -c`: each instruction (and each "name:" label line)
 * gets a label of its own; directives (".p2align") get none. Returns .text and, per line, its
 * offset in it, read back from a .data table of `.quad` differences of consecutive labels — the
 * assembler's own lengths.
 */
function assemble(lines: string[], extra: string[] = []): { text: Uint8Array; at: (number | undefined)[] } {
  const dir = mkdtempSync(join(tmpdir(), "wasp-x86-"));
  try {
    const labeled = lines.map((l) => !l.startsWith(".") || l.startsWith(".byte"));
    const src = [".intel_syntax noprefix", ".text", "L_start:"];
    let n = 0;
    lines.forEach((line, i) => src.push(labeled[i] ? `L${n++}:` : "", line));
    src.push(`L${n}:`, ...extra, ".data", ".quad L0-L_start", ...Array.from({ length: n }, (_, i) => `.quad L${i + 1}-L${i}`));
    writeFileSync(join(dir, "t.s"), src.join("\n") + "\n");
    const cc = Bun.spawnSync([zigPath(), "cc", "-c", "-target", "x86_64-linux-musl", join(dir, "t.s"), "-o", join(dir, "t.o")]);
    expect(cc.stderr.toString()).toBe("");
    expect(cc.exitCode).toBe(0);
    const sections = elfSections(new Uint8Array(readFileSync(join(dir, "t.o"))));
    const text = sections.get(".text");
    const data = sections.get(".data");
    if (!text || !data) throw new Error("the object has no .text or .data");
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    let offset = Number(dv.getBigUint64(0, true));
    let k = 0;
    const at = lines.map((_, i) => {
      if (!labeled[i]) return undefined;
      const here = offset;
      offset += Number(dv.getBigUint64(8 * ++k, true));
      return here;
    });
    expect(offset).toBe(text.length);
    return { text, at };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const hex = (s: string) => new Uint8Array(s.split(/\s+/).filter(Boolean).map((b) => parseInt(b, 16)));
const split = (s: string) => s.split(";").map((l) => l.trim()).filter(Boolean);

// Every encoding family, a line each ("label:" lines are jump targets).
const ORACLE: Record<string, string> = {
  stack: "push rax; push r15; pop rbx; pop r12; push 0x12; push 0x12345; push qword ptr [rax]; pop qword ptr [rsp+8]; pushfq; popfq; push ax; enter 32, 0; enter 8, 1; leave; ret; ret 16",
  moves: "mov eax, 1; movabs rax, 0x123456789abcdef0; mov r8d, -1; mov ax, 0x1234; mov al, 5; mov ah, 5; mov spl, 1; mov r12b, 3; mov rax, rbx; mov eax, ebx; mov ax, bx; mov al, bl; mov es, ax; mov eax, ds",
  addressing: "mov qword ptr [rsp-8], rax; mov rax, qword ptr [rsp-8]; mov dword ptr [rbp-0x100], 7; mov qword ptr [rip+0x1000], 5; mov byte ptr [rax+rbx*4+0x10], 1; mov word ptr [rax], 0x1234; mov eax, dword ptr [rcx*8+0x1000]; mov rax, qword ptr [r12]; mov rax, qword ptr [r13]; mov rax, qword ptr [r13+r12*2+0x7f]; mov rax, qword ptr [rsp]; mov rax, qword ptr [rsp+rax]; mov eax, dword ptr [eax]; mov rax, qword ptr fs:[0x28]; mov eax, dword ptr gs:[rax]",
  moffs: "movabs al, byte ptr [0x1122334455667788]; movabs qword ptr [0x1122334455667788], rax; movabs eax, dword ptr [0x1122334455667788]",
  lea: "lea rdi, [rsp-8]; lea rax, [rip+0x10]; lea eax, [rdi+rsi*2+1]; lea rsp, [rbp-16]; lea r8, [r9+r10*8-0x12345678]",
  alu: "add eax, 1; add rax, 0x12345; add al, 1; add eax, 0x12345678; add rax, rbx; add dword ptr [rax], ecx; add ecx, dword ptr [rax]; or byte ptr [rdi], 0x80; adc rax, -2; sbb edx, dword ptr [rsi+4]; and eax, 0xff00; sub rsp, 0x28; add rsp, 8; and rsp, -16; xor eax, eax; xor r11, qword ptr [r11]; cmp rax, -4095; cmp byte ptr [rip+0x20], 0; test eax, eax; test byte ptr [rax], 1; test eax, 0x12345; test word ptr [rax], 0x1234",
  atomics: "xchg rax, rbx; xchg eax, r8d; xchg dword ptr [rax], ecx; lock add dword ptr [rax], 1; lock cmpxchg qword ptr [rdi], rsi; lock xadd dword ptr [rdi], eax; lock inc qword ptr [rdi]; cmpxchg16b xmmword ptr [rdi]",
  arithmetic: "movsxd rax, ecx; movsx eax, byte ptr [rax]; movzx eax, word ptr [rax]; movzx r8d, al; imul eax, ecx, 12; imul rax, qword ptr [rbx], 0x12345; imul rax, rbx; mul rcx; div qword ptr [rax]; idiv ecx; neg eax; not qword ptr [rax]; inc eax; dec byte ptr [rax]; cbw; cwde; cdqe; cwd; cdq; cqo",
  bits: "shl eax, 3; shr rax, cl; sar edx, 1; rol byte ptr [rax], 1; shld eax, ecx, 4; shrd rax, rdx, cl; bt eax, 3; bts qword ptr [rax], rcx; btr dword ptr [rax], 7; bsf eax, ecx; bsr rax, qword ptr [rdi]; tzcnt eax, ecx; lzcnt rax, rdx; popcnt eax, dword ptr [rdi]; bswap eax; bswap r9; cmove eax, ecx; cmovl rax, qword ptr [rdi]; sete al; setne byte ptr [rax]",
  flags: "clc; stc; cld; std; cmc; sahf; lahf; nop; pause; wait; endbr64; nop word ptr cs:[rax+rax]; nop dword ptr [rax]",
  strings: "movsb; movsq; rep movsb; rep stosq; repne scasb; lodsb; stosd; cmpsb; xlatb; in al, dx; out 0x80, al; in eax, 0x60",
  system: "cpuid; rdtsc; rdtscp; syscall; int3; int 0x80; .byte 0xf1; ud2; ud1 eax, dword ptr [rax]; hlt; xgetbv; rdpkru; wrpkru; serialize; monitor; mwait; rdfsbase rax; wrgsbase rcx; rdrand eax; rdseed rax; rdpid rax; lfence; mfence; sfence",
  branches: "call rax; call qword ptr [rax+8]; jmp rax; jmp qword ptr [rip+0x100]; call ext; jmp ext; je ext; jmp near; jne near; loop near; jrcxz near; xbegin ext; xend; xabort 1; xtest; near:",
  cache: "prefetcht0 byte ptr [rax]; prefetchnta byte ptr [rax+0x40]; prefetchw byte ptr [rax]; clflush byte ptr [rax]; clflushopt byte ptr [rax]; clwb byte ptr [rax]; fxsave [rax]; fxrstor64 [rax]; xsave [rax]; xsaveopt64 [rax]; xrstor [rax]; xsavec [rsp]; ldmxcsr dword ptr [rsp-4]; stmxcsr dword ptr [rsp-4]",
  extensions: "movbe eax, dword ptr [rdi]; movbe qword ptr [rdi], rax; crc32 eax, byte ptr [rdi]; crc32 rax, rcx; adcx eax, ecx; adox rax, qword ptr [rdi]; movnti dword ptr [rdi], eax; movdiri dword ptr [rax], eax; ptwrite eax; umonitor rax; umwait eax; tpause eax",
  x87: "fld dword ptr [rax]; fld qword ptr [rax]; fld tbyte ptr [rax]; fld st(1); fstp qword ptr [rsp-8]; fistp dword ptr [rax]; fild qword ptr [rax]; fisttp word ptr [rax]; fadd st, st(2); faddp st(1), st; fmul dword ptr [rax]; fdivrp st(1), st; fxch st(1); fucomip st, st(1); fcomi st, st(2); fnstsw ax; fnstcw word ptr [rsp-2]; fldcw word ptr [rsp-2]; fnstenv [rax]; fldenv [rax]; fnsave [rax]; frstor [rax]; fchs; fabs; fsqrt; fldz; fld1; fldpi; fbld tbyte ptr [rax]; fbstp tbyte ptr [rax]; fcmovb st, st(1); ffree st(3); fninit",
  sse: "movaps xmm0, xmmword ptr [rsp-16]; movups xmmword ptr [rdi], xmm1; movss xmm0, dword ptr [rax]; movsd qword ptr [rsp-8], xmm2; movd xmm0, eax; movq xmm0, rax; movq rax, xmm0; movq xmm1, qword ptr [rax]; movq qword ptr [rax], xmm1; movdqa xmm8, xmmword ptr [r9]; movdqu xmmword ptr [rax+rcx*4], xmm15; addps xmm0, xmm1; addsd xmm0, qword ptr [rax]; mulss xmm3, xmm4; divpd xmm0, xmmword ptr [rip+0x100]; sqrtsd xmm0, xmm1; cvtsi2sd xmm0, rax; cvtsi2ss xmm0, dword ptr [rax]; cvttsd2si eax, xmm1; cvtss2si rax, dword ptr [rdi]; cvtdq2pd xmm0, xmm1; cvtpd2dq xmm0, xmm1; cmpps xmm0, xmm1, 3; shufps xmm0, xmm1, 0x44; psrlw xmm0, 3; psrldq xmm0, 4; pslld xmm2, xmm3; maskmovdqu xmm0, xmm1; lddqu xmm0, xmmword ptr [rax]; movntdq xmmword ptr [rax], xmm0; movhps qword ptr [rax], xmm0; movlps xmm0, qword ptr [rax]; haddps xmm0, xmm1; movddup xmm0, xmm1; movshdup xmm0, xmmword ptr [rax]; pextrw eax, xmm0, 1; pinsrw xmm0, eax, 1; pmovmskb eax, xmm0; movmskps eax, xmm1",
  sse4: "pshufd xmm0, xmm1, 0x1b; pshufb xmm0, xmmword ptr [rax]; palignr xmm0, xmm1, 8; pextrb eax, xmm0, 1; pextrw word ptr [rax], xmm0, 2; pextrd eax, xmm0, 3; pextrq rax, xmm0, 1; pinsrb xmm0, eax, 1; pinsrq xmm0, rax, 1; ptest xmm0, xmm1; pcmpistri xmm0, xmmword ptr [rax], 0x1a; pcmpestrm xmm1, xmm2, 0x40; roundsd xmm0, xmm1, 4; blendvps xmm1, xmm2, xmm0; pmovzxbw xmm0, qword ptr [rax]; aesenc xmm0, xmmword ptr [rax]; aeskeygenassist xmm0, xmm1, 1; pclmulqdq xmm0, xmm1, 0; sha256rnds2 xmm1, xmm2, xmm0; sha1rnds4 xmm0, xmm1, 3; movntdqa xmm0, xmmword ptr [rax]; insertps xmm0, xmm1, 0x10; extractps eax, xmm0, 1; dpps xmm0, xmm1, 0xff; mpsadbw xmm0, xmm1, 5",
  mmx: "punpcklbw mm0, mm1; paddb mm0, qword ptr [rax]; movq mm0, qword ptr [rax]; pshufw mm0, mm1, 3; movd eax, mm0; emms",
  avx: "vzeroupper; vzeroall; vmovaps ymm0, ymmword ptr [rsp-32]; vmovups ymmword ptr [rdi], ymm1; vaddps ymm0, ymm1, ymm2; vaddps xmm8, xmm9, xmmword ptr [r10+r11*8+0x100]; vfmadd231ps ymm0, ymm1, ymmword ptr [rax]; vfmadd213sd xmm0, xmm1, xmm2; vpermq ymm0, ymm1, 0x1b; vperm2i128 ymm0, ymm1, ymm2, 0x20; vpbroadcastd ymm0, dword ptr [rax]; vpgatherdd ymm0, ymmword ptr [rax+4*ymm1], ymm2; vgatherqpd xmm0, xmmword ptr [rax+8*xmm1], xmm2; vmaskmovps ymmword ptr [rdi], ymm1, ymm2; vpmaskmovd ymm0, ymm1, ymmword ptr [rax]; vextracti128 xmm0, ymm1, 1; vinserti128 ymm0, ymm1, xmm2, 1; vcvtps2ph qword ptr [rax], xmm0, 0; vcvtph2ps ymm0, xmm1; vpextrb eax, xmm0, 1; vpinsrq xmm0, xmm1, rax, 1; vmovd eax, xmm0; vmovq xmm0, rax; vpblendvb ymm0, ymm1, ymm2, ymm3; vmovmskps eax, ymm0; vpmovmskb eax, ymm0; vtestps ymm0, ymm1; vbroadcastss ymm0, dword ptr [rax]; vpsllvd ymm0, ymm1, ymm2; vpsrld ymm0, ymm1, 3; vmovdqu ymm15, ymmword ptr [r15+0x7f]; vldmxcsr dword ptr [rsp-4]; vstmxcsr dword ptr [rsp-4]; vcvtsi2sd xmm0, xmm1, rax; vcvttss2si rax, xmm0; vaesenc ymm0, ymm1, ymm2; vpclmulqdq ymm0, ymm1, ymm2, 0x11",
  bmi: "andn eax, ecx, edx; andn rax, rbx, qword ptr [rdi]; blsr eax, ecx; blsmsk rax, qword ptr [rdi]; blsi ecx, edx; bzhi eax, ecx, edx; bextr rax, rbx, rcx; pdep rax, rbx, rcx; pext eax, ecx, dword ptr [rdi]; mulx rax, rbx, rcx; shlx eax, ecx, edx; sarx rax, qword ptr [rdi], rbx; shrx eax, ecx, edx; rorx rax, rbx, 7; cmpbexadd dword ptr [rax], ecx, edx",
  avx512: "vmovdqu64 zmm0, zmmword ptr [rsp-64]; vmovdqu64 zmmword ptr [rdi+0x40], zmm1; vmovdqu32 zmm0 {k1} {z}, zmmword ptr [rax]; vaddps zmm0 {k2}, zmm1, dword ptr [rax]{1to16}; vaddpd zmm0, zmm1, zmm2, {rn-sae}; vpternlogd zmm0, zmm1, zmm2, 0xff; vpcmpeqd k1, zmm0, zmmword ptr [rax]; vpgatherdd zmm0 {k1}, zmmword ptr [rax+4*zmm1]; vpscatterdd zmmword ptr [rax+4*zmm1] {k1}, zmm0; vpcompressd zmmword ptr [rax] {k1}, zmm0; vpmovdb xmm0, zmm1; vpmovqd ymmword ptr [rax], zmm0; vcvtusi2sd xmm0, xmm1, rax; vcvttsd2usi rax, xmm0; vextracti32x4 xmm0, zmm1, 1; vinserti64x4 zmm0, zmm1, ymm2, 1; vpbroadcastd zmm0, eax; vmovdqu8 zmm0, zmmword ptr [rax]; vmovdqu16 zmmword ptr [rax], zmm0; vpermt2q zmm0, zmm1, zmmword ptr [rax+0x1000]; vmovaps zmm16, zmm31; vaddps xmm16, xmm17, xmm18; vpsrad zmm0, zmmword ptr [rax], 1; vpsrlq zmm0, zmm1, 3; vfmadd231ps zmm0, zmm1, zmm2; vpdpbusd zmm0, zmm1, zmm2; vpextrq rax, xmm16, 1; vcvtps2ph ymmword ptr [rax], zmm0, 0",
  masks: "kmovw k1, eax; kmovq rax, k2; kmovb k1, byte ptr [rax]; kmovd dword ptr [rax], k1; kandw k1, k2, k3; kortestw k1, k2",
  fp16: "vaddph zmm0, zmm1, zmm2; vmovsh xmm0, word ptr [rax]; vmovsh word ptr [rax], xmm0; vmovw xmm0, eax; vmovw eax, xmm0; vcvtsh2si eax, xmm1; vfmadd231ph zmm0, zmm1, zmmword ptr [rax]",
  amx: "ldtilecfg [rax]; tileloadd tmm0, [rax+rbx*1]; tdpbssd tmm0, tmm1, tmm2; tilestored [rax+rbx*1], tmm0; tilerelease; tilezero tmm1",
};

describe("the decoder", () => {
  test(
    "gives exactly the assembler's length for each of a few hundred instructions of every encoding family",
    () => {
      const lines = Object.values(ORACLE).flatMap(split);
      const { text, at } = assemble(lines);
      const instructions = lines.map((l, i) => ({ l, at: at[i] ?? 0, next: at[i + 1] ?? text.length })).filter(({ l }) => !l.endsWith(":"));
      expect(instructions.length).toBeGreaterThan(350);
      // decoded one after the other from the start of .text, as a disassembler would
      const got: string[] = [];
      const want: string[] = [];
      let pc = 0;
      for (const { l, at: offset, next } of instructions) {
        const d = decode(text, pc);
        got.push(`${l}: ${d?.length}`);
        want.push(`${l}: ${next - offset}`);
        pc = d ? pc + d.length : next;
      }
      expect(got).toEqual(want);
      expect(pc).toBe(text.length);
    },
    slow(60_000),
  );

  // Semantic fields, on assembled instructions (each checked against its own offset).
  const SEMANTICS: [string, (d: Instruction, at: number, label: (name: string) => number) => void][] = [
    ["mov rax, qword ptr [rsp-8]", (d) => {
      expect(d.mem).toMatchObject({ base: "rsp", index: undefined, disp: -8, size: 8, read: true, write: false, exact: true, addressSize: 8 });
      expect(d.writes).toEqual(["rax"]);
      expect(d.readsRsp).toBe(false);
    }],
    ["mov dword ptr [rbp-0x100], 7", (d) => {
      expect(d.mem).toMatchObject({ base: "rbp", disp: -256, size: 4, read: false, write: true, exact: true });
      expect(d.immediate).toBe(7n);
    }],
    ["mov eax, dword ptr [rcx*8+0x1000]", (d) => expect(d.mem).toMatchObject({ base: undefined, index: "rcx", scale: 8, disp: 0x1000 })],
    ["mov rax, qword ptr [r13]", (d) => expect(d.mem).toMatchObject({ base: "r13", index: undefined, disp: 0 })],
    ["mov rax, qword ptr [r12+r13*2+0x7f]", (d) => expect(d.mem).toMatchObject({ base: "r12", index: "r13", scale: 2, disp: 0x7f })],
    ["mov eax, dword ptr [eax]", (d) => expect(d.mem).toMatchObject({ base: "rax", addressSize: 4 })],
    ["mov rax, qword ptr fs:[0x28]", (d) => expect(d.mem).toMatchObject({ base: undefined, disp: 0x28, segment: "fs" })],
    ["movabs al, byte ptr [0x1122334455667788]", (d) => expect(d.mem).toMatchObject({ absolute: 0x1122334455667788n, size: 1, read: true })],
    ["movups xmmword ptr [rsp-16], xmm0", (d) => expect(d.mem).toMatchObject({ base: "rsp", disp: -16, size: 16, write: true, read: false, exact: true })],
    ["movss xmm0, dword ptr [rsp-4]", (d) => expect(d.mem).toMatchObject({ disp: -4, read: true })],
    ["vmovdqu64 zmm0, zmmword ptr [rsp-64]", (d) => {
      // disp8*N: -1 scaled by the tuple size; the operand covers every N it could be
      expect(d.mem).toMatchObject({ base: "rsp", disp8: -1, read: true, exact: false });
      expect(d.mem?.disp).toBeLessThanOrEqual(-64);
      expect((d.mem?.disp ?? 0) + (d.mem?.size ?? 0)).toBeGreaterThanOrEqual(0);
    }],
    ["vmovdqu32 zmmword ptr [rax] {k1}, zmm0", (d) => expect(d.mem).toMatchObject({ base: "rax", write: true, exact: false })],
    ["vpgatherdd ymm0, ymmword ptr [rax+4*ymm1], ymm2", (d) => expect(d.mem).toMatchObject({ base: "rax", index: undefined, vectorIndex: true, unbounded: true })],
    ["rep stosq", (d) => {
      expect(d.implicitMem).toEqual([expect.objectContaining({ base: "rdi", write: true, unbounded: true })]);
      expect(d.writes).toEqual(["rcx", "rdi"]);
    }],
    ["bts qword ptr [rax], rcx", (d) => expect(d.mem).toMatchObject({ base: "rax", unbounded: true, read: true, write: true })],
    ["lea rax, [rip+0x10]", (d) => {
      expect(d.mem).toBeUndefined();
      expect(d.lea).toMatchObject({ dst: "rax", base: "rip", disp: 0x10, size: 8 });
    }],
    ["lea rdi, [rsp-8]", (d) => {
      expect(d.lea).toMatchObject({ dst: "rdi", base: "rsp", index: undefined, disp: -8 });
      expect(d.readsRsp).toBe(true);
    }],
    ["mov rax, rsp", (d) => {
      expect(d.readsRsp).toBe(true);
      expect(d.assign).toEqual({ dst: "rax", op: "mov", src: "rsp", size: 8 });
    }],
    ["push rsp", (d) => expect(d.readsRsp).toBe(true)],
    ["sub rsp, 8", (d) => expect(d.readsRsp).toBe(false)],
    ["mov rax, qword ptr [rsp]", (d) => expect(d.readsRsp).toBe(false)],
    // RSP
    ["push rax", (d) => {
      expect(d.rsp).toEqual({ kind: "delta", delta: -8 });
      expect(d.stack).toMatchObject({ base: "rsp", disp: -8, size: 8, write: true, read: false, exact: true });
      expect(d.writes).toEqual(["rsp"]);
    }],
    ["push ax", (d) => expect(d.rsp).toEqual({ kind: "delta", delta: -2 })],
    ["push 0x12", (d) => expect(d.rsp).toEqual({ kind: "delta", delta: -8 })],
    ["push qword ptr [rax]", (d) => {
      expect(d.rsp).toEqual({ kind: "delta", delta: -8 });
      expect(d.mem).toMatchObject({ base: "rax", read: true });
    }],
    ["pop rbx", (d) => {
      expect(d.rsp).toEqual({ kind: "delta", delta: 8 });
      expect(d.stack).toMatchObject({ disp: 0, size: 8, read: true });
      expect(d.writes).toEqual(["rbx", "rsp"]);
    }],
    ["pop qword ptr [rsp+8]", (d) => expect(d.mem).toMatchObject({ base: "rsp", disp: 8, write: true, afterRsp: true })],
    ["pushfq", (d) => expect(d.rsp).toEqual({ kind: "delta", delta: -8 })],
    ["popfq", (d) => expect(d.rsp).toEqual({ kind: "delta", delta: 8 })],
    ["sub rsp, 0x28", (d) => expect(d.rsp).toEqual({ kind: "delta", delta: -0x28 })],
    ["add rsp, 8", (d) => expect(d.rsp).toEqual({ kind: "delta", delta: 8 })],
    ["lea rsp, [rsp+16]", (d) => expect(d.rsp).toEqual({ kind: "delta", delta: 16 })],
    ["lea rsp, [rbp-16]", (d) => expect(d.rsp).toEqual({ kind: "set", from: "rbp", plus: -16 })],
    ["mov rsp, rbp", (d) => expect(d.rsp).toEqual({ kind: "set", from: "rbp", plus: 0 })],
    ["leave", (d) => {
      expect(d.rsp).toEqual({ kind: "set", from: "rbp", plus: 8 });
      expect(d.writes).toEqual(["rsp", "rbp"]);
      expect(d.reads).toEqual(["rbp"]);
      expect(d.implicitMem).toEqual([expect.objectContaining({ base: "rbp", disp: 0, size: 8, read: true })]);
    }],
    ["enter 32, 0", (d) => {
      expect(d.rsp).toEqual({ kind: "delta", delta: -40 });
      expect(d.writes).toContain("rbp");
    }],
    ["enter 8, 1", (d) => expect(d.rsp).toEqual({ kind: "unknown" })],
    ["ret", (d) => expect(d.rsp).toEqual({ kind: "delta", delta: 8 })],
    ["ret 16", (d) => expect(d.rsp).toEqual({ kind: "delta", delta: 24 })],
    ["and rsp, -16", (d) => expect(d.rsp).toEqual({ kind: "unknown" })],
    ["xchg rsp, rax", (d) => expect(d.rsp).toEqual({ kind: "unknown" })],
    ["pop rsp", (d) => expect(d.rsp).toEqual({ kind: "unknown" })],
    ["mov ah, 5", (d) => {
      expect(d.writes).toEqual(["rax"]);
      expect(d.rsp).toBeUndefined();
    }],
    ["mov spl, 1", (d) => expect(d.rsp).toEqual({ kind: "unknown" })],
    // general registers
    ["mul rcx", (d) => expect(d.writes).toEqual(["rax", "rdx"])],
    ["int 0x80", (d) => expect(d.writes).toEqual(["rax", "r8", "r9", "r10", "r11"])],
    ["fxsave [rsp-512]", (d) => expect(d.mem).toMatchObject({ size: 512, write: true, exact: false })], // bytes 464-511 are left as they were
    ["cpuid", (d) => expect(d.writes).toEqual(["rax", "rcx", "rdx", "rbx"])],
    ["mulx rax, rbx, rcx", (d) => expect(d.writes).toEqual(["rax", "rbx"])],
    ["xor eax, eax", (d) => expect(d.assign).toEqual({ dst: "rax", op: "xor", src: "rax", size: 4 })],
    ["mov r8d, -1", (d) => expect(d.assign).toEqual({ dst: "r8", op: "mov", src: 0xffffffffn, size: 4 })],
    ["movq rax, xmm0", (d) => expect(d.writes).toEqual(["rax"])],
    ["fnstsw ax", (d) => expect(d.writes).toEqual(["rax"])],
    // control flow
    ["syscall", (d) => {
      expect(d.flow).toEqual({ kind: "syscall" });
      expect(d.writes).toEqual(["rax", "rcx", "r11"]);
    }],
    ["jmp target", (d, _, label) => expect(d.flow).toEqual({ kind: "jmp", target: label("target") })],
    ["jne target", (d, _, label) => expect(d.flow).toEqual({ kind: "jcc", target: label("target") })],
    ["loop target", (d, _, label) => expect(d.flow).toEqual({ kind: "jcc", target: label("target") })],
    ["call ext", (d, at) => expect(d.flow).toEqual({ kind: "call", target: at + 5 })], // rel32 0 (the relocation holds the rest)
    ["je ext", (d, at) => expect(d.flow).toEqual({ kind: "jcc", target: at + 6 })],
    ["call rax", (d) => expect(d.flow).toEqual({ kind: "callIndirect" })],
    ["jmp qword ptr [rip+0x100]", (d) => {
      expect(d.flow).toEqual({ kind: "jmpIndirect" });
      expect(d.mem).toMatchObject({ base: "rip", disp: 0x100, size: 8, read: true });
    }],
    ["ret", (d) => expect(d.flow).toEqual({ kind: "ret" })],
    ["ud2", (d) => expect(d.flow).toEqual({ kind: "trap" })],
    ["int3", (d) => expect(d.flow).toEqual({ kind: "trap" })],
    ["hlt", (d) => expect(d.flow).toEqual({ kind: "trap" })],
    ["nop", (d) => expect(d.flow).toEqual({ kind: "next" })],
  ];

  test("reports memory operands, RSP changes, registers and control flow as the analysis needs them", () => {
    const lines = [...SEMANTICS.map(([asm]) => asm), "nop", "target:", "nop"];
    const { text, at } = assemble(lines);
    const label = (name: string) => at[lines.indexOf(`${name}:`)] ?? -1;
    SEMANTICS.forEach(([asm, check], i) => {
      const offset = at[i] ?? -1;
      const d = decode(text, offset);
      if (!d) throw new Error(`${asm}: not decoded`);
      expect(d.length).toBe((at[i + 1] ?? -1) - offset);
      try {
        check(d, offset, label);
      } catch (e) {
        throw new Error(`${asm}: ${(e as Error).message}`);
      }
    });
  }, slow(60_000));

  test("opcodes invalid in 64-bit mode, bytes that run out, and more than 15 bytes are undefined", () => {
    const pad = " 00 00 00 00 00 00 00 00";
    for (const op of ["06", "07", "0e", "16", "17", "1e", "1f", "27", "2f", "37", "3f", "60", "61", "82", "9a", "ce", "d4", "d5", "d6", "ea", "0f 04", "0f 0a", "0f 24", "0f 36"]) {
      expect([op, decode(hex(op + pad), 0)]).toEqual([op, undefined]);
    }
    for (const short of ["48", "0f", "48 8b", "48 8b 44", "48 8b 44 24", "e8 00 00", "c4 e2", "62 f1 7c", "66 0f 3a 0f c1"]) expect([short, decode(hex(short), 0)]).toEqual([short, undefined]);
    expect(decode(hex("66 ".repeat(14) + "90"), 0)?.length).toBe(15);
    expect(decode(hex("66 ".repeat(15) + "90"), 0)).toBeUndefined();
    expect(decode(hex("90"), 1)).toBeUndefined();
    expect(decode(hex("90"), -1)).toBeUndefined();
  });

  test("what it deliberately does not know is undefined: 3DNow!, XOP, clzero, Key Locker, enqcmd, 66 on near branches, REX or 66 before VEX, LOCK where it faults", () => {
    for (const unknown of [
      "0f 0e", // femms
      "0f 0f c1 9e", // 3DNow! pfadd
      "8f e9 78 c2 c1 07", // XOP vprotq
      "0f 01 fc", // clzero (writes a cache line at [rax])
      "f3 0f 01 ec", // uiret (pops RSP)
      "f3 0f 38 dc 00", // aesenc128kl
      "f2 0f 38 f8 00", // enqcmd
      "66 0f 38 f8 00", // movdir64b
      "66 e9 00 00", // jmp rel16 (AMD) or rel32 (Intel)
      "66 c3", // ret with a 16-bit operand size
      "48 c5 f8 77", // REX then VEX: #UD
      "66 c5 f8 77", // 66 then VEX: #UD
      "f0 01 c0", // lock add eax, eax: #UD
      "f0 90", // lock nop
      "62 f1 7c 48 58 c1".replace("7c", "7b"), // EVEX with P1 bit 2 clear (APX)
    ]) {
      expect([unknown, decode(hex(unknown + " 00 00 00 00 00 00 00 00"), 0)]).toEqual([unknown, undefined]);
    }
  });

  test("for any bytes at any offset it never throws, and gives undefined or a length of 1 to 15 inside the buffer", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 40 }), fc.nat(), (code, n) => {
        const at = n % code.length;
        const d = decode(code, at);
        return d === undefined || (d.length >= 1 && d.length <= 15 && at + d.length <= code.length);
      }),
      { numRuns: runs(5000) },
    );
  });

  // Prefixes, REX, escapes and VEX/EVEX heads followed by random bytes: the deep maps, reached often.
  const encoded = fc
    .tuple(
      fc.array(fc.constantFrom(0x66, 0x67, 0xf2, 0xf3, 0xf0, 0x2e, 0x3e, 0x26, 0x36, 0x64, 0x65, 0x40, 0x41, 0x44, 0x48, 0x4c, 0x4f), { maxLength: 4 }),
      fc.constantFrom([], [0x0f], [0x0f, 0x38], [0x0f, 0x3a], [0xc5], [0xc4], [0x62], [0xd9], [0xf7]),
      fc.uint8Array({ minLength: 0, maxLength: 16 }),
    )
    .map(([p, esc, tail]) => new Uint8Array([...p, ...esc, ...tail]));

  test("an instruction needs exactly its own bytes: decoding the first `length` bytes gives the same, one byte fewer gives undefined", () => {
    fc.assert(
      fc.property(encoded, (code) => {
        const d = decode(code, 0);
        if (!d) return true;
        return decode(code.subarray(0, d.length), 0)?.length === d.length && decode(code.subarray(0, d.length - 1), 0) === undefined;
      }),
      { numRuns: runs(5000) },
    );
  });
});
