// The examples in the README run as written.
import { expect, test } from "bun:test";
import { join } from "node:path";
import { ROOT } from "./support.ts";

function run(name: string, args: string[]) {
  const p = Bun.spawnSync([process.execPath, "run", join(ROOT, "examples", name), ...args], { cwd: ROOT });
  return { status: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

test("examples/fib.ts", () => {
  expect(run("fib.ts", ["20"])).toEqual({ status: 0, stdout: "fib(20) = 6765 (1 VM exit)\n", stderr: "" });
});

test("examples/inline-zig.ts", () => {
  const r = run("inline-zig.ts", ["7"]);
  expect(r.stderr).toBe("");
  expect(r.stdout).toBe("squaring 7 in a VM of its own\n49n\n");
}, 120_000);
