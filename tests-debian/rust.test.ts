// Rust guests (issue 24.3), built with the rustc on PATH — Debian's (`apt install rustc`, 1.63 in
// Debian 12: what `.ci/run` installs) or any later one — and run on the real /dev/kvm: a program
// with std as a static Linux executable, compared with the same executable run natively; the SDK's
// crate `wasp` (guests/sdk/wasp.rs) in both of its forms — snapshot, host functions, input and
// output; the paper's Rust interface, a #![no_std] function as a native image (fib_rs), from the
// CLI and the API; and a machine without rustc, one line.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CompileError, GuestPanicError, Virtine } from "../src/index.ts";
import { compileRust } from "../src/linux/rust.ts";
import { compileRustImage } from "../src/image/rust.ts";
import { LinuxProgram } from "../src/virtine/linux.ts";
import { EXIT_STATUS } from "../src/errors.ts";
import { fibRef, ROOT, slow, wasp } from "../tests/support.ts";

const dir = mkdtempSync(join(tmpdir(), "wasp-rust-test-"));
const cacheDir = join(dir, "cache");
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const env = { WASP_CACHE_DIR: cacheDir };
const text = (b: Uint8Array) => new TextDecoder().decode(b);

if (Bun.which("rustc", { PATH: process.env.PATH ?? "" }) === null) {
  throw new Error("rustc is missing: install the Debian package rustc (apt install rustc), or Rust from rustup");
}

