// Running images through the library: results, arguments, output, exits, and the errors of
// images and options that cannot run.
import { describe, expect, test } from "bun:test";
import { Runner } from "../src/virtine/runner.ts";
import { readImageFile } from "../src/image/file.ts";
import { parseImage } from "../src/image/image.ts";
import { Layout } from "../src/abi/guest-abi.ts";
import { BadArgsError, BadImageError, GuestFaultError, MemoryFaultError, WaspError } from "../src/errors.ts";
import { REAL, X86, guest, nativeImage, fdTable, fdsOpenedSince } from "./support.ts";

const load = (name: string, opts = {}) => Runner.fromFile(guest(name), opts);
const fibRef = (n: number): bigint => (n < 2 ? BigInt(n) : fibRef(n - 1) + fibRef(n - 2));

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof WaspError) return e.code;
    throw e;
  }
  throw new Error("expected a WaspError, nothing was thrown");
}

describe("native images (host-built long mode, CPL3)", () => {
  test("fib(n) is computed by the guest for several n, on one warm shell", () => {
    using v = load("fib");
    for (const n of [0, 1, 2, 10, 20, 25]) expect(v.run([n]).value).toBe(fibRef(n));
  });

  test("fib(30) returns 832040", () => {
    using v = load("fib");
    expect(v.run([30]).value).toBe(832040n);
  });

  test("a pure computation leaves with exactly one exit", () => {
    using v = load("fib");
    expect(v.run([15]).exits).toBe(1);
    using noop = load("noop");
    expect(noop.run().exits).toBe(1);
  });

  test("six arguments arrive in RDI..R9 and in the info page", () => {
    using v = load("sum6");
    const args = [1n, 2n, 3n, 4n, 5n, 0xffff_ffff_ffffn];
    const expected = args.reduce((s, a, i) => BigInt.asUintN(64, s + a * BigInt(i + 1)), 0n);
    expect(v.run(args).value).toBe(expected);
  });

  test("negative arguments are passed as their two's complement", () => {
    using v = load("sum6");
    expect(v.run([-1, 0, 0, 0, 0, 0]).value).toBe(0xffff_ffff_ffff_ffffn);
  });

  test("console output is buffered in guest memory and collected at the single exit", () => {
    using v = load("hello");
    const r = v.run();
    expect(new TextDecoder().decode(r.console)).toBe("hello from a virtine\n");
    expect(r.exits).toBe(1);
  });

  test("output larger than the console buffer is flushed by write hypercalls and arrives whole", () => {
    using v = load("printer");
    const n = 10_000;
    const r = v.run([n]);
    const lines = new TextDecoder().decode(r.console).split("\n");
    expect(lines.length).toBe(n + 1);
    expect(lines[n - 1]).toBe(`line ${n - 1}`);
    expect(r.exits).toBeGreaterThan(1);
    expect(r.value).toBe(BigInt(n));
  });

  test("output beyond the cap is dropped and reported as truncated", () => {
    using v = load("printer", { maxOutput: 100 });
    const r = v.run([50]);
    expect(r.console.length).toBe(100);
    expect(r.consoleTruncated).toBe(true);
    expect(v.run([1]).consoleTruncated).toBe(false);
  });

  test("the memory an image declares in its header is what it gets", () => {
    using v = new Runner(parseImage(nativeImage(X86.exit, { memWanted: 32 << 20 }), "big"));
    expect(v.memorySize).toBe(32 << 20);
  });
});

