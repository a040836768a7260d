// The guests the benchmark runs, embedded in the standalone binary like the CLI's examples.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import noop from "../../dist/guests/noop.bin" with { type: "file" };
import calls from "../../dist/guests/calls.bin" with { type: "file" };
import fib from "../../dist/guests/fib.bin" with { type: "file" };
import writes from "../../dist/guests/writes.bin" with { type: "file" };
import bootFib from "../../dist/guests/boot_fib.bin" with { type: "file" };
import mode16 from "../../dist/guests/mode16_fib.bin" with { type: "file" };
import mode32 from "../../dist/guests/mode32_fib.bin" with { type: "file" };
import mode64 from "../../dist/guests/mode64_fib.bin" with { type: "file" };
import inittable from "../../dist/guests/inittable.bin" with { type: "file" };
import httpstatic from "../../dist/guests/httpstatic.bin" with { type: "file" };
import aesChunk from "../../dist/guests/aes_chunk.bin" with { type: "file" };
import { parseImage, type Image } from "../image/image.ts";

const GUESTS: Record<string, string> = { noop, calls, fib, writes, boot_fib: bootFib, mode16_fib: mode16, mode32_fib: mode32, mode64_fib: mode64, inittable, httpstatic, aes_chunk: aesChunk };

export function embeddedBench(name: string): string {
  const p = GUESTS[name];
  if (!p) throw new Error(`no benchmark guest ${name}`);
  return p;
}

/** A benchmark guest, parsed. */
export function benchImage(name: string): Image {
  return parseImage(new Uint8Array(readFileSync(embeddedBench(name))), `${name}.bin`);
}

/**
 * A program the bench runs natively, as a file the host can execute: where it is, or — in the
 * standalone binary, which embeds it (`/$bunfs/...`) — a copy written into `dir` as `name`.
 */
export function executableFile(path: string, dir: string, name: string): string {
  if (!path.startsWith("/$bunfs")) return path;
  const out = join(dir, name);
  writeFileSync(out, readFileSync(path), { mode: 0o755 });
  return out;
}