/** What the program does natively: the baseline a virtine must match. */
function native(path: string, args: string[], stdin: string) {
  const r = Bun.spawnSync([path, ...args], { stdin: Buffer.from(stdin), env: {} });
  return { status: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

const PROGRAM = `use std::collections::BTreeMap;
use std::io::{BufRead, Write};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut words: BTreeMap<String, usize> = BTreeMap::new();
    let mut sum = 0.0f64;
    for line in std::io::stdin().lock().lines() {
        for w in line.expect("stdin").split_whitespace() {
            match w.parse::<f64>() {
                Ok(x) => sum += x,
                Err(_) => *words.entry(w.to_lowercase()).or_insert(0) += 1,
            }
        }
    }
    let mut v: Vec<(&String, &usize)> = words.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}: {} words, sum {:.3}, sqrt {:.5}", args.get(1).map(|s| s.as_str()).unwrap_or("?"), words.len(), sum, sum.sqrt()).unwrap();
    for (w, n) in v.iter().take(3) {
        writeln!(out, "{} {}", w, n).unwrap();
    }
    let boxed: Vec<Box<[u8]>> = (0..64).map(|i| vec![i as u8; 1 << 16].into_boxed_slice()).collect();
    eprintln!("allocated {}", boxed.iter().map(|b| b.len()).sum::<usize>());
    if args.get(2).map(|s| s.as_str()) == Some("panic") {
        let v: Vec<u32> = Vec::new();
        println!("{}", v[args.len()]);
    }
    std::process::exit((words.len() % 256) as i32);
}
`;
const INPUT = "the cat and The dog 1.5 2.5\nand the end -1 100\n";

describe("a Rust program with std is a static Linux executable that runs as natively", () => {
  test("stdin, stdout, stderr, BTreeMap, floats, the heap, the exit status; a panic's status 101", async () => {
    const c = await compileRust(PROGRAM, { cacheDir, name: "words" });
    expect(c.compiled).toBe(true);
    expect(statSync(c.path).mode & 0o777).toBe(0o755);
    expect(c.elf.interp).toBeUndefined(); // static: no interpreter
    const want = native(c.path, ["x"], INPUT);
    expect(want).toEqual({ status: 5, stdout: "x: 5 words, sum 103.000, sqrt 10.14889\nthe 3\nand 2\ncat 1\n", stderr: "allocated 4194304\n" });
    using p = LinuxProgram.fromFile(c.path);
    // several calls on the program's warm VM, each from the entry, reset between them
    for (let i = 0; i < 3; i++) {
      const r = p.run(["x"], { input: INPUT });
      expect({ status: r.status, stdout: text(r.stdout), stderr: text(r.stderr) }).toEqual(want);
    }
    // the panic unwinds (its message, its status); newer Rust names the thread's id, 1 in a virtine
    const tid = (s: string) => s.replace(/^thread 'main' \(\d+\)/m, "thread 'main' (TID)");
    const panicked = native(c.path, ["y", "panic"], "");
    expect(panicked.status).toBe(101);
    const r = p.run(["y", "panic"], { input: "" });
    expect({ status: r.status, stdout: text(r.stdout), stderr: tid(text(r.stderr)) }).toEqual({ ...panicked, stderr: tid(panicked.stderr) });
    expect(text(r.stderr)).toMatch(/index out of bounds: the len is 0 but the index is 3/);
    // the second compile is the cache
    const again = await compileRust(PROGRAM, { cacheDir, name: "words" });
    expect([again.compiled, again.path]).toEqual([false, c.path]);
  }, slow(180_000));

  test("wasp build prog.rs writes an executable beside the source; wasp invoke runs it as natively", () => {
    const src = join(dir, "words.rs");
    writeFileSync(src, PROGRAM);
    const built = wasp(["build", src], env);
    expect(built.stderr).toBe("");
    expect(built.stdout).toMatch(/^wrote .*\/words: static x86-64 Linux executable words, \d+ bytes \(safe: overflow checks on\)\n$/);
    const prog = join(dir, "words");
    const want = native(prog, ["cli"], INPUT);
    const input = join(dir, "input.txt");
    writeFileSync(input, INPUT);
    const r = wasp(["invoke", prog, "cli", "-i", input]);
    expect(r).toEqual({ status: want.status, stdout: want.stdout, stderr: want.stderr });
  }, slow(180_000));

  test("the SDK: snapshot after the initialization, input, output, host functions; later calls resume", async () => {
    const source = `use wasp::Value;
fn main() {
    let table: Vec<u64> = (0..100_000u64).map(|i| i * i % 1_000_003).collect();
    eprintln!("built");
    let resumed = wasp::snapshot();
    let input = wasp::input().unwrap();
    let mut out = String::new();
    for w in String::from_utf8_lossy(&input).split_whitespace() {
        let i: usize = w.parse().unwrap();
        out.push_str(&format!("{} ", wasp::host_int("add", &[Value::U64(table[i]), Value::U64(1)]).unwrap()));
    }
    let mut buf = [0u8; 64];
    out.push_str(&String::from_utf8_lossy(wasp::host_bytes("greet", &[Value::Str("rust"), Value::I64(-2), Value::Bytes(&[7, 8])], &mut buf).unwrap()));
    out.push_str(if resumed { " resumed" } else { " first" });
    wasp::write_output(out.as_bytes()).unwrap();
}
`;
    const hostFunctions = {
      add: (a: unknown, b: unknown) => (a as bigint) + (b as bigint),
      greet: (s: unknown, i: unknown, b: unknown) => `hi ${s} ${i} ${[...(b as Uint8Array)]}`,
    };
    await using v = await Virtine.fromRust(source, { cacheDir, name: "sdk", hostFunctions });
    expect(v.kind).toBe("linux");
    const sq = (i: number) => BigInt((i * i) % 1_000_003) + 1n;
    const first = v.runSync({ input: "1 2 3" });
    expect([first.value, text(first.output), first.console]).toEqual([0n, `${sq(1)} ${sq(2)} ${sq(3)} hi rust -2 7,8 first`, "built\n"]);
    const again = v.runSync({ input: "1000 99999" });
    expect([text(again.output), again.console]).toEqual([`${sq(1000)} ${sq(99999)} hi rust -2 7,8 resumed`, ""]);
  }, slow(180_000));

  test("examples/rust/lookup.rs answers as examples/linux/lookup.c does, resumed after its sieve", async () => {
    const rust = await Virtine.fromRust(readFileSync(join(ROOT, "examples/rust/lookup.rs"), "utf8"), { cacheDir, name: "lookup_rs" });
    const c = await Virtine.fromC(readFileSync(join(ROOT, "examples/linux/lookup.c"), "utf8"), { cacheDir, name: "lookup" });
    try {
      for (const [input, console] of [["97\n#1000\n1999993\n", "lookup: sieved\n"], ["#1\n4\n#999999\n", "lookup: from the snapshot\n"]]) {
        const r = rust.runSync({ input });
        expect([text(r.output), r.console]).toEqual([text(c.runSync({ input }).output), console]);
      }
      expect(text(rust.runSync({ input: "97 #1000" }).output)).toBe("97 is prime\nprime #1000 is 7919\n");
    } finally {
      await rust.close();
      await c.close();
    }
  }, slow(180_000));
});

describe("a #![no_std] Rust function is a native image (the paper's Rust interface)", () => {
  const FIB = readFileSync(join(ROOT, "examples/rust/fib_rs.rs"), "utf8");

  test("wasp build fib_rs.rs --native, then wasp invoke fib_rs.bin 30: 832040", () => {
    const src = join(dir, "fib_rs.rs");
    writeFileSync(src, FIB);
    const built = wasp(["build", src, "--native"], env);
    expect(built.stderr).toBe("");
    expect(built.stdout).toMatch(/^wrote .*\/fib_rs\.bin: native image fib_rs, \d+ bytes \(safe: overflow checks on\); its symbols for gdb in .*\/fib_rs\.debug\n$/);
    expect(wasp(["invoke", join(dir, "fib_rs.bin"), "30"])).toEqual({ status: 0, stdout: "832040\n", stderr: "" });
    const inspect = wasp(["inspect", join(dir, "fib_rs.bin")]).stdout;
    expect(inspect).toMatch(/name\s+fib_rs\n/);
    expect(inspect).toMatch(/main takes\s+1 integer argument\n/);
    // the symbols beside it are the linked ELF
    expect([...readFileSync(join(dir, "fib_rs.debug")).subarray(0, 4)]).toEqual([0x7f, 0x45, 0x4c, 0x46]);
  }, slow(180_000));

  test("Virtine.fromRust(source, { native: true }): fib of every n to 25 and 30, one exit each", async () => {
    await using v = await Virtine.fromRust(FIB, { cacheDir, native: true, name: "fib_rs" });
    expect(v.kind).toBe("native");
    for (let n = 0; n <= 25; n++) expect(v.invokeSync(n)).toBe(fibRef(n));
    const r = v.runSync({ args: [30] });
    expect([r.value, r.exits]).toEqual([832040n, 1]);
    expect(await v.invoke(30)).toBe(832040n); // on a worker
  }, slow(180_000));

  test("the native SDK: arguments, input, output, console, host functions, the snapshot, panics", async () => {
    const source = `#![no_std]
use core::fmt::Write;
use wasp::Value;

static mut TABLE: [u64; 1024] = [0; 1024];

#[no_mangle]
pub extern "C" fn main(op: u64, x: u64) -> u64 {
    match op {
        0 => {
            let input = wasp::input();
            let mut buf = [0u8; 256];
            let n = input.len().min(buf.len());
            buf[..n].copy_from_slice(&input[..n]);
            buf[..n].make_ascii_uppercase();
            wasp::write_output(&buf[..n]).unwrap();
            wasp::println!("{} bytes in, args {:?}", input.len(), wasp::args());
            n as u64
        }
        1 => wasp::host_int("add", &[Value::U64(x), Value::U64(1000)]).unwrap_or(0xdead),
        2 => {
            let mut out = [0u8; 64];
            let got = wasp::host_bytes("greet", &[Value::Str("wasp"), Value::Bytes(&[1, 2]), Value::I64(-5)], &mut out).unwrap();
            wasp::write_output(got).unwrap();
            got.len() as u64
        }
        3 => x + u64::MAX,
        4 => {
            let t = unsafe { &mut *core::ptr::addr_of_mut!(TABLE) };
            for (i, v) in t.iter_mut().enumerate() {
                *v = (i as u64) * 3;
            }
            wasp::print!("built ");
            let resumed = wasp::snapshot();
            let _ = write!(wasp::Output, "{}", if resumed { "resumed" } else { "first" });
            t[(wasp::arg(1) as usize) % 1024]
        }
        _ => {
            let v = [1u64, 2, 3];
            v[x as usize]
        }
    }
}
`;
    const hostFunctions = {
      add: (a: unknown, b: unknown) => (a as bigint) + (b as bigint),
      greet: (s: unknown, b: unknown, i: unknown) => `hi ${s} ${[...(b as Uint8Array)]} ${i}`,
    };
    await using v = await Virtine.fromRust(source, { cacheDir, native: true, name: "sdk_rs", hostFunctions });
    const r = v.runSync({ args: [0, 7], input: "hello" });
    expect([r.value, text(r.output), r.console]).toEqual([5n, "HELLO", "5 bytes in, args [0, 7]\n"]);
    expect(v.invokeSync(1, 42)).toBe(1042n);
    const g = v.runSync({ args: [2] });
    expect([g.value, text(g.output)]).toEqual([14n, "hi wasp 1,2 -5"]);
    // a failed check is a panic whose message names it, on one line
    const overflow = (() => { try { v.invokeSync(3, 5); } catch (e) { return e; } })();
    expect(overflow).toBeInstanceOf(GuestPanicError);
    expect((overflow as GuestPanicError).guestMessage).toMatch(/^panicked at .*attempt to add with overflow/);
    expect((overflow as GuestPanicError).guestMessage).not.toContain("\n");
    expect(() => v.invokeSync(5, 9)).toThrow(/index out of bounds: the len is 3 but the index is 9/);
    // the snapshot: the first call captures after the table, the next resumes with its own arguments
    const first = v.runSync({ args: [4, 10] });
    expect([first.value, text(first.output), first.console, first.exits]).toEqual([30n, "first", "built ", 2]);
    const resumed = v.runSync({ args: [4, 20] });
    expect([resumed.value, text(resumed.output), resumed.console, resumed.exits]).toEqual([60n, "resumed", "", 1]);
  }, slow(180_000));

  test("a main of another type, none, or too many parameters: one clear CompileError", async () => {
    const bad = async (source: string) => (await compileRustImage(source, { cacheDir }).catch((e) => e)) as CompileError;
    const wrongType = await bad(`#![no_std]\n#[no_mangle]\npub extern "C" fn main(a: u32) -> u64 { a as u64 }\n`);
    expect(wrongType).toBeInstanceOf(CompileError);
    expect(wrongType.message).toMatch(/^a native Rust guest's main is `#\[no_mangle\] pub extern "C" fn main\(\.\.\.\) -> u64` with 0 to 6 u64 parameters: error\[E0308\]: mismatched types$/);
    expect((await bad(`#![no_std]\npub fn helper() {}\n`)).message).toMatch(/the source declares none$/);
    expect((await bad(`#![no_std]\npub fn main(a: u64, b: u64, c: u64, d: u64, e: u64, f: u64, g: u64) -> u64 { a }\n`)).message).toMatch(/this one takes 7$/);
    const syntax = await bad(`#![no_std]\npub fn main() -> u64 { nope }\n`);
    expect(syntax.message).toBe("the Rust source does not compile: inline.rs:2:24: error[E0425]: cannot find value `nope` in this scope");
    expect(syntax.diagnostics).not.toContain("wasp-rust-");
  }, slow(180_000));
});

describe("bad input: one line each", () => {
  test("no rustc on PATH: wasp build says so in one line (exit status of WASP_COMPILE); so does the API", async () => {
    const src = join(dir, "p.rs");
    writeFileSync(src, "fn main() {}\n");
    const r = wasp(["build", src], { ...env, PATH: join(dir, "empty") });
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe("wasp: rustc is not on PATH: a .rs guest is built with the rustc on PATH — install Rust (Debian: apt install rustc; or rustup), or name one with --rustc\n");
    expect(r.status).toBe(EXIT_STATUS.WASP_COMPILE);
    const saved = process.env.PATH;
    process.env.PATH = join(dir, "empty");
    try {
      const e = await Virtine.fromRust("fn main() {}", { cacheDir: join(dir, "other-cache") }).catch((x) => x);
      expect(e).toBeInstanceOf(CompileError);
      expect(e.code).toBe("WASP_COMPILE");
      expect(e.message).toMatch(/^rustc is not on PATH/);
    } finally {
      process.env.PATH = saved;
    }
    const named = wasp(["build", src, "--rustc", join(dir, "no-rustc")], env);
    expect([named.status, named.stderr]).toEqual([EXIT_STATUS.WASP_COMPILE, `wasp: rustc is not at ${join(dir, "no-rustc")}: name an installed rustc (--rustc, the rustc option)\n`]);
  });

  test("a source that does not compile, --native on a C file, --linux with --native, --rustc on a Zig file", () => {
    const src = join(dir, "bad.rs");
    writeFileSync(src, "fn main() { let x: u32 = y; }\n");
    const r = wasp(["build", src], env);
    expect([r.status, r.stderr]).toEqual([EXIT_STATUS.WASP_COMPILE, `wasp: the Rust source does not compile: ${src}:1:26: error[E0425]: cannot find value \`y\` in this scope\n`]);
    const c = join(dir, "x.c");
    writeFileSync(c, "int main(void) { return 0; }\n");
    expect(wasp(["build", c, "--native"])).toEqual({ status: 2, stdout: "", stderr: "wasp: --native is for .rs files (a Zig guest is native unless --linux)\n" });
    expect(wasp(["build", src, "--native", "--linux"]).stderr).toBe("wasp: --linux and --native: a .rs file is one or the other\n");
    expect(wasp(["build", join(ROOT, "guests/fib.zig"), "--rustc", "/usr/bin/rustc"]).stderr).toBe("wasp: --rustc is for .rs files\n");
  });
});
