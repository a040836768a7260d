// fib in a virtine: `bun run examples/fib.ts 30`
import { Virtine } from "wasp";

const n = Number(process.argv[2] ?? 30);
using fib = Virtine.fromFile(new URL("../dist/guests/fib.bin", import.meta.url).pathname);
const { value, exits } = fib.invoke([n]);
console.log(`fib(${n}) = ${value} (${exits} VM exit)`);
