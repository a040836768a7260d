// Static Linux programs from C, in virtines: compiled with the bundled zig cc (cached), their input
// on stdin, their stdout and exit status back. `bun run examples/linux.ts 3 1.5 4 1`
import { readFileSync } from "node:fs";
import { Virtine } from "wasp";

const source = (name: string) => readFileSync(new URL(`./linux/${name}`, import.meta.url), "utf8");
const numbers = process.argv.slice(2);

await using stats = await Virtine.fromC(source("stats.c"), { name: "stats" });
const r = await stats.run({ input: numbers.join(" ") }); // on a worker thread
process.stdout.write(r.output);
process.stderr.write(r.console);
console.log(`exit status ${r.status}`);

// a program that sieves once, calls wasp_snapshot(), then answers on stdin: later calls resume there
await using lookup = await Virtine.fromC(source("lookup.c"), { name: "lookup" });
for (const query of ["97", "#1000"]) {
  const q = lookup.runSync({ input: query });
  console.log(`${new TextDecoder().decode(q.output).trim()} (${q.console.trim()})`);
}
