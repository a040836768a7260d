// Host functions' wire format and table (src/hypercall/host-call.ts), without a VM: the host's
// decoder against any bytes (fast-check), the round trip, the Zig SDK's and wasp.h's encoders
// against the host's decoder (the same bytes), what a function may return, and the checks on the
// functions an embedder gives. tests/host-functions.test.ts runs them from guests on KVM.
import { afterAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runs } from "./fuzz.ts";
import { slow, ROOT, zigPath } from "./support.ts";
import { HostCall } from "../src/abi/guest-abi.ts";
import { BadArgsError, HostFunctionError, PolicyViolationError } from "../src/errors.ts";
import { callHost, decodeValues, encodeResult, encodeValues, hostFunctionTable, type HostValue } from "../src/hypercall/host-call.ts";
import { compileZig } from "../src/image/zig.ts";
import { compileC } from "../src/linux/c.ts";

const dir = mkdtempSync(join(tmpdir(), "wasp-host-call-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The values every encoder under test encodes: guests/sdk/hostcall.zig's test_vector. */
const VECTOR: HostValue[] = [42n, -2n, new Uint8Array([1, 2, 3]), "hi"];
const hostValue = fc.oneof(
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  fc.bigInt({ min: -(1n << 63n), max: -1n }),
  fc.uint8Array({ maxLength: 64 }),
  fc.string({ maxLength: 32 }),
);

describe("the wire format", () => {
  test("any values round-trip through encode and decode", () => {
    fc.assert(fc.property(fc.array(hostValue, { maxLength: HostCall.MAX_VALUES }), (values) => {
      expect(decodeValues(encodeValues(values))).toEqual(values);
    }), { numRuns: runs(1000) });
  });

  test("any bytes decode to values or a PolicyViolationError, nothing else, and never read past the block", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => {
      try {
        const values = decodeValues(bytes);
        expect(values.length).toBeLessThanOrEqual(HostCall.MAX_VALUES);
      } catch (e) {
        expect(e).toBeInstanceOf(PolicyViolationError);
      }
    }), { numRuns: runs(5000) });
  });

  test("malformed blocks name what is wrong", () => {
    const why = (b: number[]) => {
      try {
        decodeValues(new Uint8Array(b));
      } catch (e) {
        return (e as Error).message;
      }
      return "decoded";
    };
    expect(why([9])).toMatch(/value 1: unknown tag 9 at byte 0$/);
    expect(why([HostCall.TAG_U64, 1, 2])).toMatch(/value 1: an integer cut short/);
    expect(why([HostCall.TAG_BYTES, 200, 0, 0, 0, 1])).toMatch(/value 1: 200 bytes announced, 1 left/);
    expect(why([HostCall.TAG_STRING, 1, 0, 0, 0, 0xff])).toMatch(/value 1: a string that is not UTF-8/);
    expect(why(Array.from({ length: 17 }, () => [HostCall.TAG_BYTES, 0, 0, 0, 0]).flat())).toMatch(/more than 16 values/);
  });

  test("the decoded bytes are a copy: the function cannot reach guest memory through them", () => {
    const block = encodeValues([new Uint8Array([7, 7])]);
    const [v] = decodeValues(block) as [Uint8Array];
    v[0] = 1;
    expect(block[5]).toBe(7);
    expect(v.buffer).not.toBe(block.buffer);
  });

  test("the Zig SDK encodes as the host decodes (zig test guests/sdk/hostcall.zig, the same vector)", () => {
    const r = Bun.spawnSync([zigPath(), "test", join(ROOT, "guests/sdk/hostcall.zig"), "--cache-dir", join(dir, "zc"), "--global-cache-dir", join(dir, "zgc")]);
    expect(r.stderr.toString()).toContain("All 3 tests passed");
    expect(encodeValues(VECTOR)).toEqual(new Uint8Array([
      1, 42, 0, 0, 0, 0, 0, 0, 0, 2, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 3, 3, 0, 0, 0, 1, 2, 3, 4, 2, 0, 0, 0, 104, 105,
    ]));
  }, slow(120_000));

  test("wasp.h encodes as the host decodes (a C program run natively prints its encoding)", async () => {
    const { path } = await compileC(`#include <stdio.h>
#include <wasp.h>
int main(void) {
  unsigned char b[64]; unsigned long n = 0, i;
  n = wasp_put_u64(b, sizeof b, n, 42); n = wasp_put_i64(b, sizeof b, n, -2);
  n = wasp_put_bytes(b, sizeof b, n, "\\x01\\x02\\x03", 3); n = wasp_put_str(b, sizeof b, n, "hi");
  for (i = 0; i < n; i++) printf("%02x", b[i]);
  if (wasp_put_u64(b, 8, 0, 1) != 0 || wasp_put_str(b, 10, 0, "longer than ten") != 0) return 1;   /* too small: 0 */
  return 0;
}`, { cacheDir: join(dir, "cc") });
    const r = Bun.spawnSync([path]);
    expect(r.exitCode).toBe(0);
    expect(decodeValues(new Uint8Array(Buffer.from(r.stdout.toString(), "hex")))).toEqual(VECTOR);
  }, slow(120_000));

  test("a Zig guest using hostInt, hostBytes and str compiles against the SDK", async () => {
    const src = `const virtine = @import("virtine");
pub fn main(x: u64) u64 {
    const sum = virtine.hostInt("add", .{ x, @as(i64, -1) }) catch return 0;
    var out: [64]u8 = undefined;
    const got = virtine.hostBytes("greet", .{ virtine.str("wasp"), @as([]const u8, "raw") }, &out) catch return 0;
    return sum + got.len;
}`;
    const { image } = await compileZig(src, { cacheDir: join(dir, "zig"), name: "hostcalls" });
    expect(image.kind).toBe("native");
  }, slow(120_000));
});

