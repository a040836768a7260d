// Shared by the test files: paths to the built artifacts and the bundled toolchain.
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { ptr } from "bun:ffi";
import * as libc from "../ffi/libc.ts";
import { dirname, join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dir, "..");
export const DIST = join(ROOT, "dist");

export function zigPath(): string {
  return join(ROOT, "node_modules", ".bin", "zig");
}

/** Path of a built example guest; fails loudly if `npm install` has not built it. */
export function guest(name: string): string {
  const p = join(DIST, "guests", `${name}.bin`);
  if (!existsSync(p)) throw new Error(`${p} is missing: run \`npm install\` (or \`npm run build\`) first`);
  return p;
}

/** fib(n) computed on the host, to check guests against. */
export function fibRef(n: number): bigint {
  let a = 0n;
  let b = 1n;
  for (let i = 0; i < n; i++) [a, b] = [b, a + b];
  return a;
}

/** Number of open file descriptors of this process. */
export function openFds(): number {
  return readdirSync("/proc/self/fd").length;
}

/** This process's open file descriptors, each with what it refers to. */
export type FdTable = Map<number, string>;

export function fdTable(): FdTable {
  const table: FdTable = new Map();
  for (const name of readdirSync("/proc/self/fd")) {
    try {
      table.set(Number(name), readlinkSync(`/proc/self/fd/${name}`));
    } catch {
      // closed between the listing and the link (the listing's own descriptor among them)
    }
  }
  return table;
}

/**
 * The descriptors open now that were not open, to the same thing, in `before`: what the code under
 * test left open. A count would also move when something else closes its own meanwhile (a finished
 * subprocess's pipes, released when the collector gets to them), which is no leak; a pipe or
 * anonymous inode reopened at a number is told apart by its inode.
 */
export function fdsOpenedSince(before: FdTable): string[] {
  const opened: string[] = [];
  for (const [fd, target] of fdTable()) if (before.get(fd) !== target) opened.push(`${fd} -> ${target}`);
  return opened;
}

import { buildNativeImage } from "../src/image/image.ts";

/**
 * A native image made of raw machine code (for faults no well-behaved Zig guest would produce):
 * the header, then `code` at the entry point.
 */
export function nativeImage(code: number[], opts: { memWanted?: number; bss?: number } = {}): Uint8Array {
  return buildNativeImage(code, opts);
}

/** Machine code snippets (x86-64). */
export const X86 = {
  /** out 0xfa, al */
  exit: [0xe6, 0xfa],
  /** ud2 */
  ud2: [0x0f, 0x0b],
  /** jmp $ */
  spin: [0xeb, 0xfe],
  /** mov rax, imm32 (sign-extended) */
  movRax: (v: number) => [0x48, 0xc7, 0xc0, v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff],
  /** out 0xfb, al (a hypercall) */
  hypercall: [0xe6, 0xfb],
  /** out dx-less: out imm8, al */
  outPort: (port: number) => [0xe6, port & 0xff],
  /** mov rbx, imm32; mov al, [rbx] */
  readAt: (addr: number) => [0x48, 0xc7, 0xc3, addr & 0xff, (addr >> 8) & 0xff, (addr >> 16) & 0xff, (addr >>> 24) & 0xff, 0x8a, 0x03],
  /** mov rbx, imm32; mov [rbx], al */
  writeAt: (addr: number) => [0x48, 0xc7, 0xc3, addr & 0xff, (addr >> 8) & 0xff, (addr >> 16) & 0xff, (addr >>> 24) & 0xff, 0x88, 0x03],
};

/** Raw real-mode code (Wasp's convention: loaded at 0x8000). */
export const REAL = {
  /** mov eax, imm32 (with the operand-size prefix in 16-bit code) */
  movEax: (v: number) => [0x66, 0xb8, v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff],
  hlt: [0xf4],
  exit: [0xe6, 0xfa],
  /**
   * lidt [0x8010] (a zero-limit IDT), then ud2. With VMX/SVM a triple fault; KVM on PVM (real-mode
   * emulated) gives up instead: KVM_EXIT_INTERNAL_ERROR, emulation failure.
   */
  undeliverable: [0x0f, 0x01, 0x1e, 0x10, 0x80, 0x0f, 0x0b, ...new Array(9).fill(0x90), 0, 0, 0, 0, 0, 0],
};

export const WASP = join(DIST, "wasp");

