// Which system-call sites the host rewrites into a jump to a stub that calls the in-VM layer
// (src/linux/sites.ts), and where it finds the functions they are in (src/linux/unwind.ts): on
// real static executables built with the bundled zig cc, every rewrite is checked byte by byte
// (the jump, the displaced instructions the stub runs, the way back); on hand-written assembly,
// each refusal by name. The unwind and symbol tables are untrusted bytes: any of them, and any
// change to a real one, give function ranges or none, never an exception. No VM needed.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runs } from "./fuzz.ts";
import { slow, zigPath } from "./support.ts";
import { GuestMemory } from "../src/memory/guest-memory.ts";
import { SITE_SLOT, planLinux, segmentPieces, type LinuxLayout } from "../src/linux/address-space.ts";
import { parseElf, type ElfExecutable } from "../src/linux/elf.ts";
import { planRewrite, recordedSites, stubCode, type Rewrite } from "../src/linux/sites.ts";
import { functionAt, functionRanges } from "../src/linux/unwind.ts";
import { decode } from "../src/linux/x86-decode.ts";
import { LinuxLayer } from "../src/abi/guest-abi.ts";

const MIB = 1024 * 1024;
let dir: string;
let musl: ElfExecutable;
let asm: ElfExecutable;

// hand-written functions, each with its size (the symbol table gives their ranges) and no unwind entry
const ASM = `
.intel_syntax noprefix
.text
.globl _start
.type _start,@function
_start:
  call plain
  mov edi, 0
  mov eax, 60
  syscall
.size _start, .-_start
.macro fn name
.globl \\name
.type \\name,@function
\\name:
.endm
.macro end name
.size \\name, .-\\name
.endm
fn plain
  mov eax, 39
  syscall
  ret
end plain
fn several
  mov rsi, rdi
  mov rdi, rdx
  mov r10, rcx
  syscall
  ret
end several
fn riprel
  lea rsi, [rip + data]
  syscall
  ret
end riprel
fn short
  xor eax, eax
  syscall
  ret
end short
fn indirect
  mov eax, 39
  syscall
  jmp rax
end indirect
fn into
  mov rsi, rdi
inside:
  mov rdi, rdx
  syscall
  ret
end into
fn jumper
  jmp inside
end jumper
fn startjump
  mov rax, rdi
again:
  mov rdi, 1
  syscall
  jmp again
end startjump
.data
data: .quad 0
`;

function build(name: string, args: string[], source: string, ext: string): ElfExecutable {
  const src = join(dir, `${name}.${ext}`);
  writeFileSync(src, source);
  const out = join(dir, name);
  const cc = Bun.spawnSync([zigPath(), "cc", "-target", "x86_64-linux-musl", "-static", ...args, "-o", out, src]);
  if (cc.exitCode !== 0) throw new Error(`zig cc failed: ${cc.stderr.toString()}`);
  return parseElf(new Uint8Array(readFileSync(out)), name, 1 << 30);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "wasp-sites-"));
  musl = build("musl", ["-O2"], `#include <stdio.h>\n#include <unistd.h>\n#include <time.h>\nint main(int argc, char **argv) { char b[64]; ssize_t n = read(0, b, sizeof b); struct timespec ts; clock_gettime(CLOCK_REALTIME, &ts); printf("%zd %s %ld\\n", n, argv[0], (long)ts.tv_sec); fwrite(b, 1, n > 0 ? n : 0, stdout); return argc; }\n`, "c");
  asm = build("asm", ["-nostdlib"], ASM, "s");
}, slow(300_000));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The executable loaded into guest memory as its layout places it. */
function load(elf: ElfExecutable): { mem: GuestMemory; layout: LinuxLayout } {
  const layout = planLinux(elf, 16 * MIB);
  const mem = new GuestMemory(layout.memory);
  for (const [at, bytes] of segmentPieces(elf, layout)) mem.bytes.set(bytes, at);
  return { mem, layout };
}

/** Every `syscall` of every function the tables name, decoded from the function's start. */
function sitesOf(elf: ElfExecutable, mem: GuestMemory, bias: number): number[] {
  const ranges = functionRanges(elf.bytes);
  const sites = new Set<number>();
  for (let i = 0; i < ranges.starts.length; i++) {
    for (let pc = ranges.starts[i] + bias; pc < ranges.ends[i] + bias; ) {
      const insn = decode(mem.bytes.subarray(pc, pc + 15), 0);
      if (!insn) break;
      if (insn.flow.kind === "syscall") sites.add(pc);
      pc += insn.length;
    }
  }
  return [...sites].sort((a, b) => a - b);
}

