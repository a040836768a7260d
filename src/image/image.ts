// Image formats. A *native* image (built from Zig with the guest SDK) is a flat binary that starts
// with wasp's header (src/abi/guest-abi.ts, Header); anything else is a *raw* image in Wasp's
// convention: a flat binary loaded at 0x8000 and entered in 16-bit real mode.
import { ABI_VERSION, HEADER_MAGIC, HEADER_NAME_LEN, Header, HeaderFlags, Layout } from "../abi/guest-abi.ts";
import { BadArgsError, BadImageError } from "../errors.ts";

export const MIB = 1024 * 1024;
/** Guest RAM per invocation when neither the caller nor the image asks for an amount. */
export const DEFAULT_MEMORY = 16 * MIB;
/** Smallest guest RAM: the host tables, the info page, the console and a native image's load address. */
export const MIN_MEMORY = 2 * MIB;
/** Hard cap on guest RAM: the identity map covers 1 GiB. */
export const MAX_MEMORY = Layout.MAPPED;

export interface NativeHeader {
  abiVersion: number;
  entry: bigint;
  loadAddr: bigint;
  imageEnd: bigint;
  memWanted: bigint;
  name: string;
  /** what the guest's `main` takes, when the image says (the SDK's images do) */
  takes: { args: number; input: boolean } | undefined;
}

export type Image =
  | { kind: "raw"; name: string; bytes: Uint8Array; loadAddr: number }
  | { kind: "native"; name: string; bytes: Uint8Array; loadAddr: number; header: NativeHeader }
  /**
   * a static Linux executable (src/linux/elf.ts checked it; its kind, src/kinds/linux.ts, places
   * its segments): `bytes` is the whole file, `end` where its segments end in guest memory;
   * `files`, the read-only files granted to it, placed in its memory by the kind; `interp`, a
   * dynamically linked program's interpreter, loaded above it
   */
  | { kind: "linux"; name: string; bytes: Uint8Array; loadAddr: number; end: number; files?: ReadonlyMap<string, Uint8Array>; interp?: Uint8Array; dirs?: boolean; net?: boolean };

/**
 * The largest image file that can run with `memory` bytes of guest RAM (default: what a native
 * header in `head` asks for, else DEFAULT_MEMORY), judged from the file's first bytes: so that a
 * file too big to run is refused before it is read.
 */
export function maxImageBytes(head: Uint8Array, memory?: number): number {
  if (memory !== undefined) checkMemorySize(memory);
  const native = head.length >= Header.SIZE && readU64(head, Header.MAGIC) === HEADER_MAGIC;
  const wanted = native ? Number(readU64(head, Header.MEM_WANTED)) : 0;
  const ram = Math.min(MAX_MEMORY, memory ?? (wanted > 0 ? wanted : DEFAULT_MEMORY));
  return Math.max(0, ram - (native ? Layout.NATIVE_LOAD : Layout.RAW_LOAD));
}

/** A guest memory size within the bounds: whole pages, at least MIN_MEMORY, at most MAX_MEMORY. */
export function checkMemorySize(bytes: number): void {
  if (!Number.isSafeInteger(bytes) || bytes % 4096 !== 0) throw new BadArgsError(`memory size ${bytes} is not a multiple of 4 KiB`);
  if (bytes < MIN_MEMORY) throw new BadArgsError(`memory size ${bytes} bytes is below the minimum of ${MIN_MEMORY / MIB} MiB`);
  if (bytes > MAX_MEMORY) throw new BadArgsError(`memory size ${bytes / MIB} MiB is above the cap of ${MAX_MEMORY / MIB} MiB`);
}

/**
 * Parses image bytes; `name` is used in messages (usually the file name). Bytes without a native
 * header are a raw image — unless they are plainly something else (an ELF executable, a text file),
 * which is refused: run as real-mode code they would only fault. `raw` takes any bytes as raw code.
 */
