// The x86-64 opcode maps as x86-decode.ts reads them: for every opcode, whether a ModRM byte
// follows, which immediates, and what the instruction does to general registers and memory.
// Each entry is written as a short spec, "mnemonic op,op,...", parsed once at load:
//
//   access   (none) read   `=` written only   `+` read and written   `?` maybe written (masked,
//            conditional: reported read and written, never exact)   `~` named but not accessed
//            (lea's operand, prefetches, hint NOPs)
//   operand  E  ModRM r/m: a general register or memory      G  ModRM reg: a general register
//            R  ModRM r/m, register only                     M  ModRM r/m, memory only
//            Z  the register in the opcode's low 3 bits      B  VEX.vvvv as a general register
//            V, U, W  a vector (or MMX, mask, segment, control) register in reg; in r/m register
//            only; in r/m register or memory                 S  a non-general register in reg
//            I  immediate    J  relative branch target    O  moffs (absolute address)
//            X  [rsi] string source    Y  [rdi] string destination (or maskmov's [rdi])
//            rax, rcx, ... a fixed general register (implied operands: mul's rdx, syscall's r11)
//   size     b 1  w 2  d 4  q 8  o 16  t 10  v operand size (2/4/8)  z 2 or 4 (imm, never 8)
//            y 4 or 8 (REX.W/VEX.W)  s stack operand (8, 2 with 66)  x the vector length
//            (16, VEX.L 32, EVEX 16/32/64)  p far pointer  g VSIB (unbounded)  * unbounded
//            (xsave, AMX: the bytes touched are not known)  a number: that many bytes
//
// Vector instructions are mostly "vec V,Wx": their registers are not general registers, their
// memory operand (if any) is read. The exceptions are listed: stores, and those that read or
// write a general register. An opcode with no entry is invalid or unknown (undefined).

export type Access = "r" | "w" | "rw" | "maybe" | "none";
export type OperandKind = "E" | "G" | "R" | "M" | "Z" | "B" | "V" | "U" | "W" | "S" | "I" | "J" | "O" | "X" | "Y" | "fixed";

export interface OperandSpec {
  readonly kind: OperandKind;
  readonly size: string;
  readonly access: Access;
  /** the register number of a fixed operand */
  readonly reg: number;
}

export interface OpSpec {
  readonly type: "op";
  readonly mnemonic: string;
  readonly operands: readonly OperandSpec[];
  readonly modrm: boolean;
  /** MOV to or from a control or debug register: the ModRM mod bits are ignored (always a register) */
  readonly modIgnored: boolean;
}

/** An opcode whose meaning depends on ModRM.reg, on ModRM.rm (register forms), on mod (memory or register), or on the mandatory prefix. */
export type Entry =
  | OpSpec
  | { readonly type: "group"; readonly byReg: readonly (Entry | undefined)[] }
  | { readonly type: "rm"; readonly byRm: readonly (Entry | undefined)[] }
  | { readonly type: "mod"; readonly mem: Entry | undefined; readonly reg: Entry | undefined }
  | { readonly type: "prefix"; readonly none?: Entry; readonly p66?: Entry; readonly f3?: Entry; readonly f2?: Entry };

export type OpcodeMap = readonly (Entry | undefined)[];

export const REGS = ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"] as const;
export type Reg = (typeof REGS)[number];

const ACCESS: Record<string, Access> = { "": "r", "=": "w", "+": "rw", "?": "maybe", "~": "none" };

/** Parses one spec ("add +Ev,Gv"); a mistake in a table is a bug, reported when the module loads. */
export function op(spec: string): OpSpec {
  const [mnemonic, list] = spec.split(" ", 2) as [string, string | undefined];
  const operands = (list ?? "").split(",").filter((s) => s !== "").map((token): OperandSpec => {
    const m = /^([=+?~]?)(.+)$/.exec(token);
    const body = m?.[2] ?? "";
    const access = ACCESS[m?.[1] ?? ""] ?? "r";
    const fixed = REGS.indexOf(body as Reg);
    if (fixed >= 0) return { kind: "fixed", size: "v", access, reg: fixed };
    const kind = body[0] as OperandKind;
    if (!"EGRMZBVUWSIJOXY".includes(kind) || !/^(b|w|d|q|o|t|v|z|y|s|x|p|g|\*|\d+|)$/.test(body.slice(1))) throw new Error(`x86 opcode table: bad operand ${token} in "${spec}"`);
    return { kind, size: body.slice(1), access, reg: -1 };
  });
  const modrm = operands.some((o) => "EGRMVUWS".includes(o.kind));
  return { type: "op", mnemonic, operands, modrm, modIgnored: false };
}

type Spec = string | Entry | undefined;
const u = undefined;
const entry = (s: Spec): Entry | undefined => (typeof s === "string" ? op(s) : s);

