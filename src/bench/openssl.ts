// The paper's OpenSSL experiment with OpenSSL itself (issue 24.4): guests/aes_openssl.c, AES-128-CBC
// through EVP, built by the system's gcc against its static libcrypto (Debian's libssl-dev), run
// as a virtine — the keying call takes the snapshot, each chunk of 256 (or 16) bytes is one call
// resumed from it — beside the same program natively, chunk by chunk with the same EVP calls. The
// same buffer, key, IV and check against node:crypto as the std.crypto series (aes.ts). Without
// gcc or libssl-dev the series report nothing, with a note saying what to install: the bench runs
// on a machine with only node and npm.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sourcePath from "../../guests/aes_openssl.c" with { type: "file" };
import { compileCacheDir, sdkDir } from "../image/zig.ts";
import { LinuxProgram } from "../virtine/linux.ts";
import { BUFFER, CHUNKS, IV, KEY, bytesPerSecond, expected, plaintext, sameBytes, timedPasses } from "./aes.ts";
import type { SeriesResult } from "./stats.ts";
import type { Series } from "./suite.ts";

const INSTALL = "apt install gcc libssl-dev";

/**
 * guests/aes_openssl.c built in `dir` with the system's gcc, static, against libcrypto.a: its path,
 * or why it could not be built (no gcc, no libssl-dev), in one line. `PATH`: where gcc is looked for.
 */
export function buildAesOpenssl(dir: string, PATH = process.env.PATH ?? ""): { path: string } | { missing: string } {
  const gcc = Bun.which("gcc", { PATH });
  if (!gcc) return { missing: `no gcc on PATH (${INSTALL})` };
  const source = join(dir, "aes_openssl.c");
  writeFileSync(source, readFileSync(sourcePath));
  const out = join(dir, "aes_openssl");
  const r = Bun.spawnSync([gcc, "-static", "-O2", "-I", sdkDir(compileCacheDir(undefined)), source, "-o", out, "-lcrypto"], { stderr: "pipe" });
  if (r.exitCode !== 0) {
    const err = r.stderr.toString();
    const first = err.split("\n").find((l) => /error/.test(l)) ?? err.trim().split("\n")[0] ?? "";
    return { missing: /openssl\/|lcrypto/.test(err) ? `no static libcrypto or OpenSSL headers (${INSTALL})` : `gcc failed: ${first.trim()}` };
  }
  return { path: out };
}

function native(path: string, chunk: number, passes: number, plain: Uint8Array, want: Uint8Array): SeriesResult {
  const name = `aes_openssl_native_${chunk}`;
  const p = Bun.spawnSync([path, "native", KEY.toString("hex"), IV.toString("hex"), String(chunk), String(passes)], { stdin: plain, env: {} });
  if (p.exitCode !== 0) throw new Error(`${name}: the native program exited with ${p.exitCode}: ${p.stderr.toString()}`);
  sameBytes(name, new Uint8Array(p.stdout), want);
  const ns = p.stderr.toString().trim().split("\n").map(Number);
  if (ns.length !== passes || ns.some((v) => !(v > 0))) throw new Error(`${name}: the native program gave ${ns.length} times for ${passes} passes`);
  return bytesPerSecond(name, ns);
}

/** Passes over the buffer, each chunk in its own call of the program, resumed from the keying call's snapshot. */
function virtine(path: string, chunk: number, passes: number, plain: Uint8Array, want: Uint8Array): SeriesResult {
  const name = `aes_openssl_virtine_${chunk}`;
  using p = LinuxProgram.fromFile(path);
  const keyed = p.run([], { input: KEY });
  if (keyed.status !== 0 || !p.resumesFromCapture) throw new Error(`${name}: the keying call ended with status ${keyed.status} without a snapshot: ${new TextDecoder().decode(keyed.stderr)}`);
  const input = new Uint8Array(16 + chunk);
  const out = new Uint8Array(BUFFER);
  let exits = 0;
  const pass = () => {
    let iv: Uint8Array = IV;
    for (let at = 0; at < BUFFER; at += chunk) {
      input.set(iv, 0);
      input.set(plain.subarray(at, at + chunk), 16);
      const r = p.run([], { input });
      if (r.status !== 0 || r.stdout.length !== chunk) throw new Error(`${name}: a call ended with status ${r.status} and ${r.stdout.length} bytes for a ${chunk}-byte chunk`);
      out.set(r.stdout, at);
      exits = r.exits;
      iv = r.stdout.subarray(chunk - 16);
    }
  };
  return timedPasses(name, passes, pass, out, want, () => exits);
}

export const AES_OPENSSL_NAMES = CHUNKS.flatMap((c) => [`aes_openssl_virtine_${c}`, `aes_openssl_native_${c}`]);

export const AES_OPENSSL_SERIES: Series[] = [
  {
    // runs: passes over the 64 KiB buffer per series
    name: "aes_openssl",
    reports: AES_OPENSSL_NAMES,
    defaultRuns: 20,
    async run(runs) {
      const dir = mkdtempSync(join(tmpdir(), "wasp-bench-openssl-"));
      try {
        const built = buildAesOpenssl(dir);
        if ("missing" in built) return AES_OPENSSL_NAMES.map((name) => ({ name, unit: "B/s", n: 0, median: 0, p99: 0, note: `skipped: ${built.missing}` }));
        const plain = plaintext();
        const want = expected(plain);
        const results: SeriesResult[] = [];
        for (const c of CHUNKS) results.push(native(built.path, c, runs, plain, want), virtine(built.path, c, runs, plain, want));
        return results;
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  },
];

/** Each virtine series beside the native run of the same chunk size. */
export const AES_OPENSSL_BESIDE: Readonly<Record<string, string>> = Object.fromEntries(CHUNKS.map((c) => [`aes_openssl_virtine_${c}`, `aes_openssl_native_${c}`]));
