// The Wasp paper's OpenSSL experiment (issue 15, part 7): a buffer encrypted with AES-128-CBC as
// one stream, each chunk of 256 (or 16) bytes in its own virtine call — the guest
// guests/aes_chunk.zig, resumed from the snapshot its keying call took, so the key schedule lives
// only in the snapshot — beside the same std.crypto code run natively by a static program
// (guests/aes_native.zig), chunk by chunk. Every run's ciphertext is checked against Bun's own
// AES (node:crypto). Figures in bytes/s: a sample is one pass over the buffer.
import { createCipheriv } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Virtine } from "../api/virtine.ts";
import { embeddedBench, executableFile } from "./guests.ts";
import nativePath from "../../dist/guests/aes_native" with { type: "file" };
import { withPerCall, type SeriesResult } from "./stats.ts";
import type { Series } from "./suite.ts";

/** The buffer: 64 KiB, as in a large TLS record's worth of data many times over. */
export const BUFFER = 64 * 1024;
export const KEY = Buffer.from("2b7e151628aed2a6abf7158809cf4f3c", "hex"); // NIST SP 800-38A's
export const IV = Buffer.from("000102030405060708090a0b0c0d0e0f", "hex");
export const CHUNKS = [256, 16] as const;

/** A fixed plaintext (a linear congruential sequence), so every run encrypts the same bytes. */
export function plaintext(): Uint8Array {
  const b = new Uint8Array(BUFFER);
  let x = 0x9e3779b9;
  for (let i = 0; i < b.length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

/** The ciphertext a correct run produces (Bun's AES, through node:crypto). */
export function expected(plain: Uint8Array): Uint8Array {
  const c = createCipheriv("aes-128-cbc", KEY, IV).setAutoPadding(false);
  return new Uint8Array(Buffer.concat([c.update(plain), c.final()]));
}

export function bytesPerSecond(name: string, nsPerPass: number[]): SeriesResult {
  // a throughput: the median pass, and the slow tail (the 99th percentile of the time per pass)
  const s = [...nsPerPass].sort((a, b) => a - b);
  const rate = (ns: number) => Math.round((BUFFER * 1e9) / ns);
  return { name, unit: "B/s", n: s.length, median: rate(s[Math.floor(s.length / 2)]), p99: rate(s[Math.floor((s.length * 99) / 100)]) };
}

export function sameBytes(name: string, got: Uint8Array, want: Uint8Array): void {
  if (got.length !== want.length || !got.every((b, i) => b === want[i])) throw new Error(`${name}: the ciphertext differs from AES-128-CBC's (node:crypto)`);
}

function native(chunk: number, passes: number, plain: Uint8Array, want: Uint8Array): SeriesResult {
  const name = `aes_native_${chunk}`;
  const dir = mkdtempSync(join(tmpdir(), "wasp-bench-aes-"));
  try {
    const p = Bun.spawnSync([executableFile(nativePath, dir, "aes_native"), KEY.toString("hex"), IV.toString("hex"), String(chunk), String(passes)], { stdin: plain, env: {} });
    if (p.exitCode !== 0) throw new Error(`${name}: the native program exited with ${p.exitCode}: ${p.stderr.toString()}`);
    sameBytes(name, new Uint8Array(p.stdout), want);
    const ns = p.stderr.toString().trim().split("\n").map(Number);
    if (ns.length !== passes || ns.some((v) => !(v > 0))) throw new Error(`${name}: the native program gave ${ns.length} times for ${passes} passes`);
    return bytesPerSecond(name, ns);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Passes over the buffer, each chunk in its own virtine call (the calling thread's, runSync). */
async function virtine(chunk: number, passes: number, plain: Uint8Array, want: Uint8Array): Promise<SeriesResult> {
  const name = `aes_virtine_${chunk}`;
  using v = await Virtine.load(new Uint8Array(readFileSync(embeddedBench("aes_chunk"))));
  v.runSync({ input: KEY }); // the keying call: expands the key, takes the snapshot
  const input = new Uint8Array(16 + chunk);
  const out = new Uint8Array(BUFFER);
  let exits = 0;
  const pass = () => {
    let iv: Uint8Array = IV;
    for (let at = 0; at < BUFFER; at += chunk) {
      input.set(iv, 0);
      input.set(plain.subarray(at, at + chunk), 16);
      const r = v.runSync({ input });
      if (r.output.length !== chunk) throw new Error(`${name}: a call returned ${r.output.length} bytes for a ${chunk}-byte chunk`);
      out.set(r.output, at);
      exits = r.exits;
      iv = r.output.subarray(chunk - 16);
    }
  };
  return timedPasses(name, passes, pass, out, want, () => exits);
}

/**
 * One untimed pass (settling the call path), then `passes` timed ones, the ciphertext checked
 * against `want` after the first and the last; bytes a second, with the exits of a call.
 */
export function timedPasses(name: string, passes: number, pass: () => void, out: Uint8Array, want: Uint8Array, exits: () => number): SeriesResult {
  pass();
  sameBytes(name, out, want);
  const ns: number[] = [];
  for (let i = 0; i < passes; i++) {
    const t = Bun.nanoseconds();
    pass();
    ns.push(Bun.nanoseconds() - t);
  }
  sameBytes(name, out, want);
  return withPerCall(bytesPerSecond(name, ns), { exits: exits() });
}

export const AES_NAMES = CHUNKS.flatMap((c) => [`aes_virtine_${c}`, `aes_native_${c}`]);

export const AES_SERIES: Series[] = [
  {
    // runs: passes over the 64 KiB buffer per series
    name: "aes",
    reports: AES_NAMES,
    defaultRuns: 20,
    async run(runs) {
      const plain = plaintext();
      const want = expected(plain);
      const results: SeriesResult[] = [];
      for (const c of CHUNKS) results.push(native(c, runs, plain, want), await virtine(c, runs, plain, want));
      return results;
    },
  },
];

/** Each virtine series beside the native run of the same chunk size. */
export const AES_BESIDE: Readonly<Record<string, string>> = Object.fromEntries(CHUNKS.map((c) => [`aes_virtine_${c}`, `aes_native_${c}`]));