/** By ModRM.reg (/0 ... /7). */
export function group(...byReg: Spec[]): Entry {
  return { type: "group", byReg: Array.from({ length: 8 }, (_, i) => entry(byReg[i])) };
}
/** Register forms by ModRM.rm. */
function rm(...byRm: Spec[]): Entry {
  return { type: "rm", byRm: Array.from({ length: 8 }, (_, i) => entry(byRm[i])) };
}
/** Memory forms (mod 0-2) and register forms (mod 3). */
function mod(m: { mem?: Spec; reg?: Spec }): Entry {
  return { type: "mod", mem: entry(m.mem), reg: entry(m.reg) };
}
/** By mandatory prefix (none, 66, F3, F2: the last F2/F3, else 66); `other` fills the ones not named. */
function pfx(p: { none?: Spec; p66?: Spec; f3?: Spec; f2?: Spec; other?: Spec }): Entry {
  const pick = (s: Spec) => entry(s ?? p.other);
  return { type: "prefix", none: pick(p.none), p66: pick(p.p66), f3: pick(p.f3), f2: pick(p.f2) };
}

const CC = ["o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"];
const ALU = ["add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"];
const SHIFT = ["rol", "ror", "rcl", "rcr", "shl", "shr", "sal", "sar"];

const VEC = op("vec V,Wx");
const VECI = op("vec V,Wx,Ib");

function table(fill: (t: (Entry | undefined)[]) => void): OpcodeMap {
  const t: (Entry | undefined)[] = new Array(256).fill(undefined);
  fill(t);
  return t;
}
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/**
 * x87 (D8-DF). Memory forms by opcode and ModRM.reg: the bytes each reads or writes (fldenv and
 * fnstenv 28, frstor and fnsave 108, the 64-bit mode sizes; undefined: invalid). fnstenv and
 * fnsave leave reserved fields as they were: maybe written. Register forms touch no general
 * register, except fnstsw ax (DF E0).
 */
const X87_MEMORY: readonly (readonly (string | undefined)[])[] = [
  /* D8 */ Array(8).fill("M4"),
  /* D9 */ ["M4", u, "=M4", "=M4", "M28", "M2", "?M28", "=M2"],
  /* DA */ Array(8).fill("M4"),
  /* DB */ ["M4", "=M4", "=M4", "=M4", u, "M10", u, "=M10"],
  /* DC */ Array(8).fill("M8"),
  /* DD */ ["M8", "=M8", "=M8", "=M8", "M108", u, "?M108", "=M2"],
  /* DE */ Array(8).fill("M2"),
  /* DF */ ["M2", "=M2", "=M2", "=M2", "M10", "M8", "=M10", "=M8"],
];
const X87 = op("x87 U");

