// A static Linux program from C, in a virtine: compiled with the bundled zig cc (cached), run with
// its input on fd 0. `bun run examples/linux.ts 3 1.5 4 1`
import { readFileSync } from "node:fs";
import { LinuxProgram } from "../src/index.ts";

const numbers = process.argv.slice(2);
const prog = await LinuxProgram.fromC(readFileSync(new URL("./linux/stats.c", import.meta.url), "utf8"), { name: "stats" });
const r = prog.run([], { input: numbers.join(" ") });
process.stdout.write(r.stdout);
process.stderr.write(r.stderr);
console.log(`exit status ${r.status}, ${r.syscalls} system calls`);
