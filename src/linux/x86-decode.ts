// An x86-64 (64-bit mode) instruction decoder for the host's look at guest code (sites.ts):
// the exact length of everything gcc and clang emit — legacy prefixes, REX, the one-byte, 0F,
// 0F 38 and 0F 3A maps, VEX and EVEX — and, from the opcode tables (x86-tables.ts), what an
// instruction does that matters to an analysis of the stack: the memory it reads and writes, the
// general registers it reads and writes, how it moves RSP, the pointers lea derives, and where
// control goes. Pure: bytes in, a description out; undefined for bytes that run out, encodings
// invalid in 64-bit mode, and what the tables do not know (3DNow!, XOP, APX, Key Locker, ...).
import { EVEX_0F, EVEX_0F38, EVEX_0F3A, EVEX_MAP5, EVEX_MAP6, ONE_BYTE, REGS, THREE_BYTE_38, THREE_BYTE_3A, TWO_BYTE, VEX_0F, VEX_0F38, VEX_0F3A, op, type Entry, type OpSpec, type OpcodeMap, type OperandSpec, type Reg } from "./x86-tables.ts";

export { REGS, type Reg };

/** A memory access: at base + index*scale + disp, `size` bytes (an upper bound unless `exact`). */
export interface MemOperand {
  readonly base: Reg | "rip" | undefined;
  readonly index: Reg | undefined;
  readonly scale: 1 | 2 | 4 | 8;
  readonly disp: number;
  readonly size: number;
  readonly read: boolean;
  readonly write: boolean;
  /** exactly [address, address+size) is touched, and a write writes all of it unconditionally */
  readonly exact: boolean;
  /** the address wraps at 32 bits (67 prefix) or 64 */
  readonly addressSize: 4 | 8;
  /** FS or GS override: the address is relative to that segment's base (CS, DS, ES, SS are flat) */
  readonly segment: "fs" | "gs" | undefined;
  /** the bytes touched are not bounded by disp and size (rep string ops, bt with a register offset, VSIB, AMX) */
  readonly unbounded: boolean;
  /** VSIB: the index is a vector register (index is undefined) */
  readonly vectorIndex: boolean;
  /** moffs (A0-A3): the absolute address (disp holds it as a number, possibly rounded) */
  readonly absolute?: bigint;
  /** pop to memory: RSP in the address is RSP after the pop */
  readonly afterRsp?: boolean;
  /** EVEX disp8*N: the raw disp8; disp and size then cover every possible N (1-64) */
  readonly disp8?: number;
}

export type Flow =
  | { readonly kind: "next" }
  | { readonly kind: "jmp" | "jcc" | "call"; readonly target: number }
  | { readonly kind: "callIndirect" | "jmpIndirect" | "ret" | "syscall" | "trap" };

/** How the instruction sets RSP: by a known amount, to another register plus a constant (mov rsp, rbp; leave: rbp + 8), or otherwise. */
export type RspChange = { readonly kind: "delta"; readonly delta: number } | { readonly kind: "set"; readonly from: Reg; readonly plus: number } | { readonly kind: "unknown" };

/** lea's computed address (a pointer derived from its registers), written to `dst` at `size` bytes. */
export interface Lea {
  readonly dst: Reg;
  readonly size: 2 | 4 | 8;
  readonly base: Reg | "rip" | undefined;
  readonly index: Reg | undefined;
  readonly scale: 1 | 2 | 4 | 8;
  readonly disp: number;
  readonly addressSize: 4 | 8;
}

/**
 * A register effect simple enough to compute exactly: dst = src, dst += src, dst -= src, dst ^= src,
 * dst &= src, dst |= src, dst <<= src, dst >>= src (logical; size 4 zero-extends), dst = src
 * zero-extended from `srcSize` bytes (movzx), or setcc, which writes 0 or 1 into dst's low byte.
 */
