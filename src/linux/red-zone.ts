// Whether a `syscall` site may become `call *%rax` (zpoline-style, into the in-VM system-call
// layer): the call pushes its return address at [RSP-8], inside the SysV red zone, so the 8 bytes
// C = [rsp0-8, rsp0) (rsp0: RSP at the `syscall`) must hold nothing the program still reads. The
// host decides at the site's first exit, from the code after it and the registers of that moment.
//
// Every path after the site is followed (both arms of a branch, direct jumps), the general
// registers tracked abstractly: a register is one of a few known values (RSP and RBP exactly; the
// others, whose names the exit does not give, as "one of the exit's values"), or unknown — tainted
// when it may point into the red zone (loaded from it, or computed from a value near the stack by
// arithmetic not followed). A path is safe when it returns or calls with RSP at or above rsp0 (the
// ABI lets a callee clobber what lies below), traps, or overwrites all of C before reading any of
// it; a call made with RSP below rsp0 (a frame allocated after the site) is stepped over. The site
// is unsafe when any path reads C, touches memory through a tainted pointer, derives a pointer
// into the red zone, moves RSP by an amount not known, jumps indirectly, meets bytes it cannot read
// or decode, or when the budget of instructions runs out. Conservative throughout: an unsafe site
// only keeps its (always correct) exit.
import { decode, REGS, type Instruction, type MemOperand, type Reg } from "./x86-decode.ts";

export interface SiteRegisters {
  rsp: bigint;
  rbp: bigint;
  /** the 16 general registers' values at the exit, in any order */
  gprs: readonly bigint[];
}

export interface RedZoneVerdict {
  safe: boolean;
  reason: string;
}

/** Guest code bytes at addr (exactly len of them), or undefined where any of them is not readable code. */
export type CodeReader = (addr: bigint, len: number) => Uint8Array | undefined;

/** Instructions followed in total, over all paths. */
export const DEFAULT_BUDGET = 256;
/** The red zone (128 bytes) below the slot a leaf may use: what a pointer must not reach. */
const RED_ZONE = 136n;
/** A value this close to rsp0 is taken for a stack pointer. */
const NEAR = 1n << 20n;
/** Visits of one address before the registers that differ between visits are widened to unknown. */
const WIDEN_AFTER = 3;
/** Known values kept per register before it becomes unknown. */
const MAX_VALUES = 16;
const SLOT = 8n;
const ALL_WRITTEN = 0xff;
const R = (name: Reg) => REGS.indexOf(name);
const RSP = R("rsp");
const RBP = R("rbp");
const SYSCALL_ARGS = (["rdi", "rsi", "rdx", "r10", "r8", "r9"] as const).map(R);
const CALL_ARGS = (["rdi", "rsi", "rdx", "rcx", "r8", "r9"] as const).map(R);
/** What a callee may change (SysV): it returns with RSP as it was and the other registers preserved. */
const CALLER_SAVED = (["rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11"] as const).map(R);
/** Traps that end a path: #UD, #GP at CPL3, breakpoints (int n goes on: int 0x80 returns). */
const ENDING_TRAPS = new Set(["ud0", "ud1", "ud2", "hlt", "int3", "int1", "sysret", "sysexit"]);

type Value = { readonly kind: "known"; readonly values: readonly bigint[] } | { readonly kind: "unknown"; readonly tainted: boolean };
const UNKNOWN: Value = { kind: "unknown", tainted: false };
const TAINTED: Value = { kind: "unknown", tainted: true };
const known = (...values: bigint[]): Value => ({ kind: "known", values: [...new Set(values.map((v) => BigInt.asUintN(64, v)))].sort((a, b) => (a < b ? -1 : 1)) });

interface State {
  readonly pc: bigint;
  readonly regs: readonly Value[];
  /** bit i: byte rsp0-8+i of C overwritten by the program since the site */
  readonly written: number;
}

