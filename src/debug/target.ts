// A stopped guest as a debugger sees it (the DebugTarget of session.ts): its registers — the
// vCPU's, or, when it stopped through the host's IDT (a breakpoint, a step, a fault), the ones the
// CPU and the handler saved on the fault stack — and its memory through its own page tables.
// Breakpoints are HLT bytes written into the guest's memory: on this machine KVM's guest debugging
// does nothing (docs/determinism.md), so breakpoints and single steps go through the guest's own
// exceptions, which wasp's IDT reports to the host — a HLT at CPL3 faults (#GP, error 0, RIP on it)
// on every x86 virtualization alike, where an INT3 through the IDT's DPL0 gate is a #BP on PVM, a
// #GP on hardware and something else again in QEMU's emulated SVM. Resuming from the handler puts back what it
// changed: the saved registers, and the user code and stack segments.
import { kvm_segment, kvm_sregs, type RegName } from "../../ffi/kvm.ts";
import { FAULT_FRAME, SEL_USER_CODE, SEL_USER_DATA } from "../image/boot.ts";
import type { Vcpu } from "../kvm/vcpu.ts";
import type { GuestMemory } from "../memory/guest-memory.ts";
import { fromLe, leBytes } from "./protocol.ts";
import { G_PACKET_BYTES, REGISTER_SIZES, type DebugTarget } from "./session.ts";

const GDB_GPRS: readonly RegName[] = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip"];
const RIP = 16;
const EFLAGS = 17;
export const TF = 1n << 8n;
/** RFLAGS bits a debugger may change: CF, PF, AF, ZF, SF, DF, OF, AC (TF is the stub's, IOPL and the rest the host's) */
const USER_FLAGS = 0x1n | 0x4n | 0x10n | 0x40n | 0x80n | 0x400n | 0x800n | 0x40000n;
/** HLT: privileged, so at CPL3 a #GP before it runs */
const BREAK = 0xf4;
const PAGE = 4096n;
const ADDR_MASK = 0x000f_ffff_ffff_f000n;

/** The fault stack's saved state, at the handler's report (src/image/boot.ts, FAULT_FRAME). */
export interface TrapFrame {
  vector: number;
  error: bigint;
  rip: bigint;
  cs: bigint;
  rflags: bigint;
  rsp: bigint;
  ss: bigint;
  rax: bigint;
  rbx: bigint;
  rcx: bigint;
  rdx: bigint;
}

/** Reads the frame the handler left, or undefined if the stack pointer does not lie in RAM. */
export function readTrapFrame(vcpu: Vcpu, mem: GuestMemory): TrapFrame | undefined {
  const sp = vcpu.reg("rsp");
  try {
    const slot = (k: keyof typeof FAULT_FRAME) => mem.readU64(sp + BigInt(FAULT_FRAME[k] * 8), "fault frame");
    return {
      vector: Number(slot("vector") & 0xffn), error: slot("error"), rip: slot("rip"), cs: slot("cs"), rflags: slot("rflags"), rsp: slot("rsp"), ss: slot("ss"),
      rax: slot("rax"), rbx: slot("rbx"), rcx: slot("rcx"), rdx: slot("rdx"),
    };
  } catch {
    return undefined;
  }
}

/** A write watchpoint: `len` bytes at `addr`, and what they held when last looked at. */
export interface Watchpoint {
  addr: bigint;
  len: number;
  value: Uint8Array;
}

export class StoppedGuest implements DebugTarget {
  /** the guest's registers as gdb sees and changes them */
  readonly regs: Record<RegName, bigint>;
  readonly #vcpu: Vcpu;
  readonly #mem: GuestMemory;
  readonly #sregs: Uint8Array;
  /** the stopped vCPU's page-table root: every guest-virtual address goes through it */
  readonly #cr3: bigint;
  readonly #frame: TrapFrame | undefined;
  readonly #breakpoints: Map<bigint, number>;
  readonly #watchpoints: Map<string, Watchpoint>;
  #fx: Uint8Array | undefined;

  /**
   * `frame`: the guest stopped through the host's IDT (its registers are in the frame and the
   * handler's registers); without it, the vCPU's registers are the guest's.
   */
  constructor(vcpu: Vcpu, mem: GuestMemory, breakpoints: Map<bigint, number>, watchpoints: Map<string, Watchpoint>, frame?: TrapFrame) {
    this.#vcpu = vcpu;
    this.#mem = mem;
    this.#breakpoints = breakpoints;
    this.#watchpoints = watchpoints;
    this.#frame = frame;
    this.#sregs = vcpu.nextSregs();
    this.#cr3 = new DataView(this.#sregs.buffer, this.#sregs.byteOffset).getBigUint64(kvm_sregs.off("cr3"), true);
    this.regs = vcpu.regs();
    if (frame) for (const k of ["rax", "rbx", "rcx", "rdx", "rip", "rflags", "rsp"] as const) this.regs[k] = frame[k];
  }