export function parseImage(bytes: Uint8Array, name: string, opts: { raw?: boolean } = {}): Image {
  if (bytes.length === 0) throw new BadImageError(`${name}: the image is empty`);
  if (opts.raw) return { kind: "raw", name, bytes, loadAddr: Layout.RAW_LOAD };
  if (bytes.length >= 8 && readU64(bytes, Header.MAGIC) === HEADER_MAGIC) return parseNative(bytes, name);
  const other = notAnImage(bytes);
  if (other) throw new BadImageError(`${name}: ${other}, not a wasp image (a native image starts with its WASPVRT1 header; a raw image is flat real-mode code: --raw runs any bytes as one)`);
  return { kind: "raw", name, bytes, loadAddr: Layout.RAW_LOAD };
}

/** ELF's magic, "\x7fELF" (the ELF specification, e_ident). */
const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46];
/** How much of a file is looked at to tell text from code. */
const TEXT_PROBE = 4096;

/** What bytes without a native header plainly are when they are no raw image, or undefined. */
export function notAnImage(bytes: Uint8Array): string | undefined {
  if (ELF_MAGIC.every((b, i) => bytes[i] === b)) return "an ELF executable (a static Linux program runs with `wasp invoke PROG`; Virtine.load takes it)";
  if (looksLikeText(bytes.subarray(0, TEXT_PROBE), bytes.length > TEXT_PROBE)) return "a text file";
  return undefined;
}

/**
 * True when every byte is printable ASCII, a tab, line feed, form feed or carriage return, or part
 * of well-formed UTF-8 — as text is, and as no real-mode program is (its opcodes and immediates
 * hold control bytes and NULs: `mov eax, 42; hlt` is 66 b8 2a 00 00 00 f4). With `cut`, the bytes
 * are the start of a longer file, and a character cut at their end still counts as text.
 */
export function looksLikeText(bytes: Uint8Array, cut = false): boolean {
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (b >= 0x20 && b < 0x7f) continue;
    if (b === 0x09 || b === 0x0a || b === 0x0c || b === 0x0d) continue;
    // a UTF-8 sequence: a lead byte 0xc2-0xf4 and its continuation bytes 0x80-0xbf
    const extra = b >= 0xc2 && b <= 0xdf ? 1 : b >= 0xe0 && b <= 0xef ? 2 : b >= 0xf0 && b <= 0xf4 ? 3 : -1;
    if (extra < 0) return false;
    for (let k = 1; k <= extra; k++) {
      if (i + k >= bytes.length) return cut; // cut by the probe's end, or a lone lead byte at the file's
      if ((bytes[i + k] & 0xc0) !== 0x80) return false;
    }
    i += extra;
  }
  return true;
}