function symbol(elf: ElfExecutable, name: string): number {
  // the test's own small reader of .symtab: names are what the assembler gave
  const b = elf.bytes;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const shoff = Number(dv.getBigUint64(40, true));
  const shnum = dv.getUint16(60, true);
  const sec = (i: number) => ({ type: dv.getUint32(shoff + i * 64 + 4, true), offset: Number(dv.getBigUint64(shoff + i * 64 + 24, true)), size: Number(dv.getBigUint64(shoff + i * 64 + 32, true)), link: dv.getUint32(shoff + i * 64 + 40, true) });
  for (let i = 0; i < shnum; i++) {
    const s = sec(i);
    if (s.type !== 2) continue;
    const strtab = sec(s.link);
    for (let at = s.offset; at < s.offset + s.size; at += 24) {
      const nameAt = strtab.offset + dv.getUint32(at, true);
      const end = b.indexOf(0, nameAt);
      if (new TextDecoder().decode(b.subarray(nameAt, end)) === name) return Number(dv.getBigUint64(at + 8, true));
    }
  }
  throw new Error(`no symbol ${name}`);
}

/** Checks one rewrite against the memory it was planned on: what the jump replaces, and what the stub does. */
function checkRewrite(r: Rewrite, mem: GuestMemory): void {
  const forward = r.at === r.site;
  if (!forward) expect(r.site - r.at).toBeGreaterThanOrEqual(5);
  expect([...r.original]).toEqual([...mem.bytes.subarray(r.at, r.at + 5)]);
  // the jump goes to the slot
  expect(r.bytes[0]).toBe(0xe9);
  expect(r.at + 5 + new DataView(r.bytes.buffer).getInt32(1, true)).toBe(r.slot);
  const insns: string[] = [];
  const targets: number[] = [];
  const decodeStub = (from: number) => {
    let pc = from;
    while (pc < 64 && r.slotBytes[pc] !== 0xcc) {
      const insn = decode(r.slotBytes.subarray(pc), 0);
      if (!insn) throw new Error(`the stub does not decode at ${pc}`);
      insns.push(insn.mnemonic);
      if (insn.flow.kind === "call" || insn.flow.kind === "jmp") targets.push(r.slot + insn.flow.target + pc);
      pc += insn.length;
    }
  };
  if (!forward) {
    // the stub: the displaced instructions, byte for byte, then the layer's call, then back after the syscall
    const displaced = mem.bytes.subarray(r.at, r.site);
    expect([...r.slotBytes.subarray(0, displaced.length)]).toEqual([...displaced]);
    expect([...r.slotBytes.subarray(0, stubCode(r.slot, displaced, r.site + 2).length)]).toEqual([...stubCode(r.slot, displaced, r.site + 2)]);
    decodeStub(displaced.length);
    expect(insns).toEqual(["lea", "call", "lea", "mov", "jmp"]);
    expect(targets).toEqual([LinuxLayer.CODE, r.site + 2]);
    expect(r.resume).toBe(r.site + 2);
    return;
  }
  // over the site itself: the layer's call, RCX, the instructions after the site byte for byte, back after them
  decodeStub(0);
  expect(insns.slice(0, 4)).toEqual(["lea", "call", "lea", "mov"]);
  expect(insns[insns.length - 1]).toBe("jmp");
  const back = targets[targets.length - 1];
  expect(back).toBeGreaterThanOrEqual(r.site + 5);
  const after = mem.bytes.subarray(r.site + 2, back);
  expect([...r.slotBytes.subarray(18 + 5, 18 + 5 + after.length)]).toEqual([...after]);
  expect(targets[0]).toBe(LinuxLayer.CODE);
  // a call stopped at this site's own exit goes on at the stub's `mov ecx`
  expect(r.resume).toBe(r.slot + 18);
  expect(r.slotBytes[18]).toBe(0xb9);
}