describe("raw images (Wasp convention, real mode at 0x8000)", () => {
  test("the result is EAX at HLT", () => {
    using v = new Runner(parseImage(new Uint8Array([...REAL.movEax(0x1234_5678), ...REAL.hlt]), "hlt"));
    expect(v.run().value).toBe(0x1234_5678n);
  });

  test("the result is RAX at an OUT to port 0xFA", () => {
    using v = new Runner(parseImage(new Uint8Array([...REAL.movEax(99), ...REAL.exit]), "port"));
    expect(v.run().value).toBe(99n);
  });

  test("the first argument is in RDI (DI) at entry", () => {
    // mov eax, edi ; hlt
    using v = new Runner(parseImage(new Uint8Array([0x66, 0x89, 0xf8, ...REAL.hlt]), "arg"));
    expect(v.run([4242]).value).toBe(4242n);
  });

  test("the zig-assembled raw images return their EAX", () => {
    using hlt = load("raw_hlt");
    expect(hlt.run().value).toBe(42n);
    using port = load("raw_port");
    expect(port.run().value).toBe(7n);
  });

  test("a Wasp-style fib64 guest switches itself to long mode (CPUID given) and computes fib", () => {
    using v = load("raw_fib64");
    expect(v.run([10]).value).toBe(55n);
    // and again from real mode on the same shell: the special registers are reloaded
    expect(v.run([12]).value).toBe(144n);
  });
});

describe("bad images and options are refused before anything runs", () => {
  test("an empty image", () => {
    expect(() => parseImage(new Uint8Array(0), "empty")).toThrow(BadImageError);
  });

  test("a native header with a wrong ABI version, entry outside the code, or short file", () => {
    const img = nativeImage(X86.exit);
    const v2 = img.slice();
    new DataView(v2.buffer).setUint32(8, 2, true);
    expect(() => parseImage(v2, "v2")).toThrow(/ABI version 2/);
    const badEntry = img.slice();
    new DataView(badEntry.buffer).setBigUint64(16, 0x900000n, true);
    expect(() => parseImage(badEntry, "entry")).toThrow(/entry point/);
    expect(() => parseImage(img.slice(0, 40), "short")).toThrow(/shorter than/);
  });

  test("memory above the cap, below the minimum, or not page-sized", () => {
    const img = parseImage(nativeImage(X86.exit), "x");
    expect(() => new Runner(img, { memory: 2 * 1024 ** 3 })).toThrow(/above the cap of 1024 MiB/);
    expect(() => new Runner(img, { memory: 1 << 20 })).toThrow(/below the minimum/);
    expect(() => new Runner(img, { memory: (16 << 20) + 1 })).toThrow(BadArgsError);
  });

  test("an image that does not fit its memory", () => {
    const img = parseImage(nativeImage(X86.exit, { bss: 3 << 20 }), "fat");
    expect(() => new Runner(img, { memory: 2 << 20 })).toThrow(/needs .* bytes of guest memory/);
  });

  test("more than six arguments, or a non-integer one", () => {
    using v = load("noop");
    expect(codeOf(() => v.run([1, 2, 3, 4, 5, 6, 7]))).toBe("WASP_BAD_ARGS");
    expect(codeOf(() => v.run([1.5]))).toBe("WASP_BAD_ARGS");
    expect(codeOf(() => v.run([1n << 64n]))).toBe("WASP_BAD_ARGS");
  });

  test("a missing file and a directory", () => {
    expect(() => readImageFile("/nonexistent/x.bin")).toThrow(/no such file/);
    expect(() => readImageFile("/tmp")).toThrow(/is a directory/);
  });
});

