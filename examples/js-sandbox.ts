// Untrusted JavaScript, safely: every snippet a user submits runs in a JavaScript engine in a VM
// of its own, resumed from the engine's snapshot — a deadline, a heap limit and a stack limit
// each end it with a typed error, and nothing it does (globals, prototypes) reaches the next one.
//   bun run examples/js-sandbox.ts '1 + 2' 'for (;;) {}' 'globalThis.x = 1' 'typeof x'
import { JsError, JsMemoryError, JsStackError, TimeoutError, Virtine } from "wasp";

// the handler evaluates the snippet (global eval, in this call's own engine) and shows its value
const handler = `
const show = (v) => { try { const j = JSON.stringify(v); if (j !== undefined) return j; } catch {} return String(v); };
export default (code) => { const v = (0, eval)(code); return { type: typeof v, value: show(v) }; };
`;

const snippets = process.argv.slice(2);
await using sandbox = await Virtine.fromJs(handler, { name: "sandbox.js", timeoutMs: 1000, heapLimit: 16 << 20 });

// all at once: each call has its own VM, on the worker threads
const outcomes = await Promise.allSettled(snippets.map((code) => sandbox.call(code)));
outcomes.forEach((o, i) => {
  console.log(`> ${snippets[i]}`);
  if (o.status === "fulfilled") {
    const { type, value } = o.value as { type: string; value: string };
    console.log(`= ${value} (${type})`);
    return;
  }
  const e = o.reason;
  if (e instanceof JsError) console.log(`! ${e.jsName || "thrown"}: ${e.jsMessage}`);
  else if (e instanceof TimeoutError) console.log("! stopped: past its 1 s deadline");
  else if (e instanceof JsMemoryError) console.log("! stopped: past its 16 MiB heap");
  else if (e instanceof JsStackError) console.log("! stopped: too deep a recursion");
  else throw e;
});
