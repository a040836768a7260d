// Many calls at once: each in a VM of its own, spread over one worker thread per core, with
// results in order. `bun run examples/concurrent.ts 1000`
import { Virtine } from "wasp";

const n = Number(process.argv[2] ?? 1000);
await using fib = await Virtine.load(new URL("../dist/guests/fib.bin", import.meta.url));
const t0 = performance.now();
const results = await Promise.all(Array.from({ length: n }, (_, i) => fib.invoke(i % 25)));
const ms = performance.now() - t0;
console.log(`${n} calls, sum of results ${results.reduce((a, b) => a + b, 0n)}, ${Math.round(n / (ms / 1000))} calls/s`);
