// JavaScript virtines (issue 14) on the real /dev/kvm: the user's ES module in QuickJS, one VM per
// call, resumed from the engine's snapshot after the module is compiled and warmed up. Results and
// errors through JSON; isolation between calls; hostile code (a spin, a memory bomb, unbounded
// recursion, a polluted prototype) stopped with typed errors and no trace on the next call; the
// clock and randomness only with their grants; snapshot files.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BadArgsError, BadOutputError, JsError, JsMemoryError, JsStackError, JsSyntaxError, TimeoutError, Virtine, WorkerPool } from "../src/index.ts";
import { rejection, slow, thrown, fdTable, fdsOpenedSince } from "./support.ts";

const tmp = mkdtempSync(join(tmpdir(), "wasp-js-"));
const workers = new WorkerPool({ size: 2 });
afterAll(async () => {
  await workers.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe("calls", () => {
  test("JSON in and out, on a worker and on this thread; several arguments; undefined; a Promise", async () => {
    await using v = await Virtine.fromJs(
      `export default async (x, y) => {
         if (x === undefined) return undefined;
         if (y !== undefined) return x * y;
         await null;
         return { got: x, keys: Object.keys(x ?? {}), type: typeof x };
       };`,
      { workers },
    );
    expect(v.kind).toBe("js");
    expect(await v.call({ a: 1, b: [true, null, "s"] })).toEqual({ got: { a: 1, b: [true, null, "s"] }, keys: ["a", "b"], type: "object" });
    expect(v.callSync("text")).toEqual({ got: "text", keys: ["0", "1", "2", "3"], type: "string" });
    expect(await v.invoke(6, 7)).toBe(42);
    expect(v.invokeSync(6, 7)).toBe(42);
    expect(await v.call()).toBeUndefined();
    expect(v.callSync()).toBeUndefined();
  }, slow(120_000));

  test("console.log and console.error reach the call's console; the result is separate", async () => {
    await using v = await Virtine.fromJs(`export default (n) => { console.log("n is", n, { k: [1] }); console.error(new TypeError("shown")); return n + 1; };`, { workers });
    const r = await v.run({ args: [41] });
    expect(r.value).toBe(42);
    expect(r.console).toStartWith('n is 41 {"k":[1]}\nTypeError: shown\n');
    expect(r.consoleTruncated).toBe(false);
    expect(v.runSync({ args: [1] }).value).toBe(2);
  }, slow(120_000));

  test("warm-up calls run before the snapshot: every call starts from their state", async () => {
    await using v = await Virtine.fromJs(`let calls = 0; const seen = []; export default (x) => { calls++; seen.push(x); return { calls, seen }; };`, { workers, warmup: ["w1", { w: 2 }] });
    expect(await v.call("a")).toEqual({ calls: 3, seen: ["w1", { w: 2 }, "a"] });
    expect(await v.call("b")).toEqual({ calls: 3, seen: ["w1", { w: 2 }, "b"] });
    expect(v.callSync("c")).toEqual({ calls: 3, seen: ["w1", { w: 2 }, "c"] });
  }, slow(120_000));

  test("without a snapshot every call starts the engine and compiles the module", async () => {
    await using v = await Virtine.fromJs(`let n = 0; export default () => ++n;`, { workers, snapshot: false });
    expect(await v.call()).toBe(1);
    expect(await v.call()).toBe(1);
    expect(v.callSync()).toBe(1);
  }, slow(120_000));

  test("100 concurrent calls each get their own answer", async () => {
    await using v = await Virtine.fromJs(`export default (i) => ({ i, sq: i * i, s: String(i).repeat(3) });`, { workers });
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => v.call(i)));
    results.forEach((r, i) => expect(r).toEqual({ i, sq: i * i, s: String(i).repeat(3) }));
  }, slow(300_000));
});

