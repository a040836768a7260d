// The inittable guest: an 8 MiB table built at run time before the snapshot point. Only the first
// call pays for the build; later calls resume after the snapshot with the table in place.
import { describe, expect, test } from "bun:test";
import { Runner } from "../src/virtine/runner.ts";
import { guest } from "./support.ts";

// the guest's constants (guests/inittable.zig)
const N = 1 << 20;
const SEED = 0x5eed0f7ab1en;
const ROUNDS = 220;

const u64 = (x: bigint) => BigInt.asUintN(64, x);

/** splitmix64's finalizer, wrapping mod 2^64 */
function mix(x0: bigint): bigint {
  let z = u64(x0 + 0x9e3779b97f4a7c15n);
  z = u64((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
  z = u64((z ^ (z >> 27n)) * 0x94d049bb133111ebn);
  return z ^ (z >> 31n);
}

/** table[i] = mix^ROUNDS(i ^ SEED) */
function expected(i: number): bigint {
  let x = BigInt(i) ^ SEED;
  for (let r = 0; r < ROUNDS; r++) x = mix(x);
  return x;
}

describe("inittable", () => {
  test("the first call builds the table and is captured; later calls resume with it and their own arguments", () => {
    using v = Runner.fromFile(guest("inittable"), { timeoutMs: 60_000 });
    const first = v.run([3]);
    expect(first.value).toBe(expected(3));
    expect(first.exits).toBe(2); // the snapshot hypercall and the exit
    expect(v.snapshotTaken).toBe(true);

    const calls: [number[], number][] = [
      [[12345], 12345],
      [[N + 7], 7], // the index wraps modulo N
      [[N - 1], N - 1],
      [[99, 16], 99], // dirties 16 scratch pages: same result, no extra exit
      [[5, 1000], 5], // k is capped at 64
      [[3], 3],
    ];
    for (const [args, index] of calls) {
      const r = v.run(args);
      expect(r.value).toBe(expected(index));
      expect(r.exits).toBe(1);
    }
  });
});
