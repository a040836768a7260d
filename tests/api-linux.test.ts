// Linux programs through the public TypeScript interface (issue 13, parts 4, 5 and 7), on the real
// /dev/kvm: `Virtine.load` of a static executable (by path or bytes) and `Virtine.fromC`; string
// arguments, stdin, the environment and granted files; stdout, stderr and the exit status, on the
// calling thread and on workers alike; a program's snapshot on every thread that runs it; host
// functions from a module on workers; typed errors, cancellation, and options that do not apply.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BadArgsError, CompileError, GuestFaultError, TimeoutError, Virtine, WorkerPool } from "../src/index.ts";
import { compileC } from "../src/linux/c.ts";
import { slow, fdTable, fdsOpenedSince } from "./support.ts";

const tmp = mkdtempSync(join(tmpdir(), "wasp-api-linux-"));
const cacheDir = join(tmp, "cache");
const workers = new WorkerPool({ size: 2 });
afterAll(async () => {
  await workers.close();
  rmSync(tmp, { recursive: true, force: true });
});

const ECHO = `#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
  char buf[4096]; size_t n = fread(buf, 1, sizeof buf, stdin);
  for (int i = 1; i < argc; i++) printf("%s%s", i > 1 ? "," : "", argv[i]);
  printf("|%.*s|%s\\n", (int)n, buf, getenv("WHO") ? getenv("WHO") : "-");
  FILE *f = fopen("/etc/motd", "r");
  if (f) { char line[64] = {0}; fgets(line, sizeof line, f); fprintf(stderr, "motd %s", line); fclose(f); }
  return argc;
}`;

let echoPath = "";
beforeAll(async () => {
  echoPath = (await compileC(ECHO, { cacheDir, name: "echo" })).path;
}, slow(600_000));

const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe("a static executable as a virtine", () => {
  test("load by path: arguments, stdin, env and a granted file; the same on this thread and on a worker", async () => {
    const motd = join(tmp, "motd");
    writeFileSync(motd, "be kind\n");
    await using v = await Virtine.load(echoPath, { workers, env: { WHO: "me" }, files: { "/etc/motd": motd } });
    expect(v.kind).toBe("linux");
    const here = v.runSync({ args: ["a", "b c"], input: "in" });
    expect(here).toMatchObject({ status: 3, value: 3n, console: "motd be kind\n", outputTruncated: false });
    expect(text(here.output)).toBe("a,b c|in|me\n");
    const there = await v.run({ args: ["a", "b c"], input: "in" });
    expect(there).toMatchObject({ status: 3, value: 3n, console: "motd be kind\n", outputTruncated: false });
    expect(text(there.output)).toBe("a,b c|in|me\n");
    // per call: the environment, numbers as arguments
    expect(text((await v.run({ args: [7, 8n], env: ["WHO=you"] })).output)).toBe("7,8||you\n");
    expect(text(v.runSync({ args: [1], env: { WHO: "them" } }).output)).toBe("1||them\n");
  });

  test("call and callSync: stdin in, stdout out; invoke: the exit status", async () => {
    await using v = await Virtine.load(echoPath, { workers });
    expect(v.callSync("hello")).toBe("|hello|-\n");
    expect(await v.call("world")).toBe("|world|-\n");
    expect(await v.invoke("x", "y")).toBe(3n);
    expect(v.invokeSync()).toBe(1n);
    const many = await Promise.all(Array.from({ length: 24 }, (_, i) => v.call(`n${i}`)));
    expect(many).toEqual(Array.from({ length: 24 }, (_, i) => `|n${i}|-\n`));
  });

  test("load from bytes; stdout past maxOutput is cut and said, on workers too", async () => {
    const flood = await compileC(`#include <stdio.h>\nint main(void) { for (int i = 0; i < 10000; i++) puts("0123456789"); return 0; }`, { cacheDir, name: "flood" });
    await using v = await Virtine.load(flood.elf.bytes, { workers, maxOutput: 1000 });
    const r = await v.run();
    expect([r.status, r.output.length, r.outputTruncated]).toEqual([0, 1000, true]);
    expect(v.runSync().outputTruncated).toBe(true);
  });
});

