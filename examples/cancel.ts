// Cancelling a call: the guest spins forever; the AbortSignal stops it mid-run (the worker's VM
// is interrupted, not abandoned) and the promise rejects with the signal's reason.
// `bun run examples/cancel.ts 100`
import { Virtine } from "wasp";

const ms = Number(process.argv[2] ?? 100);
await using spin = await Virtine.load(new URL("../dist/guests/spin.bin", import.meta.url), { timeoutMs: 0 });
const t0 = performance.now();
try {
  await spin.invoke({ signal: AbortSignal.timeout(ms) });
} catch (e) {
  console.log(`stopped after ${Math.round(performance.now() - t0)} ms: ${(e as Error).name}`);
}