describe("function ranges from unwind and symbol tables", () => {
  test("a musl program: every function it names holds its own first instruction, and main is where its symbol says", () => {
    const ranges = functionRanges(musl.bytes);
    expect(ranges.starts.length).toBeGreaterThan(20);
    for (let i = 1; i < ranges.starts.length; i++) expect(ranges.starts[i]).toBeGreaterThan(ranges.starts[i - 1]);
    const main = symbol(musl, "main");
    expect(functionAt(ranges, main)?.[0]).toBe(main);
    expect(functionAt(ranges, main + 1)?.[0]).toBe(main);
    expect(functionAt(ranges, 0x100)).toBeUndefined();
  });

  test("hand-written assembly with no unwind entries: its sized symbols are its functions", () => {
    const ranges = functionRanges(asm.bytes);
    for (const name of ["plain", "several", "riprel", "into"]) expect(functionAt(ranges, symbol(asm, name))?.[0]).toBe(symbol(asm, name));
  });

  test("any bytes, and any change to a real executable's tables, give ranges or none, never an exception", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
        const r = functionRanges(bytes);
        expect(r.starts.length).toBe(r.ends.length);
      }),
      { numRuns: runs(2000) },
    );
    const real = musl.bytes;
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(real.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), (edits) => {
        const b = real.slice();
        for (const [at, v] of edits) b[at] = v;
        const r = functionRanges(b);
        for (let i = 1; i < r.starts.length; i++) expect(r.starts[i]).toBeGreaterThan(r.starts[i - 1]);
      }),
      { numRuns: runs(300) },
    );
  });
});

describe("rewriting a site", () => {
  test("a musl program: most of its sites are rewritten, each exactly as planned; a slot records it", () => {
    const { mem, layout } = load(musl);
    const sites = sitesOf(musl, mem, layout.bias);
    expect(sites.length).toBeGreaterThan(10);
    let rewritten = 0;
    const reasons = new Map<string, number>();
    sites.forEach((site) => {
      // slots are taken in order, one per rewritten site
      const slot = layout.io.sites + rewritten * SITE_SLOT;
      const r = planRewrite(mem, musl, layout, BigInt(site + 2), slot);
      if ("reason" in r) {
        reasons.set(r.reason, (reasons.get(r.reason) ?? 0) + 1);
        return;
      }
      checkRewrite(r, mem);
      mem.bytes.set(r.slotBytes, r.slot);
      rewritten++;
    });
    expect(rewritten / sites.length).toBeGreaterThan(0.7);
    // the slots record what each jump replaced, for a debugger's call to put back
    const recorded = recordedSites(mem.bytes, layout);
    expect(recorded.length).toBe(rewritten);
    for (const { at, original } of recorded) expect([...original]).toEqual([...mem.bytes.subarray(at, at + 5)]);
    mem.close();
  });

  test("each refusal by name: RIP-relative or too few bytes before it, an indirect jump in its function, a branch into the jump's bytes, not a syscall, no slot", () => {
    const { mem, layout } = load(asm);
    const slot = layout.io.sites;
    const plan = (name: string) => {
      const site = sitesOf(asm, mem, layout.bias).find((s) => functionAt(functionRanges(asm.bytes), s - layout.bias)?.[0] === symbol(asm, name) + 0);
      if (site === undefined) throw new Error(`no site in ${name}`);
      return planRewrite(mem, asm, layout, BigInt(site + 2), slot);
    };
    const ok = plan("plain");
    expect("reason" in ok).toBe(false);
    if (!("reason" in ok)) checkRewrite(ok, mem);
    const several = plan("several");
    expect("reason" in several ? several.reason : several.site - several.at).toBe(6); // two moves of 3 bytes
    // where the instructions after the site cannot take the jump either (each a ret or a branch here)
    expect((plan("riprel") as { reason: string }).reason).toStartWith("the instructions before it cannot run elsewhere, and ");
    expect((plan("short") as { reason: string }).reason).toStartWith("too few instructions before it, and ");
    expect(plan("indirect")).toEqual({ reason: "its function jumps indirectly" });
    expect((plan("into") as { reason: string }).reason).toStartWith("a branch may land inside the bytes the jump would take, and ");
    // a branch to the first displaced instruction lands on the jump itself: allowed
    const start = plan("startjump");
    expect("reason" in start).toBe(false);
    const site = symbol(asm, "plain") + 5;
    expect(planRewrite(mem, asm, layout, BigInt(site + 1 + 2), slot)).toEqual({ reason: "not a syscall instruction" });
    expect(planRewrite(mem, asm, layout, BigInt(site + 2), layout.io.readOnly)).toEqual({ reason: "no slot left for another site" });
    expect(planRewrite(mem, asm, layout, 0x1000n, slot)).toEqual({ reason: "not in the executable" });
    mem.close();
  });
});
