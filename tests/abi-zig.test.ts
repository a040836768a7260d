import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderAbiC } from "../scripts/abi-c.ts";
import { renderAbiZig } from "../scripts/abi-zig.ts";
import { renderAbiRust } from "../scripts/abi-rust.ts";
import { ABI_VERSION, HEADER_MAGIC, Hypercalls, INFO_MAGIC } from "../src/abi/guest-abi.ts";
import { slow, ROOT, zigPath } from "./support.ts";

const abiZigPath = new URL("../guests/sdk/abi.zig", import.meta.url).pathname;

test("guests/sdk/abi.zig is exactly what scripts/gen-abi.ts generates from abi.ts", async () => {
  const committed = await Bun.file(abiZigPath).text();
  // On failure: run `bun scripts/gen-abi.ts` and rebuild the guests.
  expect(committed).toBe(renderAbiZig());
});

test("the rendered Zig carries the values the guests rely on", () => {
  const zig = renderAbiZig();
  expect(zig).toContain(`pub const ABI_VERSION = ${ABI_VERSION};`);
  expect(zig).toContain(`pub const HEADER_MAGIC: u64 = 0x${HEADER_MAGIC.toString(16)};`);
  expect(zig).toContain(`pub const INFO_MAGIC: u64 = 0x${INFO_MAGIC.toString(16)};`);
  for (const h of Hypercalls) expect(zig).toContain(`    ${h.name} = ${h.nr},`);
});

test("guests/sdk/abi.rs (the Rust SDK's constants) is exactly what scripts/gen-abi.ts generates, and carries the hypercalls", async () => {
  const committed = await Bun.file(new URL("../guests/sdk/abi.rs", import.meta.url).pathname).text();
  expect(committed).toBe(renderAbiRust());
  for (const h of Hypercalls) expect(committed).toContain(`pub const HC_${h.name.toUpperCase()}: u64 = ${h.nr};`);
  expect(committed).toContain(`pub const HEADER_MAGIC: u64 = 0x${HEADER_MAGIC.toString(16)};`);
});

test("guests/sdk/wasp.h is exactly what scripts/gen-abi.ts generates, and compiles as C and C++ with the bundled zig cc", async () => {
  const committed = await Bun.file(new URL("../guests/sdk/wasp.h", import.meta.url).pathname).text();
  expect(committed).toBe(renderAbiC());
  for (const h of Hypercalls) expect(committed).toContain(`#define WASP_HC_${h.name.toUpperCase()} ${h.nr}UL`);
  const dir = mkdtempSync(join(tmpdir(), "wasp-h-"));
  try {
    // every definition used, so a typo in the inline assembly or a macro fails here
    writeFileSync(
      join(dir, "t.c"),
      [
        "#include <wasp.h>",
        "int main(void) {",
        "  unsigned char args[64], out[64]; unsigned long n = 0, len, got = 0; int ok;",
        "  n = wasp_put_u64(args, sizeof args, n, 42); n = wasp_put_i64(args, sizeof args, n, -2);",
        "  n = wasp_put_bytes(args, sizeof args, n, \"ab\", 2); n = wasp_put_str(args, sizeof args, n, \"hi\");",
        "  len = wasp_host_call(\"add\", args, n, out, sizeof out);",
        "  return (int)wasp_result_u64(out, len, &ok) + (wasp_result_bytes(out, len, &got) != 0) + wasp_snapshot() + (int)wasp_hypercall(WASP_HC_TIME, 1, 2, 3, 4) + WASP_ABI_VERSION + WASP_PORT_EXIT;",
        "}",
        "",
      ].join("\n"),
    );
    for (const [lang, extra] of [["c", ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]], ["c++", ["-std=c++17", "-Wall", "-Wextra", "-Werror"]]] as const) {
      const cc = Bun.spawnSync([zigPath(), lang === "c" ? "cc" : "c++", "-target", "x86_64-linux-musl", "-c", "-x", lang, ...extra, "-I", join(ROOT, "guests/sdk"), join(dir, "t.c"), "-o", join(dir, `t-${lang}.o`)]);
      expect(cc.stderr.toString()).toBe("");
      expect(cc.exitCode).toBe(0);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, slow(120_000));
