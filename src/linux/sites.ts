// Which `syscall` instructions of a Linux program the host rewrites, and how, so that they reach
// the in-VM layer (guests/linux/layer.zig) instead of the host (the measurements that chose this
// are in docs/architecture.md). A site is rewritten when it first exits through the CPL0 entry,
// if all of this holds:
//
// - it lies on a page of the executable's code that its program headers make executable and not
//   writable (never a writable page, whose code could be anything next time);
// - it lies in a function the executable's unwind tables name (src/linux/unwind.ts), which decodes
//   from its first instruction to its end (src/linux/x86-decode.ts) with the site among its
//   instructions and no indirect jump (whose targets could be anywhere in it);
// - the instructions right before it, at least 5 bytes of them, can run elsewhere unchanged: no
//   branch, no RIP-relative operand;
// - no direct branch anywhere in the executable, and no return from a call, lands inside the 5
//   bytes that will be overwritten (but at their start).
//
// Those 5 bytes become `jmp STUB`; everything after them, the `syscall` included, stays as it
// was (a branch to any later instruction runs the program's own code, and exits as before). The
// stub, in the site's slot (an executable page of wasp's), runs the displaced instructions, steps
// RSP over the red zone, calls the layer, steps back, sets RCX as Linux leaves it and jumps back
// after the `syscall`: nothing below the program's RSP is touched, and page 0 stays unmapped.
//
// Each rewritten site's slot records the site — where the jump is and the bytes it replaced —
// which a debugger's call uses to put the program's own instructions back.
import type { GuestMemory } from "../memory/guest-memory.ts";
import { SITE_SLOT, SITES_SIZE, pagePermission, type LinuxLayout } from "./address-space.ts";
import type { ElfExecutable } from "./elf.ts";
import { decode } from "./x86-decode.ts";
import { functionAt, functionRanges, type FunctionRanges } from "./unwind.ts";
import { LinuxLayer } from "../abi/guest-abi.ts";

const PAGE = 4096;
const JMP_LENGTH = 5;
/** A slot: the stub's code, then the record (where the jump is, how many bytes it replaced, those bytes). */
const SLOT = { CODE: 0, AT: 64, LENGTH: 72, ORIGINAL: 80 } as const;
const CODE_ROOM = 64;
/** The longest function decoded to rewrite a site in it. */
const MAX_FUNCTION = 1 << 20;

/** A rewrite: `bytes` over `original` at `at`, and the slot's contents. */
export interface Rewrite {
  /** the `syscall`'s address */
  site: number;
  at: number;
  bytes: Uint8Array;
  original: Uint8Array;
  slot: number;
  slotBytes: Uint8Array;
}

/** What the host learns of an executable once, to judge its sites: where its functions are, and where branches land. */
interface CodeMap {
  functions: FunctionRanges;
  /** one bit per byte of the executable's address range: a direct branch, or a return from a direct call, may land there */
  targets: Uint8Array;
  low: number;
}

const maps = new WeakMap<ElfExecutable, CodeMap>();

/**
 * Every address a direct branch (jmp, jcc, call, loop, jrcxz, rel8 or rel32) or the return from a
 * direct call could reach, found by trying every byte of the executable code as the start of one:
 * more than the real ones (bytes inside other instructions are tried too), never fewer.
 */
function codeMap(elf: ElfExecutable): CodeMap {
  let map = maps.get(elf);
  if (map) return map;
  const targets = new Uint8Array(Math.ceil((elf.high - elf.low) / 8) + 1);
  const mark = (addr: number) => {
    const i = addr - elf.low;
    if (i >= 0 && i < (elf.high - elf.low)) targets[i >> 3] |= 1 << (i & 7);
  };
  const dv = new DataView(elf.bytes.buffer, elf.bytes.byteOffset, elf.bytes.byteLength);
  for (const seg of elf.segments) {
    if (!seg.exec) continue;
    const b = elf.bytes;
    const end = seg.offset + seg.filesz;
    for (let o = seg.offset; o < end; o++) {
      const pc = seg.vaddr + (o - seg.offset);
      const op = b[o];
      if ((op === 0xe8 || op === 0xe9) && o + 5 <= end) {
        mark(pc + 5 + dv.getInt32(o + 1, true));
        if (op === 0xe8) mark(pc + 5);
      } else if ((op === 0xeb || (op >= 0x70 && op <= 0x7f) || (op >= 0xe0 && op <= 0xe3)) && o + 2 <= end) {
        mark(pc + 2 + dv.getInt8(o + 1));
      } else if (op === 0x0f && o + 6 <= end && b[o + 1] >= 0x80 && b[o + 1] <= 0x8f) {
        mark(pc + 6 + dv.getInt32(o + 2, true));
      } else if (op === 0xff && o + 2 <= end && ((b[o + 1] >> 3) & 7) === 2) {
        // an indirect call: its return lands after it, whatever its length (2 to 7 bytes, or more with a SIB and disp32)
        for (let n = 2; n <= 8; n++) mark(pc + n);
      }
    }
  }
  map = { functions: functionRanges(elf.bytes), targets, low: elf.low };
  maps.set(elf, map);
  return map;
}

function isTarget(map: CodeMap, addr: number): boolean {
  const i = addr - map.low;
  return i >= 0 && (map.targets[i >> 3] & (1 << (i & 7))) !== 0;
}

const le32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];

