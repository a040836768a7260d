// Data in, data out: JSON handed to a guest (guests/jsonstats.zig parses it with std.json in its
// VM) and its JSON answer parsed back. `bun run examples/json-transform.ts 3 1 4 1 5`
import { Virtine } from "wasp";

const values = process.argv.slice(2).map(Number);
await using stats = await Virtine.load(new URL("../dist/guests/jsonstats.bin", import.meta.url));
console.log(await stats.call({ values: values.length > 0 ? values : [3, 1, 4, 1, 5, 9, 2, 6] }));