export interface Assign {
  readonly dst: Reg;
  readonly op: "mov" | "add" | "sub" | "xor" | "and" | "or" | "shl" | "shr" | "movzx" | "setcc";
  /** a register, or an immediate already extended to the operand size (as an unsigned value) */
  readonly src: Reg | bigint;
  readonly size: 1 | 4 | 8;
  /** movzx: the source's size */
  readonly srcSize?: 1 | 2;
}

export interface Instruction {
  readonly length: number;
  /** the table's name: exact for general-purpose instructions, "vec" for most vector ones, "x87" */
  readonly mnemonic: string;
  readonly flow: Flow;
  /** the ModRM or moffs memory operand */
  readonly mem: MemOperand | undefined;
  /** memory reached through implied registers: string ops' [rsi]/[rdi], xlat's [rbx+al], maskmov's [rdi], leave's [rbp] */
  readonly implicitMem: readonly MemOperand[];
  /** the stack slot push/pop/call/ret/enter touch, relative to RSP before the instruction (base "rsp") */
  readonly stack: MemOperand | undefined;
  /** general registers read as values (not as addresses) and written, whole or in part */
  readonly reads: readonly Reg[];
  readonly writes: readonly Reg[];
  /** present when the instruction writes RSP */
  readonly rsp: RspChange | undefined;
  /** RSP's value is a source (mov rax, rsp; push rsp; lea rax, [rsp+8]): a pointer derived from it */
  readonly readsRsp: boolean;
  readonly lea: Lea | undefined;
  readonly assign: Assign | undefined;
  /** the first immediate, sign-extended */
  readonly immediate: bigint | undefined;
}

const LEGACY_PREFIXES = new Set([0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3]);
const NOP = op("nop");
const RSP = 4;

/** The bytes of one instruction: reads past the buffer or past 15 bytes give -1 / undefined. */
class Cursor {
  pos: number;
  readonly limit: number;
  constructor(
    readonly code: Uint8Array,
    readonly start: number,
  ) {
    this.pos = start;
    this.limit = Math.min(code.length, start + 15);
  }
  peek(): number {
    return this.pos < this.limit ? this.code[this.pos] : -1;
  }
  u8(): number {
    return this.pos < this.limit ? this.code[this.pos++] : -1;
  }
  /** n little-endian bytes, sign-extended */
  int(n: number): bigint | undefined {
    if (this.pos + n > this.limit) return undefined;
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(this.code[this.pos + i]);
    this.pos += n;
    return BigInt.asIntN(n * 8, v);
  }
}

/** What the prefixes, REX, VEX or EVEX say about the instruction's operands. */
interface Context {
  p66: boolean;
  p67: boolean;
  rep: 0 | 0xf2 | 0xf3;
  segment: "fs" | "gs" | undefined;
  /** any REX prefix (changes byte registers 4-7 from AH..BH to SPL..DIL) */
  rex: boolean;
  w: boolean;
  r: number;
  x: number;
  b: number;
  encoding: "legacy" | "vex" | "evex";
  vvvv: number;
  /** the vector length in bytes */
  vl: number;
  /** EVEX.aaa != 0: merge- or zero-masked */
  masked: boolean;
}

interface Address {
  base: number | "rip" | undefined;
  index: number | undefined;
  scale: 1 | 2 | 4 | 8;
  disp: number;
  disp8: boolean;
  vsib: boolean;
}

interface ModRM {
  mod: number;
  reg: number;
  rm: number;
  address: Address | undefined;
}

type Operand = { kind: "gpr"; reg: number; size: number; high: boolean } | { kind: "mem" } | { kind: "imm"; value: bigint } | { kind: "other" };

