// The state a Linux guest starts in (src/linux/start.ts), read back from guest memory through the
// host's checked access the way the program itself will read it: argc, argv, envp and the auxiliary
// vector on the stack, the program headers where AT_PHDR says, the trampoline jumping to the entry,
// the segments' bytes in place, the special registers with SYSCALL and NX on. No VM needed.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { slow, zigPath } from "./support.ts";
import { kvm_segment, kvm_sregs } from "../ffi/kvm.ts";
import { Layout } from "../src/abi/guest-abi.ts";
import { BadArgsError } from "../src/errors.ts";
import { GuestAccess } from "../src/memory/guest-access.ts";
import { GuestMemory } from "../src/memory/guest-memory.ts";
import { linuxAccessRules, planLinux } from "../src/linux/address-space.ts";
import { parseElf, type ElfExecutable } from "../src/linux/elf.ts";
import { LINUX_ENTRY, MSR, linuxEntryCode } from "../src/linux/entry.ts";
import { AT } from "../src/linux/stack.ts";
import { linuxEntryState } from "../src/linux/start.ts";

const MIB = 1024 * 1024;
let dir: string;
const elves: Record<"static" | "pie", ElfExecutable> = {} as never;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "wasp-start-"));
  writeFileSync(join(dir, "p.c"), `int main(int argc, char **argv) { return argc; }\n`);
  for (const [out, extra] of [["static", []], ["pie", ["-fPIE", "-static-pie"]]] as const) {
    const cc = Bun.spawnSync([zigPath(), "cc", "-target", "x86_64-linux-musl", "-static", "-O2", ...extra, "-o", join(dir, out), join(dir, "p.c")]);
    if (cc.exitCode !== 0) throw new Error(`zig cc failed: ${cc.stderr.toString()}`);
    elves[out] = parseElf(new Uint8Array(readFileSync(join(dir, out))), out, Layout.MAPPED);
  }
}, slow(300_000));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const reset = { sregs: new Uint8Array(kvm_sregs.size), fpu: new Uint8Array(4096) };
const random = Uint8Array.from({ length: 16 }, (_, i) => i * 7 + 1);

describe("a Linux guest's entry state", () => {
  for (const kind of ["static", "pie"] as const) {
    test(`${kind}: what the program finds on its stack and in its memory`, () => {
      const elf = elves[kind];
      const layout = planLinux(elf, 16 * MIB);
      const argv = [kind, "two words", "ünïcode", ""];
      const state = linuxEntryState(elf, layout, { argv, envp: ["HOME=/", "K=V"], random, hwcap: 0x178bfbffn }, reset);
      const mem = new GuestMemory(layout.memory);
      for (const [at, bytes] of state.pieces) mem.bytes.set(bytes, at);
      const guest = new GuestAccess(mem, linuxAccessRules());
      const u64 = (at: bigint | number) => new DataView(guest.read(at, 8, "x").buffer).getBigUint64(0, true);
      const cstr = (at: bigint) => {
        const out: number[] = [];
        for (let p = at; ; p++) {
          const b = guest.read(p, 1, "x")[0];
          if (b === 0) return new TextDecoder().decode(new Uint8Array(out));
          out.push(b);
        }
      };
      // the stack: RSP 16-byte aligned at argc, inside the stack region, readable and writable by the guest
      expect(state.rsp % 16n).toBe(0n);
      expect(Number(state.rsp)).toBeGreaterThan(layout.stack[0]);
      guest.check(state.rsp, 8, "write", "x");
      let p = state.rsp;
      const word = () => {
        const v = u64(p);
        p += 8n;
        return v;
      };
      expect(word()).toBe(BigInt(argv.length));
      expect(argv.map(() => cstr(word()))).toEqual(argv);
      expect(word()).toBe(0n);
      expect([cstr(word()), cstr(word())]).toEqual(["HOME=/", "K=V"]);
      expect(word()).toBe(0n);
      const auxv = new Map<number, bigint>();
      for (;;) {
        const t = Number(word());
        const v = word();
        if (t === AT.NULL) break;
        auxv.set(t, v);
      }
      expect(auxv.get(AT.ENTRY)).toBe(BigInt(elf.entry + layout.bias));
      expect(auxv.get(AT.PAGESZ)).toBe(4096n);
      expect(auxv.get(AT.HWCAP)).toBe(0x178bfbffn);
      expect(auxv.get(AT.SECURE)).toBe(0n);
      expect(cstr(auxv.get(AT.EXECFN)!)).toBe(kind);
      expect(cstr(auxv.get(AT.PLATFORM)!)).toBe("x86_64");
      expect([...guest.read(auxv.get(AT.RANDOM)!, 16, "x")]).toEqual([...random]);
      // AT_PHDR: the program headers, as in the file, where the program looks for them
      const phoff = Number(new DataView(elf.bytes.buffer, elf.bytes.byteOffset).getBigUint64(32, true));
      expect(auxv.get(AT.PHNUM)).toBe(BigInt(elf.phnum));
      expect([...guest.read(auxv.get(AT.PHDR)!, elf.phnum * 56, "x")]).toEqual([...elf.bytes.subarray(phoff, phoff + elf.phnum * 56)]);
      // every segment's file bytes in place; bss zero
      for (const s of elf.segments) {
        const at = s.vaddr + layout.bias;
        expect(Buffer.compare(mem.bytes.subarray(at, at + s.filesz), elf.bytes.subarray(s.offset, s.offset + s.filesz))).toBe(0);
        expect(mem.bytes.subarray(at + s.filesz, at + s.memsz).every((b) => b === 0)).toBe(true);
      }
      // entered through the trampoline, which jumps to the program's entry; the system-call entry in place
      expect(state.rip).toBe(BigInt(Layout.TRAMPOLINE));
      expect(new DataView(mem.bytes.buffer).getBigUint64(Layout.TRAMPOLINE + 0x40, true)).toBe(BigInt(elf.entry + layout.bias));
      expect([...mem.bytes.subarray(LINUX_ENTRY, LINUX_ENTRY + linuxEntryCode().length)]).toEqual([...linuxEntryCode()]);
      // the native GDT survives the Linux tables (64-bit kernel code at 0x08)
      expect(new DataView(mem.bytes.buffer).getBigUint64(Layout.GDT + 8, true)).toBe(0x00af9b000000ffffn);
      // special registers: long mode at CPL3 on the Linux tables, SYSCALL and NX enabled
      const sv = new DataView(state.sregs.buffer);
      expect(sv.getBigUint64(kvm_sregs.off("efer"), true)).toBe(0xd01n); // SCE | LME | LMA | NXE
      expect(sv.getBigUint64(kvm_sregs.off("cr3"), true)).toBe(BigInt(Layout.PML4));
      expect(Number(kvm_segment.read(sv, kvm_sregs.off("cs")).selector)).toBe(0x1b);
      expect(new Map(state.msrs).get(MSR.LSTAR)).toBe(BigInt(LINUX_ENTRY));
      mem.close();
    });
  }

  test("arguments that do not fit the stack are a BadArgsError, not a corrupt stack", () => {
    const layout = planLinux(elves.static, 16 * MIB, 64 * 1024);
    expect(() => linuxEntryState(elves.static, layout, { argv: ["p", "x".repeat(100_000)], envp: [], random, hwcap: 0n }, reset)).toThrow(BadArgsError);
    expect(() => linuxEntryState(elves.static, layout, { argv: ["p", "a\0b"], envp: [], random, hwcap: 0n }, reset)).toThrow(/NUL/);
  });
});