/** Decides whether the `syscall` at `site` may be rewritten into `call *%rax`; `reason` says why (not). */
export function redZoneSafe(read: CodeReader, site: bigint, regs: SiteRegisters, opts: { budget?: number } = {}): RedZoneVerdict {
  const a = new Analysis(read, regs.rsp);
  const head = read(site, 2);
  if (!head || head[0] !== 0x0f || head[1] !== 0x05) return { safe: false, reason: "the site is not a syscall instruction" };
  const pointer = a.exitPointer(regs);
  if (pointer !== undefined) return { safe: false, reason: `a register points into the red zone (rsp${a.offset(pointer)}) at the exit` };

  const budget = opts.budget ?? DEFAULT_BUDGET;
  const work: State[] = [a.initial(site, regs)];
  const seen = new Set<string>();
  const last = new Map<bigint, { state: State; visits: number }>();
  let steps = 0;
  for (let popped = work.pop(); popped; popped = work.pop()) {
    // A loop: after a few rounds, what still changes at its head becomes unknown, so it ends.
    let s = popped;
    const before = last.get(s.pc);
    if (before && before.visits >= WIDEN_AFTER) {
      const widened = a.widen(before.state, s);
      if (typeof widened === "string") return { safe: false, reason: `${widened} (at 0x${s.pc.toString(16)})` };
      s = widened;
    }
    last.set(s.pc, { state: s, visits: (before?.visits ?? 0) + 1 });
    const key = stateKey(s);
    if (seen.has(key)) continue;
    seen.add(key);
    if (steps++ >= budget) return { safe: false, reason: `the budget of ${budget} instructions ran out` };
    const next = a.step(s);
    if (typeof next === "string") return { safe: false, reason: `${next} (at 0x${s.pc.toString(16)})` };
    work.push(...next);
  }
  return { safe: true, reason: "every path returns, calls, traps or overwrites the slot before reading it" };
}

class Analysis {
  private readonly slot: bigint;
  constructor(
    private readonly read: CodeReader,
    private readonly rsp0: bigint,
  ) {
    this.slot = rsp0 - SLOT;
  }

  offset(v: bigint): string {
    const d = v - this.rsp0;
    return d < 0n ? `${d}` : `+${d}`;
  }

  private near(v: bigint): boolean {
    const d = v - this.rsp0;
    return d > -NEAR && d < NEAR;
  }

  private inRedZone(v: bigint): boolean {
    return v >= this.rsp0 - RED_ZONE && v < this.rsp0;
  }

  /** May hold or yield a pointer into the red zone: tainted, or a known value near the stack. */
  private stacky(v: Value): boolean {
    return v.kind === "unknown" ? v.tainted : v.values.some((x) => this.near(x));
  }

  /** An exit register (other than RSP, and RBP: a frame pointer, tracked exactly) holding a red-zone address. */
  exitPointer(regs: SiteRegisters): bigint | undefined {
    return exitValues(regs).find((v) => this.inRedZone(v));
  }

  initial(site: bigint, regs: SiteRegisters): State {
    const others = exitValues(regs);
    const anyExitValue = others.length ? known(...others) : UNKNOWN;
    const r: Value[] = REGS.map(() => (anyExitValue.kind === "known" && anyExitValue.values.length > MAX_VALUES ? (this.stacky(anyExitValue) ? TAINTED : UNKNOWN) : anyExitValue));
    r[RSP] = known(regs.rsp);
    r[RBP] = known(regs.rbp);
    return { pc: site + 2n, regs: afterSyscall(r, site + 2n), written: 0 };
  }

  /** A state covering both: registers that differ become unknown (tainted if either may point near the stack), the slot written only where both wrote it. */
  widen(a: State, b: State): State | string {
    if (stateKey({ ...a, pc: 0n, written: 0 }) === stateKey({ ...b, pc: 0n, written: 0 }) && a.written === b.written) return b;
    if (single(a.regs[RSP]) !== single(b.regs[RSP])) return "RSP changes around a loop";
    const regs = b.regs.map((v, i) => {
      const w = a.regs[i];
      if (valueKey(v) === valueKey(w)) return v;
      return this.stacky(v) || this.stacky(w) ? TAINTED : UNKNOWN;
    });
    return { pc: b.pc, regs, written: a.written & b.written };
  }

  /** Reads up to 15 bytes at pc (fewer at the end of readable code). */
  private fetch(pc: bigint): Uint8Array | undefined {
    for (let len = 15; len >= 1; len--) {
      const bytes = this.read(pc, len);
      if (bytes) return bytes.subarray(0, len);
    }
    return undefined;
  }

