// fib in a virtine: `bun run examples/fib.ts 30`
import { Virtine } from "wasp";

const n = Number(process.argv[2] ?? 30);
await using fib = await Virtine.load(new URL("../dist/guests/fib.bin", import.meta.url));
console.log(`fib(${n}) = ${await fib.invoke(n)}`); // on a worker thread: the event loop stays free
console.log(`again on this thread: ${fib.invokeSync(n)}`);
