import { expect, test } from "bun:test";
import { renderAbiZig } from "../scripts/abi-zig.ts";
import { ABI_VERSION, HEADER_MAGIC, Hypercalls, INFO_MAGIC } from "../src/abi/guest-abi.ts";

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