  /** One instruction: the states after it ([] when its path ends safe), or why the site is unsafe. */
  step(s: State): State[] | string {
    const bytes = this.fetch(s.pc);
    if (!bytes) return "unreadable code";
    const insn = decode(bytes, 0);
    if (!insn) return "an undecodable instruction";
    const next = BigInt.asUintN(64, s.pc + BigInt(insn.length));
    const rsp = single(s.regs[RSP]);
    if (rsp === undefined) return "RSP is not known";
    const d = rsp - this.rsp0;

    // Memory: every read first, against the slot as it was; then the writes.
    const accesses = [insn.mem, ...insn.implicitMem, insn.stack].filter((m): m is MemOperand => m !== undefined);
    let written = s.written;
    let loadsRedZone = false;
    const targets: bigint[][] = [];
    for (const m of accesses) {
      const at = this.addresses(m, s.regs, next);
      if (typeof at === "string") return at;
      targets.push(at);
      if (!m.read) continue;
      for (const a of at) {
        if (this.slotBytes(a, m.size) & ~written) return `reads the slot [rsp-8, rsp) (rsp${this.offset(a)}, ${m.size} bytes)`;
        if (a < this.rsp0 && a + BigInt(m.size) > this.rsp0 - RED_ZONE) loadsRedZone = true;
      }
    }
    accesses.forEach((m, i) => {
      const at = targets[i];
      if (m.write && m.exact && at.length === 1) written |= this.slotBytes(at[0], m.size);
    });
    if (written === ALL_WRITTEN) return [];

    switch (insn.flow.kind) {
      case "ret":
        return d >= 0n ? [] : "returns with RSP below its value at the site";
      case "call":
      case "callIndirect": {
        // The callee may clobber everything below RSP: with RSP at or above rsp0 the slot is dead.
        // Below it (a frame allocated after the site), the slot is the caller's: go on after the call.
        if (d >= 0n) return [];
        if (CALL_ARGS.some((r) => isTainted(s.regs[r]))) return "a call argument may point into the red zone";
        const regs = s.regs.map((v, i) => (CALLER_SAVED.includes(i) ? UNKNOWN : v));
        return [{ pc: next, regs, written }];
      }
      case "jmpIndirect":
        return "an indirect jump";
      case "trap":
        if (ENDING_TRAPS.has(insn.mnemonic)) return [];
    }
    const regs = this.effects(insn, s.regs, next, rsp, loadsRedZone);
    if (typeof regs === "string") return regs;
    const state = (pc: bigint): State => ({ pc: BigInt.asUintN(64, pc), regs, written });
    const flow = insn.flow;
    if (flow.kind === "jmp") return [state(s.pc + BigInt(flow.target))];
    if (flow.kind === "jcc") return [state(s.pc + BigInt(flow.target)), state(next)];
    return [state(next)];
  }

  /** Which bytes of the slot [a, a+size) covers, as a mask. */
  private slotBytes(a: bigint, size: number): number {
    let mask = 0;
    for (let i = 0; i < 8; i++) {
      const b = this.slot + BigInt(i);
      if (b >= a && b < a + BigInt(size)) mask |= 1 << i;
    }
    return mask;
  }

  /** Where an operand may point: the addresses it may have (none: away from the stack), or why it may reach the red zone unseen. */
  private addresses(m: MemOperand, regs: readonly Value[], next: bigint): bigint[] | string {
    if (m.segment) return []; // FS/GS-relative: thread-local storage, not the stack
    if (m.absolute !== undefined) return [m.absolute];
    const parts: Value[] = [];
    if (m.base === "rip") parts.push(known(next));
    else if (m.base) {
      const v = regs[R(m.base)];
      const rsp = single(v);
      parts.push(m.afterRsp && m.base === "rsp" && rsp !== undefined ? known(rsp + 8n) : v);
    }
    if (m.index) parts.push(this.scaled(regs[R(m.index)], m.scale));
    if (m.unbounded || m.vectorIndex) {
      return parts.some((p) => this.stacky(p)) ? "touches memory near the stack that it does not bound" : [];
    }
    if (parts.some((p) => p.kind === "unknown")) {
      if (parts.some((p) => p.kind === "unknown" && p.tainted)) return "accesses memory through a pointer that may point into the red zone";
      if (parts.some((p) => this.stacky(p))) return "an indexed access near the stack";
      return [];
    }
    const sum = parts.reduce((acc, p) => this.combine(acc, p, (x, y) => x + y), known(BigInt(m.disp)));
    if (sum.kind === "unknown") return sum.tainted ? "too many possible addresses near the stack" : [];
    return sum.values.map((v) => BigInt.asUintN(m.addressSize * 8, v));
  }

  private scaled(v: Value, scale: number): Value {
    return v.kind === "known" ? known(...v.values.map((x) => x * BigInt(scale))) : v;
  }

  /** f over every pair of known values; unknown (tainted if either side may be a stack pointer) otherwise or past MAX_VALUES. */
  private combine(a: Value, b: Value, f: (x: bigint, y: bigint) => bigint): Value {
    if (a.kind === "known" && b.kind === "known" && a.values.length * b.values.length <= MAX_VALUES * 4) {
      const r = known(...a.values.flatMap((x) => b.values.map((y) => f(x, y))));
      if (r.kind === "known" && r.values.length <= MAX_VALUES) return r;
    }
    return this.stacky(a) || this.stacky(b) ? TAINTED : UNKNOWN;
  }