describe("errors", () => {
  test("a syntax error rejects at load with its line and column", async () => {
    const e = await rejection(Virtine.fromJs(`export default (x) => {\n  const a = 1;\n  return a +* x;\n};\n`, { workers, name: "bad.js" }));
    expect(e).toBeInstanceOf(JsSyntaxError);
    const s = e as JsSyntaxError;
    expect(s.code).toBe("WASP_JS_SYNTAX");
    expect([s.fileName, s.line, s.column]).toEqual(["bad.js", 3, 13]);
    expect(s.message).toStartWith("bad.js:3:13: SyntaxError: ");
    // columns count characters, not bytes
    const u = (await rejection(Virtine.fromJs(`const s = "ééé"; )`, { workers }))) as JsSyntaxError;
    expect([u.line, u.column]).toEqual([1, 18]);
  }, slow(120_000));

  test("a thrown error carries the JS name, message and stack; a rejected promise too; the next call is fine", async () => {
    await using v = await Virtine.fromJs(
      `export default async (mode) => {
         if (mode === "throw") throw new RangeError("too far: " + mode);
         if (mode === "reject") return Promise.reject(new Error("no"));
         if (mode === "value") throw 42;
         if (mode === "never") return new Promise(() => {});
         if (mode === "bigint") return 1n;
         return "ok";
       };`,
      { workers, name: "h.mjs" },
    );
    const e = (await rejection(v.call("throw"))) as JsError;
    expect(e).toBeInstanceOf(JsError);
    expect([e.code, e.jsName, e.jsMessage, e.phase]).toEqual(["WASP_JS_ERROR", "RangeError", "too far: throw", "call"]);
    expect(e.jsStack).toContain("h.mjs");
    expect(e.message).toBe("RangeError: too far: throw");
    expect(((await rejection(v.call("reject"))) as JsError).jsMessage).toBe("no");
    expect(((await rejection(v.call("value"))) as JsError).jsMessage).toBe("42");
    expect(((await rejection(v.call("never"))) as JsError).jsMessage).toContain("never settled");
    expect(((await rejection(v.call("bigint"))) as JsError).jsName).toBe("TypeError");
    expect(thrown(() => v.callSync("throw"))).toBeInstanceOf(JsError);
    expect(await v.call("fine")).toBe("ok");
  }, slow(120_000));

  test("a module that throws, exports no function, or imports is refused at load", async () => {
    const top = (await rejection(Virtine.fromJs(`throw new Error("at the top");`, { workers }))) as JsError;
    expect([top.jsMessage, top.phase]).toEqual(["at the top", "load"]);
    const none = (await rejection(Virtine.fromJs(`export default 3;`, { workers }))) as JsError;
    expect(none.jsMessage).toContain("default export is not a function");
    const imp = (await rejection(Virtine.fromJs(`import fs from "fs"; export default () => fs;`, { workers }))) as JsError;
    expect(imp.jsMessage).toContain("cannot import 'fs'");
    const warm = (await rejection(Virtine.fromJs(`export default (x) => x.y.z;`, { workers, warmup: [{}] }))) as JsError;
    expect([warm.jsName, warm.phase]).toEqual(["TypeError", "warmup"]);
  }, slow(120_000));

  test("options and inputs that cannot work are BadArgsErrors", async () => {
    expect(await rejection(Virtine.fromJs(`export default () => 1;`, { workers, env: ["A=b"] } as never))).toBeInstanceOf(BadArgsError);
    expect(await rejection(Virtine.fromJs(`export default () => 1;`, { workers, heapLimit: 1 }))).toBeInstanceOf(BadArgsError);
    expect(await rejection(Virtine.fromJs(`export default () => 1;`, { workers, name: "a\nb" }))).toBeInstanceOf(BadArgsError);
    expect(await rejection(Virtine.fromJs(42 as never, { workers }))).toBeInstanceOf(BadArgsError);
    await using v = await Virtine.fromJs(`export default (x) => x;`, { workers });
    expect(await rejection(v.call(() => 1))).toBeInstanceOf(BadArgsError);
    expect(await rejection(v.call(10n))).toBeInstanceOf(BadArgsError);
    expect(await rejection(v.invoke(...Array(65).fill(0)))).toBeInstanceOf(BadArgsError);
  }, slow(120_000));

  test("a result past the output cap is a BadOutputError", async () => {
    await using v = await Virtine.fromJs(`export default (n) => "x".repeat(n);`, { workers, maxOutput: 1000 });
    expect((await v.call(900)) as string).toHaveLength(900);
    expect(await rejection(v.call(5000))).toBeInstanceOf(BadOutputError);
  }, slow(120_000));
});

