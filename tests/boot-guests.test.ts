// The self-booting raw guests for the paper's experiments (docs/guests.md): boot_fib (boot
// milestones and the snapshot hypercall) and mode16/32/64_fib (fib by boot mode). They run in
// real/protected mode or at CPL0, which this host emulates (about 1 µs per instruction): hence
// the long deadlines.
import { describe, expect, test } from "bun:test";
import { Runner } from "../src/virtine/runner.ts";
import { fibRef, guest } from "./support.ts";

const TIMEOUT_MS = 30_000;
/** bun's per-test limit: a few fib(20)s, emulated, on a loaded machine */
const TEST_MS = 120_000;

describe("boot_fib: real mode to long mode, snapshot hypercall, fib", () => {
  const load = () => Runner.fromFile(guest("boot_fib"), { timeoutMs: TIMEOUT_MS, allow: ["snapshot"] });

  test("boot_fib(10) == 55", () => {
    using v = load();
    expect(v.run([10n]).value).toBe(55n);
  }, TEST_MS);

  test("boot_fib(0) == 0", () => {
    using v = load();
    expect(v.run([0n]).value).toBe(0n);
  }, TEST_MS);

  test("boot_fib(20) == 6765", () => {
    using v = load();
    expect(v.run([20n]).value).toBe(6765n);
  }, TEST_MS);

  test("later calls on one virtine compute fib of their own argument (n is re-read after the snapshot point)", () => {
    using v = load();
    for (const n of [10, 0, 20, 1, 12, 2]) expect(v.run([n]).value).toBe(fibRef(n));
  }, TEST_MS);
});

for (const mode of [16, 32, 64]) {
  describe(`mode${mode}_fib: fib in ${mode}-bit mode`, () => {
    const load = () => Runner.fromFile(guest(`mode${mode}_fib`), { timeoutMs: TIMEOUT_MS });

    test(`mode${mode}_fib(20) == 6765`, () => {
      using v = load();
      expect(v.run([20n]).value).toBe(6765n);
    }, TEST_MS);

    test(`mode${mode}_fib(n) for n = 1, 2, 10 on one virtine`, () => {
      using v = load();
      for (const n of [1, 2, 10]) expect(v.run([BigInt(n)]).value).toBe(fibRef(n));
    }, TEST_MS);
  });
}