  /** The registers after the instruction, or why the site is unsafe. */
  private effects(insn: Instruction, before: readonly Value[], next: bigint, rsp: bigint, loadsRedZone: boolean): Value[] | string {
    let regs = before.slice();
    if (insn.flow.kind === "syscall") {
      if (SYSCALL_ARGS.some((r) => isTainted(before[r]))) return "a system call argument may point into the red zone";
      return afterSyscall(regs, next);
    }
    const done = new Set<number>([RSP]);
    if (insn.lea && insn.lea.dst !== "rsp") {
      const { lea } = insn;
      const parts = [lea.base === "rip" ? known(next) : lea.base ? before[R(lea.base)] : known(0n), lea.index ? this.scaled(before[R(lea.index)], lea.scale) : known(0n)];
      let v = this.combine(this.combine(parts[0], parts[1], (x, y) => x + y), known(BigInt(lea.disp)), (x, y) => x + y);
      v = this.resize(v, lea.addressSize === 4 ? 4 : 8);
      v = lea.size === 2 ? (this.stacky(v) || this.stacky(before[R(lea.dst)]) ? TAINTED : UNKNOWN) : this.resize(v, lea.size);
      if (v.kind === "unknown" && v.tainted) return "derives a pointer that may point into the red zone";
      regs[R(lea.dst)] = v;
      done.add(R(lea.dst));
    }
    const { assign } = insn;
    if (assign && assign.dst !== "rsp") {
      const dst = R(assign.dst);
      const src = typeof assign.src === "bigint" ? known(assign.src) : before[R(assign.src)];
      const self = assign.src === assign.dst;
      let v: Value;
      if ((assign.op === "xor" || assign.op === "sub") && self) v = known(0n);
      else if (assign.op === "mov") v = src;
      else if (assign.op === "add") v = this.combine(before[dst], src, (x, y) => x + y);
      else if (assign.op === "sub") v = this.combine(before[dst], src, (x, y) => x - y);
      else v = this.stacky(before[dst]) || this.stacky(src) ? TAINTED : UNKNOWN;
      regs[dst] = this.resize(v, assign.size);
      done.add(dst);
    }
    if (insn.mnemonic === "enter") {
      regs[RBP] = known(rsp - 8n);
      done.add(RBP);
    }
    if (insn.mnemonic === "leave") {
      // RBP is reloaded from [rbp]: the caller's frame pointer, unless that slot lies in the red zone
      regs[RBP] = loadsRedZone ? TAINTED : UNKNOWN;
      done.add(RBP);
    }
    // Everything else written: unknown, tainted if it may come from the red zone or a stack pointer.
    const tainted = loadsRedZone || insn.reads.some((r) => this.stacky(before[R(r)]));
    for (const w of insn.writes) if (!done.has(R(w))) regs[R(w)] = tainted ? TAINTED : UNKNOWN;
    for (const r of done) {
      const v = regs[r];
      if (r !== RSP && r !== RBP && v.kind === "known" && v.values.some((x) => this.inRedZone(x))) return "derives a pointer into the red zone";
    }
    if (insn.rsp) {
      const moved = this.newRsp(insn, before, rsp);
      if (typeof moved === "string") return moved;
      regs = regs.map((v, i) => (i === RSP ? known(moved) : v));
    }
    return regs;
  }

  private newRsp(insn: Instruction, before: readonly Value[], rsp: bigint): bigint | string {
    const change = insn.rsp;
    let v: bigint | undefined;
    if (change?.kind === "delta") v = rsp + BigInt(change.delta);
    else if (change?.kind === "set") {
      const from = single(before[R(change.from)]);
      if (from === undefined) return `sets RSP from ${change.from}, whose value is not known`;
      v = from + BigInt(change.plus);
    } else return "changes RSP by an amount not known";
    return this.near(v) ? BigInt.asUintN(64, v) : "moves RSP away from the site's stack";
  }

  /** A value written at 4 bytes (zero-extended) or 8. */
  private resize(v: Value, size: number): Value {
    return size === 4 && v.kind === "known" ? known(...v.values.map((x) => BigInt.asUintN(32, x))) : v;
  }
}

/** The exit's register values but for one RSP and one RBP (tracked by name). */
function exitValues(regs: SiteRegisters): bigint[] {
  const rest = [...regs.gprs];
  for (const v of [regs.rsp, regs.rbp]) {
    const i = rest.indexOf(v);
    if (i >= 0) rest.splice(i, 1);
  }
  return rest;
}

/** What a `syscall` leaves: RAX its result, RCX the return address, R11 RFLAGS. */
function afterSyscall(regs: Value[], next: bigint): Value[] {
  regs[R("rax")] = UNKNOWN;
  regs[R("rcx")] = known(next);
  regs[R("r11")] = UNKNOWN;
  return regs;
}

function isTainted(v: Value): boolean {
  return v.kind === "unknown" && v.tainted;
}

function single(v: Value): bigint | undefined {
  return v.kind === "known" && v.values.length === 1 ? v.values[0] : undefined;
}

function valueKey(v: Value): string {
  return v.kind === "known" ? v.values.join(",") : v.tainted ? "T" : "U";
}

function stateKey(s: State): string {
  return `${s.pc}:${s.written}:${s.regs.map(valueKey).join(";")}`;
}
