// The JavaScript engine's side of a call, without a VM (issue 14): the reply decoder holds every
// byte the guest hands back to what the engine writes (fast-check: anything else is a
// BadOutputError, never another exception); a call's stdin and the warm-up file are the JSON the
// engine parses; and the engine program itself, run natively (`js.elf --run`), reports results,
// errors and syntax positions as the decoder expects.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BadArgsError, BadOutputError, JsError, JsMemoryError, JsStackError, JsSyntaxError, StackOverflowError, WaspError } from "../src/index.ts";
import { decodeJsReply, encodeJsCall, savedJsSettings, enginePath, jsFault, jsFiles, jsLimits, JS_MODULE_PATH, JS_WARMUP_PATH, MAX_JS_ARGS } from "../src/js/engine.ts";
import { thrown } from "./support.ts";

const limits = { heap: 32 << 20, stack: 768 << 10 };
const of = { limits, maxOutput: 1 << 20, fileName: "h.js" };
const bytes = (s: string) => new TextEncoder().encode(s);
const reply = (status: number, stdout: string, stdoutTruncated = false) => ({ status, stdout: bytes(stdout), stdoutTruncated });

describe("decodeJsReply", () => {
  test("a result, undefined, and each error class from the engine's envelope", () => {
    expect(decodeJsReply(reply(0, `{"a":[1,"x"]}`), of)).toEqual({ a: [1, "x"] });
    expect(decodeJsReply(reply(0, ""), of)).toBeUndefined();
    const syntax = thrown(() => decodeJsReply(reply(2, `{"name":"SyntaxError","message":"unexpected token","stack":"","phase":"load","line":3,"column":7}`), of)) as JsSyntaxError;
    expect(syntax).toBeInstanceOf(JsSyntaxError);
    expect([syntax.fileName, syntax.line, syntax.column, syntax.message]).toEqual(["h.js", 3, 7, "h.js:3:7: SyntaxError: unexpected token"]);
    const js = thrown(() => decodeJsReply(reply(1, `{"name":"TypeError","message":"x is not a function","stack":"    at f (h.js:2)\\n","phase":"call"}`), of)) as JsError;
    expect([js.jsName, js.jsMessage, js.jsStack, js.phase, js.message]).toEqual(["TypeError", "x is not a function", "    at f (h.js:2)\n", "call", "TypeError: x is not a function"]);
    const warm = thrown(() => decodeJsReply(reply(1, `{"name":"Error","message":"m","stack":"","phase":"warmup"}`), of)) as JsError;
    expect(warm.message).toBe("at warmup: Error: m");
    expect(thrown(() => decodeJsReply(reply(3, `{"name":"","message":"null","stack":"","phase":"call"}`), of))).toBeInstanceOf(JsMemoryError);
    expect(thrown(() => decodeJsReply(reply(4, `{"name":"InternalError","message":"stack overflow","stack":"","phase":"call"}`), of))).toBeInstanceOf(JsStackError);
    expect(thrown(() => decodeJsReply(reply(5, `{"name":"Error","message":"not a call","phase":"call"}`), of))).toBeInstanceOf(BadArgsError);
    expect(thrown(() => decodeJsReply(reply(6, `{"name":"Error","message":"never settled","phase":"call"}`), of))).toBeInstanceOf(JsError);
  });

  test("what the engine never writes is a BadOutputError", () => {
    for (const [status, out, cut] of [
      [0, "{not json", false],
      [0, `"a string cut"`, true],
      [99, "{}", false],
      [1, "not json", false],
      [1, `[]`, false],
      [1, `{"name":1,"message":"m","phase":"call"}`, false],
      [1, `{"name":"E","message":"m","phase":"elsewhere"}`, false],
      [1, `{"name":"E","message":"m","stack":7,"phase":"call"}`, false],
      [2, `{"name":"SyntaxError","message":"m","phase":"load"}`, false],
      [2, `{"name":"SyntaxError","message":"m","phase":"load","line":0,"column":1}`, false],
      [2, `{"name":"SyntaxError","message":"m","phase":"load","line":1.5,"column":1}`, false],
    ] as const) {
      expect(thrown(() => decodeJsReply(reply(status, out, cut), of))).toBeInstanceOf(BadOutputError);
    }
  });

  test("property: any status and any bytes decode to a value or a WaspError, and messages are one line", () => {
    const envelope = fc.record({
      name: fc.oneof(fc.string(), fc.integer()),
      message: fc.string(),
      stack: fc.option(fc.string(), { nil: undefined }),
      phase: fc.constantFrom("load", "warmup", "call", "setup", "other"),
      line: fc.option(fc.oneof(fc.integer(), fc.double()), { nil: undefined }),
      column: fc.option(fc.integer(), { nil: undefined }),
    });
    const stdout = fc.oneof(fc.uint8Array({ maxLength: 200 }), envelope.map((e) => bytes(JSON.stringify(e))), fc.json().map(bytes));
    fc.assert(
      fc.property(fc.integer({ min: -1, max: 300 }), stdout, fc.boolean(), (status, out, cut) => {
        try {
          decodeJsReply({ status, stdout: out, stdoutTruncated: cut }, of);
        } catch (e) {
          if (!(e instanceof WaspError)) throw e;
          if (e.message.includes("\n") || e.message.includes("\x1b")) throw new Error(`a message of two lines or with ESC: ${JSON.stringify(e.message)}`);
        }
      }),
      { numRuns: Number(process.env.WASP_FUZZ_RUNS ?? 2000) },
    );
  });

  test("the guard under the stack is the engine's stack limit too; other errors pass through", () => {
    expect(jsFault(new StackOverflowError(1 << 20, 0x1000n, 0x2000n), limits)).toBeInstanceOf(JsStackError);
    const other = new BadArgsError("x");
    expect(jsFault(other, limits)).toBe(other);
  });
});