/** The stub at `slot`: `displaced` (the instructions before the site), the layer's call, back to `ret`. */
export function stubCode(slot: number, displaced: Uint8Array, ret: number): Uint8Array {
  const code: number[] = [...displaced, ...[0x48, 0x8d, 0x64, 0x24, 0x80]]; // the program's own, then lea rsp, [rsp-128]: past the red zone
  code.push(0xe8, ...le32(LinuxLayer.CODE - (slot + code.length + 5))); // call the layer's entry
  code.push(...[0x48, 0x8d, 0xa4, 0x24, 0x80, 0x00, 0x00, 0x00]); // lea rsp, [rsp+128]
  code.push(0xb9, ...le32(ret)); // mov ecx, RET: as Linux leaves RCX (the layer left R11 = RFLAGS)
  code.push(0xe9, ...le32(ret - (slot + code.length + 5))); // jmp RET
  return new Uint8Array(code);
}

/**
 * How to rewrite the site whose `syscall` returns to `ret`, into `slot`, or why not (`reason`).
 * Addresses are the guest's (the executable's plus the layout's bias); `mem` holds its code.
 */
export function planRewrite(mem: GuestMemory, elf: ElfExecutable, layout: LinuxLayout, ret: bigint, slot: number): Rewrite | { reason: string } {
  const bias = layout.bias;
  const site = Number(ret - 2n);
  if (!Number.isSafeInteger(site) || site < layout.low || site + 2 > layout.high) return { reason: "not in the executable" };
  if (slot < layout.io.sites || slot + SITE_SLOT > layout.io.sites + SITES_SIZE) return { reason: "no slot left for another site" };
  const code = (addr: number) => {
    const p = pagePermission(elf, layout, addr - (addr % PAGE));
    return p.present && p.exec && !p.write;
  };
  if (mem.bytes[site] !== 0x0f || mem.bytes[site + 1] !== 0x05) return { reason: "not a syscall instruction" };
  const map = codeMap(elf);
  const fn = functionAt(map.functions, site - bias);
  if (!fn) return { reason: "in no function the unwind tables name" };
  const [start, end] = [fn[0] + bias, fn[1] + bias];
  if (end - start > MAX_FUNCTION || start < layout.low || end > layout.high) return { reason: "its function is out of bounds" };
  for (let p = start - (start % PAGE); p < end; p += PAGE) if (!code(p)) return { reason: "its function is not all on read-only code pages" };
  // decode the function from its first instruction: the instructions before the site
  const before: { at: number; length: number; replayable: boolean }[] = [];
  let found = false;
  for (let pc = start; pc < end; ) {
    const insn = decode(mem.bytes.subarray(pc, Math.min(end, pc + 15)), 0);
    if (!insn) return { reason: `its function does not decode (at 0x${pc.toString(16)})` };
    if (insn.flow.kind === "jmpIndirect") return { reason: "its function jumps indirectly" };
    if (pc === site) found = insn.flow.kind === "syscall";
    if (pc < site) {
      const replayable = insn.flow.kind === "next" && insn.mem?.base !== "rip" && insn.lea?.base !== "rip";
      before.push({ at: pc, length: insn.length, replayable });
    }
    pc += insn.length;
  }
  if (!found) return { reason: "not an instruction of its function" };
  // the fewest instructions right before the site that hold the jump
  let first = site;
  for (let i = before.length - 1; i >= 0 && site - first < JMP_LENGTH; i--) {
    const b = before[i];
    if (!b.replayable || b.at + b.length !== first) return { reason: "the instructions before it cannot run elsewhere" };
    first = b.at;
  }
  if (site - first < JMP_LENGTH) return { reason: "too few instructions before it" };
  for (let a = first + 1; a < first + JMP_LENGTH; a++) {
    if (isTarget(map, a - bias)) return { reason: "a branch may land inside the bytes the jump would take" };
  }
  const displaced = mem.bytes.slice(first, site);
  const stub = stubCode(slot, displaced, site + 2);
  if (stub.length > CODE_ROOM) return { reason: "its stub does not fit a slot" };
  const original = mem.bytes.slice(first, first + JMP_LENGTH);
  const slotBytes = new Uint8Array(SITE_SLOT);
  slotBytes.fill(0xcc, 0, CODE_ROOM);
  slotBytes.set(stub, SLOT.CODE);
  new DataView(slotBytes.buffer).setBigUint64(SLOT.AT, BigInt(first), true);
  slotBytes[SLOT.LENGTH] = original.length;
  slotBytes.set(original, SLOT.ORIGINAL);
  return { site, at: first, bytes: new Uint8Array([0xe9, ...le32(slot - (first + JMP_LENGTH))]), original, slot, slotBytes };
}

/** The rewritten sites a snapshot's slots record: where each jump is and the bytes it replaced, in slot order. */
export function recordedSites(memory: Uint8Array, layout: LinuxLayout): { at: number; original: Uint8Array; slot: number }[] {
  const out: { at: number; original: Uint8Array; slot: number }[] = [];
  for (let slot = layout.io.sites; slot + SITE_SLOT <= layout.io.sites + SITES_SIZE; slot += SITE_SLOT) {
    const length = memory[slot + SLOT.LENGTH];
    if (length !== JMP_LENGTH) break;
    const at = Number(new DataView(memory.buffer, memory.byteOffset).getBigUint64(slot + SLOT.AT, true));
    out.push({ at, original: memory.slice(slot + SLOT.ORIGINAL, slot + SLOT.ORIGINAL + length), slot });
  }
  return out;
}
