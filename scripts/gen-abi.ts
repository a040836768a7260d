// Writes guests/sdk/abi.zig from src/abi/guest-abi.ts.
//   bun scripts/gen-abi.ts          regenerate the file
//   bun scripts/gen-abi.ts --check  exit 1 if the committed file is stale
import { renderAbiZig } from "./abi-zig.ts";

const target = new URL("../guests/sdk/abi.zig", import.meta.url).pathname;
const text = renderAbiZig();

if (process.argv.includes("--check")) {
  const file = Bun.file(target);
  const current = (await file.exists()) ? await file.text() : "";
  if (current !== text) {
    console.error(`${target} is stale: run \`bun scripts/gen-abi.ts\``);
    process.exit(1);
  }
  console.log(`${target} is up to date`);
} else {
  await Bun.write(target, text);
  console.log(`wrote ${target}`);
}
