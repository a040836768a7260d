// Which `syscall` instructions of a Linux program the host rewrites, and how, so that they reach
// the in-VM layer (guests/linux/layer.zig) instead of the host (the measurements that chose this
// are in docs/architecture.md). A site is rewritten when it first exits through the CPL0 entry,
// if all of this holds:
//
// - it lies on a page of the executable's code that its program headers make executable and not
//   writable (never a writable page, whose code could be anything next time) — or of a library's:
//   a granted ELF file whose first page the program mapped (its loader did) at the start of a run
//   of mapped pages that reaches the site, the site's page executable and not writable in the page
//   tables now (src/linux/protect.ts), the library's own headers and unwind tables read from the
//   granted file's bytes, never from guest memory;
// - it lies in a function the executable's (or library's) unwind tables name (src/linux/unwind.ts), which decodes
//   from its first instruction to its end (src/linux/x86-decode.ts) with the site among its
//   instructions and no indirect jump (whose targets could be anywhere in it);
// - the instructions right before it, at least 5 bytes of them, can run elsewhere unchanged: no
//   branch, no RIP-relative operand — or else those right after it (the jump then starts at the
//   `syscall` itself: glibc's wrappers test a flag and branch just before theirs);
// - no direct branch anywhere in the executable, and no return from a call, lands inside the 5
//   bytes that will be overwritten (but at their start).
//
// Those 5 bytes become `jmp STUB`; everything after them stays as it was (a branch to any later
// instruction runs the program's own code, and exits as before). The stub, in the site's slot (an
// executable page of wasp's), runs the displaced instructions before the site, steps RSP over the
// red zone, calls the layer, steps back, sets RCX as Linux leaves it, runs the displaced
// instructions after the site, and jumps back after the last displaced instruction: nothing below
// the program's RSP is touched, and page 0 stays unmapped.
//
// Each rewritten site's slot records the site — where the jump is and the bytes it replaced —
// which a debugger's call uses to put the program's own instructions back.
import type { GuestMemory } from "../memory/guest-memory.ts";
import { SITE_SLOT, SITES_SIZE, pagePermission, type LinuxLayout } from "./address-space.ts";
import type { ElfExecutable } from "./elf.ts";
import { decode } from "./x86-decode.ts";
import { functionAt, functionRanges, type FunctionRanges } from "./unwind.ts";
import { LinuxLayer } from "../abi/guest-abi.ts";

/** What a stub steps past before it calls the layer (the program's red zone), and back after it. */
export const STUB_RED_ZONE = 128;

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
  /**
   * where the call stopped at this site's exit goes on: after the `syscall` (site + 2), or, for a
   * jump over the site itself (whose bytes after the `syscall` are the jump's now), into the stub
   * just after its call of the layer
   */
  resume: number;
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

/** Code a site may lie in: an executable or a library, where it is (`bias` added to its addresses, [low, high) in the guest) and which of its pages are code now. */
export interface CodeOwner {
  elf: ElfExecutable;
  bias: number;
  low: number;
  high: number;
  /** whether the page at guest address `page` is executable and not writable */
  isCode(page: number): boolean;
}

/** The executable as the owner of its sites (its pages' permissions from its program headers). */
export function executableCode(elf: ElfExecutable, layout: LinuxLayout): CodeOwner {
  return {
    elf,
    bias: layout.bias,
    low: layout.low,
    high: layout.high,
    isCode: (page) => {
      const p = pagePermission(elf, layout, page);
      return p.present && p.exec && !p.write;
    },
  };
}

/** The file's bytes of [start, end) (guest addresses of `owner`'s code), or undefined where they are not all in one executable segment's file part. */
function fileCode(owner: CodeOwner, start: number, end: number): Uint8Array | undefined {
  const from = start - owner.bias;
  const to = end - owner.bias;
  const seg = owner.elf.segments.find((g) => g.exec && from >= g.vaddr && to <= g.vaddr + g.filesz);
  if (!seg) return undefined;
  const at = seg.offset + (from - seg.vaddr);
  return owner.elf.bytes.subarray(at, at + (to - from));
}

/** The reason a site is not rewritten when the slots ran out (the one that may change). */
export const NO_SLOT = "no slot left for another site";

/** The most pages walked down from a site looking for its library's first page (a library's text is far less). */
const MAX_LIBRARY_PAGES = 64 << 8;

/**
 * The library a site outside the executable lies in: the granted ELF file (`candidates`, parsed
 * by `parse`, e.g. cached) whose first page equals the page that starts the run of mapped pages
 * down from the site, within [regionLow, regionHigh). `protection(page)` gives a page's PROT bits
 * from the page tables (0: not mapped). Undefined when none matches: the site stays the host's.
 */