describe("hostile code", () => {
  test("a global, a module variable and a polluted Object.prototype do not survive the call", async () => {
    await using v = await Virtine.fromJs(
      `let count = 0;
       export default (step) => {
         const before = { global: typeof globalThis.leak, count, polluted: ({}).polluted, json: JSON.stringify };
         globalThis.leak = step; count++; Object.prototype.polluted = "yes"; JSON.stringify = () => "hijacked";
         return { global: before.global, count: before.count, polluted: before.polluted ?? null, jsonIntact: before.json !== JSON.stringify };
       };`,
      { workers },
    );
    for (let i = 0; i < 3; i++) {
      expect(await v.call(i)).toEqual({ global: "undefined", count: 0, polluted: null, jsonIntact: true });
      expect(v.callSync(i)).toEqual({ global: "undefined", count: 0, polluted: null, jsonIntact: true });
    }
  }, slow(120_000));

  test("for(;;){} is stopped by the deadline; the next call is clean", async () => {
    await using v = await Virtine.fromJs(`export default (spin) => { if (spin) for (;;) {} return "done"; };`, { workers, timeoutMs: slow(1000) });
    expect(await rejection(v.call(true))).toBeInstanceOf(TimeoutError);
    expect(thrown(() => v.callSync(true))).toBeInstanceOf(TimeoutError);
    expect(await v.call(false)).toBe("done");
  }, slow(120_000));

  test("a memory bomb ends with JsMemoryError at the heap limit; the next call is clean", async () => {
    await using v = await Virtine.fromJs(
      `export default (bomb) => {
         if (bomb === "array") { const a = []; for (;;) a.push(new Array(1000).fill(a.length)); }
         if (bomb === "string") { let s = "x"; for (;;) s += s; }
         if (bomb === "buffer") return new ArrayBuffer(1 << 30).byteLength;
         if (bomb === "nested") { let o = {}; for (;;) o = { o }; }
         return "fine";
       };`,
      { workers, memory: 64 << 20, heapLimit: 16 << 20 },
    );
    for (const bomb of ["array", "string", "buffer", "nested"]) {
      const e = (await rejection(v.call(bomb))) as JsMemoryError;
      expect(e).toBeInstanceOf(JsMemoryError);
      expect([e.code, e.limit]).toEqual(["WASP_JS_MEMORY", 16 << 20]);
      expect(await v.call("no")).toBe("fine");
    }
  }, slow(300_000));

  test("unbounded recursion ends with JsStackError (the engine's check, or the guard under the stack for its C recursion); the next call is clean", async () => {
    await using v = await Virtine.fromJs(
      `const f = (n) => f(n + 1) + 1;
       const g = (o) => JSON.stringify(o);
       export default (how) => {
         if (how === "call") return f(0);
         if (how === "json") { let o = {}; for (let i = 0; i < 1e5; i++) o = { o }; return g(o); }
         return "fine";
       };`,
      { workers },
    );
    for (const how of ["call", "json"]) {
      const e = (await rejection(v.call(how))) as JsStackError;
      expect(e).toBeInstanceOf(JsStackError);
      expect(e.code).toBe("WASP_JS_STACK");
      expect(await v.call("no")).toBe("fine");
    }
  }, slow(300_000));

  test("the clock and randomness: real only with their grants", async () => {
    const source = `export default () => ({ now: Date.now(), date: new Date().getTime(), r: [Math.random(), Math.random()] });`;
    await using closed = await Virtine.fromJs(source, { workers });
    const a = (await closed.call()) as { now: number; date: number; r: number[] };
    const b = (await closed.call()) as { now: number; date: number; r: number[] };
    expect([a.now, a.date]).toEqual([0, 0]);
    expect(a.r).toEqual(b.r); // a fixed seed: calls without the grant are deterministic
    expect(a.r[0]).not.toBe(a.r[1]);
    await using open = await Virtine.fromJs(source, { workers, allow: ["time", "random"] });
    const c = (await open.call()) as { now: number; date: number; r: number[] };
    const d = (await open.call()) as { now: number; date: number; r: number[] };
    expect(Math.abs(c.now - Date.now())).toBeLessThan(slow(60_000));
    expect(c.r).not.toEqual(d.r); // reseeded per call, not the snapshot's frozen state
  }, slow(120_000));
});

describe("snapshot files", () => {
  test("writeSnapshot, then loadJs: calls resume the warm engine; Virtine.load refuses it", async () => {
    const file = join(tmp, "h.snap");
    {
      await using v = await Virtine.fromJs(`let warm = 0; export default (x) => ({ x, warm: warm++ });`, { workers, warmup: [1, 2], name: "w.js" });
      const info = v.writeSnapshot(file);
      expect(info.populatedPages).toBeGreaterThan(0);
    }
    const fds = fdTable();
    {
      await using loaded = await Virtine.loadJs(file, { workers });
      expect(loaded.name).toBe("w.js");
      expect(await loaded.call("a")).toEqual({ x: "a", warm: 2 });
      expect(await loaded.call("b")).toEqual({ x: "b", warm: 2 });
      expect(loaded.callSync("c")).toEqual({ x: "c", warm: 2 });
    }
    expect(fdsOpenedSince(fds)).toEqual([]);
    expect(await rejection(Virtine.load(file, { workers }))).toBeInstanceOf(BadArgsError);
  }, slow(180_000));
});