/** Decodes the instruction at `code[at]`; targets of direct branches are offsets in `code`'s coordinates (at + length + rel). */
export function decode(code: Uint8Array, at: number): Instruction | undefined {
  if (!Number.isSafeInteger(at) || at < 0 || at >= code.length) return undefined;
  const cur = new Cursor(code, at);
  const ctx: Context = { p66: false, p67: false, rep: 0, segment: undefined, rex: false, w: false, r: 0, x: 0, b: 0, encoding: "legacy", vvvv: 0, vl: 16, masked: false };
  let lock = false;
  let rex = 0;
  for (;;) {
    const p = cur.peek();
    if (LEGACY_PREFIXES.has(p)) {
      if (p === 0x66) ctx.p66 = true;
      else if (p === 0x67) ctx.p67 = true;
      else if (p === 0xf2 || p === 0xf3) ctx.rep = p;
      else if (p === 0xf0) lock = true;
      else ctx.segment = p === 0x64 ? "fs" : p === 0x65 ? "gs" : undefined;
      rex = 0; // a REX prefix followed by another prefix is ignored
    } else if ((p & 0xf0) === 0x40) rex = p;
    else break;
    cur.pos++;
  }
  if (rex) Object.assign(ctx, { rex: true, w: (rex & 8) !== 0, r: (rex >> 2) & 1, x: (rex >> 1) & 1, b: rex & 1 });

  const first = cur.u8();
  let map: OpcodeMap = ONE_BYTE;
  let opcode = first;
  if (first < 0) return undefined;
  if (first === 0x0f) {
    const second = cur.u8();
    if (second === 0x38 || second === 0x3a) {
      map = second === 0x38 ? THREE_BYTE_38 : THREE_BYTE_3A;
      opcode = cur.u8();
    } else {
      map = TWO_BYTE;
      opcode = second;
    }
  } else if (first === 0xc4 || first === 0xc5 || first === 0x62) {
    if (rex || ctx.p66 || ctx.rep || lock) return undefined; // #UD before VEX/EVEX
    const vex = first === 0x62 ? evexPrefix(cur, ctx) : vexPrefix(cur, ctx, first === 0xc4);
    if (!vex) return undefined;
    map = vex;
    opcode = cur.u8();
  }
  if (opcode < 0) return undefined;

  let e: Entry | undefined = map === ONE_BYTE && opcode === 0x90 && !ctx.b ? NOP : map[opcode];
  const mandatory = ctx.rep === 0xf3 ? "f3" : ctx.rep === 0xf2 ? "f2" : ctx.p66 ? "p66" : "none";
  const modrmByte = cur.peek();
  let byModrm = false; // chosen by ModRM bits: the ModRM byte is there even if no operand names it (lfence, xabort)
  while (e && e.type !== "op") {
    if (e.type === "prefix") {
      e = e[mandatory];
      continue;
    }
    if (modrmByte < 0) return undefined;
    byModrm = true;
    if (e.type === "group") e = e.byReg[(modrmByte >> 3) & 7];
    else if (e.type === "rm") e = e.byRm[modrmByte & 7];
    else e = modrmByte >> 6 === 3 ? e.reg : e.mem;
  }
  if (!e) return undefined;
  const insn = operands(byModrm && !e.modrm ? { ...e, modrm: true } : e, cur, ctx, at, opcode);
  // LOCK is allowed only on a read-modify-write of memory by the instructions that can be locked.
  if (insn && lock && !(LOCKABLE.has(insn.mnemonic) && insn.mem?.read && insn.mem.write)) return undefined;
  return insn;
}

/** VEX (C5: 2 bytes, map 0F; C4: 3 bytes): R X B inverted, map, W, vvvv inverted, L, pp. */
function vexPrefix(cur: Cursor, ctx: Context, three: boolean): OpcodeMap | undefined {
  const p1 = cur.u8();
  if (p1 < 0) return undefined;
  let m = 1;
  let p2 = p1;
  ctx.r = (~p1 >> 7) & 1;
  if (three) {
    ctx.x = (~p1 >> 6) & 1;
    ctx.b = (~p1 >> 5) & 1;
    m = p1 & 0x1f;
    p2 = cur.u8();
    if (p2 < 0) return undefined;
    ctx.w = (p2 & 0x80) !== 0;
  }
  setVexCommon(ctx, p2, "vex", (p2 & 4) !== 0 ? 32 : 16);
  return m === 1 ? VEX_0F : m === 2 ? VEX_0F38 : m === 3 ? VEX_0F3A : undefined;
}

