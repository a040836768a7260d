// The initial stack of a Linux process, as the kernel lays it out for a static program's `_start`
// (the x86-64 psABI, 3.4.1; Linux's create_elf_tables): from RSP up, argc, the argv pointers and a
// NULL, the envp pointers and a NULL, the auxiliary vector's (type, value) pairs ending in AT_NULL;
// above them, the strings and bytes those point to. RSP is 16-byte aligned at argc.
import { BadArgsError } from "../errors.ts";

/** Auxiliary vector types (linux/auxvec.h, elf.h). */
export const AT = {
  NULL: 0,
  PHDR: 3,
  PHENT: 4,
  PHNUM: 5,
  PAGESZ: 6,
  BASE: 7,
  FLAGS: 8,
  ENTRY: 9,
  UID: 11,
  EUID: 12,
  GID: 13,
  EGID: 14,
  PLATFORM: 15,
  HWCAP: 16,
  CLKTCK: 17,
  SECURE: 23,
  RANDOM: 25,
  HWCAP2: 26,
  EXECFN: 31,
} as const;

/** Most bytes of arguments and environment a call may pass (Linux allows far more; a virtine's stack is small). */
export const MAX_ARG_BYTES = 128 * 1024;

export interface ProcessStart {
  /** argv[0] first: the program's name, then the call's arguments */
  argv: readonly string[];
  /** "KEY=value" strings */
  envp: readonly string[];
  /** the auxiliary vector's numeric entries (AT_RANDOM, AT_PLATFORM and AT_EXECFN are added from the fields below) */
  auxv: readonly (readonly [number, bigint])[];
  /** the 16 bytes AT_RANDOM points to (libc seeds its stack protector and pointer guard from them) */
  random: Uint8Array;
  /** the name AT_EXECFN points to */
  execfn: string;
}

/**
 * The bytes of the initial stack that ends at `top` (exclusive), and the RSP to start with: the
 * bytes go at [rsp, top). Strings may hold anything but NUL; together they are bounded by
 * MAX_ARG_BYTES.
 */
export function initialStack(top: number, start: ProcessStart): { rsp: number; bytes: Uint8Array } {
  if (top % 16 !== 0) throw new RangeError(`the stack's top 0x${top.toString(16)} is not 16-byte aligned`);
  if (start.random.length !== 16) throw new RangeError("AT_RANDOM takes exactly 16 bytes");
  const encoder = new TextEncoder();
  const encode = (s: string, what: string): Uint8Array => {
    if (s.includes("\0")) throw new BadArgsError(`${what} holds a NUL byte, which a C string cannot`);
    return encoder.encode(`${s}\0`);
  };
  const argv = start.argv.map((s, i) => encode(s, `argument ${i}`));
  const envp = start.envp.map((s) => encode(s, `environment entry "${s.split("=")[0]}"`));
  const execfn = encode(start.execfn, "the program's name");
  const platform = encode("x86_64", "the platform");
  const strings = [...argv, ...envp].reduce((n, b) => n + b.length, 0);
  if (strings > MAX_ARG_BYTES) throw new BadArgsError(`the arguments and environment take ${strings} bytes, more than the ${MAX_ARG_BYTES} a virtine's process takes`);

  // From the top down, as Linux lays them: the execfn, the envp strings, the argv strings (each
  // list one block, in order), the platform, the random bytes.
  let at = top;
  const blobs: [number, Uint8Array][] = [];
  const putAll = (list: readonly Uint8Array[]): number[] => {
    at -= list.reduce((n, b) => n + b.length, 0);
    let p = at;
    return list.map((b) => {
      blobs.push([p, b]);
      p += b.length;
      return p - b.length;
    });
  };
  const [execfnAt] = putAll([execfn]);
  const envpAt = putAll(envp);
  const argvAt = putAll(argv);
  const [platformAt] = putAll([platform]);
  at -= at % 16; // the random bytes 16-byte aligned, as Linux does
  const [randomAt] = putAll([start.random]);

  const auxv: [number, bigint][] = [
    ...start.auxv.map(([t, v]): [number, bigint] => [t, v]),
    [AT.PLATFORM, BigInt(platformAt)],
    [AT.RANDOM, BigInt(randomAt)],
    [AT.EXECFN, BigInt(execfnAt)],
    [AT.NULL, 0n],
  ];
  const words = 1 + argv.length + 1 + envp.length + 1 + auxv.length * 2;
  const rsp = Math.floor((at - words * 8) / 16) * 16;
  const bytes = new Uint8Array(top - rsp);
  const dv = new DataView(bytes.buffer);
  let w = 0;
  const word = (v: bigint) => dv.setBigUint64(w++ * 8, v, true);
  word(BigInt(argv.length));
  for (const p of argvAt) word(BigInt(p));
  word(0n);
  for (const p of envpAt) word(BigInt(p));
  word(0n);
  for (const [t, v] of auxv) {
    word(BigInt(t));
    word(v);
  }
  for (const [p, b] of blobs) bytes.set(b, p - rsp);
  return { rsp, bytes };
}
