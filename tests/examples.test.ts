// The examples in the README run as written.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./support.ts";

// the inline-Zig example's compiled image goes to a cache of the test's own, not the user's
const cacheDir = mkdtempSync(join(tmpdir(), "wasp-examples-"));
afterAll(() => rmSync(cacheDir, { recursive: true, force: true }));

function run(name: string, args: string[]) {
  const p = Bun.spawnSync([process.execPath, "run", join(ROOT, "examples", name), ...args], {
    cwd: ROOT,
    env: { ...process.env, WASP_CACHE_DIR: cacheDir },
  });
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