/** The one-byte map. Prefixes (26 2E 36 3E 40-4F 64-67 F0 F2 F3), 0F, VEX (C4 C5) and EVEX (62) are decoded before it. */
export const ONE_BYTE = table((t) => {
  ALU.forEach((m, i) => {
    const d = m === "cmp" ? "" : "+";
    t[i * 8] = op(`${m} ${d}Eb,Gb`);
    t[i * 8 + 1] = op(`${m} ${d}Ev,Gv`);
    t[i * 8 + 2] = op(`${m} ${d}Gb,Eb`);
    t[i * 8 + 3] = op(`${m} ${d}Gv,Ev`);
    t[i * 8 + 4] = op(`${m} ${d}rax,Ib`);
    t[i * 8 + 5] = op(`${m} ${d}rax,Iz`);
  });
  for (const o of range(0x50, 0x57)) t[o] = op("push Zs");
  for (const o of range(0x58, 0x5f)) t[o] = op("pop =Zs");
  t[0x63] = op("movsxd =Gv,Ed");
  t[0x68] = op("push Iz");
  t[0x69] = op("imul =Gv,Ev,Iz");
  t[0x6a] = op("push Ib");
  t[0x6b] = op("imul =Gv,Ev,Ib");
  t[0x6c] = op("ins =Yb,rdx");
  t[0x6d] = op("ins =Yz,rdx");
  t[0x6e] = op("outs Xb,rdx");
  t[0x6f] = op("outs Xz,rdx");
  CC.forEach((c, i) => (t[0x70 + i] = op(`j${c} Jb`)));
  const alu = (dst: string, src: string) => group(...ALU.map((m) => `${m} ${m === "cmp" ? "" : "+"}${dst},${src}`));
  t[0x80] = alu("Eb", "Ib");
  t[0x81] = alu("Ev", "Iz");
  t[0x83] = alu("Ev", "Ib");
  t[0x84] = op("test Eb,Gb");
  t[0x85] = op("test Ev,Gv");
  t[0x86] = op("xchg +Eb,+Gb");
  t[0x87] = op("xchg +Ev,+Gv");
  t[0x88] = op("mov =Eb,Gb");
  t[0x89] = op("mov =Ev,Gv");
  t[0x8a] = op("mov =Gb,Eb");
  t[0x8b] = op("mov =Gv,Ev");
  t[0x8c] = mod({ mem: "mov =Mw,S", reg: "mov =Rv,S" });
  t[0x8d] = op("lea =Gv,~M");
  t[0x8e] = op("mov S,Ew");
  t[0x8f] = group("pop =Es"); // /1-/7: XOP on AMD, invalid elsewhere
  for (const o of range(0x90, 0x97)) t[o] = op("xchg +Zv,+rax"); // 90 without REX.B: nop (decoder)
  t[0x98] = op("cbw +rax");
  t[0x99] = op("cwd rax,=rdx");
  t[0x9b] = op("fwait");
  t[0x9c] = op("pushf");
  t[0x9d] = op("popf");
  t[0x9e] = op("sahf rax");
  t[0x9f] = op("lahf +rax");
  t[0xa0] = op("mov =rax,Ob");
  t[0xa1] = op("mov =rax,Ov");
  t[0xa2] = op("mov =Ob,rax");
  t[0xa3] = op("mov =Ov,rax");
  t[0xa4] = op("movs =Yb,Xb");
  t[0xa5] = op("movs =Yv,Xv");
  t[0xa6] = op("cmps Xb,Yb");
  t[0xa7] = op("cmps Xv,Yv");
  t[0xa8] = op("test rax,Ib");
  t[0xa9] = op("test rax,Iz");
  t[0xaa] = op("stos =Yb,rax");
  t[0xab] = op("stos =Yv,rax");
  t[0xac] = op("lods =rax,Xb");
  t[0xad] = op("lods =rax,Xv");
  t[0xae] = op("scas rax,Yb");
  t[0xaf] = op("scas rax,Yv");
  for (const o of range(0xb0, 0xb7)) t[o] = op("mov =Zb,Ib");
  for (const o of range(0xb8, 0xbf)) t[o] = op("mov =Zv,Iv");
  const shifts = (dst: string, count: string) => group(...SHIFT.map((m) => `${m} +${dst}${count}`));
  t[0xc0] = shifts("Eb", ",Ib");
  t[0xc1] = shifts("Ev", ",Ib");
  t[0xc2] = op("ret Iw");
  t[0xc3] = op("ret");
  t[0xc6] = group("mov =Eb,Ib", u, u, u, u, u, u, mod({ reg: rm("xabort Ib") }));
  t[0xc7] = group("mov =Ev,Iz", u, u, u, u, u, u, mod({ reg: rm("xbegin Jz,=rax") })); // an abort sets RAX
  t[0xc8] = op("enter Iw,Ib,+rbp");
  t[0xc9] = op("leave +rbp");
  t[0xca] = op("retf Iw");
  t[0xcb] = op("retf");
  t[0xcc] = op("int3");
  t[0xcd] = op("int Ib,=rax,=r8,=r9,=r10,=r11"); // int 0x80 returns a result, and Linux clears r8-r11
  t[0xcf] = op("iret");
  t[0xd0] = shifts("Eb", "");
  t[0xd1] = shifts("Ev", "");
  t[0xd2] = shifts("Eb", ",rcx");
  t[0xd3] = shifts("Ev", ",rcx");
  t[0xd7] = op("xlat +rax"); // its [rbx+al] is added by the decoder
  t[0xe0] = op("loopne Jb,+rcx");
  t[0xe1] = op("loope Jb,+rcx");
  t[0xe2] = op("loop Jb,+rcx");
  t[0xe3] = op("jrcxz Jb,rcx");
  t[0xe4] = op("in =rax,Ib");
  t[0xe5] = op("in =rax,Ib");
  t[0xe6] = op("out Ib,rax");
  t[0xe7] = op("out Ib,rax");
  t[0xe8] = op("call Jz");
  t[0xe9] = op("jmp Jz");
  t[0xeb] = op("jmp Jb");
  t[0xec] = op("in =rax,rdx");
  t[0xed] = op("in =rax,rdx");
  t[0xee] = op("out rdx,rax");
  t[0xef] = op("out rdx,rax");
  t[0xf1] = op("int1");
  t[0xf4] = op("hlt");
  t[0xf5] = op("cmc");
  t[0xf6] = group("test Eb,Ib", "test Eb,Ib", "not +Eb", "neg +Eb", "mul Eb,+rax", "imul Eb,+rax", "div Eb,+rax", "idiv Eb,+rax");
  t[0xf7] = group("test Ev,Iz", "test Ev,Iz", "not +Ev", "neg +Ev", "mul Ev,+rax,=rdx", "imul Ev,+rax,=rdx", "div Ev,+rax,+rdx", "idiv Ev,+rax,+rdx");
  ["clc", "stc", "cli", "sti", "cld", "std"].forEach((m, i) => (t[0xf8 + i] = op(m)));
  t[0xfe] = group("inc +Eb", "dec +Eb");
  t[0xff] = group("inc +Ev", "dec +Ev", "call Eq", "callf Mp", "jmp Eq", "jmpf Mp", "push Es");
  X87_MEMORY.forEach((forms, i) => {
    const mem = group(...forms.map((f) => f && `x87 ${f}`));
    const reg = i === 7 ? group(X87, X87, X87, X87, rm("fnstsw =rax,U", X87, X87, X87, X87, X87, X87, X87), X87, X87, X87) : X87;
    t[0xd8 + i] = mod({ mem, reg });
  });
});

