// The paper's OpenSSL showcase behind `wasp serve` (issue 15, part 7): the built-in guest `aes`
// seals request bodies (AES-128-CBC, then HMAC-SHA256) with a key that exists only in its snapshot
// file, made by `wasp snapshot aes -i KEY`. Checked against Bun's own AES and HMAC (node:crypto):
// what it seals is the standard construction, opens again, and a forged or altered message is
// refused; the key file can be gone. And the AES chunk guest of `wasp bench` agrees with AES-CBC.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createDecipheriv, createCipheriv, createHmac, hkdfSync, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { functionConfig } from "../src/serve/config.ts";
import { WaspServer } from "../src/serve/server.ts";
import { Virtine } from "../src/api/virtine.ts";
import { EXIT_STATUS } from "../src/errors.ts";
import { guest, slow, wasp } from "./support.ts";

const tmp = mkdtempSync(join(tmpdir(), "wasp-serve-aes-"));
const key = randomBytes(16);
const macKey = Buffer.from(hkdfSync("sha256", key, Buffer.alloc(0), "wasp aes.zig mac", 32));
let server: WaspServer;
let base = "";

beforeAll(async () => {
  const keyFile = join(tmp, "key.hex");
  writeFileSync(keyFile, `${key.toString("hex")}\n`);
  const snap = join(tmp, "aes.snap");
  const made = wasp(["snapshot", "aes", "-i", keyFile, "--allow", "random", "-o", snap]);
  expect(made.stderr).toBe("");
  expect(made.status).toBe(0);
  rmSync(keyFile); // the key lives on only in the snapshot
  server = new WaspServer(
    {
      host: "127.0.0.1",
      port: 0,
      functions: [functionConfig({ route: "/seal", image: snap, allow: ["random"], methods: ["POST"] }, "/seal", tmp, { timeoutMs: slow(2000), maxBody: 1 << 16 })],
      workers: 2,
      maxQueue: 64,
      graceMs: slow(5000),
      warmCalls: 2,
      accessLog: false,
    },
    { log: () => {} },
  );
  await server.start();
  base = `http://127.0.0.1:${server.port}`;
}, slow(120_000));

