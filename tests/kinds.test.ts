// Image kinds (src/kinds/): each kind's plan, entry state and rules come from its own module, and
// the snapshot, shell and runner ask the kind instead of branching on it. No VM needed: an entry
// snapshot is built from a fresh vCPU's state made up here.
import { expect, test } from "bun:test";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { kindOf, kindOfMeta } from "../src/kinds/kinds.ts";
import { Snapshot } from "../src/snapshot/snapshot.ts";
import { buildNativeImage, parseImage } from "../src/image/image.ts";
import { Layout } from "../src/abi/guest-abi.ts";
import { kvm_regs, kvm_sregs, kvm_xsave } from "../ffi/kvm.ts";
import { ROOT } from "./support.ts";

const MIB = 1024 * 1024;
const reset = { sregs: new Uint8Array(kvm_sregs.size), fpu: new Uint8Array(kvm_xsave.size), msrs: new Uint8Array(8) };
const regs = (s: Snapshot) => kvm_regs.read(new DataView(s.regs.buffer));

test("a native image's entry state: CPL3 tables with its stack guard, the trampoline, RSP at the data window", () => {
  const image = parseImage(buildNativeImage([0xe6, 0xfa]), "n");
  const plan = kindOf("native").plan(image, 16 * MIB, undefined, undefined);
  using s = Snapshot.entry(image, plan.memory, reset, plan);
  expect(s.privileged).toBe(false);
  expect(regs(s).rip).toBe(BigInt(Layout.TRAMPOLINE));
  expect(regs(s).rsp).toBe(BigInt(16 * MIB - plan.dataSize));
  expect(s.guard).toEqual({ start: 14 * MIB - 64 * 1024, end: 14 * MIB });
  expect(s.pieces.map(([at]) => at)).toContain(Layout.STACK_PT);
  expect(s.pieces.map(([at]) => at)).toContain(Layout.TRAMPOLINE);
  expect(s.populated[Layout.STACK_PT / 4096]).toBe(1);
  expect(kindOfMeta(s.meta)).toBe(kindOf("native"));
});

test("a raw image's entry state: real mode at 0x8000, privileged, no host tables, no data", () => {
  const image = parseImage(new Uint8Array([0xf4]), "r", { raw: true });
  const plan = kindOf("raw").plan(image, undefined, undefined, undefined);
  expect(plan).toEqual({ memory: 16 * MIB, dataSize: 0, stackSize: 0 });
  using s = Snapshot.entry(image, plan.memory, reset, plan);
  expect(s.privileged).toBe(true);
  expect(regs(s).rip).toBe(0x8000n);
  expect(regs(s).rsp).toBe(0x8000n);
  expect(s.guard).toBeUndefined();
  expect(s.pieces.map(([at]) => at)).toEqual([0x8000]);
  expect(kindOf("raw").access).toEqual({ hostRanges: [] });
});

test("the snapshot, the shell and the runner ask the kind: no branch on an image kind's name there", () => {
  const files = ["src/snapshot/snapshot.ts", ...readdirSync(join(ROOT, "src/shell")).map((f) => `src/shell/${f}`), ...readdirSync(join(ROOT, "src/virtine")).map((f) => `src/virtine/${f}`)];
  for (const f of files) {
    const branches = readFileSync(join(ROOT, f), "utf8").match(/kind\s*[!=]==\s*"(native|raw)"/g) ?? [];
    expect({ f, branches }).toEqual({ f, branches: [] });
  }
});
