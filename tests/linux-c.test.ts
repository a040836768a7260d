// C guests compiled with the bundled zig cc (issue 13.5): checked on the executables themselves,
// which are ordinary static Linux programs — so this test also runs them natively, as the baseline
// a virtine must match. No VM needed.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CompileError } from "../src/image/zig.ts";
import { compileC } from "../src/linux/c.ts";
import { EXIT_STATUS } from "../src/errors.ts";
import { slow, ROOT, wasp, WASP } from "./support.ts";

const cacheDir = mkdtempSync(join(tmpdir(), "wasp-c-"));
afterAll(() => rmSync(cacheDir, { recursive: true, force: true }));

/** Runs a compiled program natively: what the same program does outside a virtine. */
function native(path: string, args: string[] = [], input = "") {
  const r = Bun.spawnSync([path, ...args], { stdin: Buffer.from(input), env: {} });
  return { status: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

const LIBC = `
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }
int main(int argc, char **argv) {
  double *v = malloc(sizeof(double) * (size_t)(argc - 1));
  if (!v) return 2;
  for (int i = 1; i < argc; i++) v[i - 1] = strtod(argv[i], NULL);
  qsort(v, (size_t)(argc - 1), sizeof(double), cmp);
  double s = 0;
  for (int i = 0; i < argc - 1; i++) { printf("%.3f ", v[i]); s += v[i]; }
  printf("| sqrt(sum)=%.4f sin(1)=%.6f\\n", sqrt(s), sin(1.0));
  fprintf(stderr, "sorted %d\\n", argc - 1);
  free(v);
  return argc - 1;
}`;

describe("compileC", () => {
  test("a program using malloc, printf with floats, qsort, strtod and libm builds into a static executable that runs", async () => {
    const c = await compileC(LIBC, { cacheDir, name: "sorter" });
    expect(c.compiled).toBe(true);
    expect(c.elf.name).toBe("sorter");
    expect(c.elf.segments.some((s) => s.exec && !s.write)).toBe(true);
    expect(statSync(c.path).mode & 0o777).toBe(0o755);
    const r = native(c.path, ["3.5", "-1", "10", "2.25"]);
    expect(r).toEqual({ status: 4, stdout: "-1.000 2.250 3.500 10.000 | sqrt(sum)=3.8406 sin(1)=0.841471\n", stderr: "sorted 4\n" });
    // the second compile is the cache: same file, no compiler
    const again = await compileC(LIBC, { cacheDir, name: "sorter" });
    expect(again.compiled).toBe(false);
    expect(again.path).toBe(c.path);
  }, slow(120_000));

  test("safe (the default) traps undefined behaviour that fast lets through", async () => {
    const src = `#include <stdlib.h>\n#include <limits.h>\nint main(int argc, char **argv) { int x = INT_MAX - 1 + atoi(argv[1]); return x == INT_MIN ? 7 : 3; }`;
    const safe = await compileC(src, { cacheDir });
    const fast = await compileC(src, { cacheDir, optimize: "fast" });
    expect(safe.path).not.toBe(fast.path);
    expect(native(safe.path, ["1"]).status).toBe(3); // INT_MAX: fine in both
    expect(native(fast.path, ["1"]).status).toBe(3);
    const trapped = Bun.spawnSync([safe.path, "2"]); // overflow: ud2, SIGILL
    expect(trapped.signalCode).toBe("SIGILL");
    expect(native(fast.path, ["2"]).status).not.toBe(null); // unchecked: it returns something
  }, slow(120_000));

  test("wasp.h is on the include path", async () => {
    const c = await compileC(`#include <wasp.h>\nint main(void) { return WASP_HC_SNAPSHOT; }`, { cacheDir });
    expect(c.elf.entry).toBeGreaterThan(0);
  }, slow(120_000));

  test("a source that does not compile is a CompileError with the compiler's diagnostics, naming the file as the caller does", async () => {
    const err = await compileC(`int main(void) { return y; }\n`, { cacheDir, fileName: "prog.c" }).catch((e) => e);
    expect(err).toBeInstanceOf(CompileError);
    expect(err.code).toBe("WASP_COMPILE");
    expect(err.message).toBe("the C source does not compile: prog.c:1:25: error: use of undeclared identifier 'y'");
    expect(err.diagnostics).toContain("prog.c:1:25");
    expect(err.diagnostics).not.toContain("wasp-cc-");
    // a link error too (an undefined function)
    const link = await compileC(`void nowhere(void);\nint main(void) { nowhere(); return 0; }\n`, { cacheDir }).catch((e) => e);
    expect(link).toBeInstanceOf(CompileError);
    expect(link.message).toMatch(/^the C source does not compile: .*undefined symbol: nowhere/);
  }, slow(120_000));

  test("options are checked before the compiler runs", async () => {
    const bad = async (opts: object) => (await compileC("int main(void){return 0;}", { cacheDir, ...opts }).catch((e) => e)).message;
    expect(await bad({ optimize: "turbo" })).toBe('optimize "turbo" is none of safe, fast, small, debug');
    expect(await bad({ name: "a b" })).toBe('program name "a b" must be 1-64 letters, digits, \'_\', \'.\' or \'-\'');
    expect(await bad({ flags: ["-o", "/tmp/x"] })).toBe('flag "-o" is wasp\'s to choose: the output is one static x86-64 Linux executable');
    expect(await bad({ flags: ["-shared"] })).toMatch(/^flag "-shared" is wasp's to choose/);
    expect(await bad({ flags: ["-Wl,--dynamic-linker=/x"] })).toMatch(/^flag "-Wl,--dynamic-linker=\/x" is wasp's to choose/);
    expect(await bad({ flags: ["other.c"] })).toMatch(/^flag "other.c" is not an option/);
    expect(await bad({ flags: "-DX" })).toBe("flags must be an array of strings");
    expect(await bad({ zig: join(cacheDir, "nozig") })).toMatch(/^the zig compiler is not at /);
    // allowed flags reach the compiler
    const c = await compileC(`int main(void) { return ANSWER; }`, { cacheDir, flags: ["-DANSWER=42"] });
    expect(native(c.path).status).toBe(42);
  }, slow(120_000));
});

describe("wasp build prog.c", () => {
  test("writes a static executable beside the source (no extension), runnable natively", () => {
    const dir = mkdtempSync(join(tmpdir(), "wasp-build-c-"));
    try {
      writeFileSync(join(dir, "echo.c"), `#include <stdio.h>\nint main(void) { int c; while ((c = getchar()) != EOF) putchar(c == 'a' ? 'A' : c); return 0; }\n`);
      const r = Bun.spawnSync([WASP, "build", "echo.c"], { cwd: dir, env: { ...process.env, WASP_CACHE_DIR: cacheDir } });
      expect(r.stderr.toString()).toBe("");
      expect(r.stdout.toString()).toMatch(/^wrote echo: static x86-64 Linux executable echo, \d+ bytes \(safe: checked undefined behaviour traps\)\n$/);
      expect(native(join(dir, "echo"), [], "banana").stdout).toBe("bAnAnA");
      expect(statSync(join(dir, "echo")).mode & 0o111).toBe(0o111);
      const o = wasp(["build", join(dir, "echo.c"), "-o", join(dir, "e2"), "--optimize", "fast"], { WASP_CACHE_DIR: cacheDir }); // not small: zig builds musl once per mode (~1.5 min)
      expect(o.stderr).toBe("");
      expect(existsSync(join(dir, "e2"))).toBe(true);
      const bad = join(dir, "bad.c");
      writeFileSync(bad, "int main(void) { return y; }\n");
      const e = wasp(["build", bad], { WASP_CACHE_DIR: cacheDir });
      expect(e.status).toBe(EXIT_STATUS.WASP_COMPILE);
      expect(e.stderr).toBe(`wasp: the C source does not compile: ${bad}:1:25: error: use of undeclared identifier 'y'\n`);
      expect(existsSync(join(dir, "bad"))).toBe(false);
      expect(readFileSync(join(dir, "echo")).subarray(0, 4).toString("latin1")).toBe("\x7fELF");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, slow(180_000));
});

describe("LinuxProgram's options are checked before any VM exists", () => {
  test("environment, granted files, memory, stack, timeout, grants: one clear error each", async () => {
    const { LinuxProgram } = await import("../src/virtine/linux.ts");
    const { BadArgsError, BadImageError } = await import("../src/errors.ts");
    const { elf } = await compileC(`int main(void) { return 0; }`, { cacheDir });
    const make = (opts: object) => () => new LinuxProgram(elf, opts);
    expect(make({ env: ["NOEQUALS"] })).toThrow(new BadArgsError('environment entry "NOEQUALS" is not KEY=value without NUL bytes'));
    expect(make({ env: { A: "b\0c" } })).toThrow(BadArgsError);
    expect(make({ env: 5 })).toThrow('the environment is number: give "KEY=value" strings or { KEY: "value" }');
    expect(make({ files: { "etc/x": new Uint8Array(1) } })).toThrow(/granted file "etc\/x" is not an absolute path/);
    expect(make({ files: { "/etc/../x": new Uint8Array(1) } })).toThrow(/not an absolute path without \. or \.\./);
    expect(make({ files: { "/x": join(cacheDir, "missing") } })).toThrow(/granted file \/x: cannot read /);
    expect(make({ files: { "/x": 5 } })).toThrow("granted file /x is neither bytes nor a host path");
    expect(make({ memory: 1000 })).toThrow(/memory size 1000 is not a multiple of 4 KiB/);
    expect(make({ memory: 2 * 1024 * 1024 })).toThrow(BadImageError); // too small for the program, its heap and stack
    expect(make({ stackSize: 100 })).toThrow(/stack size 100/);
    expect(make({ timeoutMs: -1 })).toThrow(/timeout -1 ms/);
    expect(make({ allow: ["teleport"] })).toThrow(/unknown hypercall "teleport"/);
    // good options, including env as a record and a file by host path
    writeFileSync(join(cacheDir, "f.txt"), "x");
    expect(make({ env: { K: "V" }, files: { "/etc/f": join(cacheDir, "f.txt") }, allow: ["time"] })).not.toThrow();
    await expect(LinuxProgram.fromC("int main(void) { return nope; }", { cacheDir })).rejects.toThrow(CompileError);
    // a call's own arguments and environment are checked before any VM exists
    const p = new LinuxProgram(elf);
    expect(() => p.run({ env: ["=x"] })).toThrow(/environment entry "=x" is not KEY=value/);
    expect(() => p.run([1 as unknown as string])).toThrow("a Linux program's arguments are strings");
    expect(() => p.run("ls" as unknown as string[])).toThrow(/takes a list of string arguments or \{ args, input, env \}/);
    expect(() => p.run([], { input: 5 as unknown as string })).toThrow("a Linux program's input is bytes or a string");
  }, slow(120_000));
});

describe("Zig programs for Linux, and the examples", () => {
  test("compileZigLinux: Zig's standard library, static, runs natively; a compile error names the file", async () => {
    const { compileZigLinux } = await import("../src/linux/c.ts");
    const wc = await compileZigLinux(readFileSync(join(ROOT, "examples/linux/wc.zig"), "utf8"), { cacheDir, name: "wc" });
    expect(wc.elf.pie).toBe(false);
    expect(native(wc.path, [], "two words\nthree more words\n")).toEqual({ status: 0, stdout: "2 5 27\n", stderr: "" });
    const err = await compileZigLinux("pub fn main() void { nope(); }\n", { cacheDir, fileName: "bad.zig" }).catch((e) => e);
    expect(err).toBeInstanceOf(CompileError);
    expect(err.message).toMatch(/^the Zig source does not compile: bad\.zig:1:22: error: use of undeclared identifier 'nope'$/);
  }, slow(180_000));

  test("examples/linux/stats.c and lookup.c build; stats runs natively as its comment says", async () => {
    const stats = await compileC(readFileSync(join(ROOT, "examples/linux/stats.c"), "utf8"), { cacheDir, name: "stats" });
    expect(native(stats.path, [], "3 1.5 4 1 5.25 9 2.5 6\n")).toEqual({ status: 0, stdout: "n=8 min=1 max=9 mean=4.0312 median=3.5 stddev=2.4763\n", stderr: "" });
    expect(native(stats.path, [], "1 x\n").status).toBe(1);
    const lookup = await compileC(readFileSync(join(ROOT, "examples/linux/lookup.c"), "utf8"), { cacheDir, name: "lookup" });
    expect(lookup.elf.high).toBeGreaterThan(2_000_000); // the sieve's table is bss
  }, slow(180_000));

  test("wasp build --linux builds a Zig program for Linux (an executable, no .bin)", () => {
    const dir = mkdtempSync(join(tmpdir(), "wasp-build-zl-"));
    try {
      const r = Bun.spawnSync([WASP, "build", join(ROOT, "examples/linux/wc.zig"), "--linux", "-o", join(dir, "wc")], { env: { ...process.env, WASP_CACHE_DIR: cacheDir } });
      expect(r.stderr.toString()).toBe("");
      expect(r.stdout.toString()).toMatch(/^wrote .*wc: static x86-64 Linux executable wc, \d+ bytes \(safe: Zig's safety checks on\)\n$/);
      expect(native(join(dir, "wc"), [], "a b c").stdout).toBe("0 3 5\n");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, slow(180_000));
});

test("wasp invoke PROG: every bad option is one line, before /dev/kvm is touched", async () => {
  const { path } = await compileC(`int main(void) { return 0; }`, { cacheDir });
  const cases: [string[], RegExp][] = [
    [["--env", "NOEQ"], /^wasp: environment entry "NOEQ" is not KEY=value without NUL bytes\n$/],
    [["--file", "/etc/x=/nonexistent"], /^wasp: --file \/etc\/x=\/nonexistent: cannot read \/nonexistent \(ENOENT/],
    [["--file", "relative=/etc/hostname"], /^wasp: --file relative=\/etc\/hostname: the guest path relative is not absolute\n$/],
    [["--file", "novalue"], /^wasp: --file novalue: not GUEST=HOST/],
    [["--mem", "1000"], /^wasp: memory size 1000 is not a multiple of 4 KiB/],
    [["--mem", "2M"], /^wasp: .*: it needs \d+ MiB of guest memory/],
    [["--stack", "3"], /^wasp: stack size 3 is not a positive number of whole 4 KiB pages\n$/],
    [["--allow", "teleport"], /^wasp: unknown hypercall "teleport"/],
    [["--data-size", "1M"], /^wasp: --data-size is for native guests/],
    [["--no-snapshot"], /^wasp: --no-snapshot is for native guests/],
  ];
  for (const [args, want] of cases) {
    const r = wasp(["invoke", path, ...args]);
    const status = args[1] === "2M" ? EXIT_STATUS.WASP_BAD_IMAGE : EXIT_STATUS.WASP_BAD_ARGS; // too small for the program: its fault
    expect([args, r.status, r.stderr]).toEqual([args, status, expect.stringMatching(want)]);
    expect(r.stdout).toBe("");
  }
}, slow(120_000));
