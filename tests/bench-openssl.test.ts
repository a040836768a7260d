// The OpenSSL series of `wasp bench` (src/bench/openssl.ts) on a machine without gcc or Debian's
// libssl-dev: skipped with a note saying what to install, never a failure of the bench. (With them,
// tests-debian/openssl.test.ts runs the program.)
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AES_OPENSSL_NAMES, AES_OPENSSL_SERIES, buildAesOpenssl } from "../src/bench/openssl.ts";

const dir = mkdtempSync(join(tmpdir(), "wasp-bench-openssl-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("without gcc the program is not built, and why is one line naming the packages", () => {
  expect(buildAesOpenssl(dir, join(dir, "empty"))).toEqual({ missing: "no gcc on PATH (apt install gcc libssl-dev)" });
});

test("without gcc every OpenSSL series is reported empty with that note", async () => {
  const saved = process.env.PATH;
  process.env.PATH = join(dir, "empty");
  try {
    const results = await AES_OPENSSL_SERIES[0].run(1);
    expect(results).toEqual(AES_OPENSSL_NAMES.map((name) => ({ name, unit: "B/s", n: 0, median: 0, p99: 0, note: "skipped: no gcc on PATH (apt install gcc libssl-dev)" })));
  } finally {
    process.env.PATH = saved;
  }
});