/** 0F 01: descriptor tables in memory forms; a row of system instructions in register forms (rdtscp, xgetbv, rdpkru, ...) that may write rax, rcx, rdx, rbx. */
const SYS = op("sys +rax,+rcx,+rdx,+rbx");
const GROUP7 = mod({
  mem: group("sgdt =M10", "sidt =M10", "lgdt M10", "lidt M10", "smsw =Mw", pfx({ f3: "rstorssp +Mq" }), "lmsw Mw", "invlpg ~Mb"),
  reg: group(SYS, SYS, SYS, SYS, "smsw =Rv", rm(SYS, SYS, SYS, SYS, u /* uiret: pops RSP */, SYS, SYS, SYS), "lmsw Rw", rm(SYS, SYS, SYS, SYS, u /* clzero: writes a line at [rax] */, SYS, SYS, SYS)),
});

const GROUP15 = mod({
  mem: pfx({
    none: group("fxsave ?M512", "fxrstor M512", "ldmxcsr Md", "stmxcsr =Md", "xsave +M*", "xrstor M*", "xsaveopt +M*", "clflush ~Mb"),
    p66: group(u, u, u, u, u, u, "clwb ~Mb", "clflushopt ~Mb"),
    f3: group(u, u, u, u, "ptwrite Ey", u, "clrssbsy +Mq"),
  }),
  reg: pfx({
    none: group(u, u, u, u, u, "lfence", "mfence", "sfence"),
    f3: group("rdfsbase =Ry", "rdgsbase =Ry", "wrfsbase Ry", "wrgsbase Ry", "ptwrite Ey", "incssp Ry", "umonitor Ry"),
    p66: group(u, u, u, u, u, u, "tpause Ry"),
    f2: group(u, u, u, u, u, u, "umwait Ry"),
  }),
});

const GROUP9 = mod({
  mem: group(u, "cmpxchg8b +Mo,+rax,+rdx,rbx,rcx", u, "xrstors M*", "xsavec +M*", "xsaves +M*", "vmptrld Mq", "vmptrst =Mq"),
  reg: group(u, u, u, u, u, u, "rdrand =Rv", pfx({ f3: "rdpid =Rq", other: "rdseed =Rv" })),
});

const NOP_HINT = op("nop ~Ev");

/**
 * The mandatory prefixes each SSE/MMX opcode of the 0F map exists with (n none, 6 66, 3 F3, 2 F2;
 * any other is #UD). Opcodes not listed take all four.
 */
const VECTOR_PREFIXES: readonly [readonly number[], string][] = [
  [[0x12], "n632"],
  [[0x16], "n63"],
  [[0x13, 0x17, 0x14, 0x15, 0x28, 0x29, 0x2e, 0x2f, 0x50, ...range(0x54, 0x57), ...range(0x60, 0x6b), 0x6e, ...range(0x71, 0x76)], "n6"],
  [[0x52, 0x53], "n3"],
  [[0x5b, 0x6f, 0x7e, 0x7f], "n63"],
  [[0x6c, 0x6d], "6"],
  [[0x77], "n"],
  [[0x7c, 0x7d, 0xd0], "62"],
  [[0xc3], "n"],
  [[0xc4, 0xc5, 0xc6, ...range(0xd1, 0xd5), ...range(0xd7, 0xe5), ...range(0xe7, 0xef), ...range(0xf1, 0xfe)], "n6"],
  [[0xd6, 0xe6], "632"],
  [[0xf0], "2"],
];

function only(allowed: string, e: Entry | undefined): Entry {
  const p = e?.type === "prefix" ? e : { none: e, p66: e, f3: e, f2: e };
  return { type: "prefix", none: allowed.includes("n") ? p.none : u, p66: allowed.includes("6") ? p.p66 : u, f3: allowed.includes("3") ? p.f3 : u, f2: allowed.includes("2") ? p.f2 : u };
}