  /** Puts the guest back in its own state, to run on (one instruction, with `step`). */
  resume(step: boolean): void {
    const vcpu = this.#vcpu;
    this.regs.rflags = step ? this.regs.rflags | TF : this.regs.rflags & ~TF;
    for (const [k, v] of Object.entries(this.regs) as [RegName, bigint][]) vcpu.setReg(k, v);
    if (this.#frame) {
      // the handler runs at CPL0 on the host's code and stack segments: the guest's are put back
      const sregs = vcpu.getSregs();
      const dv = new DataView(sregs.buffer);
      kvm_segment.write(dv, kvm_sregs.off("cs"), { base: 0, limit: 0xffffffff, selector: SEL_USER_CODE, type: 11, present: 1, dpl: 3, db: 0, s: 1, l: 1, g: 1, avl: 0, unusable: 0 });
      kvm_segment.write(dv, kvm_sregs.off("ss"), { base: 0, limit: 0xffffffff, selector: SEL_USER_DATA, type: 3, present: 1, dpl: 3, db: 1, s: 1, l: 0, g: 1, avl: 0, unusable: 0 });
      vcpu.setSregs(sregs);
    }
    vcpu.addRegsDirty();
  }

  registers(): Uint8Array {
    const out = new Uint8Array(G_PACKET_BYTES);
    let at = 0;
    for (let n = 0; n < REGISTER_SIZES.length; n++) {
      out.set(this.register(n)!, at);
      at += REGISTER_SIZES[n];
    }
    return out;
  }