describe("guest faults end the virtine with a typed error, and the host goes on", () => {
  test("a triple fault is a GuestFault naming the exit reason and RIP", () => {
    using v = load("raw_triple");
    try {
      v.run();
      throw new Error("no fault");
    } catch (e) {
      expect(e).toBeInstanceOf(GuestFaultError);
      const f = e as GuestFaultError;
      expect(f.code).toBe("WASP_GUEST_FAULT");
      expect(f.exitReason).toBe("KVM_EXIT_SHUTDOWN");
      expect(f.message).toMatch(/triple-faulted \(KVM_EXIT_SHUTDOWN\) at RIP 0x/);
    }
    // the next call on the same virtine gets a fresh shell and faults the same way, nothing worse
    expect(codeOf(() => v.run())).toBe("WASP_GUEST_FAULT");
  });

  test("an exception real mode cannot deliver is a GuestFault: KVM's internal error, or a triple fault", () => {
    // KVM on PVM emulates real mode and gives up (KVM_EXIT_INTERNAL_ERROR); with VMX/SVM the CPU
    // delivers the exception through the empty IDT and triple-faults (KVM_EXIT_SHUTDOWN)
    using v = new Runner(parseImage(new Uint8Array(REAL.undeliverable), "undeliverable"));
    try {
      v.run();
      throw new Error("no fault");
    } catch (e) {
      expect(e).toBeInstanceOf(GuestFaultError);
      const reason = (e as GuestFaultError).exitReason;
      expect(["KVM_EXIT_INTERNAL_ERROR", "KVM_EXIT_SHUTDOWN"]).toContain(reason);
      expect((e as Error).message).toMatch(
        reason === "KVM_EXIT_SHUTDOWN"
          ? /triple-faulted \(KVM_EXIT_SHUTDOWN\) at RIP 0x/
          : /KVM reported an internal error \(suberror \d+\) at RIP 0x/,
      );
    }
    // the host goes on: the next call faults the same way
    expect(codeOf(() => v.run())).toBe("WASP_GUEST_FAULT");
  });

  test("an exception in a native guest is reported by the host's IDT: vector and RIP", () => {
    using v = new Runner(parseImage(nativeImage(X86.ud2), "ud2"));
    try {
      v.run();
      throw new Error("no fault");
    } catch (e) {
      const f = e as GuestFaultError;
      expect(f).toBeInstanceOf(GuestFaultError);
      expect(f.vector).toBe(6);
      expect(f.rip).toBe(BigInt(Layout.NATIVE_LOAD + 80));
      expect(f.message).toBe("the guest took an exception: invalid opcode (#UD, vector 6) at RIP 0x100050");
    }
  });

  test("a write outside guest RAM is a MemoryFault naming the address and the access", () => {
    using v = new Runner(parseImage(nativeImage([...X86.writeAt(0x3000_0000), ...X86.exit]), "mmio"));
    try {
      v.run();
      throw new Error("no fault");
    } catch (e) {
      expect(e).toBeInstanceOf(MemoryFaultError);
      expect((e as MemoryFaultError).address).toBe(0x3000_0000n);
      expect((e as MemoryFaultError).access).toBe("write");
      expect((e as Error).message).toContain("write 1 bytes at guest-physical 0x30000000");
    }
  });

  test("a read outside guest RAM is a MemoryFault too", () => {
    using v = new Runner(parseImage(nativeImage([...X86.readAt(0x2000_0000), ...X86.exit]), "mmio"));
    expect(() => v.run()).toThrow(/read 1 bytes at guest-physical 0x20000000/);
  });

  test("the host's page tables are out of a CPL3 guest's reach", () => {
    // writing the PML4 at 0x1000 from ring 3 is a page fault (supervisor page): a fault, not a write
    using v = new Runner(parseImage(nativeImage([...X86.writeAt(Layout.PML4), ...X86.exit]), "pt"));
    expect(() => v.run()).toThrow(/page fault \(#PF, vector 14\) on a write to 0x1000 \(protection violation\)/);
  });

  test("a null dereference faults (page 0 is not mapped)", () => {
    using v = new Runner(parseImage(nativeImage([...X86.readAt(0), ...X86.exit]), "null"));
    expect(() => v.run()).toThrow(/page fault \(#PF, vector 14\) on a read of 0x0 \(page not present\)/);
  });

  test("a guest panic carries its message", () => {
    using v = load("panicker");
    expect(() => v.run()).toThrow("the guest panicked: guest gave up");
  });
});

test("closing virtines releases every fd and mapping they opened", () => {
  const before = fdTable();
  for (let i = 0; i < 20; i++) {
    using v = load("fib");
    v.run([5]);
  }
  expect(fdsOpenedSince(before)).toEqual([]);
});