afterAll(async () => {
  await server?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

const post = (path: string, body: Uint8Array) => fetch(`${base}/seal${path}`, { method: "POST", body });

/** Opens a sealed message with node:crypto: the tag first, then AES-128-CBC with PKCS#7. */
function openLocally(sealed: Uint8Array): Buffer {
  const b = Buffer.from(sealed);
  const tag = createHmac("sha256", macKey).update(b.subarray(0, b.length - 32)).digest();
  expect(tag.equals(b.subarray(b.length - 32))).toBe(true);
  const d = createDecipheriv("aes-128-cbc", key, b.subarray(0, 16));
  return Buffer.concat([d.update(b.subarray(16, b.length - 32)), d.final()]);
}

describe("a key that lives only in a snapshot", () => {
  test("bodies of every length are sealed as AES-128-CBC + HMAC-SHA256, each with its own IV, and open again", async () => {
    const ivs = new Set<string>();
    for (const n of [0, 1, 15, 16, 17, 255, 256, 4096, 60_000]) {
      const body = randomBytes(n);
      const r = await post("/encrypt", body);
      expect(r.status).toBe(200);
      expect(r.headers.get("content-type")).toBe("application/octet-stream");
      const sealed = new Uint8Array(await r.arrayBuffer());
      expect(sealed.length).toBe(16 + (Math.floor(n / 16) + 1) * 16 + 32);
      expect(openLocally(sealed).equals(body)).toBe(true);
      ivs.add(Buffer.from(sealed.subarray(0, 16)).toString("hex"));
      const back = await post("/decrypt", sealed);
      expect(back.status).toBe(200);
      expect(Buffer.from(await back.arrayBuffer()).equals(body)).toBe(true);
    }
    expect(ivs.size).toBe(9);
  });

  test("a message sealed elsewhere with the same key opens; a forged, altered or cut one is a 400 that says nothing more", async () => {
    // sealed by node:crypto with the same construction
    const iv = randomBytes(16);
    const c = createCipheriv("aes-128-cbc", key, iv);
    const ct = Buffer.concat([iv, c.update("from outside"), c.final()]);
    const mine = Buffer.concat([ct, createHmac("sha256", macKey).update(ct).digest()]);
    const ok = await post("/decrypt", mine);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe("from outside");

    const good = new Uint8Array(await (await post("/encrypt", new TextEncoder().encode("attack at dawn"))).arrayBuffer());
    const variants: Uint8Array[] = [
      new Uint8Array(0),
      good.subarray(0, good.length - 1), // cut
      good.subarray(16), // no IV
      randomBytes(good.length), // forged
    ];
    for (const at of [0, 16, good.length - 33, good.length - 1]) {
      const altered = good.slice();
      altered[at] ^= 1;
      variants.push(altered);
    }
    // the right ciphertext under another key's tag: the padding is never looked at
    const otherTag = Buffer.concat([Buffer.from(good.subarray(0, good.length - 32)), createHmac("sha256", randomBytes(32)).update(good.subarray(0, good.length - 32)).digest()]);
    variants.push(otherTag);
    for (const v of variants) {
      const r = await post("/decrypt", v);
      expect(r.status).toBe(400);
      expect(await r.text()).toBe("not a message sealed with this key\n");
    }
  });

  test("only POST to /encrypt or /decrypt", async () => {
    expect((await fetch(`${base}/seal/encrypt`)).status).toBe(405); // the route's methods
    expect((await post("/other", new Uint8Array(1))).status).toBe(404);
  });
});

describe("wasp snapshot aes", () => {
  test("without a key, or with a malformed one, no file is written and the reason is one line", () => {
    const out = join(tmp, "never.snap");
    const none = wasp(["snapshot", "aes", "-o", out]);
    expect(none.status).toBe(EXIT_STATUS.WASP_GUEST_PANIC!);
    expect(none.stderr).toMatch(/^wasp: .*the first call's input is the key: 16 bytes or 32 hex digits.*\n$/);
    const bad = join(tmp, "bad.hex");
    writeFileSync(bad, "not hex at all, and not 16 bytes");
    expect(wasp(["snapshot", "aes", "-i", bad, "-o", out]).status).toBe(EXIT_STATUS.WASP_GUEST_PANIC!);
    expect(() => readFileSync(out)).toThrow();
    // --input of a native image must fit its data window
    const big = join(tmp, "big.bin");
    writeFileSync(big, new Uint8Array(2 << 20));
    const r = wasp(["snapshot", "aes", "-i", big, "-o", out]);
    expect(r.status).toBe(EXIT_STATUS.WASP_BAD_ARGS!);
    expect(r.stderr).toMatch(/^wasp: the input of 2097152 bytes does not fit the virtine's data window/);
  });
});

test("the bench's chunk guest: a CBC stream encrypted a chunk per call, from the snapshot its keying call took, is AES-128-CBC's", async () => {
  using v = await Virtine.load(guest("aes_chunk"));
  v.runSync({ input: key });
  const plain = randomBytes(4096);
  const out: Uint8Array[] = [];
  let iv: Uint8Array = randomBytes(16);
  const c = createCipheriv("aes-128-cbc", key, iv).setAutoPadding(false);
  const want = Buffer.concat([c.update(plain), c.final()]);
  for (let at = 0; at < plain.length; at += 256) {
    const r = v.runSync({ input: Buffer.concat([iv, plain.subarray(at, at + 256)]) });
    out.push(r.output);
    iv = r.output.subarray(240);
  }
  expect(Buffer.concat(out).equals(want)).toBe(true);
  // a chunk that is not whole blocks is a panic, and the next call is clean
  expect(() => v.runSync({ input: new Uint8Array(20) })).toThrow(/whole 16-byte blocks/);
  expect(Buffer.from(v.runSync({ input: Buffer.concat([iv, plain.subarray(0, 16)]) }).output).length).toBe(16);
}, slow(60_000));
