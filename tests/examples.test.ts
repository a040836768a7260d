// The examples in the README run as written.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { slow, ROOT, fibRef } from "./support.ts";

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
  expect(run("fib.ts", ["20"])).toEqual({ status: 0, stdout: "fib(20) = 6765\nagain on this thread: 6765\n", stderr: "" });
});

test("examples/inline-zig.ts", () => {
  const r = run("inline-zig.ts", ["7"]);
  expect(r.stderr).toBe("");
  expect(r.stdout).toBe("squaring 7 in a VM of its own\n49n\n");
}, slow(120_000));

test("examples/json-transform.ts", () => {
  const r = run("json-transform.ts", ["2", "4", "9"]);
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  expect(r.stdout.replace(/\s+/g, "")).toBe("{count:3,sum:15,min:2,max:9,mean:5,}");
});

test("examples/concurrent.ts", () => {
  const r = run("concurrent.ts", ["200"]);
  expect(r.stderr).toBe("");
  // the sum of fib(i % 25) for i < 200: eight rounds of fib(0..24)
  const round = Array.from({ length: 25 }, (_, i) => i).reduce((s, i) => s + Number(fibRef(i)), 0);
  expect(r.stdout).toMatch(new RegExp(`^200 calls, sum of results ${8 * round}, \\d+ calls/s\n$`));
});

test("examples/cancel.ts", () => {
  const r = run("cancel.ts", ["100"]);
  expect(r.stderr).toBe("");
  const m = /^stopped after (\d+) ms: TimeoutError\n$/.exec(r.stdout);
  expect(m).not.toBeNull();
  expect(Number(m![1])).toBeGreaterThanOrEqual(95);
});

test("examples/linux.ts", () => {
  const r = run("linux.ts", ["3", "1.5", "4", "1"]);
  expect(r.stderr).toBe("");
  expect(r.stdout).toBe("n=4 min=1 max=4 mean=2.3750 median=2.25 stddev=1.1924\nexit status 0\n97 is prime (lookup: sieved)\nprime #1000 is 7919 (lookup: from the snapshot)\n");
}, slow(180_000));

test("examples/js-sandbox.ts", () => {
  const snippets = ["1 + 2", "globalThis.x = 41; x + 1", "typeof x", "Object.prototype.p = 1", "({}).p", "for (;;) {}", "'ab'.repeat(2 ** 28)", "(function f() { return f() + 1; })()", "throw new RangeError('no')", "this is not js", "[1, 2].map((n) => n * 2)"];
  const r = run("js-sandbox.ts", snippets);
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  expect(r.stdout).toBe(
    [
      "> 1 + 2", "= 3 (number)",
      "> globalThis.x = 41; x + 1", "= 42 (number)",
      "> typeof x", '= "undefined" (string)',
      "> Object.prototype.p = 1", "= 1 (number)",
      "> ({}).p", "= undefined (undefined)",
      "> for (;;) {}", "! stopped: past its 1 s deadline",
      "> 'ab'.repeat(2 ** 28)", "! stopped: past its 16 MiB heap",
      "> (function f() { return f() + 1; })()", "! stopped: too deep a recursion",
      "> throw new RangeError('no')", "! RangeError: no",
      "> this is not js", "! SyntaxError: expecting ';'",
      "> [1, 2].map((n) => n * 2)", "= [2,4] (object)",
      "",
    ].join("\n"),
  );
}, slow(120_000));
