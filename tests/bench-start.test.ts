// The start series of `wasp bench` run as the bench runs them: the compiled hello world, the least
// Bun program that runs a VM through bun:ffi (src/bench/bun-kvm.js, compiled at bench time and run
// against /dev/kvm: it must reach its OUT), and `wasp invoke noop` itself.
import { expect, test } from "bun:test";
import { DENSITY_SERIES } from "../src/bench/density.ts";

test("start_bun_hello, start_bun_kvm and start_noop each build and run their program", async () => {
  for (const name of ["start_bun_hello", "start_bun_kvm", "start_noop"]) {
    const series = DENSITY_SERIES.find((s) => s.name === name);
    expect(series).toBeDefined();
    const [r] = [await series!.run(2)].flat();
    expect(r).toMatchObject({ name, unit: "us", n: 2 });
    expect(r.note).toBeUndefined();
    expect(r.median).toBeGreaterThan(0);
  }
}, 120_000);

test("bun-kvm.js runs one VM to its OUT on port 0xfa", () => {
  const p = Bun.spawnSync([process.execPath, `${import.meta.dir}/../src/bench/bun-kvm.js`]);
  expect(p.stderr.toString()).toBe("");
  expect(p.stdout.toString()).toBe("250\n");
  expect(p.exitCode).toBe(0);
});