function parseNative(bytes: Uint8Array, name: string): Image {
  const bad = (why: string): never => {
    throw new BadImageError(`${name}: bad native image header: ${why}`);
  };
  if (bytes.length < Header.SIZE) bad(`the file is ${bytes.length} bytes, shorter than the ${Header.SIZE}-byte header`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const abiVersion = dv.getUint32(Header.ABI_VERSION, true);
  if (abiVersion !== ABI_VERSION) bad(`ABI version ${abiVersion}, this wasp speaks ${ABI_VERSION}`);
  const headerSize = dv.getUint32(Header.HEADER_SIZE, true);
  if (headerSize !== Header.SIZE) bad(`header size ${headerSize}, expected ${Header.SIZE}`);
  const entry = dv.getBigUint64(Header.ENTRY, true);
  const loadAddr = dv.getBigUint64(Header.LOAD_ADDR, true);
  const imageEnd = dv.getBigUint64(Header.IMAGE_END, true);
  const memWanted = dv.getBigUint64(Header.MEM_WANTED, true);
  const flags = dv.getBigUint64(Header.FLAGS, true);
  if (loadAddr !== BigInt(Layout.NATIVE_LOAD)) bad(`load address 0x${loadAddr.toString(16)}, expected 0x${Layout.NATIVE_LOAD.toString(16)}`);
  const fileEnd = loadAddr + BigInt(bytes.length);
  if (entry < loadAddr + BigInt(Header.SIZE) || entry >= fileEnd) bad(`entry point 0x${entry.toString(16)} is outside the image's code`);
  if (imageEnd < fileEnd) bad(`image end 0x${imageEnd.toString(16)} lies before the end of the file (0x${fileEnd.toString(16)})`);
  if (imageEnd > BigInt(MAX_MEMORY)) bad(`image end 0x${imageEnd.toString(16)} is beyond the ${MAX_MEMORY / MIB} MiB memory cap`);
  if (memWanted % 4096n !== 0n) bad(`memory wanted (${memWanted}) is not a multiple of 4096`);
  const known = BigInt(HeaderFlags.MAIN_DECLARED | HeaderFlags.TAKES_INPUT | (HeaderFlags.ARGC_MASK << HeaderFlags.ARGC_SHIFT));
  if ((flags & ~known) !== 0n) bad(`unknown flags 0x${flags.toString(16)}`);
  let takes: NativeHeader["takes"];
  if (flags & BigInt(HeaderFlags.MAIN_DECLARED)) {
    const args = Number((flags >> BigInt(HeaderFlags.ARGC_SHIFT)) & BigInt(HeaderFlags.ARGC_MASK));
    const input = (flags & BigInt(HeaderFlags.TAKES_INPUT)) !== 0n;
    if (args > 6 || (input && args > 0)) bad(`flags 0x${flags.toString(16)} declare a main of ${args} arguments${input ? " and an input" : ""}, which no guest has`);
    takes = { args, input };
  } else if (flags !== 0n) bad(`flags 0x${flags.toString(16)} describe a main without saying they do (bit 0)`);
  const nameBytes = bytes.subarray(Header.NAME, Header.NAME + HEADER_NAME_LEN);
  const nul = nameBytes.indexOf(0);
  const declared = new TextDecoder().decode(nameBytes.subarray(0, nul < 0 ? nameBytes.length : nul));
  if (!/^[\x20-\x7e]*$/.test(declared)) bad("the name is not printable ASCII");
  return {
    kind: "native",
    name,
    bytes,
    loadAddr: Layout.NATIVE_LOAD,
    header: { abiVersion, entry, loadAddr, imageEnd, memWanted, name: declared, takes },
  };
}

/**
 * The bytes of a native image whose code is `code` (raw x86-64 machine code, entered at CPL3),
 * optionally followed by data up to `size` bytes in all, with `bss` bytes of bss and the memory it
 * asks for. For tests, benchmarks and probes that need exact instructions; guests are built with Zig.
 */
export function buildNativeImage(code: readonly number[], opts: { size?: number; bss?: number; memWanted?: number } = {}): Uint8Array {
  const bytes = new Uint8Array(Math.max(opts.size ?? 0, Header.SIZE + code.length));
  const dv = new DataView(bytes.buffer);
  const load = BigInt(Layout.NATIVE_LOAD);
  dv.setBigUint64(Header.MAGIC, HEADER_MAGIC, true);
  dv.setUint32(Header.ABI_VERSION, ABI_VERSION, true);
  dv.setUint32(Header.HEADER_SIZE, Header.SIZE, true);
  dv.setBigUint64(Header.ENTRY, load + BigInt(Header.SIZE), true);
  dv.setBigUint64(Header.LOAD_ADDR, load, true);
  dv.setBigUint64(Header.IMAGE_END, load + BigInt(bytes.length + (opts.bss ?? 0)), true);
  dv.setBigUint64(Header.MEM_WANTED, BigInt(opts.memWanted ?? 0), true);
  bytes.set(code, Header.SIZE);
  return bytes;
}

/** Bytes an image occupies from guest address 0 (its end, including bss for native images). */
export function imageFootprint(image: Image): number {
  if (image.kind === "native") return Number(image.header.imageEnd);
  if (image.kind === "linux") return image.end;
  return image.loadAddr + image.bytes.length;
}

function readU64(bytes: Uint8Array, at: number): bigint {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(at, true);
}
