// Every access the host makes for a guest goes through GuestAccess: translated through the guest's
// own page tables and allowed only where the guest could make it itself at CPL3. These tests walk
// the host-built tables of a native guest (the same bytes every native shell starts from) in plain
// memory: no VM is needed to prove which addresses a hypercall may touch.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { runs } from "./fuzz.ts";
import { GuestMemory, PAGE_SIZE } from "../src/memory/guest-memory.ts";
import { GuestAccess } from "../src/memory/guest-access.ts";
import { accessRules } from "../src/shell/shell.ts";
import { longModeTablePieces, trampolinePage } from "../src/image/boot.ts";
import { Layout } from "../src/abi/guest-abi.ts";
import { ClosedError, MemoryFaultError } from "../src/errors.ts";

const RAM = 16 * 1024 * 1024;

/** Native guest memory: the host's tables and trampoline written in, the rest zero; host writes recorded. */
function nativeMemory() {
  const mem = new GuestMemory(RAM);
  for (const [at, bytes] of longModeTablePieces()) mem.bytes.set(bytes, at);
  mem.bytes.set(trampolinePage(0x100000n, new Uint8Array(4096), true), Layout.TRAMPOLINE);
  const written: [number, number][] = [];
  const guest = new GuestAccess(mem, accessRules(false), (phys, len) => written.push([phys, len]));
  return { mem, guest, written };
}

function faultOf(fn: () => unknown): MemoryFaultError {
  try {
    fn();
  } catch (e) {
    if (e instanceof MemoryFaultError) return e;
    throw e;
  }
  throw new Error("expected a MemoryFaultError");
}