export function libraryCode(
  mem: GuestMemory,
  site: number,
  region: [number, number],
  protection: (page: number) => number,
  candidates: Iterable<Uint8Array>,
  parse: (bytes: Uint8Array) => ElfExecutable | undefined,
): CodeOwner | undefined {
  const [regionLow, regionHigh] = region;
  if (site < regionLow || site + 2 > regionHigh) return undefined;
  const EXEC_ONLY = 4 | 1; // PROT_EXEC | PROT_READ, no PROT_WRITE
  const isCode = (page: number) => page >= regionLow && page + PAGE <= regionHigh && protection(page) === EXEC_ONLY;
  if (!isCode(site - (site % PAGE))) return undefined;
  const heads: Uint8Array[] = [];
  for (const c of candidates) if (c.length >= PAGE && c[0] === 0x7f && c[1] === 0x45 && c[2] === 0x4c && c[3] === 0x46) heads.push(c);
  if (heads.length === 0) return undefined;
  for (let page = site - (site % PAGE), n = 0; page >= regionLow && n < MAX_LIBRARY_PAGES && protection(page) !== 0; page -= PAGE, n++) {
    const b = mem.bytes;
    if (b[page] !== 0x7f || b[page + 1] !== 0x45 || b[page + 2] !== 0x4c || b[page + 3] !== 0x46) continue;
    const here = b.subarray(page, page + PAGE);
    const file = heads.find((h) => Buffer.compare(h.subarray(0, PAGE), here) === 0);
    if (!file) return undefined; // an ELF header no granted file has: not a library wasp knows
    const elf = parse(file);
    const first = elf?.segments[0];
    if (!elf || !first || first.offset !== 0) return undefined;
    const bias = page - (first.vaddr - (first.vaddr % PAGE));
    const low = elf.low + bias;
    const high = elf.high + bias;
    if (site < low || site + 2 > high || low < regionLow || high > regionHigh) return undefined;
    return { elf, bias, low, high, isCode };
  }
  return undefined;
}

/** Where stubCodeAfter's code goes on after the layer's call: its `mov ecx, NEXT` (past the lea, the call and the lea back). */
const AFTER_LAYER_CALL = 5 + 5 + 8;

/**
 * The stub at `slot` for a jump placed over the site itself: the layer's call, RCX as Linux leaves
 * it (`next`, the address after the `syscall`), then `displaced` (the instructions after the site,
 * which see the result and the flags the layer left), back to `ret` after them.
 */
export function stubCodeAfter(slot: number, displaced: Uint8Array, next: number, ret: number): Uint8Array {
  const code: number[] = [0x48, 0x8d, 0x64, 0x24, 0x80]; // lea rsp, [rsp-128]: past the red zone
  code.push(0xe8, ...le32(LinuxLayer.CODE - (slot + code.length + 5))); // call the layer's entry
  code.push(...[0x48, 0x8d, 0xa4, 0x24, 0x80, 0x00, 0x00, 0x00]); // lea rsp, [rsp+128]
  code.push(0xb9, ...le32(next)); // mov ecx, NEXT (the layer left R11 = RFLAGS)
  code.push(...displaced);
  code.push(0xe9, ...le32(ret - (slot + code.length + 5))); // jmp RET
  return new Uint8Array(code);
}

/**
 * How to rewrite the site whose `syscall` returns to `ret`, into `slot`, or why not (`reason`).
 * Addresses are the guest's (the executable's plus the layout's bias); `mem` holds its code. A
 * site outside the executable is planned in the library `library` finds for it, if any.
 */