/** Runs the standalone binary; returns status and output. */
export function wasp(args: string[], env: Record<string, string> = {}) {
  const p = Bun.spawnSync([WASP, ...args], { env: { ...process.env, ...env } });
  return { status: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

/** pipe2(2), syscall 293 on x86-64 */
const SYS_PIPE2 = 293;

/** Runs wasp with its standard output the write end of a pipe whose read end is already closed. */
export function waspIntoClosedPipe(args: string[]) {
  const fds = new Int32Array(2);
  if ((libc.raw.syscall(SYS_PIPE2, ptr(fds), 0, 0, 0) as number) < 0) libc.fail("pipe2");
  libc.close(fds[0]);
  try {
    const p = Bun.spawnSync([WASP, ...args], { stdout: fds[1], stderr: "pipe" });
    return { status: p.exitCode, stderr: p.stderr.toString() };
  } finally {
    libc.close(fds[1]);
  }
}


import { mkdtempSync as mkdtemp, rmSync as rmTree, writeFileSync as writeFile } from "node:fs";
import { tmpdir } from "node:os";
import { fieldSize, type Struct } from "../ffi/struct.ts";

/**
 * What the C headers say: every struct's size and each field's offset and width (`NAME.sizeof`,
 * `NAME.FIELD.offset`, `NAME.FIELD.size`) and each constant's value (by its key), from a program
 * compiled with the bundled zig cc against `includes` and run. The ABI tables' tests compare them.
 */
export function cLayouts(structs: readonly Struct<string>[], constants: readonly (readonly [key: string, expr: string])[], includes: readonly string[]): Map<string, number> {
  const lines: string[] = [];
  const say = (key: string, expr: string) => lines.push(`  printf("%s %llu\\n", "${key}", (unsigned long long)(${expr}));`);
  for (const s of structs) {
    say(`${s.c}.sizeof`, `sizeof(${s.c})`);
    for (const name of s.fieldNames) {
      say(`${s.c}.${name}.offset`, `offsetof(${s.c}, ${name})`);
      // flexible array members have no size of their own
      if (fieldSize(s.fields[name][1]) > 0) say(`${s.c}.${name}.size`, `sizeof(((${s.c} *)0)->${name})`);
    }
  }
  for (const [key, expr] of constants) say(key, expr);
  const program = ["#define _GNU_SOURCE", "#include <stddef.h>", "#include <stdio.h>", ...includes.map((h) => `#include <${h}>`), "int main(void) {", ...lines, "  return 0;", "}", ""].join("\n");
  const dir = mkdtemp(join(tmpdir(), "wasp-layout-"));
  try {
    writeFile(join(dir, "layout.c"), program);
    const cc = Bun.spawnSync([zigPath(), "cc", "-target", "x86_64-linux-musl", "-static", "-o", join(dir, "layout"), join(dir, "layout.c")]);
    if (cc.exitCode !== 0) throw new Error(`zig cc failed:\n${cc.stderr.toString()}`);
    const run = Bun.spawnSync([join(dir, "layout")]);
    if (run.exitCode !== 0) throw new Error(`layout program failed: ${run.stderr.toString()}`);
    const out = new Map<string, number>();
    for (const line of run.stdout.toString().trim().split("\n")) {
      const cut = line.lastIndexOf(" ");
      out.set(line.slice(0, cut), Number(line.slice(cut + 1)));
    }
    return out;
  } finally {
    rmTree(dir, { recursive: true, force: true });
  }
}

/**
 * A test's time limit scaled by WASP_TEST_TIME_SCALE (default 1): in the emulated machine of
 * tools/kvm-vm.sh everything runs 10-50x slower, and .ci/run sets it there.
 */
export function slow(ms: number): number {
  const scale = Number(process.env.WASP_TEST_TIME_SCALE);
  return Number.isFinite(scale) && scale >= 1 ? ms * scale : ms;
}

/** What `f` throws (the test fails if it throws nothing). */
export function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error("expected an error");
}

/** What `p` rejects with (the test fails if it resolves). */
export async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected a rejection");
}

/**
 * True when this machine's KVM maps guest memory by shadow paging rather than by hardware (EPT/NPT):
 * KVM on PVM (module kvm_pvm), or kvm_intel/kvm_amd with ept/npt off — as in the emulated machine
 * of tools/kvm-vm.sh. Some kernel accounting (page sharing between views) differs there.
 */
export function kvmShadowPaging(): boolean {
  if (existsSync("/sys/module/kvm_pvm")) return true;
  for (const p of ["/sys/module/kvm_intel/parameters/ept", "/sys/module/kvm_amd/parameters/npt"]) {
    if (existsSync(p)) return !/^[Y1]/.test(readFileSync(p, "utf8"));
  }
  return false;
}

