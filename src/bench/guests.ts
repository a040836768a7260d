// The guests the benchmark runs, embedded in the standalone binary like the CLI's examples.
import noop from "../../dist/guests/noop.bin" with { type: "file" };
import calls from "../../dist/guests/calls.bin" with { type: "file" };
import fib from "../../dist/guests/fib.bin" with { type: "file" };

const GUESTS: Record<string, string> = { noop, calls, fib };

export function embeddedBench(name: string): string {
  const p = GUESTS[name];
  if (!p) throw new Error(`no benchmark guest ${name}`);
  return p;
}
