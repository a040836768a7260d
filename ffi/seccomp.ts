// seccomp(2) filters as the kernel reads them: classic BPF instructions (struct sock_filter,
// linux/filter.h) run over a struct seccomp_data (linux/seccomp.h), returning an action. A small
// assembler resolves jumps by label, so no jump offset is ever counted by hand. Constants and
// layouts are checked against the C headers by tests/harden.test.ts.
import { Struct } from "./struct.ts";

export const sock_filter = new Struct("struct sock_filter", 8, { code: [0, "u16"], jt: [2, "u8"], jf: [3, "u8"], k: [4, "u32"] });
export const sock_fprog = new Struct("struct sock_fprog", 16, { len: [0, "u16"], filter: [8, "u64"] });
/** What a filter inspects: the system call's number, the caller's ABI, and its six arguments. */
export const seccomp_data = new Struct("struct seccomp_data", 64, {
  nr: [0, "u32"],
  arch: [4, "u32"],
  instruction_pointer: [8, "u64"],
  args: [16, { bytes: 48 }],
});

/** Offset of argument `i`'s low 32 bits in seccomp_data (x86-64 is little-endian; BPF loads 32 bits). */
export function argLow(i: number): number {
  return seccomp_data.off("args") + 8 * i;
}

// Classic BPF opcode parts (linux/bpf_common.h).
export const BPF = {
  LD: 0x00, W: 0x00, ABS: 0x20,
  ALU: 0x04, AND: 0x50,
  JMP: 0x05, JEQ: 0x10, JGE: 0x30, JSET: 0x40, K: 0x00,
  RET: 0x06,
} as const;
/** The most instructions a filter may have (linux/bpf_common.h, BPF_MAXINSNS). */
export const BPF_MAXINSNS = 4096;

// seccomp(2) operations, flags and filter return actions (linux/seccomp.h).
export const SECCOMP_SET_MODE_FILTER = 1;
export const SECCOMP_FILTER_FLAG_TSYNC = 1;
export const SECCOMP_RET_KILL_PROCESS = 0x80000000;
export const SECCOMP_RET_ERRNO = 0x00050000;
export const SECCOMP_RET_ALLOW = 0x7fff0000;
export const SECCOMP_RET_DATA = 0x0000ffff;
/** seccomp_data.arch of a 64-bit x86 system call (linux/audit.h: EM_X86_64 | 64BIT | LE). */
export const AUDIT_ARCH_X86_64 = 0xc000003e;
/** x32 system calls are x86-64 numbers with this bit set (asm/unistd.h, __X32_SYSCALL_BIT). */
export const X32_SYSCALL_BIT = 0x40000000;

/** A jump target: a label defined later, or a count of instructions to skip (0: the next one). */
export type Target = string | number;

interface Insn {
  code: number;
  k: number;
  jt: Target;
  jf: Target;
  /** k is the value of this slot, given at assembly */
  slot?: string;
}

/** A filter under construction; `assemble` encodes it as struct sock_filter[]. */
export class BpfProgram {
  readonly #insns: Insn[] = [];
  readonly #labels = new Map<string, number>();

  get length(): number {
    return this.#insns.length;
  }

  /** Marks the next instruction as `name`'s target. */
  label(name: string): this {
    if (this.#labels.has(name)) throw new Error(`BPF label ${name} defined twice`);
    this.#labels.set(name, this.#insns.length);
    return this;
  }

  /** A = the 32-bit word at `offset` of seccomp_data. */
  load(offset: number): this {
    return this.#push(BPF.LD | BPF.W | BPF.ABS, offset);
  }

  /** A &= mask */
  and(mask: number): this {
    return this.#push(BPF.ALU | BPF.AND | BPF.K, mask);
  }

  /** Ends the filter with `action` (SECCOMP_RET_*). */
  ret(action: number): this {
    return this.#push(BPF.RET | BPF.K, action);
  }

  /** If A == k go to jt, else to jf (the next instruction unless given). */
  jeq(k: number, jt: Target, jf: Target = 0): this {
    return this.#push(BPF.JMP | BPF.JEQ | BPF.K, k, jt, jf);
  }

  /**
   * If A == the value of `slot` go to jt, else to jf: a value given only at assembly (`assemble`'s
   * `slots`), so that a program can be assembled ahead of it and the value written in at
   * `slotOffsets` (the process id of a filter assembled at build time).
   */
  jeqSlot(slot: string, jt: Target, jf: Target = 0): this {
    this.#push(BPF.JMP | BPF.JEQ | BPF.K, 0, jt, jf);
    this.#insns[this.#insns.length - 1].slot = slot;
    return this;
  }

  /** Byte offsets, in the assembled program, of the k fields that hold `slot`'s value. */
  slotOffsets(slot: string): number[] {
    const out: number[] = [];
    this.#insns.forEach((insn, i) => {
      if (insn.slot === slot) out.push(i * sock_filter.size + sock_filter.off("k"));
    });
    return out;
  }

  /** If A >= k (unsigned) go to jt, else to jf. */
  jge(k: number, jt: Target, jf: Target = 0): this {
    return this.#push(BPF.JMP | BPF.JGE | BPF.K, k, jt, jf);
  }

  /** If A & k is not zero go to jt, else to jf. */
  jset(k: number, jt: Target, jf: Target = 0): this {
    return this.#push(BPF.JMP | BPF.JSET | BPF.K, k, jt, jf);
  }

  #push(code: number, k: number, jt: Target = 0, jf: Target = 0): this {
    this.#insns.push({ code, k: k >>> 0, jt, jf });
    return this;
  }

  /**
   * The instructions as struct sock_filter[], each slot's k its value in `slots`; throws if a jump
   * is backwards, too long or unresolved, or a slot has no value.
   */
  assemble(slots: Readonly<Record<string, number>> = {}): Uint8Array {
    const n = this.#insns.length;
    if (n === 0 || n > BPF_MAXINSNS) throw new RangeError(`a BPF filter has 1..${BPF_MAXINSNS} instructions, not ${n}`);
    const out = new Uint8Array(n * sock_filter.size);
    const dv = new DataView(out.buffer);
    this.#insns.forEach((insn, i) => {
      const jump = (insn.code & 0x07) === BPF.JMP;
      let k = insn.k;
      if (insn.slot !== undefined) {
        const value = slots[insn.slot];
        if (value === undefined) throw new Error(`BPF slot ${insn.slot} has no value`);
        k = value >>> 0;
      }
      sock_filter.write(dv, i * sock_filter.size, { code: insn.code, k, jt: jump ? this.#offset(insn.jt, i) : 0, jf: jump ? this.#offset(insn.jf, i) : 0 });
    });
    return out;
  }

  /** A jump's offset from the instruction after `from`: classic BPF jumps only forward, by at most 255. */
  #offset(target: Target, from: number): number {
    let skip: number;
    if (typeof target === "number") skip = target;
    else {
      const at = this.#labels.get(target);
      if (at === undefined) throw new Error(`BPF label ${target} is never defined`);
      skip = at - (from + 1);
    }
    if (!Number.isInteger(skip) || skip < 0 || skip > 255) throw new RangeError(`BPF jump from ${from} to ${String(target)} is not 0..255 forward`);
    if (from + 1 + skip >= this.#insns.length) throw new RangeError(`BPF jump from ${from} leaves the program`);
    return skip;
  }
}