describe("what a host function may return, and what it throws", () => {
  test("integers, bytes, strings, nothing; anything else names the function", () => {
    expect(decodeValues(encodeResult("f", 5))).toEqual([5n]);
    expect(decodeValues(encodeResult("f", -5n))).toEqual([-5n]);
    expect(decodeValues(encodeResult("f", "é"))).toEqual(["é"]);
    expect(encodeResult("f", undefined)).toEqual(new Uint8Array(0));
    expect(() => encodeResult("f", 1.5)).toThrow(new HostFunctionError("f", "it returned 1.5, not an integer (return a bigint, bytes or a string)"));
    expect(() => encodeResult("f", 1n << 64n)).toThrow(/host function "f" failed: it returned 18446744073709551616, which does not fit in 64 bits/);
    expect(() => encodeResult("f", Promise.resolve(1))).toThrow(/it returned a Promise: host functions are synchronous/);
    expect(() => encodeResult("f", { a: 1 })).toThrow(/it returned an object/);
    expect(() => encodeResult("f", new Uint8Array(HostCall.MAX_BYTES + 1))).toThrow(/more than the 1048576 a result may have/);
  });

  test("a function that throws is a HostFunctionError with its message and the thrown value as cause", () => {
    const boom = new Error("no such user");
    try {
      callHost("lookup", () => {
        throw boom;
      }, []);
      throw new Error("did not throw");
    } catch (e) {
      expect(e).toBeInstanceOf(HostFunctionError);
      expect((e as HostFunctionError).code).toBe("WASP_HOST_FUNCTION");
      expect((e as Error).message).toBe('host function "lookup" failed: no such user');
      expect((e as Error).cause).toBe(boom);
    }
    expect(decodeValues(callHost("add", (a, b) => (a as bigint) + (b as bigint), [2n, 3n]))).toEqual([5n]);
  });
});

describe("the functions an embedder gives", () => {
  test("names, functions and modules are checked; a module's exported functions join the closures", () => {
    const bad = (fns: unknown, mod?: string) => () => hostFunctionTable(fns as Record<string, unknown>, mod);
    expect(bad({ "1x": () => 0 })).toThrow(BadArgsError);
    expect(bad({ "a b": () => 0 })).toThrow(/is not a letter or '_' followed by/);
    expect(bad({ ok: 5 })).toThrow('host function "ok" (hostFunctions) is not a function');
    expect(bad([() => 0])).toThrow("hostFunctions must be an object of functions by name");
    expect(bad(undefined, join(dir, "missing.ts"))).toThrow(/hostModule .*missing\.ts: cannot load it/);
    const mod = join(dir, "fns.ts");
    writeFileSync(mod, `export function twice(x: bigint) { return x * 2n; }\nexport const version = "1";\nexport default function ignored() {}\n`);
    const table = hostFunctionTable({ add: (a: HostValue, b: HostValue) => (a as bigint) + (b as bigint) }, mod);
    expect([...table.keys()].sort()).toEqual(["add", "twice"]);
    expect(bad({ twice: () => 0 }, mod)).toThrow('host function "twice" is given twice (hostFunctions and hostModule)');
    expect(hostFunctionTable(undefined, `file://${mod}`).has("twice")).toBe(true);
  });
});
