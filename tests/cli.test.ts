// The standalone binary (dist/wasp): results, and every error as one `wasp: ` line with the exit
// status of its class and no stack trace.
import { describe, expect, test, beforeAll, afterAll } from "bun:test";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync, truncateSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EXIT_STATUS } from "../src/errors.ts";
import { slow, REAL, WASP, X86, guest, nativeImage, wasp, waspIntoClosedPipe } from "./support.ts";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "wasp-cli-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, bytes: Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
}

/** Asserts a one-line `wasp: ` error with the given status, and returns the line. */
function failsWith(r: ReturnType<typeof wasp>, status: number, pattern: RegExp): string {
  expect(r.stdout).toBe("");
  expect(r.stderr).toMatch(/^wasp: /);
  expect(r.stderr.trimEnd().split("\n").length).toBe(1);
  expect(r.stderr).not.toMatch(/\bat .*\.ts:\d+/);
  expect(r.stderr).toMatch(pattern);
  expect(r.status).toBe(status);
  return r.stderr;
}

describe("wasp invoke", () => {
  test("fib.bin 30 prints 832040", () => {
    const r = wasp(["invoke", guest("fib"), "30"]);
    expect(r).toEqual({ status: 0, stdout: "832040\n", stderr: "" });
  });

  test("built-in guests run by name", () => {
    expect(wasp(["invoke", "fib", "20"]).stdout).toBe("6765\n");
    expect(wasp(["invoke", "hello"]).stdout).toBe("hello from a virtine\n0\n");
  });

  test("a raw nasm-style real-mode image returns its EAX", () => {
    const p = file("raw.bin", new Uint8Array([...REAL.movEax(31337), ...REAL.hlt]));
    expect(wasp(["invoke", p]).stdout).toBe("31337\n");
  });

  test("--verbose reports the exits on stderr", () => {
    const r = wasp(["invoke", "fib", "10", "--verbose"]);
    expect(r.stdout).toBe("55\n");
    expect(r.stderr).toMatch(/1 exit\(s\)/);
  });

  test("--mem sets the guest memory", () => {
    expect(wasp(["invoke", "noop", "--mem", "4M"]).status).toBe(0);
  });

  test("hex and negative arguments", () => {
    expect(wasp(["invoke", "fib", "0xa"]).stdout).toBe("55\n");
    expect(wasp(["invoke", guest("sum6"), "-1"]).stdout).toBe(`${2n ** 64n - 1n}\n`);
  });
});

