// wasp's C yardstick (tools/floor.c, dist/floor.bin) runs every series on this machine's KVM and
// prints them as wasp bench reads them; `wasp bench --floor` finds it without a path.
import { expect, test } from "bun:test";
import { join } from "node:path";
import { parseBaseline } from "../src/bench/baseline.ts";
import { slow, DIST, wasp } from "./support.ts";

const SERIES = ["create", "vmrun", "hypercall", "syscall", "syscall_bounce", "int_ist_iretq", "int_ist_jmp", "zpoline", "rdtsc", "dirty_reset_1", "dirty_reset_16", "dirty_reset_64", "cow_reset_1", "cow_reset_16", "cow_reset_64", "flush_slot", "flush_notify", "thread", "process"];

test("the floor runs every series, each a positive time with p99 ≥ median (or, for a candidate this KVM cannot run, why)", () => {
  const p = Bun.spawnSync([join(DIST, "floor.bin"), "20"]); // a twentieth of the runs: a check, not figures
  expect(p.stderr.toString()).toBe("");
  expect(p.exitCode).toBe(0);
  const results = parseBaseline(p.stdout.toString(), "floor");
  expect([...results.keys()]).toEqual(SERIES);
  for (const r of results.values()) {
    expect(r.unit).toBe("us");
    if (r.n === 0) {
      // a candidate of the in-VM system-call layer that faults here, with the exception it raised
      expect([r.name, r.note]).toEqual([r.name, expect.stringMatching(/^not available: arrives as exception vector \d+$/)]);
      continue;
    }
    expect(r.median).toBeGreaterThan(0);
    expect(r.p99).toBeGreaterThanOrEqual(r.median);
  }
}, slow(120_000));

test("wasp bench --floor runs the bundled floor and sets a series beside its namesake", () => {
  const r = wasp(["bench", "--floor", "--filter", "^vmrun$", "--runs", "50"]);
  expect(r.status).toBe(0);
  expect(r.stdout).toMatch(/^vmrun\s+us\s+50\s+[\d.]+\s+[\d.]+\s+floor vmrun\s+[\d.]+\s+[\d.]+$/m);
}, slow(120_000));
