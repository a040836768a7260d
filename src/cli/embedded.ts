// The example guests, embedded in the standalone binary by `bun build --compile` (the imports below
// are file imports; under `bun run` they resolve to the files in dist/guests).
import fib from "../../dist/guests/fib.bin" with { type: "file" };
import noop from "../../dist/guests/noop.bin" with { type: "file" };
import hello from "../../dist/guests/hello.bin" with { type: "file" };
import rawFib64 from "../../dist/guests/raw_fib64.bin" with { type: "file" };
import inittable from "../../dist/guests/inittable.bin" with { type: "file" };
import aes from "../../dist/guests/aes.bin" with { type: "file" };

const EMBEDDED: Record<string, string> = { fib, noop, hello, raw_fib64: rawFib64, inittable, aes };

export const EMBEDDED_NAMES = Object.keys(EMBEDDED);

/** Path of an embedded example guest by name (`fib`, `fib.bin`), or undefined. */
export function embeddedGuest(name: string): string | undefined {
  return EMBEDDED[name.replace(/\.bin$/, "")];
}