/** EVEX (62 P0 P1 P2): P0 = R X B R' 0 m m m, P1 = W vvvv 1 pp, P2 = z L'L b V' aaa. */
function evexPrefix(cur: Cursor, ctx: Context): OpcodeMap | undefined {
  const p0 = cur.u8();
  const p1 = cur.u8();
  const p2 = cur.u8();
  if (p2 < 0 || p0 & 0x08 || !(p1 & 0x04)) return undefined; // reserved bits (APX's extended EVEX is not known)
  ctx.r = (~p0 >> 7) & 1;
  ctx.x = (~p0 >> 6) & 1;
  ctx.b = (~p0 >> 5) & 1;
  ctx.w = (p1 & 0x80) !== 0;
  ctx.masked = (p2 & 7) !== 0;
  setVexCommon(ctx, p1, "evex", 16 << Math.min((p2 >> 5) & 3, 2));
  return [undefined, EVEX_0F, EVEX_0F38, EVEX_0F3A, undefined, EVEX_MAP5, EVEX_MAP6, undefined][p0 & 7];
}

function setVexCommon(ctx: Context, p: number, encoding: "vex" | "evex", vl: number): void {
  ctx.encoding = encoding;
  ctx.vvvv = (~p >> 3) & 15;
  ctx.vl = vl;
  ctx.p66 = (p & 3) === 1;
  ctx.rep = (p & 3) === 2 ? 0xf3 : (p & 3) === 3 ? 0xf2 : 0;
}

function readModRM(cur: Cursor, ctx: Context, spec: OpSpec, vsib: boolean): ModRM | undefined {
  const m = cur.u8();
  if (m < 0) return undefined;
  const mod = m >> 6;
  const reg = (m >> 3) & 7;
  const rm = m & 7;
  if (mod === 3 || spec.modIgnored) return { mod: 3, reg, rm, address: undefined };
  let base: number | "rip" | undefined = (rm | (ctx.b << 3)) as number;
  let index: number | undefined;
  let scale: 1 | 2 | 4 | 8 = 1;
  let dispSize = mod === 1 ? 1 : mod === 2 ? 4 : 0;
  if (rm === 4) {
    const sib = cur.u8();
    if (sib < 0) return undefined;
    scale = (1 << (sib >> 6)) as 1 | 2 | 4 | 8;
    const i = ((sib >> 3) & 7) | (ctx.x << 3);
    index = i === RSP && !vsib ? undefined : i;
    base = (sib & 7) | (ctx.b << 3);
    if ((sib & 7) === 5 && mod === 0) {
      base = undefined;
      dispSize = 4;
    }
  } else if (vsib) return undefined; // VSIB needs a SIB byte
  else if (rm === 5 && mod === 0) {
    base = "rip";
    dispSize = 4;
  }
  const disp = dispSize ? cur.int(dispSize) : 0n;
  if (disp === undefined) return undefined;
  return { mod, reg, rm, address: { base, index, scale, disp: Number(disp), disp8: dispSize === 1, vsib } };
}

/** Operand size in bytes of "v": REX.W (or VEX.W) 8, 66 2, else 4. */
function opSize(ctx: Context): 2 | 4 | 8 {
  return ctx.w ? 8 : ctx.p66 ? 2 : 4;
}

/** Bytes of a size code; "unbounded" for VSIB and "*". */
function sizeOf(code: string, ctx: Context): number | "unbounded" {
  switch (code) {
    case "b": return 1;
    case "w": return 2;
    case "d": return 4;
    case "q": return 8;
    case "o": return 16;
    case "t": return 10;
    case "v": case "": return opSize(ctx);
    case "z": return opSize(ctx) === 2 ? 2 : 4;
    case "y": return ctx.w ? 8 : 4;
    case "s": return ctx.p66 ? 2 : 8;
    case "x": return ctx.vl;
    case "p": return opSize(ctx) + 2;
    case "g": case "*": return "unbounded";
    default: return Number(code);
  }
}