/** The 0F map (legacy encodings; VEX and EVEX map 1 are derived from it below). */
export const TWO_BYTE = table((t) => {
  t[0x00] = group("sldt =Ew", "str =Ew", "lldt Ew", "ltr Ew", "verr Ew", "verw Ew");
  t[0x01] = GROUP7;
  t[0x02] = op("lar =Gv,Ew");
  t[0x03] = op("lsl =Gv,Ew");
  t[0x05] = op("syscall =rcx,=r11,+rax");
  t[0x06] = op("clts");
  t[0x07] = op("sysret");
  t[0x08] = op("invd");
  t[0x09] = op("wbinvd");
  t[0x0b] = op("ud2");
  t[0x0d] = op("prefetch ~Eb");
  t[0x10] = VEC;
  t[0x11] = pfx({ none: "movups =Wx,V", p66: "movupd =Wx,V", f3: "movss =Wd,V", f2: "movsd =Wq,V" });
  t[0x12] = VEC;
  t[0x13] = op("movlps =Wq,V");
  t[0x14] = VEC;
  t[0x15] = VEC;
  t[0x16] = VEC;
  t[0x17] = op("movhps =Wq,V");
  t[0x18] = op("prefetch ~Eb");
  for (const o of range(0x19, 0x1f)) t[o] = NOP_HINT; // hint NOPs: endbr64, MPX (disabled by Linux), cldemote
  t[0x1e] = pfx({ f3: mod({ mem: NOP_HINT, reg: group(NOP_HINT, "rdssp =Ry", NOP_HINT, NOP_HINT, NOP_HINT, NOP_HINT, NOP_HINT, NOP_HINT) }), other: NOP_HINT });
  t[0x20] = { ...op("mov =Rq,S"), modIgnored: true };
  t[0x21] = { ...op("mov =Rq,S"), modIgnored: true };
  t[0x22] = { ...op("mov S,Rq"), modIgnored: true };
  t[0x23] = { ...op("mov S,Rq"), modIgnored: true };
  t[0x28] = VEC;
  t[0x29] = op("movaps =Wx,V");
  t[0x2a] = pfx({ f3: "cvtsi2ss V,Ey", f2: "cvtsi2sd V,Ey", other: VEC });
  t[0x2b] = pfx({ none: "movntps =Wx,V", p66: "movntpd =Wx,V", f3: "movntss =Wd,V", f2: "movntsd =Wq,V" });
  t[0x2c] = pfx({ f3: "cvttss2si =Gy,Wd", f2: "cvttsd2si =Gy,Wq", other: VEC });
  t[0x2d] = pfx({ f3: "cvtss2si =Gy,Wd", f2: "cvtsd2si =Gy,Wq", other: VEC });
  t[0x2e] = VEC;
  t[0x2f] = VEC;
  t[0x30] = op("wrmsr rax,rcx,rdx");
  t[0x31] = op("rdtsc =rax,=rdx");
  t[0x32] = op("rdmsr rcx,=rax,=rdx");
  t[0x33] = op("rdpmc rcx,=rax,=rdx");
  t[0x34] = op("sysenter");
  t[0x35] = op("sysexit");
  t[0x37] = op("getsec +rax,+rbx,+rcx,+rdx");
  CC.forEach((c, i) => (t[0x40 + i] = op(`cmov${c} +Gv,Ev`)));
  t[0x50] = op("movmskps =Gd,U");
  for (const o of range(0x51, 0x6d)) t[o] = VEC;
  t[0x6e] = op("movd V,Ey");
  t[0x6f] = VEC;
  t[0x70] = VECI;
  for (const o of range(0x71, 0x73)) t[o] = op("vec U,Ib");
  for (const o of range(0x74, 0x76)) t[o] = VEC;
  t[0x77] = op("emms");
  t[0x78] = pfx({ none: "vmread =Ey,Gy", p66: "extrq U,Ib,Ib", f2: "insertq V,U,Ib,Ib" });
  t[0x79] = pfx({ none: "vmwrite Gy,Ey", p66: "extrq V,U", f2: "insertq V,U" });
  t[0x7c] = VEC;
  t[0x7d] = VEC;
  t[0x7e] = pfx({ none: "movd =Ey,V", p66: "movd =Ey,V", f3: VEC });
  t[0x7f] = pfx({ none: "movq =Wq,V", p66: "movdqa =Wx,V", f3: "movdqu =Wx,V" });
  CC.forEach((c, i) => (t[0x80 + i] = op(`j${c} Jz`)));
  CC.forEach((c, i) => (t[0x90 + i] = op(`set${c} =Eb`)));
  t[0xa0] = op("pushseg");
  t[0xa1] = op("popseg");
  t[0xa2] = op("cpuid +rax,=rbx,+rcx,=rdx");
  t[0xa3] = op("bt Ev,Gv");
  t[0xa4] = op("shld +Ev,Gv,Ib");
  t[0xa5] = op("shld +Ev,Gv,rcx");
  t[0xa8] = op("pushseg");
  t[0xa9] = op("popseg");
  t[0xaa] = op("rsm");
  t[0xab] = op("bts +Ev,Gv");
  t[0xac] = op("shrd +Ev,Gv,Ib");
  t[0xad] = op("shrd +Ev,Gv,rcx");
  t[0xae] = GROUP15;
  t[0xaf] = op("imul +Gv,Ev");
  t[0xb0] = op("cmpxchg +Eb,Gb,+rax");
  t[0xb1] = op("cmpxchg +Ev,Gv,+rax");
  t[0xb2] = op("lss =Gv,Mp");
  t[0xb3] = op("btr +Ev,Gv");
  t[0xb4] = op("lfs =Gv,Mp");
  t[0xb5] = op("lgs =Gv,Mp");
  t[0xb6] = op("movzx =Gv,Eb");
  t[0xb7] = op("movzx =Gv,Ew");
  t[0xb8] = pfx({ f3: "popcnt =Gv,Ev" });
  t[0xb9] = op("ud1 Gv,Ev");
  t[0xba] = group(u, u, u, u, "bt Ev,Ib", "bts +Ev,Ib", "btr +Ev,Ib", "btc +Ev,Ib");
  t[0xbb] = op("btc +Ev,Gv");
  t[0xbc] = pfx({ f3: "tzcnt =Gv,Ev", other: "bsf +Gv,Ev" }); // bsf/bsr leave the destination as it was for a zero source
  t[0xbd] = pfx({ f3: "lzcnt =Gv,Ev", other: "bsr +Gv,Ev" });
  t[0xbe] = op("movsx =Gv,Eb");
  t[0xbf] = op("movsx =Gv,Ew");
  t[0xc0] = op("xadd +Eb,+Gb");
  t[0xc1] = op("xadd +Ev,+Gv");
  t[0xc2] = VECI;
  t[0xc3] = op("movnti =My,Gy");
  t[0xc4] = mod({ mem: "pinsrw V,Mw,Ib", reg: "pinsrw V,Rd,Ib" });
  t[0xc5] = op("pextrw =Gd,U,Ib");
  t[0xc6] = VECI;
  t[0xc7] = GROUP9;
  for (const o of range(0xc8, 0xcf)) t[o] = op("bswap +Zv");
  for (const o of range(0xd0, 0xfe)) t[o] = VEC;
  t[0xd6] = pfx({ p66: "movq =Wq,V", f3: "vec V,U", f2: "vec V,U" });
  t[0xd7] = op("pmovmskb =Gd,U");
  t[0xe7] = pfx({ none: "movntq =Wq,V", p66: "movntdq =Wx,V" });
  t[0xf7] = op("maskmovq V,U,?Yo");
  t[0xff] = op("ud0 Gd,Ed");
  for (const [opcodes, allowed] of VECTOR_PREFIXES) for (const o of opcodes) t[o] = only(allowed, t[o]);
});

