// JavaScript virtines on the command line (issue 14, part 3), on the real /dev/kvm, through the
// standalone binary: `wasp invoke handler.js`, `wasp snapshot handler.js -o FILE`, `wasp invoke
// FILE`; the result as JSON on stdout, the console on stderr, JavaScript errors as one `wasp:`
// line with their exit status.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EXIT_STATUS } from "../src/index.ts";
import { slow, wasp } from "./support.ts";

const tmp = mkdtempSync(join(tmpdir(), "wasp-js-cli-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(tmp, name);
  writeFileSync(path, text);
  return path;
}

const HANDLER = file(
  "handler.js",
  `let warmed = 0;
   export default (input, extra) => {
     console.log("got", input);
     if (input && input.fail) throw new TypeError("asked to fail");
     if (input === "warm") { warmed++; return null; }
     return { input, extra: extra ?? null, warmed };
   };`,
);

describe("wasp invoke handler.js", () => {
  test("--input is the handler's argument; the result is JSON on stdout, console.log on stderr", () => {
    const input = file("in.json", `{"a": [1, 2], "s": "x"}`);
    const r = wasp(["invoke", HANDLER, "--input", input]);
    expect(r.stderr).toBe('got {"a":[1,2],"s":"x"}\n');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ input: { a: [1, 2], s: "x" }, extra: null, warmed: 0 });
    // positional arguments are JSON values, or strings when they are not JSON
    const p = wasp(["invoke", HANDLER, "7", "word"]);
    expect(JSON.parse(p.stdout)).toEqual({ input: 7, extra: "word", warmed: 0 });
    const j = wasp(["invoke", HANDLER, "--json", "1"]);
    expect(JSON.parse(j.stdout)).toMatchObject({ value: { input: 1, extra: null, warmed: 0 }, undefined: false, console: "got 1\n" });
  }, slow(120_000));

  test("a thrown error and a syntax error are one wasp: line with their status", () => {
    const input = file("fail.json", `{"fail": true}`);
    const r = wasp(["invoke", HANDLER, "--input", input]);
    expect(r.status).toBe(EXIT_STATUS.WASP_JS_ERROR!);
    expect(r.stderr).toEndWith("wasp: TypeError: asked to fail\n");
    expect(r.stdout).toBe("");
    const bad = file("bad.mjs", "export default () => {\n  return 1 +;\n}\n");
    const s = wasp(["invoke", bad]);
    expect(s.status).toBe(EXIT_STATUS.WASP_JS_SYNTAX!);
    expect(s.stderr).toMatch(/^wasp: bad\.mjs:2:13: SyntaxError: .+\n$/);
    const spin = file("spin.js", "export default () => { for (;;) {} }");
    const t = wasp(["invoke", spin, "--timeout", String(slow(500))]);
    expect(t.status).toBe(EXIT_STATUS.WASP_TIMEOUT!);
    const bomb = file("bomb.js", "export default () => { const a = []; for (;;) a.push('x'.repeat(1000) + a.length); }");
    const m = wasp(["invoke", bomb, "--heap", "4M"]);
    expect([m.status, m.stderr]).toEqual([EXIT_STATUS.WASP_JS_MEMORY!, "wasp: the JavaScript heap ran out of its 4194304-byte limit\n"]);
  }, slow(120_000));

  test("bad inputs are said plainly", () => {
    expect(wasp(["invoke", join(tmp, "missing.js")])).toMatchObject({ status: EXIT_STATUS.WASP_BAD_IMAGE });
    const notJson = file("not.json", "{nope");
    const r = wasp(["invoke", HANDLER, "--input", notJson]);
    expect(r.status).toBe(EXIT_STATUS.WASP_BAD_ARGS!);
    expect(r.stderr).toStartWith(`wasp: --input ${notJson} is not JSON`);
    expect(wasp(["invoke", HANDLER, "--env", "A=b"]).status).toBe(EXIT_STATUS.WASP_BAD_ARGS!);
    expect(wasp(["invoke", HANDLER, "--heap", "1G"]).status).toBe(EXIT_STATUS.WASP_BAD_ARGS!);
  }, slow(120_000));
});

test("wasp bench runs the engine natively for js_native, from the standalone binary too", () => {
  const r = wasp(["bench", "--filter", "^js_native_warm$", "--runs", "5", "--json"]);
  expect(r.status).toBe(0);
  const line = JSON.parse(r.stdout.trim());
  expect([line.name, line.unit, line.n]).toEqual(["js_native_warm", "us", 5]);
  expect(line.median).toBeGreaterThan(0);
}, slow(120_000));

describe("wasp snapshot handler.js", () => {
  test("a warmed-up snapshot file: wasp invoke FILE resumes it; inspect names it", () => {
    const snap = join(tmp, "h.snap");
    const warm = file("warm.json", `["warm", "warm", "warm"]`);
    const w = wasp(["snapshot", HANDLER, "-o", snap, "--warmup", warm]);
    expect(w.status).toBe(0);
    expect(w.stderr).toContain("warmed up by 3 call(s)");
    const input = file("in2.json", `"hello"`);
    for (let i = 0; i < 2; i++) {
      const r = wasp(["invoke", snap, "--input", input]);
      expect([r.status, r.stderr]).toEqual([0, 'got hello\n']);
      expect(JSON.parse(r.stdout)).toEqual({ input: "hello", extra: null, warmed: 3 });
    }
    // resumed from the file: every system call answered in the VM, the call's end its one exit
    const j = JSON.parse(wasp(["invoke", snap, "--input", input, "--json"]).stdout);
    expect(j.console).toBe("got hello\n");
    expect([j.exits, j.syscallsInVm]).toEqual([1, j.syscalls]);
    const failing = wasp(["invoke", snap, '{"fail":1}']);
    expect(failing.status).toBe(EXIT_STATUS.WASP_JS_ERROR!);
    expect(wasp(["inspect", snap]).stdout).toContain("wasp-js");
    expect(wasp(["invoke", snap, "--heap", "8M"]).status).toBe(EXIT_STATUS.WASP_BAD_ARGS!);
  }, slow(180_000));

  test("a module that fails at load or in its warm-up writes no file", () => {
    const snap = join(tmp, "never.snap");
    const bad = file("broken.js", "export default (x) => x.y.z;");
    const warm = file("warm2.json", `[{}]`);
    const r = wasp(["snapshot", bad, "-o", snap, "--warmup", warm]);
    expect(r.status).toBe(EXIT_STATUS.WASP_JS_ERROR!);
    expect(r.stderr).toStartWith("wasp: at warmup: TypeError");
    expect(existsSync(snap)).toBe(false);
    const notArray = file("warm3.json", `{"a": 1}`);
    expect(wasp(["snapshot", HANDLER, "-o", snap, "--warmup", notArray]).status).toBe(EXIT_STATUS.WASP_BAD_ARGS!);
  }, slow(120_000));
});
