// A virtine written in Zig inside the script: compiled on the first run, cached after.
// `bun run examples/inline-zig.ts 12`
import { Virtine } from "wasp";

await using square = await Virtine.fromZig(`
const virtine = @import("virtine");

pub fn main(x: u64) u64 {
    virtine.print("squaring {d} in a VM of its own\\n", .{x});
    return x * x;
}
`);
const r = await square.run({ args: [BigInt(process.argv[2] ?? 12)] });
process.stdout.write(r.console);
console.log(r.value);