const LOCKABLE = new Set(["add", "adc", "and", "btc", "btr", "bts", "cmpxchg", "cmpxchg8b", "dec", "inc", "neg", "not", "or", "sbb", "sub", "xor", "xadd", "xchg"]);
const EXCHANGES = new Set(["xchg", "xadd", "cmpxchg"]);
const STRING_OPS = new Set(["movs", "cmps", "stos", "lods", "scas", "ins", "outs"]);
const BIT_STRING = new Set(["bt", "bts", "btr", "btc"]);
const NEAR_BRANCHES = new Set(["call", "ret", "retf", "iret", "enter", "leave", "xbegin", "loop", "loope", "loopne"]);
const TRAPS = new Set(["int3", "int1", "int", "ud0", "ud1", "ud2", "hlt", "sysret", "sysexit"]);

function operands(spec: OpSpec, cur: Cursor, ctx: Context, at: number, opcode: number): Instruction | undefined {
  const { mnemonic } = spec;
  // Near branches with 66: Intel ignores it, AMD truncates to 16 bits (and reads a rel16): unknown.
  if (ctx.p66 && (NEAR_BRANCHES.has(mnemonic) || (mnemonic.startsWith("j") && mnemonic !== "jmpf"))) return undefined;
  const vsib = spec.operands.some((o) => o.size === "g");
  const modrm = spec.modrm ? readModRM(cur, ctx, spec, vsib) : undefined;
  if (spec.modrm && !modrm) return undefined;
  const reads = new Set<number>();
  let rspSource = false; // RSP's value read into something other than RSP itself
  const writes = new Set<number>();
  const resolved: Operand[] = [];
  let mem: MemOperand | undefined;
  let leaAddress: Address | undefined;
  const implicitMem: MemOperand[] = [];
  const rel: bigint[] = [];
  let immediate: bigint | undefined;
  const rep = ctx.rep !== 0 && STRING_OPS.has(mnemonic);

  const gpr = (o: OperandSpec, n: number): Operand => {
    const size = sizeOf(o.size, ctx);
    const bytes = typeof size === "number" ? size : 8;
    const high = bytes === 1 && !ctx.rex && ctx.encoding === "legacy" && n >= 4 && n < 8;
    const reg = high ? n - 4 : n;
    if (o.access === "r" || o.access === "rw" || o.access === "maybe") reads.add(reg);
    if (reg === RSP && !high && (o.access === "r" || EXCHANGES.has(mnemonic))) rspSource = true;
    if (o.access === "w" || o.access === "rw" || o.access === "maybe") writes.add(reg);
    // a partial write (8 or 16 bits) keeps the rest of the register: it is read too
    if (o.access === "w" && bytes < 4) reads.add(reg);
    return { kind: "gpr", reg, size: bytes, high };
  };

  for (const o of spec.operands) {
    switch (o.kind) {
      case "E": case "M": case "W": case "R": case "U": {
        if (!modrm) return undefined;
        if (!modrm.address) {
          if (o.kind === "M") return undefined; // a memory-only operand in a register form: #UD
          resolved.push(o.kind === "E" || o.kind === "R" ? gpr(o, modrm.rm | (ctx.b << 3)) : { kind: "other" });
          break;
        }
        if (o.kind === "R" || o.kind === "U") return undefined;
        if (o.access === "none") leaAddress = modrm.address;
        else mem = memOperand(modrm.address, o, ctx, BIT_STRING.has(mnemonic) && spec.operands[1]?.kind === "G");
        resolved.push({ kind: "mem" });
        break;
      }
      case "G":
        if (!modrm) return undefined;
        resolved.push(gpr(o, modrm.reg | (ctx.r << 3)));
        break;
      case "Z":
        resolved.push(gpr(o, (opcode & 7) | (ctx.b << 3)));
        break;
      case "B":
        resolved.push(gpr(o, ctx.vvvv));
        break;
      case "fixed":
        resolved.push(gpr(o, o.reg));
        break;
      case "I": {
        const size = o.size === "v" ? opSize(ctx) : (sizeOf(o.size, ctx) as number);
        const v = cur.int(size);
        if (v === undefined) return undefined;
        immediate ??= v;
        resolved.push({ kind: "imm", value: v });
        break;
      }
      case "J": {
        const v = cur.int(o.size === "b" ? 1 : 4);
        if (v === undefined) return undefined;
        rel.push(v);
        break;
      }
      case "O": {
        const v = cur.int(ctx.p67 ? 4 : 8);
        if (v === undefined) return undefined;
        const absolute = BigInt.asUintN(ctx.p67 ? 32 : 64, v);
        const size = sizeOf(o.size, ctx) as number;
        mem = { ...plainMem(undefined, size, o.access, ctx), disp: Number(absolute), absolute, segment: ctx.segment };
        resolved.push({ kind: "mem" });
        break;
      }
      case "X": case "Y": {
        const reg = o.kind === "X" ? 6 : 7;
        const size = sizeOf(o.size, ctx);
        implicitMem.push({ ...plainMem(REGS[reg], typeof size === "number" ? size : 64, o.access, ctx), segment: o.kind === "X" ? ctx.segment : undefined, unbounded: rep, exact: !rep && o.access !== "maybe" });
        reads.add(reg);
        if (STRING_OPS.has(mnemonic)) writes.add(reg);
        resolved.push({ kind: "mem" });
        break;
      }
      default:
        resolved.push({ kind: "other" });
    }
  }
  const length = cur.pos - at;
  if (length > 15) return undefined;
  if (rep) {
    reads.add(1);
    writes.add(1);
  }
  if (mnemonic === "xlat") {
    reads.add(3);
    implicitMem.push({ ...plainMem("rbx", 256, "r", ctx), segment: ctx.segment, exact: false });
  }

  const flow = flowOf(mnemonic, rel, at + length);
  if (flow.kind === "jcc" || flow.kind === "jmp" || flow.kind === "call") {
    if (!Number.isSafeInteger(flow.target)) return undefined;
  }

  const effect = stackEffect(mnemonic, ctx, resolved, writes.has(RSP));
  const stack = effect?.stack;
  let rsp = effect?.rsp;
  if (effect) writes.add(RSP);
  if (stack && mem?.base === "rsp" && mnemonic === "pop") mem = { ...mem, afterRsp: true };
  if (mnemonic === "leave") implicitMem.push({ ...plainMem("rbp", 8, "r", ctx), addressSize: 8, segment: undefined });
  if (mnemonic === "enter") rspSource = true; // the new frame pointer is RSP's value

  let lea: Lea | undefined;
  if (mnemonic === "lea") {
    const dst = resolved[0];
    if (!leaAddress || dst?.kind !== "gpr") return undefined;
    lea = { dst: REGS[dst.reg], size: dst.size as 2 | 4 | 8, base: regName(leaAddress.base), index: regName(leaAddress.index) as Reg | undefined, scale: leaAddress.scale, disp: leaAddress.disp, addressSize: ctx.p67 ? 4 : 8 };
  }
  const assign = assignOf(mnemonic, resolved);
  if (writes.has(RSP) && !rsp) rsp = rspChange(assign, lea);
  const readsRsp = rspSource || lea?.base === "rsp" || lea?.index === "rsp";
  return {
    length,
    mnemonic,
    flow,
    mem,
    implicitMem,
    stack,
    reads: [...reads].sort((a, b) => a - b).map((r) => REGS[r]),
    writes: [...writes].sort((a, b) => a - b).map((r) => REGS[r]),
    rsp,
    readsRsp,
    lea,
    assign,
    immediate,
  };
}