  register(n: number): Uint8Array | undefined {
    if (!Number.isInteger(n) || n < 0 || n >= REGISTER_SIZES.length) return undefined;
    if (n <= RIP) return leBytes(this.regs[GDB_GPRS[n]], 8);
    if (n === EFLAGS) return leBytes(this.regs.rflags, 4);
    const sdv = new DataView(this.#sregs.buffer, this.#sregs.byteOffset);
    const seg = (name: "cs" | "ss" | "ds" | "es" | "fs" | "gs") => kvm_segment.read(sdv, kvm_sregs.off(name));
    if (n <= 23) {
      const name = (["cs", "ss", "ds", "es", "fs", "gs"] as const)[n - 18];
      // stopped in the handler, the vCPU's CS and SS are the host's: the guest's are in the frame
      if (this.#frame && name === "cs") return leBytes(this.#frame.cs, 4);
      if (this.#frame && name === "ss") return leBytes(this.#frame.ss, 4);
      return leBytes(BigInt(seg(name).selector), 4);
    }
    if (n === 57) return leBytes(seg("fs").base, 8);
    if (n === 58) return leBytes(seg("gs").base, 8);
    // x87 and SSE: the legacy region of the XSAVE area (the FXSAVE layout, Intel SDM vol. 1, 10.5.1)
    const fx = (this.#fx ??= this.#vcpu.getXsave().slice(0, 512));
    const fdv = new DataView(fx.buffer);
    if (n <= 31) return fx.slice(32 + (n - 24) * 16, 32 + (n - 24) * 16 + 10);
    switch (n) {
      case 32: return leBytes(BigInt(fdv.getUint16(0, true)), 4); // fctrl
      case 33: return leBytes(BigInt(fdv.getUint16(2, true)), 4); // fstat
      case 34: return leBytes(BigInt(fullTagWord(fx)), 4); // ftag
      case 35: return leBytes(BigInt(fdv.getUint16(12, true)), 4); // fiseg
      case 36: return leBytes(BigInt(fdv.getUint32(8, true)), 4); // fioff
      case 37: return leBytes(BigInt(fdv.getUint16(20, true)), 4); // foseg
      case 38: return leBytes(BigInt(fdv.getUint32(16, true)), 4); // fooff
      case 39: return leBytes(BigInt(fdv.getUint16(6, true) & 0x7ff), 4); // fop
    }
    if (n <= 55) return fx.slice(160 + (n - 40) * 16, 160 + (n - 40) * 16 + 16);
    return leBytes(BigInt(fdv.getUint32(24, true)), 4); // mxcsr (56)
  }

  setRegister(n: number, value: Uint8Array): boolean {
    if (!Number.isInteger(n) || n < 0 || n > EFLAGS || value.length !== REGISTER_SIZES[n]) return false;
    const v = fromLe(value);
    if (n <= RIP) this.regs[GDB_GPRS[n]] = v;
    else this.regs.rflags = (this.regs.rflags & ~USER_FLAGS) | (v & USER_FLAGS);
    return true;
  }

  /**
   * A guest-virtual address through the guest's 4-level page tables (CR3 of the stopped vCPU):
   * its guest-physical address and whether CPL3 code may reach it; undefined if not mapped in RAM.
   */
  translate(addr: bigint): { phys: number; user: boolean } | undefined {
    if (addr >= 1n << 47n && addr < 0xffff_8000_0000_0000n) return undefined; // not canonical
    let table = this.#cr3 & ADDR_MASK;
    let user = true;
    for (let level = 3; level >= 0; level--) {
      const index = (addr >> BigInt(12 + 9 * level)) & 511n;
      const at = table + index * 8n;
      if (at + 8n > BigInt(this.#mem.size)) return undefined;
      const entry = this.#mem.readU64(at);
      if ((entry & 1n) === 0n) return undefined;
      if ((entry & 4n) === 0n) user = false;
      const size = 1n << BigInt(12 + 9 * level);
      if (level === 0 || ((level === 1 || level === 2) && entry & 0x80n)) {
        const phys = (entry & ADDR_MASK & ~(size - 1n)) + (addr & (size - 1n));
        return phys < BigInt(this.#mem.size) ? { phys: Number(phys), user } : undefined;
      }
      table = entry & ADDR_MASK;
    }
    return undefined;
  }

  readMemory(addr: bigint, len: number): Uint8Array {
    const out = new Uint8Array(len);
    let done = 0;
    while (done < len) {
      const a = BigInt.asUintN(64, addr + BigInt(done));
      const t = this.translate(a);
      if (!t) break;
      const n = Math.min(len - done, Number(PAGE - (a % PAGE)));
      out.set(this.#mem.bytes.subarray(t.phys, t.phys + n), done);
      done += n;
    }
    // the bytes under gdb's breakpoints are shown as they were
    for (const [bp, byte] of this.#breakpoints) {
      const off = bp - addr;
      if (off >= 0n && off < BigInt(done)) out[Number(off)] = byte;
    }
    return out.subarray(0, done);
  }

  /** Writes only into the guest's own pages (user pages, read-only ones too: code), never the host's. */
  writeMemory(addr: bigint, data: Uint8Array): boolean {
    const pieces: [number, number, number][] = [];
    for (let done = 0; done < data.length; ) {
      const a = BigInt.asUintN(64, addr + BigInt(done));
      const t = this.translate(a);
      if (!t || !t.user) return false;
      const n = Math.min(data.length - done, Number(PAGE - (a % PAGE)));
      pieces.push([t.phys, done, n]);
      done += n;
    }
    for (const [phys, from, n] of pieces) this.#mem.bytes.set(data.subarray(from, from + n), phys);
    // a write over a breakpoint changes the byte it hides; the breakpoint stays
    for (const [bp] of this.#breakpoints) {
      const off = bp - addr;
      if (off >= 0n && off < BigInt(data.length)) {
        this.#breakpoints.set(bp, data[Number(off)]);
        this.#poke(bp, BREAK);
      }
    }
    return true;
  }

  insertBreakpoint(addr: bigint): boolean {
    if (this.#breakpoints.has(addr)) return true;
    const t = this.translate(addr);
    if (!t || !t.user) return false;
    this.#breakpoints.set(addr, this.#mem.bytes[t.phys]);
    this.#mem.bytes[t.phys] = BREAK;
    return true;
  }

  removeBreakpoint(addr: bigint): boolean {
    const byte = this.#breakpoints.get(addr);
    if (byte === undefined) return true;
    this.#breakpoints.delete(addr);
    return this.#poke(addr, byte);
  }

  insertWatchpoint(addr: bigint, len: number): boolean {
    const value = this.readMemory(addr, len);
    if (value.length !== len) return false;
    this.#watchpoints.set(`${addr}:${len}`, { addr, len, value });
    return true;
  }

  removeWatchpoint(addr: bigint, len: number): boolean {
    this.#watchpoints.delete(`${addr}:${len}`);
    return true;
  }

  /** The first watchpoint whose bytes changed since they were last looked at (all are looked at again). */
  changedWatchpoint(): Watchpoint | undefined {
    let hit: Watchpoint | undefined;
    for (const w of this.#watchpoints.values()) {
      const now = this.readMemory(w.addr, w.len);
      if (now.length === w.len && !now.every((b, i) => b === w.value[i])) {
        w.value = now;
        hit ??= w;
      }
    }
    return hit;
  }

  /** Takes every breakpoint out (a detach). */
  removeAll(): void {
    for (const addr of [...this.#breakpoints.keys()]) this.removeBreakpoint(addr);
  }

  #poke(addr: bigint, byte: number): boolean {
    const t = this.translate(addr);
    if (!t) return false;
    this.#mem.bytes[t.phys] = byte;
    return true;
  }
}

/**
 * The x87 tag word as FSTENV gives it (two bits per physical register: valid, zero, special,
 * empty) from FXSAVE's abridged one (one bit: not empty), classifying each register's contents.
 */
export function fullTagWord(fx: Uint8Array): number {
  const dv = new DataView(fx.buffer, fx.byteOffset);
  const abridged = fx[4];
  const top = (dv.getUint16(2, true) >> 11) & 7;
  let tag = 0;
  for (let phys = 0; phys < 8; phys++) {
    let t = 3; // empty
    if (abridged & (1 << phys)) {
      const st = (phys - top + 8) & 7; // ST(i) is physical register (TOP + i) mod 8
      const at = 32 + st * 16;
      const mantissa = dv.getBigUint64(at, true);
      const exponent = dv.getUint16(at + 8, true) & 0x7fff;
      if (exponent === 0x7fff) t = 2;
      else if (exponent === 0) t = mantissa === 0n ? 1 : 2;
      else t = mantissa >> 63n ? 0 : 2;
    }
    tag |= t << (2 * phys);
  }
  return tag;
}
