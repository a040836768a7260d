// A native guest's stack lies under its data window with unmapped guard pages below it, so an
// overflow faults instead of silently writing the heap (and then the image). The layout and the
// page tables are checked here without a VM; tests/virtine.test.ts runs overflowing guests.
import { describe, expect, test } from "bun:test";
import { GuestMemory, PAGE_SIZE } from "../src/memory/guest-memory.ts";
import { GuestAccess } from "../src/memory/guest-access.ts";
import { accessRules } from "../src/shell/shell.ts";
import { GUARD_BYTES, longModeTablePieces, stackGuard } from "../src/image/boot.ts";
import { Layout } from "../src/abi/guest-abi.ts";
import { DEFAULT_STACK_SIZE, MIN_STACK, planMemory } from "../src/virtine/runner.ts";
import { MIB, MIN_MEMORY, buildNativeImage, parseImage } from "../src/image/image.ts";
import { BadArgsError, MemoryFaultError } from "../src/errors.ts";

const image = parseImage(buildNativeImage([0xe6, 0xfa]), "tiny");

/** Guest memory with the host's tables for `guard`, and a user's view of it. */
function tablesWith(memory: number, guard: ReturnType<typeof stackGuard>) {
  const mem = new GuestMemory(memory);
  for (const [at, bytes] of longModeTablePieces(guard)) mem.bytes.set(bytes, at);
  return { mem, guest: new GuestAccess(mem, accessRules(false)) };
}

const mapped = (guest: GuestAccess, addr: number) => {
  try {
    guest.check(addr, 1, "write", "x");
    return true;
  } catch (e) {
    if (e instanceof MemoryFaultError) return false;
    throw e;
  }
};

describe("the memory plan", () => {
  test("16 MiB: a 1 MiB data window at the top, a 1 MiB stack under it, 16 guard pages under that", () => {
    const plan = planMemory(image, 16 * MIB);
    expect(plan).toEqual({ memory: 16 * MIB, dataSize: MIB, stackSize: DEFAULT_STACK_SIZE });
    expect(stackGuard(16 * MIB - MIB - MIB)).toEqual({ start: 14 * MIB - GUARD_BYTES, end: 14 * MIB });
  });

  test("the smallest memory still runs: stack and window shrink to fit, the stack at least 64 KiB", () => {
    const plan = planMemory(image, MIN_MEMORY);
    expect(plan.stackSize).toBeGreaterThanOrEqual(MIN_STACK);
    expect(plan.dataSize).toBeGreaterThan(0);
    expect(plan.stackSize + plan.dataSize).toBeLessThan(MIN_MEMORY - 0x100000);
  });

  test("sizes given must fit, be whole pages, and the stack at least 64 KiB", () => {
    expect(planMemory(image, 64 * MIB, undefined, 8 * MIB).stackSize).toBe(8 * MIB);
    expect(() => planMemory(image, 16 * MIB, undefined, 15 * MIB)).toThrow(BadArgsError);
    expect(() => planMemory(image, 16 * MIB, undefined, 4096)).toThrow("stack size 4096 is not a multiple of 4 KiB of at least 64 KiB");
    expect(() => planMemory(image, 16 * MIB, undefined, 65537)).toThrow(/is not a multiple of 4 KiB/);
  });
});

describe("the guard pages in the host's page tables", () => {
  for (const [what, memory, stackBottom] of [
    ["above the first 2 MiB (the guard region's own page table)", 16 * MIB, 14 * MIB],
    ["not 2 MiB-aligned", 16 * MIB, 13 * MIB + 5 * PAGE_SIZE],
    ["in the first 2 MiB (the template's page table)", MIN_MEMORY, 0x1c0000],
  ] as const) {
    test(`are unmapped, and only they, when the stack starts ${what}`, () => {
      const guard = stackGuard(stackBottom);
      expect(guard.end - guard.start).toBeGreaterThanOrEqual(PAGE_SIZE);
      expect(guard.end - guard.start).toBeLessThanOrEqual(GUARD_BYTES);
      const { mem, guest } = tablesWith(memory, guard);
      for (let a = guard.start; a < guard.end; a += PAGE_SIZE) expect(mapped(guest, a)).toBe(false);
      expect(mapped(guest, guard.start - 1)).toBe(true); // the heap's last byte
      expect(mapped(guest, guard.end)).toBe(true); // the stack's lowest byte
      expect(mapped(guest, memory - 1)).toBe(true);
      // the guard's page table is the host's: a guest cannot map its guard back
      expect(mapped(guest, Layout.STACK_PT)).toBe(false);
      mem.close();
    });
  }

  test("a guard that crosses a 2 MiB boundary or is not whole pages is refused", () => {
    expect(() => longModeTablePieces({ start: 2 * MIB - PAGE_SIZE, end: 2 * MIB + PAGE_SIZE })).toThrow(/within one 2 MiB region/);
    expect(() => longModeTablePieces({ start: 100, end: PAGE_SIZE })).toThrow(/whole pages/);
  });
});
