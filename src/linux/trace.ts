// `--trace` for Linux guests: each system call as strace prints it — its name, its arguments
// decoded (file descriptors and numbers as numbers, strings and buffers quoted and escaped, cut at
// 32 bytes), and its result with the errno's name — so that a user porting a program sees what it
// asks for. The guest's bytes are read through GuestAccess and escaped: a trace is text for a
// terminal, and the guest chooses every byte of it.
import { MemoryFaultError } from "../errors.ts";
import { escapeGuestLine } from "../guest-text.ts";
import type { GuestAccess } from "../memory/guest-access.ts";
import { ERRNO, type Outcome } from "./process.ts";
import { syscallName, syscallSpec, type TraceArg } from "./syscalls.ts";

const ERRNO_NAMES = new Map<number, string>(Object.entries(ERRNO).map(([name, e]) => [e, name]));
/** How much of a string or buffer a line shows. */
const SHOWN = 32;

/** One system call as a line (no newline): `write(1, "hello\n", 6) = 6`. */
export function traceLine(guest: GuestAccess, nr: number, args: readonly bigint[], outcome: Outcome): string {
  const kinds = syscallSpec(nr)?.args;
  const shown = kinds
    ? kinds.map((kind, i) => formatArg(guest, kind, args[i], args, outcome))
    : args.map((a) => `0x${a.toString(16)}`);
  return `${syscallName(nr)}(${shown.join(", ")}) = ${formatOutcome(outcome)}`;
}

function formatArg(guest: GuestAccess, kind: TraceArg, value: bigint, args: readonly bigint[], outcome: Outcome): string {
  if (kind === "int") return BigInt.asIntN(64, value).toString();
  if (kind === "hex") return `0x${value.toString(16)}`;
  try {
    if (kind === "str") {
      const bytes = guest.read(value, SHOWN + 1, "a traced string");
      const nul = bytes.indexOf(0);
      return quote(bytes.subarray(0, nul < 0 ? SHOWN : nul), nul < 0);
    }
    // a buffer the call filled shows what it got (the result); one it read, what it was given
    if (kind.out && (outcome.kind !== "return" || outcome.value < 0n)) return `0x${value.toString(16)}`;
    const len = kind.out && outcome.kind === "return" ? outcome.value : args[kind.buf];
    const n = Number(len > BigInt(SHOWN) ? BigInt(SHOWN) : len < 0n ? 0n : len);
    return quote(guest.read(value, n, "a traced buffer"), len > BigInt(SHOWN));
  } catch (e) {
    // a string the guest cannot read itself, or one that runs into a page it cannot: its address
    if (e instanceof MemoryFaultError) return `0x${value.toString(16)}`;
    throw e;
  }
}

function quote(bytes: Uint8Array, cut: boolean): string {
  return `"${escapeGuestLine(bytes).replaceAll('"', '\\"')}"${cut ? "..." : ""}`;
}

function formatOutcome(o: Outcome): string {
  switch (o.kind) {
    case "return": {
      if (o.value < 0n && o.value >= -4095n) return `-1 ${ERRNO_NAMES.get(Number(-o.value)) ?? `E${-o.value}`}`;
      return o.value > 0xffffn ? `0x${o.value.toString(16)}` : o.value.toString();
    }
    case "exit":
      return `? (the program exits with ${o.status})`;
    case "setBase":
      return "0";
    case "sleep":
      return `0 (after ${o.ns} ns)`;
    case "snapshot":
      return "? (the snapshot point)";
    case "listen":
      return "? (the served program's snapshot point: it waits for a connection)";
    case "idle":
      return "? (the served program waits for another connection: the call ends)";
    case "switch":
      return `? (thread ${o.to.tid} runs${o.exited ? "" : ` while this one waits`})`;
    case "clone":
      return `${o.thread.tid}`;
  }
}