describe("a native guest cannot have the host write where it cannot write", () => {
  test("the read-only trampoline, the IDT and the page tables are refused, and nothing is written", () => {
    const { mem, guest, written } = nativeMemory();
    const before = mem.bytes.slice(0, Layout.HOST_END);
    // the review's three escalations: hypercall(4, 0x1c800, 8), (4, 0x6000, 512), (4, 0x4020, 1)
    expect(faultOf(() => guest.randomize(0x1c800n, 8, "random buffer")).message).toMatch(/^random buffer \[0x1c800, \+0x8\) /);
    expect(faultOf(() => guest.randomize(0x6000n, 512, "random buffer")).message).toMatch(/supervisor-only/);
    const pt = faultOf(() => guest.randomize(0x4020n, 1, "random buffer"));
    expect(pt.address).toBe(0x4020n);
    expect(pt.access).toBe("write");
    expect(pt.code).toBe("WASP_MEMORY_FAULT");
    for (const page of [0x1000, 0x2000, 0x3000, 0x5000, 0x18000, 0x19000, 0x1b000]) {
      expect(() => guest.write(page, new Uint8Array([1]), "x")).toThrow(MemoryFaultError);
    }
    expect(Buffer.compare(mem.bytes.subarray(0, Layout.HOST_END), before)).toBe(0);
    expect(written).toEqual([]);
    mem.close();
  });

  test("the trampoline can be neither written nor read through the host (it is a host page)", () => {
    const { mem, guest } = nativeMemory();
    expect(faultOf(() => guest.write(Layout.TRAMPOLINE, new Uint8Array(1), "x")).message).toMatch(/read-only/);
    expect(faultOf(() => guest.read(Layout.TRAMPOLINE, 1, "x")).message).toMatch(/host page/);
    mem.close();
  });

  test("a range that starts in the guest's memory and runs into a host page writes nothing", () => {
    const { mem, guest, written } = nativeMemory();
    // [0x17ff8, 0x18008): the console buffer's last bytes, then the TSS
    expect(() => guest.write(0x17ff8, new Uint8Array(16).fill(7), "x")).toThrow(/supervisor-only/);
    expect(mem.bytes.subarray(0x17ff8, 0x18000).every((b) => b === 0)).toBe(true);
    expect(written).toEqual([]);
    mem.close();
  });

  test("the guest's own memory is written, across 4 KiB and 2 MiB mappings, and every write is recorded", () => {
    const { mem, guest, written } = nativeMemory();
    const data = new Uint8Array(64).map((_, i) => i + 1);
    guest.write(0x1fffe0, data, "x"); // the last 4 KiB page of the first 2 MiB, then a 2 MiB page
    expect(mem.bytes.slice(0x1fffe0, 0x200020)).toEqual(data);
    expect(written).toEqual([[0x1fffe0, 32], [0x200000, 32]]);
    expect(guest.read(0x1fffe0, 64, "x")).toEqual(data);
    guest.randomize(0x300000, 4096, "random buffer");
    expect(mem.bytes.subarray(0x300000, 0x301000).some((b) => b !== 0)).toBe(true);
    expect(guest.check(Layout.INFO, 144, "write", "the info page")).toBe(Layout.INFO);
    mem.close();
  });

  test("unmapped, past-RAM, non-canonical and wrapping addresses are refused", () => {
    const { mem, guest } = nativeMemory();
    expect(faultOf(() => guest.read(0x10, 8, "x")).message).toMatch(/not mapped/); // page 0
    expect(faultOf(() => guest.read(RAM, 8, "x")).message).toMatch(/outside guest RAM/); // identity-mapped, no RAM
    expect(faultOf(() => guest.read(0x0000800000000000n, 8, "x")).message).toMatch(/canonical/);
    expect(faultOf(() => guest.read(0xffff800000000000n, 8, "x")).message).toMatch(/not mapped/);
    expect(faultOf(() => guest.write(0xfffffffffffffff0n, new Uint8Array(32), "x")).message).toMatch(/canonical/);
    expect(faultOf(() => guest.read(0x7ffffffffff8n, 16, "x")).message).toMatch(/canonical/);
    mem.close();
  });

  test("for any range, a write succeeds exactly when every page of it is one the guest may write", () => {
    const { mem, guest } = nativeMemory();
    const pages = RAM / PAGE_SIZE;
    const userWritable = (page: number) =>
      page >= 1 && page < pages && !(page * PAGE_SIZE >= Layout.PML4 && page * PAGE_SIZE < Layout.INFO) && !(page * PAGE_SIZE >= Layout.TSS && page * PAGE_SIZE < Layout.HOST_END);
    const address = fc.oneof(fc.integer({ min: 0, max: 0x40000 }), fc.integer({ min: 0, max: RAM + 0x10000 }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }));
    fc.assert(
      fc.property(address, fc.integer({ min: 0, max: 3 * PAGE_SIZE }), (addr, len) => {
        const a = BigInt(addr);
        let expected = a + BigInt(len) <= BigInt(RAM);
        if (expected && len > 0) {
          for (let p = Number(a) / PAGE_SIZE | 0; p <= Math.floor((Number(a) + len - 1) / PAGE_SIZE); p++) expected &&= userWritable(p);
        }
        if (len === 0) expected = true; // nothing is touched
        let ok = true;
        try {
          guest.write(a, new Uint8Array(len), "x");
        } catch (e) {
          if (!(e instanceof MemoryFaultError)) throw e;
          ok = false;
        }
        return ok === expected;
      }),
      { numRuns: runs(2000) },
    );
    mem.close();
  });
});

describe("a privileged guest owns its whole RAM", () => {
  test("physical addresses inside RAM are written, anything else is a memory fault", () => {
    const mem = new GuestMemory(RAM);
    const guest = new GuestAccess(mem, accessRules(true));
    guest.write(0x1000, new Uint8Array([9]), "x");
    expect(mem.bytes[0x1000]).toBe(9);
    expect(guest.check(RAM - 8, 8, "write", "x")).toBe(RAM - 8);
    expect(faultOf(() => guest.write(RAM - 4, new Uint8Array(8), "x")).message).toMatch(/outside guest RAM/);
    expect(faultOf(() => guest.read(2n ** 64n - 1n, 2, "x")).message).toMatch(/outside guest RAM/);
    mem.close();
  });
});

test("closed guest memory refuses its views with a ClosedError instead of handing out unmapped memory", () => {
  const mem = new GuestMemory(RAM);
  const guest = new GuestAccess(mem, accessRules(true));
  mem.close();
  for (const use of [() => mem.bytes, () => mem.view, () => mem.read(0, 8), () => guest.read(0, 8, "x")]) {
    expect(use).toThrow(new ClosedError("guest memory"));
  }
  expect(new ClosedError("guest memory").code).toBe("WASP_CLOSED");
});