/** 0F 38 (legacy): SSSE3/SSE4, AES, SHA (66 only, unless an MMX or SHA form has none), and a few general-register instructions. */
export const THREE_BYTE_38 = table((t) => {
  const sse = pfx({ p66: VEC });
  const mmxToo = pfx({ none: VEC, p66: VEC });
  for (const o of [0x10, 0x14, 0x15, 0x17, ...range(0x20, 0x25), ...range(0x28, 0x2b), ...range(0x30, 0x35), ...range(0x37, 0x41), 0xcf]) t[o] = sse;
  for (const o of [...range(0x00, 0x0b), 0x1c, 0x1d, 0x1e]) t[o] = mmxToo;
  for (const o of range(0xc8, 0xcd)) t[o] = pfx({ none: VEC });
  for (const o of range(0x80, 0x82)) t[o] = pfx({ p66: "invept Gq,Mo" });
  for (const o of range(0xdb, 0xdf)) t[o] = sse; // F3: Key Locker (384-bit handles), unknown
  t[0xf0] = pfx({ none: "movbe =Gv,Mv", p66: "movbe =Gv,Mv", f2: "crc32 +Gy,Eb" });
  t[0xf1] = pfx({ none: "movbe =Mv,Gv", p66: "movbe =Mv,Gv", f2: "crc32 +Gy,Ev" });
  t[0xf5] = pfx({ p66: "wruss =My,Gy" });
  t[0xf6] = pfx({ none: "wrss =My,Gy", p66: "adcx +Gy,Ey", f3: "adox +Gy,Ey" });
  t[0xf9] = pfx({ none: "movdiri =My,Gy" });
  t[0xfc] = op("aadd +My,Gy"); // aadd, aand (66), aor (F2), axor (F3)
});