/**
 * True inside the emulated machine of tools/kvm-vm.sh (QEMU's TCG with an emulated SVM CPU), which
 * runs the suite with WASP_VM_HOST_EXEC set (tools/test-emulated.sh): a few things its emulated CPU
 * does differently from hardware and PVM are asserted as they are there.
 */
export function emulatedKvm(): boolean {
  return process.env.WASP_VM_HOST_EXEC !== undefined;
}

/**
 * A `wasp serve` server in this process with one function (ROUTE → IMAGE) and every 5xx's
 * recording kept in `recordDir` (--record-failures), started on a free port. Stop it with `stop()`.
 */
export async function recordingServer(
  route: string,
  image: string,
  recordDir: string,
  opts: { allow?: string[]; timeoutMs?: number; workers?: number; warmCalls?: number; maxFiles?: number; log?: (line: string) => void } = {},
) {
  const { WaspServer } = await import("../src/serve/server.ts");
  const { functionConfig, recordFailures } = await import("../src/serve/config.ts");
  const server = new WaspServer(
    {
      host: "127.0.0.1",
      port: 0,
      functions: [functionConfig({ route, image, ...(opts.allow && { allow: opts.allow }) }, route, dirname(image), { timeoutMs: opts.timeoutMs ?? slow(5000), maxBody: 1024 })],
      workers: opts.workers ?? 1,
      maxQueue: 64,
      graceMs: 1000,
      warmCalls: opts.warmCalls ?? 1,
      accessLog: false,
      recordFailures: recordFailures(recordDir, opts.maxFiles ?? 10),
    },
    { log: opts.log ?? (() => {}) },
  );
  await server.start();
  return server;
}

/**
 * A recording file around any JSON body, written here independently of src/virtine/record.ts: the
 * WASPREC1 magic, `version`, the body's CRC-32 and length (docs/recording-format.md).
 */
export function recordingBytes(version: number, body: unknown): Uint8Array {
  const b = new TextEncoder().encode(JSON.stringify(body));
  const out = new Uint8Array(24 + b.length);
  out.set(new TextEncoder().encode("WASPREC1"));
  const dv = new DataView(out.buffer);
  dv.setUint32(8, version, true);
  dv.setUint32(12, Bun.hash.crc32(b), true);
  dv.setBigUint64(16, BigInt(b.length), true);
  out.set(b, 24);
  return out;
}

import { DATA_OFFSET, HEADER } from "../src/snapshot/file.ts";
import { decodeProcessFile, encodeProcessSection, type ProcessFile } from "../src/linux/process-file.ts";

/**
 * Writes to `to` a copy of the Linux snapshot file `from` with its process section decoded,
 * changed by `change` and encoded again — the section's size and CRC and the header's CRC made
 * right, so that only what the change did is wrong. Returns `to`.
 */
export function withProcessSection(from: string, to: string, change: (s: ProcessFile) => void): string {
  const bytes = new Uint8Array(readFileSync(from));
  const at = DATA_OFFSET + Number(new DataView(bytes.buffer).getBigUint64(HEADER.MEM_SIZE, true));
  const section = decodeProcessFile(bytes.subarray(at));
  change(section);
  const encoded = encodeProcessSection(section);
  const out = new Uint8Array(at + encoded.length);
  out.set(bytes.subarray(0, at));
  out.set(encoded, at);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(HEADER.PROCESS_BYTES, BigInt(encoded.length), true);
  dv.setUint32(HEADER.PROCESS_CRC, Bun.hash.crc32(encoded), true);
  dv.setUint32(HEADER.CHECKSUM, 0, true);
  dv.setUint32(HEADER.CHECKSUM, Bun.hash.crc32(out.subarray(0, DATA_OFFSET)), true);
  writeFile(to, out);
  return to;
}

/** One JSON log line of `wasp serve` (a line that is not JSON: { text }). */
export type Line = Record<string, unknown>;

/** JSON log lines from a stream, as they come. */
export function readLines(stream: ReadableStream<Uint8Array>): { lines: Line[]; wake: () => void; waiters: (() => void)[] } {
  const state = { lines: [] as Line[], wake: () => {}, waiters: [] as (() => void)[] };
  void (async () => {
    let buf = "";
    for await (const chunk of stream) {
      buf += new TextDecoder().decode(chunk);
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          state.lines.push(JSON.parse(line));
        } catch {
          state.lines.push({ text: line });
        }
        for (const w of state.waiters.splice(0)) w();
      }
    }
  })();
  return state;
}

export async function waitFor(s: ReturnType<typeof readLines>, pred: (l: Line) => boolean): Promise<Line> {
  for (;;) {
    const found = s.lines.find(pred);
    if (found) return found;
    await new Promise<void>((resolve) => s.waiters.push(resolve));
  }
}
