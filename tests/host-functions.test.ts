// Host functions called from guests, on the real /dev/kvm (issue 13.7): a Zig guest through the
// SDK and a C Linux program through wasp.h call TypeScript functions by name; a function that throws
// fails only its call; a name the virtine was not given, a virtine given none, a hostile request
// and an oversized result each end in a typed error or an error the guest sees; closures serve the
// calling thread, a module serves workers.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Virtine, WorkerPool, type HostValue } from "../src/index.ts";
import { BadArgsError, HostFunctionError, MemoryFaultError, PolicyViolationError } from "../src/errors.ts";
import { LinuxProgram } from "../src/virtine/linux.ts";

const dir = mkdtempSync(join(tmpdir(), "wasp-host-fns-"));
const cacheDir = join(dir, "cache");
const workers = new WorkerPool({ size: 2 });
afterAll(async () => {
  await workers.close();
  rmSync(dir, { recursive: true, force: true });
});

const GUEST = `const virtine = @import("virtine");
pub fn main(op: u64, x: u64) u64 {
    var out: [64]u8 = undefined;
    switch (op) {
        0 => return virtine.hostInt("add", .{ x, @as(u64, 1000) }) catch 0xdead,
        1 => {
            const got = virtine.hostBytes("greet", .{ virtine.str("wasp"), @as([]const u8, &[_]u8{ 1, 2 }) }, &out) catch return 0xdead;
            virtine.writeOutput(got) catch return 0xdead;
            return got.len;
        },
        2 => return virtine.hostInt("boom", .{}) catch 0xdead,
        3 => return virtine.hostInt("nosuch", .{}) catch 0xdead,
        4 => { // a result larger than the buffer: the guest is told, nothing is written past it
            var small: [4]u8 = undefined;
            _ = virtine.hostBytes("greet", .{ virtine.str("a rather long name"), @as([]const u8, "") }, &small) catch |e| return if (e == error.HostResultTooLarge) 7 else 8;
            return 9;
        },
        5 => { // a request pointing into the host's page tables
            return virtine.hypercall(virtine.abi.HC_HOST, 0x1000, 0, 0, 0);
        },
        else => return 0,
    }
}`;

const greet = (name: HostValue, extra: HostValue) => `hello ${name as string} (${(extra as Uint8Array).length} bytes)`;
const fns = {
  add: (a: HostValue, b: HostValue) => (a as bigint) + (b as bigint),
  greet,
  boom: () => {
    throw new Error("the database is down");
  },
};

describe("a Zig guest calls host functions", () => {
  test("integers and strings in, an integer and a string out; a throw fails only its call", async () => {
    await using v = await Virtine.fromZig(GUEST, { cacheDir, hostFunctions: fns, workers });
    expect(v.invokeSync(0, 5)).toBe(1005n);
    const r = v.runSync({ args: [1] });
    expect(new TextDecoder().decode(r.output)).toBe("hello wasp (2 bytes)");
    expect(() => v.invokeSync(2)).toThrow(new HostFunctionError("boom", "the database is down"));
    expect(v.invokeSync(0, 1)).toBe(1001n); // the next call is clean
    expect(() => v.invokeSync(3)).toThrow(PolicyViolationError);
    expect(() => v.invokeSync(3)).toThrow(/host function "nosuch", which this virtine was not given/);
    expect(v.invokeSync(4)).toBe(7n);
    expect(() => v.invokeSync(5)).toThrow(MemoryFaultError);
  });

  test("a virtine given no host functions is not granted the hypercall", async () => {
    await using v = await Virtine.fromZig(GUEST, { cacheDir, workers });
    expect(() => v.invokeSync(0, 1)).toThrow(/hypercall "host", which this virtine is not granted/);
  });

  test("closures serve the calling thread; invoke on a worker is refused, saying to use a module", async () => {
    await using v = await Virtine.fromZig(GUEST, { cacheDir, hostFunctions: fns, workers });
    await expect(v.invoke(0, 1)).rejects.toThrow(BadArgsError);
    await expect(v.invoke(0, 1)).rejects.toThrow(/give the functions as a module \(hostModule\)/);
  });

  test("a module serves workers and the calling thread alike", async () => {
    const mod = join(dir, "fns.ts");
    writeFileSync(mod, `export function add(a: bigint, b: bigint) { return a + b + 1n; }\nexport function greet(n: string, e: Uint8Array) { return "hi " + n + " " + e.length; }\n`);
    await using v = await Virtine.fromZig(GUEST, { cacheDir, hostModule: mod, workers });
    expect(v.invokeSync(0, 1)).toBe(1002n);
    expect(await v.invoke(0, 2)).toBe(1003n);
    const calls = await Promise.all(Array.from({ length: 20 }, (_, i) => v.invoke(0, i)));
    expect(calls).toEqual(Array.from({ length: 20 }, (_, i) => BigInt(i + 1001)));
  });
});

test("a C Linux program calls host functions through wasp.h", async () => {
  const p = await LinuxProgram.fromC(`#include <stdio.h>
#include <wasp.h>
int main(void) {
  unsigned char args[64], out[64]; unsigned long n = 0, len, got; int ok;
  n = wasp_put_u64(args, sizeof args, n, 40); n = wasp_put_u64(args, sizeof args, n, 2);
  len = wasp_host_call("add", args, n, out, sizeof out);
  printf("add %lu\\n", wasp_result_u64(out, len, &ok));
  n = wasp_put_str(args, sizeof args, 0, "c"); n = wasp_put_bytes(args, sizeof args, n, "xyz", 3);
  len = wasp_host_call("greet", args, n, out, sizeof out);
  const unsigned char *s = wasp_result_bytes(out, len, &got);
  printf("%.*s\\n", (int)got, s);
  return 0;
}`, { cacheDir, hostFunctions: fns });
  expect(new TextDecoder().decode(p.run().stdout)).toBe("add 42\nhello c (3 bytes)\n");
});