/** 0F 3A (legacy): every instruction has an imm8; 66 only, but for MMX palignr and sha1rnds4. */
export const THREE_BYTE_3A = table((t) => {
  for (const o of [...range(0x08, 0x0e), 0x21, 0x40, 0x41, 0x42, 0x44, 0xce, 0xcf, 0xdf]) t[o] = pfx({ p66: VECI });
  t[0x0f] = pfx({ none: VECI, p66: VECI });
  t[0xcc] = pfx({ none: VECI });
  t[0x14] = pfx({ p66: mod({ mem: "pextrb =Mb,V,Ib", reg: "pextrb =Rd,V,Ib" }) });
  t[0x15] = pfx({ p66: mod({ mem: "pextrw =Mw,V,Ib", reg: "pextrw =Rd,V,Ib" }) });
  t[0x16] = pfx({ p66: "pextrd =Ey,V,Ib" });
  t[0x17] = pfx({ p66: "extractps =Ed,V,Ib" });
  t[0x20] = pfx({ p66: mod({ mem: "pinsrb V,Mb,Ib", reg: "pinsrb V,Rd,Ib" }) });
  t[0x22] = pfx({ p66: "pinsrd V,Ey,Ib" });
  for (const o of range(0x60, 0x63)) t[o] = pfx({ p66: "pcmpstr V,Wx,Ib,rax,rdx,=rcx" });
});

const VECTOR_0F = [...range(0x10, 0x17), ...range(0x28, 0x2f), ...range(0x50, 0x7f), ...range(0xc2, 0xc6), ...range(0xd0, 0xff)];

/** VEX map 1 (VEX.0F): the legacy vector entries, the AVX-512 mask instructions, vzeroupper. */
export const VEX_0F = table((t) => {
  for (const o of VECTOR_0F) t[o] = TWO_BYTE[o];
  t[0x77] = op("vzeroupper"); // no ModRM
  t[0x78] = VEC;
  t[0x79] = VEC;
  for (const o of [...range(0x41, 0x4b), 0x98, 0x99]) t[o] = VEC; // kand ... kortest, ktest: mask registers only
  t[0x90] = op("kmov V,Wq");
  t[0x91] = op("kmov ?Mq,V");
  t[0x92] = op("kmov V,Ry");
  t[0x93] = op("kmov =Gy,U");
  t[0xae] = mod({ mem: group(u, u, "vldmxcsr Md", "vstmxcsr =Md") });
  t[0xff] = undefined;
});

/** EVEX map 1: as VEX, without the mask instructions, with the unsigned conversions to and from general registers. */
export const EVEX_0F = table((t) => {
  for (const o of VECTOR_0F) t[o] = VEX_0F[o];
  t[0x77] = undefined;
  for (const o of range(0x71, 0x73)) t[o] = VECI; // EVEX's shifts by an immediate take a memory source too
  t[0x78] = pfx({ f3: "vcvttss2usi =Gy,Wd", f2: "vcvttsd2usi =Gy,Wq", other: VEC });
  t[0x79] = pfx({ f3: "vcvtss2usi =Gy,Wd", f2: "vcvtsd2usi =Gy,Wq", other: VEC });
  t[0x7a] = VEC;
  t[0x7b] = pfx({ f3: "vcvtusi2ss V,Ey", f2: "vcvtusi2sd V,Ey", other: VEC });
  t[0x6f] = VEC; // F2: vmovdqu8/16
  t[0x7f] = pfx({ p66: "vmovdqa =Wx,V", f3: "vmovdqu =Wx,V", f2: "vmovdqu =Wx,V" });
});

/** VEX map 2 (VEX.0F38): AVX/AVX2, FMA, gathers, masked moves, BMI1/2, AMX, CMPccXADD. */
export const VEX_0F38 = table((t) => {
  for (const o of range(0x00, 0xdf)) t[o] = VEC;
  t[0x2e] = pfx({ p66: "vmaskmov ?Wx,V" });
  t[0x2f] = pfx({ p66: "vmaskmov ?Wx,V" });
  t[0x8e] = pfx({ p66: "vpmaskmov ?Wx,V" });
  for (const o of range(0x90, 0x93)) t[o] = op("vgather V,Wg");
  t[0x49] = op("amx ?W*");
  t[0x4b] = op("amx ?W*");
  for (const o of range(0xe0, 0xef)) t[o] = pfx({ p66: "cmpccxadd +My,+Gy,By" });
  t[0xf2] = op("andn =Gy,By,Ey");
  t[0xf3] = group(u, "blsr =By,Ey", "blsmsk =By,Ey", "blsi =By,Ey");
  t[0xf5] = pfx({ none: "bzhi =Gy,Ey,By", f3: "pext =Gy,By,Ey", f2: "pdep =Gy,By,Ey" });
  t[0xf6] = pfx({ f2: "mulx =Gy,=By,Ey,rdx" });
  t[0xf7] = pfx({ none: "bextr =Gy,Ey,By", p66: "shlx =Gy,Ey,By", f3: "sarx =Gy,Ey,By", f2: "shrx =Gy,Ey,By" });
});