describe("a call's stdin and the load files", () => {
  test("arguments as a JSON array after 'A'; undefined as null; what JSON cannot carry refused", () => {
    expect(new TextDecoder().decode(encodeJsCall([1, "two", { three: [3] }, undefined, null]))).toBe(`A[1,"two",{"three":[3]},null,null]`);
    expect(new TextDecoder().decode(encodeJsCall([]))).toBe("A[]");
    expect(thrown(() => encodeJsCall([() => 1]))).toBeInstanceOf(BadArgsError);
    expect(thrown(() => encodeJsCall([1n]))).toBeInstanceOf(BadArgsError);
    expect(thrown(() => encodeJsCall(Array(MAX_JS_ARGS + 1).fill(0)))).toBeInstanceOf(BadArgsError);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(thrown(() => encodeJsCall([cyclic]))).toBeInstanceOf(BadArgsError);
  });

  test("property: encodeJsCall is 'A' and a JSON array of the arguments", () => {
    fc.assert(
      fc.property(fc.array(fc.jsonValue(), { maxLength: MAX_JS_ARGS }), (args) => {
        const text = new TextDecoder().decode(encodeJsCall(args));
        expect(text[0]).toBe("A");
        expect(JSON.parse(text.slice(1))).toEqual(JSON.parse(JSON.stringify(args)));
      }),
      { numRuns: 500 },
    );
  });

  test("the module and the warm-up inputs as files; limits inside the VM's", () => {
    const files = jsFiles("export default () => 1;", ["a", { b: 1 }, undefined]);
    expect(new TextDecoder().decode(files[JS_MODULE_PATH])).toBe("export default () => 1;");
    expect(JSON.parse(new TextDecoder().decode(files[JS_WARMUP_PATH]))).toEqual([["a"], [{ b: 1 }], []]);
    expect(Object.keys(jsFiles("x", undefined))).toEqual([JS_MODULE_PATH]);
    expect(thrown(() => jsFiles("x", "no" as never))).toBeInstanceOf(BadArgsError);
    expect(jsLimits(64 << 20, 1 << 20)).toEqual({ heap: 32 << 20, stack: 768 << 10 });
    expect(jsLimits(64 << 20, 1 << 20, 8 << 20).heap).toBe(8 << 20);
    expect(thrown(() => jsLimits(64 << 20, 1 << 20, 33 << 20))).toBeInstanceOf(BadArgsError);
  });
});

