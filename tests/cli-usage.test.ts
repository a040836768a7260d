// Usage errors that need no VM: each one line naming what is wrong, with its status.
import { expect, test } from "bun:test";
import { EXIT_STATUS } from "../src/errors.ts";
import { wasp } from "./support.ts";

test("wasp help of an unknown command says it is unknown, and lists the commands", () => {
  const r = wasp(["help", "nosuch"]);
  expect(r.status).toBe(EXIT_STATUS.WASP_BAD_ARGS);
  expect(r.stderr).toBe("wasp: unknown command 'nosuch' (the commands: invoke, replay, snapshot, build, inspect, bench, serve)\n");
  expect(r.stdout).toBe("");
  const known = wasp(["help", "inspect"]);
  expect(known.status).toBe(0);
  expect(known.stdout).toMatch(/^Usage: wasp inspect \[options\] <image>/);
});

test("wasp snapshot -o into a folder that does not exist is refused before anything runs, naming the file asked for", () => {
  const r = wasp(["snapshot", "fib", "-o", "/nonexistent/x.snap"]);
  expect(r.status).toBe(EXIT_STATUS.WASP_BAD_ARGS);
  expect(r.stderr).toBe("wasp: -o /nonexistent/x.snap: its folder /nonexistent does not exist or is not writable\n");
});

test("wasp bench --list prints the series by the names the table shows; --filter matches those names", () => {
  const all = wasp(["bench", "--list"]);
  expect(all.status).toBe(0);
  const names = all.stdout.trim().split("\n");
  // results of series that measure several things are listed (and filtered) by their own names
  for (const n of ["create", "vmrun", "clean", "clean_throughput", "boot_total", "boot_lgdt", "invoke_async_throughput_1", "thread_throughput"]) expect(names).toContain(n);
  expect(new Set(names).size).toBe(names.length);
  expect(wasp(["bench", "--list", "--filter", "^clean$"]).stdout).toBe("clean\n");
  expect(wasp(["bench", "--list", "--filter", "^boot_total$"]).stdout).toBe("boot_total\n");
});

test("a bench filter that selects nothing fails with WASP_BENCH_EMPTY before anything runs", () => {
  for (const args of [["bench", "--filter", "^boot_totl$"], ["bench", "--list", "--filter", "nosuch"]]) {
    const r = wasp(args);
    expect(r.status).toBe(EXIT_STATUS.WASP_BENCH_EMPTY);
    expect(r.stderr).toMatch(/^wasp: --filter "[^"]+" selects no series \(wasp bench --list shows their names\)\n$/);
  }
});

test("wasp inspect --json is one JSON object, 64-bit values as decimal strings", () => {
  const native = JSON.parse(wasp(["inspect", "fib", "--json"]).stdout);
  expect(native).toMatchObject({ file: "fib.bin", kind: "native", name: "fib", abiVersion: 1, loadAddress: 0x100000 });
  expect(BigInt(native.entry)).toBeGreaterThan(0x100000n);
  expect(JSON.parse(wasp(["inspect", "raw_fib64", "--json"]).stdout)).toMatchObject({ kind: "raw", loadAddress: 0x8000 });
});

test("wasp invoke --json with --output - is refused before anything runs (both want standard output)", () => {
  const r = wasp(["invoke", "fib", "1", "--json", "--output", "-"]);
  expect(r.status).toBe(EXIT_STATUS.WASP_BAD_ARGS);
  expect(r.stderr).toMatch(/^wasp: --json and --output - both want standard output/);
});

test("arguments or input a guest's main does not take are warned about before it runs (its header says what it takes)", () => {
  const warning = (args: string[]) => wasp(["invoke", ...args]).stderr.split("\n")[0];
  expect(warning(["fib", "1", "2", "3"])).toBe("wasp: warning: fib's main takes 1 integer argument; 3 were given: the last 2 are ignored");
  expect(warning(["noop", "7"])).toBe("wasp: warning: noop's main takes no arguments; 1 was given: it is ignored");
  expect(warning(["fib", "3", "--input", "/dev/null"])).toBe("wasp: warning: fib's main takes no input: --input is ignored");
  expect(JSON.parse(wasp(["inspect", "fib", "--json"]).stdout).takes).toEqual({ args: 1, input: false });
});