export function planRewrite(mem: GuestMemory, elf: ElfExecutable, layout: LinuxLayout, ret: bigint, slot: number, library?: (site: number) => CodeOwner | undefined): Rewrite | { reason: string } {
  const site = Number(ret - 2n);
  if (!Number.isSafeInteger(site)) return { reason: "not in the executable" };
  let owner: CodeOwner;
  if (site >= layout.low && site + 2 <= layout.high) owner = executableCode(elf, layout);
  else {
    const lib = library?.(site);
    if (!lib) return { reason: library ? "neither in the executable nor in a library it mapped" : "not in the executable" };
    owner = lib;
  }
  if (slot < layout.io.sites || slot + SITE_SLOT > layout.io.sites + SITES_SIZE) return { reason: NO_SLOT };
  const { bias } = owner;
  const code = (addr: number) => owner.isCode(addr - (addr % PAGE));
  if (mem.bytes[site] !== 0x0f || mem.bytes[site + 1] !== 0x05) return { reason: "not a syscall instruction" };
  const map = codeMap(owner.elf);
  const fn = functionAt(map.functions, site - bias);
  if (!fn) return { reason: "in no function the unwind tables name" };
  const [start, end] = [fn[0] + bias, fn[1] + bias];
  if (end - start > MAX_FUNCTION || start < owner.low || end > owner.high) return { reason: "its function is out of bounds" };
  for (let p = start - (start % PAGE); p < end; p += PAGE) if (!code(p)) return { reason: "its function is not all on read-only code pages" };
  // Decode the function from its first instruction, in the file's bytes: the memory's may hold
  // the jump of a site rewritten before in the same function (glibc's wrappers have two sites).
  const file = fileCode(owner, start, end);
  if (!file) return { reason: "its function is not in the file's executable segments" };
  const codeAt = (from: number, to: number) => file.subarray(from - start, to - start);
  const insns: { at: number; length: number; replayable: boolean }[] = [];
  let found = -1;
  for (let pc = start; pc < end; ) {
    const insn = decode(codeAt(pc, Math.min(end, pc + 15)), 0);
    if (!insn) return { reason: `its function does not decode (at 0x${pc.toString(16)})` };
    if (insn.flow.kind === "jmpIndirect") return { reason: "its function jumps indirectly" };
    if (pc === site && insn.flow.kind === "syscall") found = insns.length;
    insns.push({ at: pc, length: insn.length, replayable: insn.flow.kind === "next" && insn.mem?.base !== "rip" && insn.lea?.base !== "rip" });
    pc += insn.length;
  }
  if (found < 0) return { reason: "not an instruction of its function" };
  const landsInside = (from: number) => {
    for (let a = from + 1; a < from + JMP_LENGTH; a++) if (isTarget(map, a - bias)) return true;
    return false;
  };
  // The jump goes over the fewest instructions right before the site that hold it; where those
  // cannot run elsewhere (glibc's wrappers test a flag and branch just before their `syscall`),
  // over the site itself and the fewest instructions right after it.
  const backward = (): { at: number; end: number; stub: Uint8Array; resume: number } | { reason: string } => {
    let first = site;
    for (let i = found - 1; i >= 0 && site - first < JMP_LENGTH; i--) {
      const b = insns[i];
      if (!b.replayable || b.at + b.length !== first) return { reason: "the instructions before it cannot run elsewhere" };
      first = b.at;
    }
    if (site - first < JMP_LENGTH) return { reason: "too few instructions before it" };
    if (landsInside(first)) return { reason: "a branch may land inside the bytes the jump would take" };
    return { at: first, end: site, stub: stubCode(slot, codeAt(first, site), site + 2), resume: site + 2 };
  };
  const forward = (): { at: number; end: number; stub: Uint8Array; resume: number } | { reason: string } => {
    let last = site + 2;
    for (let i = found + 1; i < insns.length && last - site < JMP_LENGTH; i++) {
      const a = insns[i];
      if (!a.replayable || a.at !== last) return { reason: "the instructions after it cannot run elsewhere" };
      last = a.at + a.length;
    }
    if (last - site < JMP_LENGTH) return { reason: "too few instructions after it" };
    if (landsInside(site)) return { reason: "a branch may land inside the bytes the jump would take" };
    return { at: site, end: last, stub: stubCodeAfter(slot, codeAt(site + 2, last), site + 2, last), resume: slot + AFTER_LAYER_CALL };
  };
  let plan = backward();
  if ("reason" in plan) {
    const after = forward();
    if ("reason" in after) return { reason: `${plan.reason}, and ${after.reason.replace(/^a branch/, "a branch after it")}` };
    plan = after;
  }
  const { at: first, stub, resume } = plan;
  // what the jump and the stub take must be the file's still in memory (not a site rewritten already)
  const span = [Math.min(first, site), Math.max(plan.end, site + 2)];
  if (Buffer.compare(mem.bytes.subarray(span[0], span[1]), codeAt(span[0], span[1])) !== 0) return { reason: "its code in memory is not the file's (rewritten already?)" };
  if (stub.length > CODE_ROOM) return { reason: "its stub does not fit a slot" };
  const original = codeAt(first, first + JMP_LENGTH).slice();
  const slotBytes = new Uint8Array(SITE_SLOT);
  slotBytes.fill(0xcc, 0, CODE_ROOM);
  slotBytes.set(stub, SLOT.CODE);
  new DataView(slotBytes.buffer).setBigUint64(SLOT.AT, BigInt(first), true);
  slotBytes[SLOT.LENGTH] = original.length;
  slotBytes.set(original, SLOT.ORIGINAL);
  return { site, at: first, bytes: new Uint8Array([0xe9, ...le32(slot - (first + JMP_LENGTH))]), original, slot, slotBytes, resume };
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
