// OpenSSL off the shelf in a virtine (issue 24.4): guests/aes_openssl.c, AES-128-CBC through EVP,
// built by Debian's gcc against its static libcrypto (gcc -static ... -lcrypto) — glibc and OpenSSL
// choosing their code paths by the CPUID the virtine sees — run as the paper's experiment does: the
// keying call takes the snapshot, each chunk is a call resumed from it. Its ciphertext equals
// node:crypto's and the same program's run natively. Needs Debian packages: gcc, libssl-dev.
import { afterAll, describe, expect, test } from "bun:test";
import { createCipheriv } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildAesOpenssl } from "../src/bench/openssl.ts";
import { LinuxProgram } from "../src/virtine/linux.ts";

const dir = mkdtempSync(join(tmpdir(), "wasp-openssl-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const KEY = Buffer.from("000102030405060708090a0b0c0d0e0f", "hex");
const IV = Buffer.from("f0e0d0c0b0a090807060504030201000", "hex");

function program(): string {
  const built = buildAesOpenssl(dir);
  if ("missing" in built) throw new Error(`cannot build guests/aes_openssl.c: ${built.missing}`);
  return built.path;
}

const plain = new Uint8Array(8192).map((_, i) => (i * 31 + 7) & 0xff);
const want = () => new Uint8Array(createCipheriv("aes-128-cbc", KEY, IV).setAutoPadding(false).update(plain));

describe("OpenSSL's AES-128-CBC in a virtine, a chunk a call", () => {
  const path = program();

  for (const chunk of [256, 16]) {
    test(`${chunk}-byte chunks resumed from the keying call's snapshot equal node:crypto and the native run`, () => {
      const native = Bun.spawnSync([path, "native", KEY.toString("hex"), IV.toString("hex"), String(chunk), "1"], { stdin: plain, env: {} });
      expect(native.exitCode).toBe(0);
      expect(Buffer.from(native.stdout).equals(Buffer.from(want()))).toBe(true);
      using p = LinuxProgram.fromFile(path, { poolSize: 1 });
      const keyed = p.run([], { input: KEY });
      expect(keyed.status).toBe(0);
      expect(p.resumesFromCapture).toBe(true);
      const out = new Uint8Array(plain.length);
      let iv: Uint8Array = IV;
      for (let at = 0; at < plain.length; at += chunk) {
        const r = p.run([], { input: Buffer.concat([iv, plain.subarray(at, at + chunk)]) });
        expect(r.status).toBe(0);
        out.set(r.stdout, at);
        iv = r.stdout.subarray(chunk - 16);
      }
      expect(Buffer.from(out).equals(Buffer.from(want()))).toBe(true);
    });
  }

  test("a bad chunk is refused with one line, and the next call from the snapshot is right", () => {
    using p = LinuxProgram.fromFile(path, { poolSize: 1 });
    p.run([], { input: KEY });
    const bad = p.run([], { input: new Uint8Array(20) });
    expect(bad.status).toBe(2);
    expect(new TextDecoder().decode(bad.stderr)).toContain("a 16-byte IV and whole 16-byte blocks");
    const r = p.run([], { input: Buffer.concat([IV, plain.subarray(0, 32)]) });
    expect(Buffer.from(r.stdout).equals(Buffer.from(want().subarray(0, 32)))).toBe(true);
  });
});