/** The stack slot (relative to RSP before) and the RSP change of pushes, pops, calls, returns, enter and leave. */
function stackEffect(mnemonic: string, ctx: Context, ops: Operand[], popsIntoRsp: boolean): { stack?: MemOperand; rsp: RspChange } | undefined {
  const s = ctx.p66 ? 2 : 8;
  const imm = (i: number) => {
    const o = ops[i];
    return o?.kind === "imm" ? Number(BigInt.asUintN(16, o.value)) : 0;
  };
  const slot = (offset: number, size: number, access: "r" | "w", exact = true): MemOperand => ({ ...plainMem("rsp", size, access, ctx), disp: offset, addressSize: 8, segment: undefined, exact });
  switch (mnemonic) {
    case "push": case "pushf": case "pushseg":
      return { stack: slot(-s, s, "w"), rsp: { kind: "delta", delta: -s } };
    case "pop": case "popf": case "popseg":
      return { stack: slot(0, s, "r"), rsp: popsIntoRsp ? { kind: "unknown" } : { kind: "delta", delta: s } };
    case "call":
      return { stack: slot(-8, 8, "w"), rsp: { kind: "delta", delta: -8 } };
    case "callf":
      return { stack: slot(-16, 16, "w", false), rsp: { kind: "unknown" } };
    case "ret":
      return { stack: slot(0, 8, "r"), rsp: { kind: "delta", delta: 8 + imm(0) } };
    case "retf":
      return { stack: slot(0, 16, "r", false), rsp: { kind: "delta", delta: 16 + imm(0) } };
    case "iret": // pops RSP itself
      return { stack: slot(0, 40, "r", false), rsp: { kind: "unknown" } };
    case "enter": // push rbp; rbp = rsp; then a nesting level copies frame pointers (never emitted by compilers)
      return { stack: slot(-8, 8, "w"), rsp: imm(1) % 32 === 0 ? { kind: "delta", delta: -8 - imm(0) } : { kind: "unknown" } };
    case "leave": // mov rsp, rbp; pop rbp
      return { rsp: { kind: "set", from: "rbp", plus: 8 } };
  }
  return undefined;
}

