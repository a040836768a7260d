// Python virtines (issue 24, part 2): Debian's unmodified python3 runs a module's handler(event)
// in a virtine, beside the same handler run by python3 natively; the module is imported and warmed
// up once, then every call resumes the warm interpreter and nothing of one call reaches the next;
// exceptions come back as PyErrors with their tracebacks; a hostile handler (a loop, a flood, a
// memory hog, deep recursion, a fork, the host's files) ends only its own call. Needs python3
// (`.ci/run` installs it).
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BadArgsError, BadOutputError, PyError, TimeoutError, Virtine } from "../src/index.ts";
import { findPython } from "../src/python/runtime.ts";

const PY = "/usr/bin/python3";
const root = mkdtempSync(join(tmpdir(), "wasp-python-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const WASP = join(import.meta.dir, "../dist/wasp");
/** A promise that had to reject resolved: the test fails. */
const unexpected = (v: unknown): any => {
  throw new Error(`resolved with ${JSON.stringify(v)} where it had to reject`);
};

/** The handler's result as the host's python3 gives it, natively (the same JSON encoding as the runner's). */
function native(source: string, input: unknown): unknown {
  const file = join(root, `native-${Math.random().toString(36).slice(2)}.py`);
  writeFileSync(file, `${source}\nimport json, sys\nsys.stdout.write(json.dumps(handler(*json.loads(sys.argv[1])), allow_nan=False, ensure_ascii=False))\n`);
  const r = Bun.spawnSync([PY, file, JSON.stringify(input === undefined ? [] : [input])], { env: { PYTHONHASHSEED: "0" }, stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(r.stderr.toString());
  return JSON.parse(r.stdout.toString());
}

function wasp(args: string[], path = "/usr/bin:/bin") {
  const r = Bun.spawnSync([WASP, ...args], { env: { PATH: path }, cwd: root });
  return { status: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
}

const STATS = `
import statistics, json, re, collections
WORDS = re.compile(r"[a-z]+")
def handler(event):
    words = WORDS.findall(event["text"].lower())
    top = collections.Counter(words).most_common(3)
    return {"n": len(words), "top": top, "mean": statistics.mean(len(w) for w in words), "sorted": sorted(set(words))[:5]}
`;
const INPUTS = [{ text: "the quick brown fox jumps over the lazy dog the end" }, { text: "a b a c a b ünïcode" }, { text: "one" }];

describe("Virtine.fromPython", () => {
  test("the handler's results equal python3's own, on workers and on this thread, several calls per warm VM", async () => {
    await using v = await Virtine.fromPython(STATS, { python: PY, poolSize: 1 });
    expect(v.kind).toBe("python");
    expect(v.python).toBe(findPython(PY).path);
    for (let round = 0; round < 2; round++) {
      for (const input of INPUTS) {
        const want = native(STATS, input);
        expect(await v.call(input)).toEqual(want);
        expect(v.callSync(input)).toEqual(want);
      }
    }
  });

  test("the warm-up runs once, before the snapshot; nothing of a call reaches the next", async () => {
    const source = `
state = {"warm": 0, "calls": 0}
cache = []
def handler(event):
    if event == "warm":
        state["warm"] += 1
        return None
    state["calls"] += 1
    cache.append(event)
    return {"warm": state["warm"], "calls": state["calls"], "cache": cache}
`;
    await using v = await Virtine.fromPython(source, { python: PY, warmup: ["warm", "warm"] });
    for (let i = 0; i < 4; i++) expect(await v.call(`c${i}`)).toEqual({ warm: 2, calls: 1, cache: [`c${i}`] });
    for (let i = 0; i < 2; i++) expect(v.callSync(i)).toEqual({ warm: 2, calls: 1, cache: [i] });
  });

  test("a warm call leaves its VM once: libc's system-call sites are rewritten in the snapshot", async () => {
    // the warm-up makes the imports statistics does at its first use (reading the standard
    // library leaves the VM; a call made without it repeats them, its reset undoes them)
    await using v = await Virtine.fromPython(STATS, { python: PY, poolSize: 1, warmup: [INPUTS[0]] });
    v.callSync(INPUTS[0]);
    expect(v.runSync({ args: [INPUTS[1]] }).exits).toBe(1);
    for (const input of INPUTS) expect((await v.run({ args: [input] })).exits).toBe(1);
  });

  test("its snapshot file: Virtine.loadPython resumes the warm interpreter, on workers and this thread, one exit a call", async () => {
    const file = join(root, "stats.snap");
    {
      await using v = await Virtine.fromPython(STATS, { python: PY, warmup: [INPUTS[0]] });
      const info = v.writeSnapshot(file);
      expect(info.linux).toBe(true);
    }
    for (let load = 0; load < 2; load++) {
      await using loaded = await Virtine.loadPython(file, { python: PY, poolSize: 1 });
      expect(loaded.kind).toBe("python");
      for (const input of INPUTS) {
        const want = native(STATS, input);
        expect(await loaded.call(input)).toEqual(want);
        expect(loaded.callSync(input)).toEqual(want);
      }
      // libc's sites were rewritten before the snapshot was written: warm calls stay in the VM
      loaded.callSync(INPUTS[1]);
      expect(loaded.runSync({ args: [INPUTS[2]] }).exits).toBe(1);
    }
    // it is a Python virtine's: Virtine.load says which loader to use
    expect(await Virtine.load(file).then(unexpected, (e) => e)).toBeInstanceOf(BadArgsError);
  });

  test("a snapshot file keeps what the warm-up made and nothing of later calls", async () => {
    const file = join(root, "state.snap");
    const source = `
state = {"warm": 0, "calls": 0}
def handler(event):
    if event == "warm":
        state["warm"] += 1
        return None
    state["calls"] += 1
    return state
`;
    {
      await using v = await Virtine.fromPython(source, { python: PY, warmup: ["warm", "warm", "warm"] });
      expect(await v.call("x")).toEqual({ warm: 3, calls: 1 });
      v.writeSnapshot(file);
    }
    await using loaded = await Virtine.loadPython(file, { python: PY });
    for (let i = 0; i < 3; i++) expect(await loaded.call("y")).toEqual({ warm: 3, calls: 1 });
  });

  test("print() is the call's console, never its result; several arguments and none", async () => {
    await using v = await Virtine.fromPython(`
import sys
def handler(*args):
    print("args:", args)
    print("to stderr", file=sys.stderr)
    return len(args)
`, { python: PY });
    const r = await v.run({ args: [1, "two", [3]] });
    expect(r.value).toBe(3);
    expect(r.console).toBe("args: (1, 'two', [3])\nto stderr\n");
    expect(await v.invoke()).toBe(0);
  });

  test("an exception is a PyError with its traceback; the next call is clean", async () => {
    await using v = await Virtine.fromPython(`
def helper(x):
    return 10 // x
def handler(event):
    return helper(event)
`, { python: PY, name: "calc.py" });
    const e = await v.call(0).then(unexpected, (x: any) => x);
    expect(e).toBeInstanceOf(PyError);
    expect(e.code).toBe("WASP_PY_ERROR");
    expect(e.pyName).toBe("ZeroDivisionError");
    expect(e.phase).toBe("call");
    expect(e.message).toBe("ZeroDivisionError: integer division or modulo by zero");
    expect(e.traceback).toContain('File "calc.py", line 3, in helper');
    expect(e.traceback).toContain("return 10 // x");
    expect(e.traceback).not.toContain("runner.py");
    expect(await v.call(5)).toBe(2);
  });

  test("a module that does not compile, raises at import, lacks a handler, or imports what is not there: rejects at load", async () => {
    const syntax = await Virtine.fromPython("def handler(x):\n    return (x\n", { python: PY }).then(unexpected, (x: any) => x);
    expect(syntax).toBeInstanceOf(PyError);
    expect(syntax.pyName).toBe("SyntaxError");
    expect(syntax.phase).toBe("load");
    expect(syntax.position).toEqual({ file: "handler.py", line: 2, column: 12 });
    for (const [source, name] of [["raise RuntimeError('at import')\n", "RuntimeError"], ["x = 1\n", "TypeError"], ["import no_such_module_here\n", "ModuleNotFoundError"]] as const) {
      const e = await Virtine.fromPython(source, { python: PY }).then(unexpected, (x: any) => x);
      expect(e).toBeInstanceOf(PyError);
      expect(e.pyName).toBe(name);
      expect(e.phase).toBe("load");
    }
    const warm = await Virtine.fromPython("def handler(x):\n    raise KeyError(x)\n", { python: PY, warmup: [1] }).then(unexpected, (x: any) => x);
    expect(warm.phase).toBe("warmup");
  });

  test("a result JSON cannot carry is a PyError of the call", async () => {
    await using v = await Virtine.fromPython("def handler(kind):\n    return {'set': {1}, 'nan': float('nan')}[kind]\n", { python: PY });
    for (const kind of ["set", "nan"]) {
      const e = await v.call(kind).then(unexpected, (x: any) => x);
      expect(e).toBeInstanceOf(PyError);
      expect(["TypeError", "ValueError"]).toContain(e.pyName);
    }
  });

  test("options that are not a Python virtine's, and a python3 that is not one, are refused", async () => {
    expect(await Virtine.fromPython("def handler(): pass", { python: PY, env: ["A=1"] } as never).then(unexpected, (x: any) => x)).toBeInstanceOf(BadArgsError);
    expect(await Virtine.fromPython("def handler(): pass", { python: PY, dirs: { "/": "/" } } as never).then(unexpected, (x: any) => x)).toBeInstanceOf(BadArgsError);
    const script = join(root, "python3");
    writeFileSync(script, "#!/bin/sh\nexec /usr/bin/python3 \"$@\"\n", { mode: 0o755 });
    const shim = await Virtine.fromPython("def handler(): pass", { python: script }).then(unexpected, (x: any) => x);
    expect(shim).toBeInstanceOf(BadArgsError);
    expect(shim.message).toContain("is a script");
    expect(() => findPython(undefined, root)).toThrow(/is a script/);
    // a shim first on PATH is passed over for the python3 after it (pyenv users need no --python)
    expect(findPython(undefined, `${root}:/usr/bin`).path).toBe(findPython(PY).path);
    const other = join(root, "other");
    mkdirSync(other, { recursive: true });
    writeFileSync(join(other, "python3"), "#!/bin/sh\n", { mode: 0o755 });
    expect(() => findPython(undefined, `${root}:${other}`)).toThrow(/is a script .*\(and the 1 other python3 on PATH is none either\)/);
    expect(() => findPython(undefined, join(root, "nowhere"))).toThrow(/no python3 on PATH/);
    expect(findPython(undefined, "/usr/bin").path).toBe(findPython(PY).path);
  });
});

describe("a hostile handler ends only its own call", () => {
  test("a loop runs into the deadline; the next call works", async () => {
    await using v = await Virtine.fromPython("def handler(spin):\n    while spin:\n        pass\n    return 'ok'\n", { python: PY, timeoutMs: 1500 });
    expect(await v.call(true).then(unexpected, (x: any) => x)).toBeInstanceOf(TimeoutError);
    expect(await v.call(false)).toBe("ok");
  });

  test("a flood of output is cut at its caps", async () => {
    await using v = await Virtine.fromPython("def handler(kind):\n    if kind == 'print':\n        for i in range(5000): print('x' * 100)\n        return 'done'\n    return 'y' * (1 << 20)\n", { python: PY, maxOutput: 256 << 10 });
    const printed = await v.run({ args: ["print"] });
    expect(printed.value).toBe("done");
    expect(printed.consoleTruncated).toBe(true);
    expect(await v.call("result").then(unexpected, (x: any) => x)).toBeInstanceOf(BadOutputError);
    expect(await v.call("print").then((x) => x)).toBe("done");
  });

  test("exhausting memory is a MemoryError inside the VM; deep recursion a RecursionError", async () => {
    await using v = await Virtine.fromPython(`
def down(n):
    return down(n + 1)
def handler(kind):
    if kind == "memory":
        hog = []
        while True:
            hog.append(bytearray(16 << 20))
    if kind == "recursion":
        return down(0)
    return "fine"
`, { python: PY, memory: 128 << 20 });
    const mem = await v.call("memory").then(unexpected, (x: any) => x);
    expect(mem).toBeInstanceOf(PyError);
    expect(mem.pyName).toBe("MemoryError");
    const rec = await v.call("recursion").then(unexpected, (x: any) => x);
    expect(rec).toBeInstanceOf(PyError);
    expect(rec.pyName).toBe("RecursionError");
    expect(await v.call("fine")).toBe("fine");
  });

  test("no fork, no host files, no network: each fails inside the VM", async () => {
    await using v = await Virtine.fromPython(`
import os, socket
def handler(kind):
    try:
        if kind == "fork": os.fork()
        if kind == "file": open("/etc/passwd").read()
        if kind == "socket": socket.socket()
        if kind == "write": open("/usr/lib/python3.11/os.py", "a")
    except OSError as e:
        return type(e).__name__
    return "allowed?"
`, { python: PY });
    expect(await v.call("fork")).toBe("OSError");
    expect(await v.call("file")).toBe("FileNotFoundError");
    expect(await v.call("socket")).toBe("OSError");
    expect(await v.call("write")).toMatch(/OSError|PermissionError/);
  });
});

describe("wasp invoke handler.py", () => {
  const handler = join(root, "stats.py");
  writeFileSync(handler, STATS);
  const input = join(root, "in.json");
  writeFileSync(input, JSON.stringify(INPUTS[0]));

  test("--input and positional arguments; the python3 on PATH", () => {
    const r = wasp(["invoke", handler, "--input", input]);
    expect(r.err).toBe("");
    expect(r.status).toBe(0);
    expect(JSON.parse(r.out)).toEqual(native(STATS, INPUTS[0]));
    const j = wasp(["invoke", handler, "--json", "--python", PY, JSON.stringify(INPUTS[2])]);
    expect(JSON.parse(j.out).value).toEqual(native(STATS, INPUTS[2]));
  });

  test("an exception: its traceback, a one-line error, status 29", () => {
    const r = wasp(["invoke", handler, '{"text": ""}']);
    expect(r.status).toBe(29);
    expect(r.err).toContain("Traceback (most recent call last):");
    expect(r.err).toContain('File "stats.py", line 7, in handler');
    expect(r.err.trimEnd().split("\n").pop()).toBe("wasp: StatisticsError: mean requires at least one data point");
  });

  test("wasp snapshot handler.py -o FILE --warmup, then wasp invoke FILE: the same results, from the warm interpreter", () => {
    const warm = join(root, "warm.json");
    writeFileSync(warm, JSON.stringify([INPUTS[0], INPUTS[1]]));
    const file = join(root, "cli-stats.snap");
    const made = wasp(["snapshot", handler, "-o", file, "--warmup", warm, "--python", PY]);
    expect(made.status).toBe(0);
    expect(made.err).toMatch(/^wasp: wrote .*cli-stats\.snap: stats\.py imported and warmed up by 2 call\(s\) by \/usr\/bin\/python3\.\d+, 256 MiB/);
    for (const given of INPUTS) {
      const r = wasp(["invoke", file, JSON.stringify(given), "--verbose"]);
      expect(r.status).toBe(0);
      expect(JSON.parse(r.out)).toEqual(native(STATS, given));
      expect(r.err).toMatch(/Python \(snapshot file\), 256 MiB, .*, 1 exit\(s\)/);
    }
    const inspect = wasp(["inspect", file]);
    expect(inspect.out).toMatch(/python3, running a Python module's handler/);
    expect(inspect.out).toMatch(/\d+ page\(s\) with protections of its own/);
    // an exception from the snapshot: the same traceback and status as without it
    const failed = wasp(["invoke", file, '{"text": ""}']);
    expect(failed.status).toBe(29);
    expect(failed.err.trimEnd().split("\n").pop()).toBe("wasp: StatisticsError: mean requires at least one data point");
    // the module is the file's: another handler's source is not read
    const plain = wasp(["invoke", file, "--input", input]);
    expect(JSON.parse(plain.out)).toEqual(native(STATS, INPUTS[0]));
  });

  test("examples/python.ts and examples/python/words.py run as written", () => {
    const ROOT = join(import.meta.dir, "..");
    const r = Bun.spawnSync([process.execPath, "run", join(ROOT, "examples/python.ts"), "a rose is a rose", ""], { cwd: ROOT, env: { ...process.env, PATH: `/usr/bin:/bin:${process.env.PATH}` } });
    expect(r.stderr.toString()).toBe("");
    expect(r.stdout.toString()).toBe('"a rose is a rose" -> {"words":5,"top":[["a",2],["rose",2],["is",1]],"mean_length":2.4}\n"" -> ValueError: no words in the text\n');
    const cli = wasp(["invoke", join(ROOT, "examples/python/words.py"), '{"text": "a rose is a rose"}']);
    expect(cli.status).toBe(0);
    expect(JSON.parse(cli.out)).toEqual({ words: 5, top: [["a", 2], ["rose", 2], ["is", 1]], mean_length: 2.4 });
  });

  test("no python3: a clear error", () => {
    const r = wasp(["invoke", handler, "{}"], join(root, "nowhere"));
    expect(r.status).toBe(2);
    expect(r.err).toBe("wasp: no python3 on PATH: install it (Debian: apt install python3) or give --python PATH\n");
    const flag = wasp(["invoke", "/bin/true", "--python", PY]);
    expect(flag.status).toBe(2);
    expect(flag.err).toContain("--python is for Python virtines");
  });
});