describe("wasp invoke with call data", () => {
  const stats = '{"count":3,"sum":6.5e+00,"min":1.0e+00,"max":3.5e+00,"mean":2.1666666666666665e+00}';

  test("--input FILE: the guest's output, then its result", () => {
    const p = file("values.json", new TextEncoder().encode('{"values":[1,2,3.5]}'));
    expect(wasp(["invoke", guest("jsonstats"), "--input", p])).toEqual({ status: 0, stdout: `${stats}\n0\n`, stderr: "" });
  });

  test("--input - reads standard input; --output - makes standard output the data alone", () => {
    const bytes = new Uint8Array(300_000).map((_, i) => (i * 7) & 0xff); // binary, no trailing newline
    const p = Bun.spawnSync([WASP, "invoke", guest("echo"), "-i", "-", "-o", "-"], { stdin: bytes });
    expect(p.stderr.toString()).toBe("");
    expect(p.exitCode).toBe(0);
    expect(new Uint8Array(p.stdout)).toEqual(bytes.slice().reverse());
  });

  test("--output FILE gets the data; standard output keeps the result", () => {
    const p = file("in.txt", new TextEncoder().encode("stressed"));
    const out = join(dir, "out.txt");
    expect(wasp(["invoke", guest("echo"), "-i", p, "-o", out])).toEqual({ status: 0, stdout: "8\n", stderr: "" });
    expect(readFileSync(out, "utf8")).toBe("desserts");
  });

  test("--data-size makes room for a larger input", () => {
    const p = file("big.bin", new Uint8Array(2 * 1024 * 1024));
    failsWith(wasp(["invoke", guest("echo"), "-i", p]), EXIT_STATUS.WASP_BAD_ARGS, /the input of 2097152 bytes does not fit the virtine's data window of 1048576 bytes .*--data-size/);
    const r = wasp(["invoke", guest("echo"), "-i", p, "--data-size", "4M", "-o", join(dir, "big.out")]);
    expect(r).toEqual({ status: 0, stdout: `${2 * 1024 * 1024}\n`, stderr: "" });
  });

  test("bad --input, --output and --data-size are one-line errors (all but an unwritable output file before the guest runs)", () => {
    failsWith(wasp(["invoke", guest("echo"), "--input", join(dir, "absent")]), EXIT_STATUS.WASP_BAD_ARGS, /--input .*absent: cannot read it/);
    failsWith(wasp(["invoke", guest("echo"), "--input", dir]), EXIT_STATUS.WASP_BAD_ARGS, /cannot read it \(it is a directory\)/);
    failsWith(wasp(["invoke", guest("echo"), "--output", "/nonexistent/out"]), EXIT_STATUS.WASP_BAD_ARGS, /--output \/nonexistent\/out: its folder \/nonexistent does not exist/);
    failsWith(wasp(["invoke", guest("echo"), "--output", dir]), EXIT_STATUS.WASP_BAD_ARGS, /--output .*: cannot write it \(EISDIR/);
    failsWith(wasp(["invoke", guest("echo"), "--data-size", "lots"]), EXIT_STATUS.WASP_BAD_ARGS, /--data-size "lots" is not a size/);
    failsWith(wasp(["invoke", "raw_fib64", "--input", file("some.txt", new Uint8Array([1]))]), EXIT_STATUS.WASP_BAD_ARGS, /raw image: it takes no input/);
  });
});

describe("wasp invoke errors", () => {
  test("a missing file", () => {
    failsWith(wasp(["invoke", join(dir, "nope.bin")]), EXIT_STATUS.WASP_BAD_IMAGE, /nope\.bin: no such file/);
  });

  test("a directory", () => {
    mkdirSync(join(dir, "d"), { recursive: true });
    failsWith(wasp(["invoke", join(dir, "d")]), EXIT_STATUS.WASP_BAD_IMAGE, /is a directory/);
  });

  test("an empty file", () => {
    failsWith(wasp(["invoke", file("empty.bin", new Uint8Array(0))]), EXIT_STATUS.WASP_BAD_IMAGE, /the image is empty/);
  });

  test("an image bigger than the cap", () => {
    const p = join(dir, "huge.bin");
    writeFileSync(p, "");
    truncateSync(p, 1024 ** 3 + 1); // sparse
    failsWith(wasp(["invoke", p]), EXIT_STATUS.WASP_BAD_IMAGE, /huge\.bin: the image is 1073741825 bytes, more than the 16744448 bytes that fit in its guest memory \(the default; raise it with --mem/);
    // refused before it is read, whatever the memory: past the cap nothing fits
    failsWith(wasp(["invoke", p, "--mem", "1G"]), EXIT_STATUS.WASP_BAD_IMAGE, /more than the 1073709056 bytes that fit in its guest memory \(1024 MiB\)/);
  });

  test("an image that does not fit in --mem", () => {
    const p = file("fat.bin", nativeImage(X86.exit, { bss: 8 << 20 }));
    failsWith(wasp(["invoke", p, "--mem", "4M"]), EXIT_STATUS.WASP_BAD_IMAGE, /needs \d+ bytes of guest memory/);
  });

  test("memory above the cap", () => {
    failsWith(wasp(["invoke", "noop", "--mem", "2G"]), EXIT_STATUS.WASP_BAD_ARGS, /above the cap of 1024 MiB/);
  });

  test("a non-numeric argument", () => {
    failsWith(wasp(["invoke", "fib", "ten"]), EXIT_STATUS.WASP_BAD_ARGS, /argument 1 \("ten"\) is not an integer/);
  });

  test("more than six arguments", () => {
    failsWith(wasp(["invoke", "noop", "1", "2", "3", "4", "5", "6", "7"]), EXIT_STATUS.WASP_BAD_ARGS, /7 arguments given, a virtine takes at most 6/);
  });

  test("/dev/kvm not usable", () => {
    failsWith(wasp(["invoke", "noop"], { WASP_KVM_DEVICE: "/nonexistent/kvm" }), EXIT_STATUS.WASP_KVM_UNAVAILABLE, /cannot open \/nonexistent\/kvm \(ENOENT\)/);
  });

  test("a guest fault names the exit reason and RIP; --verbose adds the registers", () => {
    const triple = guest("raw_triple");
    failsWith(wasp(["invoke", triple]), EXIT_STATUS.WASP_GUEST_FAULT, /triple-faulted \(KVM_EXIT_SHUTDOWN\) at RIP 0x/);
    const p = file("ud2.bin", nativeImage(X86.ud2));
    failsWith(wasp(["invoke", p]), EXIT_STATUS.WASP_GUEST_FAULT, /invalid opcode \(#UD, vector 6\) at RIP 0x100050/);
    const v = wasp(["invoke", p, "--verbose"]);
    expect(v.status).toBe(EXIT_STATUS.WASP_GUEST_FAULT);
    expect(v.stderr).toMatch(/rip 0x0000000000100050/);
  });

  test("a guest touching memory outside its RAM", () => {
    const p = file("mmio.bin", nativeImage([...X86.writeAt(0x3000_0000), ...X86.exit]));
    failsWith(wasp(["invoke", p]), EXIT_STATUS.WASP_MEMORY_FAULT, /write 1 bytes at guest-physical 0x30000000, outside its RAM/);
  });

  test("a guest's output into a closed pipe ends quietly (141); into a full disk, one line (issue 12)", () => {
    // printer prints 20,000 lines (~200 KB): more than a pipe holds
    expect(waspIntoClosedPipe(["invoke", "--no-sandbox", guest("printer"), "20000"])).toEqual({ status: 141, stderr: "" });
    expect(waspIntoClosedPipe(["invoke", guest("printer"), "20000"])).toEqual({ status: 141, stderr: "" });
    const full = Bun.spawnSync([WASP, "invoke", guest("hello")], { stdout: Bun.file("/dev/full"), stderr: "pipe" });
    expect(full.exitCode).toBe(EXIT_STATUS.WASP_WRITE);
    expect(full.stderr.toString()).toBe("wasp: cannot write to standard output (ENOSPC)\n");
  });

  test("--json prints one object: the value as a decimal string, the console, the output as base64 (issue 12)", () => {
    expect(JSON.parse(wasp(["invoke", "fib", "30", "--json"]).stdout)).toMatchObject({ value: "832040", exits: 1, console: "", output: "" });
    const hello = JSON.parse(wasp(["invoke", "hello", "--json"]).stdout);
    expect(hello.console).toMatch(/hello/i);
    const input = file("rev.txt", new TextEncoder().encode("stressed"));
    const echo = JSON.parse(wasp(["invoke", guest("echo"), "-i", input, "--json"]).stdout);
    expect(Buffer.from(echo.output, "base64").toString()).toBe("desserts");
  });

  test("a spinning guest is stopped at --timeout", () => {
    failsWith(wasp(["invoke", guest("spin"), "--timeout", "50"]), EXIT_STATUS.WASP_TIMEOUT, /past its deadline of 50 ms/);
    failsWith(wasp(["invoke", "noop", "--timeout", "soon"]), EXIT_STATUS.WASP_BAD_ARGS, /--timeout "soon" is not a non-negative integer/);
  });

  test("a hypercall not granted, then granted with --allow", () => {
    failsWith(wasp(["invoke", guest("time")]), EXIT_STATUS.WASP_POLICY, /hypercall "time", which this virtine is not granted/);
    const r = wasp(["invoke", guest("time"), "--allow", "time"]);
    expect(r.status).toBe(0);
    expect(BigInt(r.stdout.trim()) > 0n).toBe(true);
    failsWith(wasp(["invoke", "noop", "--allow", "reboot"]), EXIT_STATUS.WASP_BAD_ARGS, /unknown hypercall "reboot"/);
  });

  test("a forbidden port", () => {
    const p = file("port.bin", nativeImage([...X86.outPort(0x80), ...X86.exit]));
    failsWith(wasp(["invoke", p]), EXIT_STATUS.WASP_POLICY, /I\/O port 0x80 \(out\)/);
  });

  test("a guest panic", () => {
    failsWith(wasp(["invoke", guest("panicker")]), EXIT_STATUS.WASP_GUEST_PANIC, /the guest panicked: guest gave up/);
  });

  test("output past the 1 MiB cap is dropped and said so on stderr", () => {
    const r = wasp(["invoke", guest("printer"), "200000"]); // ~2.2 MB of lines
    expect(r.status).toBe(0);
    expect(r.stdout.length).toBe(1024 * 1024 + "200000\n".length);
    expect(r.stderr).toBe("wasp: guest output truncated at the 1048576 byte cap; the rest was dropped\n");
  });

  test("a missing image argument and an unknown command are usage errors", () => {
    const r = wasp(["invoke"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^wasp: missing required argument 'image'/);
    expect(wasp(["frobnicate"]).status).toBe(2);
  });
});

/** imm32 little-endian */
const imm32 = (v: number) => [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff];

/**
 * Native code that makes hypercall `nr` (RAX) with RDI = the address of `bytes` and RSI = their
 * length, then `tail`; `bytes` follow the code. lea rdi, [rip + disp32] points past the mov rsi
 * (7 bytes), the `out 0xfb` (2) and `tail`, at the bytes.
 */
function hypercallWith(nr: number, bytes: Uint8Array, tail: number[] = []): number[] {
  return [
    ...X86.movRax(nr),
    0x48, 0x8d, 0x3d, ...imm32(7 + X86.hypercall.length + tail.length), // lea rdi, [rip + disp32]
    0x48, 0xc7, 0xc6, ...imm32(bytes.length), // mov rsi, imm32
    ...X86.hypercall,
    ...tail,
    ...bytes,
  ];
}

describe("what a guest says reaches the terminal escaped", () => {
  test("a panic message cannot forge a `wasp:` line or send terminal escapes", () => {
    const message = new TextEncoder().encode("boom\nwasp: forged\x1b[2J\u202e\\");
    const p = file("panic-message.bin", nativeImage(hypercallWith(2, message))); // 2: panic
    const line = failsWith(wasp(["invoke", p]), EXIT_STATUS.WASP_GUEST_PANIC, /the guest panicked/);
    expect(line).toBe("wasp: the guest panicked: boom\\nwasp: forged\\x1b[2J\\u{202e}\\\\\n");
  });

  test("console text keeps its lines; carriage returns, escapes and bad UTF-8 are shown escaped", () => {
    const text = new Uint8Array([...new TextEncoder().encode("hi\x1b[2J\r\n\tok \u009b \u2066 ✓\n"), 0xc3]);
    // write (1), then exit (out 0xfa) with RAX = 7
    const p = file("console-escapes.bin", nativeImage(hypercallWith(1, text, [...X86.movRax(7), ...X86.exit])));
    const r = wasp(["invoke", p]);
    expect(r).toEqual({ status: 0, stdout: "hi\\x1b[2J\\r\n\tok \\u{9b} \\u{2066} ✓\n\\xc37\n", stderr: "" });
  });

  test("output data is escaped when printed as text, raw with --output FILE and --output -", () => {
    const data = new Uint8Array([...new TextEncoder().encode("a\x1b[2J\r\n"), 0xff]);
    const p = file("escapes.in", data.slice().reverse()); // echo reverses its input
    expect(wasp(["invoke", guest("echo"), "-i", p])).toEqual({ status: 0, stdout: `a\\x1b[2J\\r\n\\xff\n${data.length}\n`, stderr: "" });
    const out = join(dir, "escapes.out");
    expect(wasp(["invoke", guest("echo"), "-i", p, "-o", out]).status).toBe(0);
    expect(new Uint8Array(readFileSync(out))).toEqual(data);
    const raw = Bun.spawnSync([WASP, "invoke", guest("echo"), "-i", p, "-o", "-"]);
    expect(raw.exitCode).toBe(0);
    expect(new Uint8Array(raw.stdout)).toEqual(data);
  });
});

describe("wasp inspect", () => {
  test("prints what a native image declares", () => {
    const r = wasp(["inspect", guest("fib")]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/kind\s+native/);
    expect(r.stdout).toMatch(/entry\s+0x1000/);
    expect(r.stdout).toMatch(/name\s+fib/);
  });

  test("says a headerless image is raw", () => {
    expect(wasp(["inspect", file("r.bin", new Uint8Array(REAL.hlt))]).stdout).toMatch(/kind\s+raw/);
  });
});

test("the standalone binary runs with no bun, node or node_modules on PATH", () => {
  const bare = join(dir, "bare");
  mkdirSync(bare, { recursive: true });
  copyFileSync(WASP, join(bare, "wasp"));
  const p = Bun.spawnSync(["./wasp", "invoke", "fib", "30"], { cwd: bare, env: { PATH: "/nonexistent" } });
  expect(p.stdout.toString()).toBe("832040\n");
  expect(p.exitCode).toBe(0);
});

test("wasp bench --json prints one JSON object per series with median and p99", () => {
  const r = wasp(["bench", "--json", "--runs", "5", "--filter", "^(create|vmrun|hypercall)$"]);
  expect(r.status).toBe(0);
  const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
  expect(lines.map((l) => l.name)).toEqual(["create", "vmrun", "hypercall"]);
  for (const l of lines) {
    expect(l.unit).toBe("us");
    expect(l.n).toBe(5);
    expect(l.median).toBeGreaterThan(0);
    expect(l.p99).toBeGreaterThanOrEqual(l.median);
  }
});

test("the standalone binary runs the public API's series, workers and bench threads included (bundled into it)", () => {
  const r = wasp(["bench", "--json", "--runs", "3", "--filter", "^(invoke_sync|invoke_async|invoke_async_throughput|handoff_atomics)$"]);
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
  // --filter matches the reported names: of the throughput group, only the series it names
  expect(lines.map((l) => [l.name, l.unit])).toEqual([
    ["invoke_sync", "us"],
    ["invoke_async", "us"],
    ["invoke_async_throughput", "calls/s"],
    ["handoff_atomics", "us"],
  ]);
  for (const l of lines) expect(l.median).toBeGreaterThan(0);
}, slow(60_000));

test("the bench table sets a series beside what its target is measured against: --floor's series or wasp's own", () => {
  // a stand-in floor (any program printing kvm-floor's JSON lines will do): its vmrun is 10 µs
  const dir = mkdtempSync(join(tmpdir(), "wasp-floor-"));
  const floor = join(dir, "floor");
  writeFileSync(floor, `#!/bin/sh\necho '{"name":"vmrun","unit":"us","n":1,"median":10,"p99":12}'\n`, { mode: 0o755 });
  const r = wasp(["bench", "--runs", "20", "--floor", floor, "--filter", "^(vmrun|invoke_sync|invoke_async)$"]);
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  const [header, ...rows] = r.stdout.trim().split("\n").map((l) => l.trim().split(/\s+/));
  expect(header).toEqual(["series", "unit", "n", "median", "p99", "beside", "median", "ratio"]);
  const byName = new Map(rows.map((row) => [row[0], row]));
  const median = (name: string) => Number(byName.get(name)![3]);
  const besideOf = (name: string) => {
    const row = byName.get(name)!;
    return { ref: row.slice(5, -2).join(" "), median: Number(row.at(-2)), ratio: Number(row.at(-1)) };
  };
  expect(besideOf("vmrun")).toEqual({ ref: "floor vmrun", median: 10, ratio: expect.closeTo(median("vmrun") / 10, 2) });
  expect(besideOf("invoke_sync")).toEqual({ ref: "floor vmrun", median: 10, ratio: expect.closeTo(median("invoke_sync") / 10, 2) });
  expect(besideOf("invoke_async")).toEqual({ ref: "invoke_sync", median: median("invoke_sync"), ratio: expect.closeTo(median("invoke_async") / median("invoke_sync"), 2) });
  rmSync(dir, { recursive: true });
}, slow(60_000));

test("wasp bench --baseline fails with status 11 when a series got slower, and --svg writes a chart", () => {
  const current = wasp(["bench", "--json", "--runs", "20", "--filter", "^vmrun$"]);
  expect(current.status).toBe(0);
  const r = JSON.parse(current.stdout.trim());
  // a baseline ten times faster than now: the current run must count as a regression
  const fast = join(dir, "fast.json");
  writeFileSync(fast, `${JSON.stringify({ ...r, median: r.median / 10, p99: r.p99 / 10 })}\n`);
  const svg = join(dir, "bench.svg");
  const slower = wasp(["bench", "--json", "--runs", "20", "--filter", "^vmrun$", "--baseline", fast, "--svg", svg]);
  expect(slower.status).toBe(EXIT_STATUS.WASP_BENCH_REGRESSION);
  expect(slower.stderr).toMatch(/vmrun/);
  expect(slower.stderr).toMatch(/wasp: 1 series regressed/);
  const chart = require("node:fs").readFileSync(svg, "utf8");
  expect(chart.startsWith("<svg")).toBe(true);
  expect(chart).toContain("vmrun");
  // a baseline ten times slower: no regression
  const slow = join(dir, "slow.json");
  writeFileSync(slow, `${JSON.stringify({ ...r, median: r.median * 10, p99: r.p99 * 10 })}\n`);
  expect(wasp(["bench", "--json", "--runs", "20", "--filter", "^vmrun$", "--baseline", slow]).status).toBe(0);
  const bad = join(dir, "bad.json");
  writeFileSync(bad, "not json\n");
  const e = wasp(["bench", "--runs", "5", "--filter", "^vmrun$", "--baseline", bad]);
  expect(e.status).toBe(EXIT_STATUS.WASP_BAD_ARGS);
  expect(e.stderr).toMatch(/^wasp: --baseline .*bad\.json, line 1/);
});

describe("more usage errors, each one line with its status", () => {
  test("wasp bench --runs 0 and a bad --filter", () => {
    failsWith(wasp(["bench", "--runs", "0"]), EXIT_STATUS.WASP_BAD_ARGS, /--runs must be at least 1/);
    failsWith(wasp(["bench", "--filter", "("]), EXIT_STATUS.WASP_BAD_ARGS, /--filter "\(" is not a regular expression/);
  });

  test("wasp snapshot into a folder that does not exist", () => {
    failsWith(wasp(["snapshot", guest("inittable"), "-o", join(dir, "no", "such", "dir", "x.snap")]), EXIT_STATUS.WASP_BAD_ARGS, /its folder .* does not exist or is not writable/);
  }, slow(60_000));

  test("wasp snapshot --verify of a missing file, and with extra arguments", () => {
    failsWith(wasp(["snapshot", "--verify", join(dir, "missing.snap")]), EXIT_STATUS.WASP_BAD_SNAPSHOT, /missing\.snap: cannot open the snapshot file/);
    failsWith(wasp(["snapshot", "--verify", join(dir, "missing.snap"), "1"]), EXIT_STATUS.WASP_BAD_ARGS, /--verify takes only the snapshot file/);
  });
});