function regName(r: number | "rip" | undefined): Reg | "rip" | undefined {
  return r === undefined || r === "rip" ? r : REGS[r];
}

function plainMem(base: Reg | undefined, size: number, access: string, ctx: Context): MemOperand {
  return {
    base,
    index: undefined,
    scale: 1,
    disp: 0,
    size,
    read: access !== "w" && access !== "none",
    write: access === "w" || access === "rw" || access === "maybe",
    exact: access !== "maybe",
    addressSize: ctx.p67 ? 4 : 8,
    segment: ctx.segment,
    unbounded: false,
    vectorIndex: false,
  };
}

function memOperand(a: Address, o: OperandSpec, ctx: Context, bitString: boolean): MemOperand {
  const size = sizeOf(o.size, ctx);
  const unbounded = size === "unbounded" || bitString;
  const base = regName(a.base);
  const index = a.vsib || a.index === undefined ? undefined : REGS[a.index];
  const m: MemOperand = {
    ...plainMem(undefined, typeof size === "number" ? size : 64, o.access, ctx),
    base,
    index,
    scale: a.scale,
    disp: a.disp,
    unbounded,
    vectorIndex: a.vsib,
  };
  if (unbounded) return { ...m, exact: false };
  if (ctx.encoding !== "evex") return m;
  // EVEX: the bytes touched depend on the tuple type (not in the tables): at most 64, and a disp8
  // is scaled by an N of 1 to 64. Report the envelope of every possibility.
  if (!a.disp8) return { ...m, size: 64, exact: false };
  const d = a.disp;
  const lo = d >= 0 ? d : d * 64;
  const hi = (d >= 0 ? d * 64 : d) + 64;
  return { ...m, disp: lo, size: hi - lo, exact: false, disp8: d };
}