describe("Virtine.fromC", () => {
  const LOOKUP = `#include <stdio.h>
#include <wasp.h>
static int table[1000];
int main(void) {
  for (int i = 0; i < 1000; i++) table[i] = i * 3;
  fprintf(stderr, "built\\n");
  wasp_snapshot();
  int q; while (scanf("%d", &q) == 1) printf("%d ", table[q % 1000]);
  return 0;
}`;

  test("a C virtine inline: its snapshot taken after the table, on this thread and on every worker", async () => {
    await using v = await Virtine.fromC(LOOKUP, { cacheDir, workers, name: "lookup" });
    expect(v.kind).toBe("linux");
    expect(v.name).toBe("lookup");
    const first = v.runSync({ input: "1 2" });
    expect([text(first.output), first.console]).toEqual(["3 6 ", "built\n"]);
    const again = v.runSync({ input: "10" });
    expect([text(again.output), again.console]).toEqual(["30 ", ""]);
    // each worker snapshots on its first call, then resumes
    const runs = await Promise.all(Array.from({ length: 16 }, (_, i) => v.run({ input: String(i) })));
    expect(runs.map((r) => text(r.output))).toEqual(Array.from({ length: 16 }, (_, i) => `${i * 3} `));
    expect(runs.filter((r) => r.console === "built\n").length).toBeLessThanOrEqual(2);
  });

  test("a source that does not compile is a CompileError with the compiler's message", async () => {
    const e = await Virtine.fromC("int main(void) { return nope; }", { cacheDir, workers }).catch((x) => x);
    expect(e).toBeInstanceOf(CompileError);
    expect(String(e.message)).toMatch(/nope/);
  });

  test("host functions from a module serve a C program on a worker", async () => {
    const mod = join(tmp, "fns.ts");
    writeFileSync(mod, "export function add(a: bigint, b: bigint) { return a + b; }\n");
    await using v = await Virtine.fromC(`#include <stdio.h>
#include <wasp.h>
int main(void) {
  unsigned char args[32], out[32]; unsigned long n = 0, len; int ok;
  n = wasp_put_u64(args, sizeof args, n, 40); n = wasp_put_u64(args, sizeof args, n, 2);
  len = wasp_host_call("add", args, n, out, sizeof out);
  printf("%lu\\n", wasp_result_u64(out, len, &ok));
  return 0;
}`, { cacheDir, workers, hostModule: mod });
    expect(text((await v.run()).output)).toBe("42\n");
    expect(v.callSync("")).toBe("42\n");
  });
});

describe("errors", () => {
  test("a fault, the deadline and a cancellation, on a worker, as typed errors; the virtine goes on", async () => {
    const prog = await compileC(`#include <stdio.h>
int main(int argc, char **argv) { if (argc > 1 && argv[1][0] == 'f') *(volatile int *)8 = 1; if (argc > 1 && argv[1][0] == 's') for (;;) __asm__ volatile(""); puts("fine"); return 0; }`, { cacheDir, name: "bad" });
    await using v = await Virtine.load(prog.path, { workers, timeoutMs: slow(300) });
    await expect(v.run({ args: ["fault"] })).rejects.toThrow(GuestFaultError);
    await expect(v.run({ args: ["spin"] })).rejects.toThrow(TimeoutError);
    await using endless = await Virtine.load(prog.path, { workers, timeoutMs: 0 });
    const ac = new AbortController();
    const pending = endless.run({ args: ["spin"], signal: ac.signal });
    setTimeout(() => ac.abort(new Error("stopped")), slow(200));
    await expect(pending).rejects.toThrow("stopped");
    expect(await v.call("")).toBe("fine\n");
  });

  test("options and arguments that do not apply are refused", async () => {
    await expect(Virtine.load(echoPath, { workers, dataSize: 4096 })).rejects.toThrow(BadArgsError);
    await expect(Virtine.load(echoPath, { workers, files: { "relative/path": "x" } })).rejects.toThrow(BadArgsError);
    await expect(Virtine.load(echoPath, { workers, env: ["NOEQUALS"] })).rejects.toThrow(BadArgsError);
    await expect(Virtine.load(echoPath, { workers, files: { "/etc/x": join(tmp, "missing") } })).rejects.toThrow(/cannot read/);
    await using v = await Virtine.load(echoPath, { workers });
    expect(() => v.runSync({ args: [{} as never] })).toThrow(BadArgsError);
    await expect(v.run({ args: ["a"], env: ["=x"] })).rejects.toThrow(BadArgsError);
    await using closures = await Virtine.load(echoPath, { workers, hostFunctions: { f: () => 1n } });
    await expect(closures.run()).rejects.toThrow(/hostModule/);
  });

  test("closing leaves nothing open", async () => {
    const before = fdTable();
    for (let i = 0; i < 3; i++) {
      const v = await Virtine.load(echoPath, { workers });
      v.runSync({ input: "x" });
      await v.run({ input: "y" });
      await v.closeAsync();
    }
    expect(fdsOpenedSince(before)).toEqual([]);
  });
});