describe("the engine program, natively (js.elf --run)", () => {
  const tmp = mkdtempSync(join(tmpdir(), "wasp-js-engine-"));
  const run = (source: string, stdin: string, options: string[] = []) => {
    const path = join(tmp, "m.js");
    writeFileSync(path, source);
    const p = Bun.spawnSync([enginePath, "--run", path, ...options], { stdin: bytes(stdin) });
    return { status: p.exitCode ?? -1, stdout: p.stdout, stderr: p.stderr.toString() };
  };
  const decode = (r: { status: number; stdout: Uint8Array }) => decodeJsReply({ status: r.status, stdout: r.stdout, stdoutTruncated: false }, of);

  test("a call's result and console", () => {
    const r = run(`export default (a, b) => { console.log("sum", a + b, [a], Symbol("s")); return { sum: a + b }; }`, "A[2,3]");
    expect(decode(r)).toEqual({ sum: 5 });
    expect(r.stderr).toBe("sum 5 [2] Symbol(s)\n");
    expect(run(`export default () => {}`, "A[]").stdout.length).toBe(0);
    expect(run(`export default () => 1`, "").status).toBe(0); // load only
    expect(thrown(() => decode(run(`export default () => 1`, "B")))).toBeInstanceOf(BadArgsError);
  });

  test("syntax errors at their line and column (columns in characters)", () => {
    for (const [source, line, column] of [
      ["export default (x) => {\n  const a = 1;\n  return a +* x;\n};\n", 3, 13],
      [`const s = "ééé"; )`, 1, 18],
      [`export default () => "open\n`, 1, 22],
      ["\n\n\texport default () => { for (;;) {} ", 3, 37],
    ] as const) {
      const e = thrown(() => decode(run(source, "A[]"))) as JsSyntaxError;
      expect(e).toBeInstanceOf(JsSyntaxError);
      expect([e.line, e.column]).toEqual([line, column]);
    }
  });

  test("the engine's limits: heap and stack", () => {
    expect(thrown(() => decode(run(`export default () => { let s = []; for (;;) s.push({ s }); }`, "A[]", ["--heap", String(4 << 20)])))).toBeInstanceOf(JsMemoryError);
    expect(thrown(() => decode(run(`const f = (n) => f(n + 1) + 1; export default () => f(0);`, "A[]", ["--stack", String(256 << 10)])))).toBeInstanceOf(JsStackError);
  });

  test("a bench run gives one time per call", () => {
    const path = join(tmp, "b.js");
    writeFileSync(path, `export default (x) => x * 2;`);
    for (const mode of ["cold", "warm"]) {
      const p = Bun.spawnSync([enginePath, "--bench", mode, "5", path, "[21]"]);
      expect(p.exitCode).toBe(0);
      const lines = p.stdout.toString().trim().split("\n");
      expect(lines).toHaveLength(5);
      for (const l of lines) expect(Number(l)).toBeGreaterThan(0);
    }
    rmSync(tmp, { recursive: true, force: true });
  });
});

describe("a JS snapshot file's saved engine arguments", () => {
  test("name and limits read back; anything forged is a BadSnapshotError naming the file, never another error", () => {
    expect(savedJsSettings(["--name", "h.js", "--heap", "1048576", "--stack", "65536"], "f.snap")).toEqual({ name: "h.js", limits: { heap: 1048576, stack: 65536 } });
    for (const saved of [["--heap", "x", "--stack", "1"], ["--heap", "-1", "--stack", "1"], ["--heap", "1"], ["--name", "a\nb", "--heap", "1", "--stack", "1"], ["--heap", "1e400", "--stack", "1"]]) {
      const e = thrown(() => savedJsSettings(saved, "f.snap"));
      expect(e).toBeInstanceOf(WaspError);
      expect((e as WaspError).code).toBe("WASP_BAD_SNAPSHOT");
      expect((e as WaspError).message).toStartWith("f.snap: ");
    }
    fc.assert(fc.property(fc.array(fc.oneof(fc.constantFrom("--name", "--heap", "--stack"), fc.string())), (saved) => {
      try {
        const r = savedJsSettings(saved, "f.snap");
        expect(Number.isSafeInteger(r.limits.heap) && r.limits.heap >= 0).toBe(true);
        expect(Number.isSafeInteger(r.limits.stack) && r.limits.stack >= 0).toBe(true);
        expect(r.name.length).toBeGreaterThan(0);
      } catch (e) {
        expect((e as WaspError).code).toBe("WASP_BAD_SNAPSHOT");
      }
    }));
  });
});