function flowOf(mnemonic: string, rel: bigint[], next: number): Flow {
  const target = rel.length ? next + Number(rel[0]) : undefined;
  const direct = target !== undefined;
  if (mnemonic === "jmp") return direct ? { kind: "jmp", target } : { kind: "jmpIndirect" };
  if (mnemonic === "call") return direct ? { kind: "call", target } : { kind: "callIndirect" };
  if (direct) return { kind: "jcc", target }; // jcc, loop*, jrcxz, xbegin (its abort path)
  if (mnemonic === "jmpf") return { kind: "jmpIndirect" };
  if (mnemonic === "callf") return { kind: "callIndirect" };
  if (mnemonic === "ret" || mnemonic === "retf" || mnemonic === "iret") return { kind: "ret" };
  if (mnemonic === "syscall" || mnemonic === "sysenter") return { kind: "syscall" };
  if (TRAPS.has(mnemonic)) return { kind: "trap" };
  return { kind: "next" };
}

const ASSIGN_OPS = new Set(["mov", "add", "sub", "xor", "and", "or"]);
const SHIFT_OPS = new Set(["shl", "sal", "shr"]);

/**
 * mov/add/sub/xor/and/or between whole 32- or 64-bit registers and immediates; inc/dec as add/sub
 * 1; shl/shr by an immediate; movzx from a low byte or word register; setcc of a low byte register.
 */
function assignOf(mnemonic: string, ops: Operand[]): Assign | undefined {
  const [d, s] = ops;
  if (d?.kind !== "gpr" || d.high) return undefined;
  const dst = REGS[d.reg];
  if (/^set(n?[oszp]|n?[bel]|n?be|a|ae|g|ge|le|np|ns|no)$/.test(mnemonic) && d.size === 1 && ops.length === 1) return { dst, op: "setcc", src: 0n, size: 1 };
  if (d.size !== 4 && d.size !== 8) return undefined;
  const size = d.size;
  if (mnemonic === "inc" || mnemonic === "dec") return { dst, op: mnemonic === "inc" ? "add" : "sub", src: 1n, size };
  if (ops.length !== 2) return undefined;
  if (mnemonic === "movzx") return s?.kind === "gpr" && !s.high && (s.size === 1 || s.size === 2) ? { dst, op: "movzx", src: REGS[s.reg], size, srcSize: s.size } : undefined;
  if (SHIFT_OPS.has(mnemonic)) return s?.kind === "imm" ? { dst, op: mnemonic === "shr" ? "shr" : "shl", src: s.value & (size === 8 ? 63n : 31n), size } : undefined;
  if (!ASSIGN_OPS.has(mnemonic)) return undefined;
  const op = mnemonic as Assign["op"];
  if (s?.kind === "imm") return { dst, op, src: BigInt.asUintN(size * 8, s.value), size };
  if (s?.kind === "gpr" && s.size === size) return { dst, op, src: REGS[s.reg], size };
  return undefined;
}

/** RSP written by something other than a push, pop, call, ret, enter or leave. */
function rspChange(assign: Assign | undefined, lea: Lea | undefined): RspChange {
  if (assign?.dst === "rsp" && assign.size === 8) {
    if (assign.op === "mov" && typeof assign.src === "string") return { kind: "set", from: assign.src, plus: 0 };
    if ((assign.op === "add" || assign.op === "sub") && typeof assign.src === "bigint") {
      const v = Number(BigInt.asIntN(64, assign.src));
      return { kind: "delta", delta: assign.op === "add" ? v : -v };
    }
  }
  if (lea?.dst === "rsp" && lea.size === 8 && lea.addressSize === 8 && lea.index === undefined && lea.base !== undefined && lea.base !== "rip") {
    return lea.base === "rsp" ? { kind: "delta", delta: lea.disp } : { kind: "set", from: lea.base, plus: lea.disp };
  }
  return { kind: "unknown" };
}