/** VEX map 3 (VEX.0F3A): every instruction has an imm8. */
export const VEX_0F3A = table((t) => {
  for (const o of range(0x00, 0xef)) t[o] = VECI;
  t[0x14] = mod({ mem: "vpextrb =Mb,V,Ib", reg: "vpextrb =Rd,V,Ib" });
  t[0x15] = mod({ mem: "vpextrw =Mw,V,Ib", reg: "vpextrw =Rd,V,Ib" });
  t[0x16] = op("vpextrd =Ey,V,Ib");
  t[0x17] = op("vextractps =Ed,V,Ib");
  t[0x19] = op("vextractf128 =Wo,V,Ib");
  t[0x1d] = op("vcvtps2ph ?Wx,V,Ib");
  t[0x20] = mod({ mem: "vpinsrb V,Mb,Ib", reg: "vpinsrb V,Rd,Ib" });
  t[0x22] = op("vpinsrd V,Ey,Ib");
  t[0x39] = op("vextracti128 =Wo,V,Ib");
  t[0xf0] = pfx({ f2: "rorx =Gy,Ey,Ib" });
});

/** EVEX map 2 (0F38): AVX-512 without immediates; scatters, compresses and down-converting moves store. */
export const EVEX_0F38 = table((t) => {
  for (const o of range(0x00, 0xff)) t[o] = VEC;
  for (const o of [...range(0x10, 0x15), ...range(0x20, 0x25), ...range(0x30, 0x35)]) t[o] = pfx({ f3: "vpmov =Wx,V", other: VEC });
  for (const o of range(0x7a, 0x7c)) t[o] = pfx({ p66: "vpbroadcast V,Ry", other: VEC });
  t[0x63] = pfx({ p66: "vpcompress =Wx,V", other: VEC });
  t[0x8a] = pfx({ p66: "vcompress =Wx,V", other: VEC });
  t[0x8b] = pfx({ p66: "vpcompress =Wx,V", other: VEC });
  for (const o of range(0x90, 0x93)) t[o] = op("vgather V,Wg");
  for (const o of range(0xa0, 0xa3)) t[o] = op("vscatter =Wg,V");
  t[0xc6] = op("vgatherpf ~Wg");
  t[0xc7] = op("vscatterpf ~Wg");
});

/** EVEX map 3 (0F3A): every instruction has an imm8. */
export const EVEX_0F3A = table((t) => {
  for (const o of range(0x00, 0xff)) t[o] = VECI;
  t[0x14] = VEX_0F3A[0x14];
  t[0x15] = VEX_0F3A[0x15];
  t[0x16] = VEX_0F3A[0x16];
  t[0x17] = VEX_0F3A[0x17];
  t[0x20] = VEX_0F3A[0x20];
  t[0x22] = VEX_0F3A[0x22];
  for (const o of [0x19, 0x1b, 0x39, 0x3b]) t[o] = op("vextract =Wx,V,Ib");
  t[0x1d] = op("vcvtps2ph =Wx,V,Ib");
});

/** EVEX map 5 (AVX512-FP16): half-precision arithmetic and conversions, vmovsh, vmovw. */
export const EVEX_MAP5 = table((t) => {
  for (const o of range(0x00, 0xff)) t[o] = VEC;
  t[0x11] = pfx({ f3: "vmovsh =Ww,V", other: VEC });
  for (const o of [0x2c, 0x2d, 0x78, 0x79]) t[o] = pfx({ f3: "vcvtsh2si =Gy,Ww", other: VEC });
  for (const o of [0x2a, 0x7b]) t[o] = pfx({ f3: "vcvtsi2sh V,Ey", other: VEC });
  t[0x6e] = pfx({ p66: mod({ mem: "vmovw V,Mw", reg: "vmovw V,Rd" }), other: VEC });
  t[0x7e] = pfx({ p66: mod({ mem: "vmovw =Mw,V", reg: "vmovw =Rd,V" }), other: VEC });
});

/** EVEX map 6 (AVX512-FP16 FMA and complex arithmetic): vector registers only. */
export const EVEX_MAP6 = table((t) => {
  for (const o of range(0x00, 0xff)) t[o] = VEC;
});
