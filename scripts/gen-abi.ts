// Writes guests/sdk/abi.zig, guests/sdk/wasp.h and guests/sdk/abi.rs from src/abi/guest-abi.ts.
//   bun scripts/gen-abi.ts          regenerate the files
//   bun scripts/gen-abi.ts --check  exit 1 if a committed file is stale
import { renderAbiC } from "./abi-c.ts";
import { renderAbiRust } from "./abi-rust.ts";
import { renderAbiZig } from "./abi-zig.ts";

const files = [
  { target: new URL("../guests/sdk/abi.zig", import.meta.url).pathname, text: renderAbiZig() },
  { target: new URL("../guests/sdk/wasp.h", import.meta.url).pathname, text: renderAbiC() },
  { target: new URL("../guests/sdk/abi.rs", import.meta.url).pathname, text: renderAbiRust() },
];

let stale = false;
for (const { target, text } of files) {
  if (process.argv.includes("--check")) {
    const file = Bun.file(target);
    const current = (await file.exists()) ? await file.text() : "";
    if (current !== text) {
      console.error(`${target} is stale: run \`bun scripts/gen-abi.ts\``);
      stale = true;
    } else console.log(`${target} is up to date`);
  } else {
    await Bun.write(target, text);
    console.log(`wrote ${target}`);
  }
}
if (stale) process.exit(1);
