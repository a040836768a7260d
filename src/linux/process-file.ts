// A Linux program's snapshot, beyond its memory and registers: the executable (its segments decide
// the page tables the host rebuilds at restore), the files placed in its memory (their paths decide
// where wasp's own pages go; their bytes are in the memory, checked against the hashes here) and
// the arguments and environment of the call that took it. The process's state — break, mappings,
// open files, stdin's position — is in its memory (block.ts), checked wherever the host uses it.
// Written after the memory part of a snapshot file (docs/snapshot-format.md); read back from
// untrusted bytes: every count, length and value is checked against the bytes that hold it.
// Little-endian.
//
//   u32 version (3; 2 is read too: it has no interpreter field)
//   u32 n, n bytes        the executable's file
//   u32 n, n bytes        its interpreter's file, for a dynamically linked program (n = 0: none)
//   u32 count, then per placed file: u32 n, n bytes of its guest path, u64 size, 32 bytes SHA-256
//   u32 argc, then per argument u32 n, n bytes; u32 envc, then per entry u32 n, n bytes

export const PROCESS_FORMAT = 3;
/** Most bytes of arguments and environment (as the initial stack allows), and of one path. */
const MAX_STRINGS = 128 * 1024;
const MAX_PATH = 4096;
/** Most files one program is granted, and the largest (src/virtine/files.ts). */
const MAX_FILES = 4096;
const MAX_FILE = 64 * 1024 * 1024;

/** A file placed in the snapshot's memory, as the section names it. */
export interface PlacedFileRecord {
  path: string;
  size: number;
  sha256: string;
}

export interface ProcessFile {
  elf: Uint8Array;
  /** a dynamically linked program's interpreter (its libraries are placed files) */
  interp?: Uint8Array;
  files: PlacedFileRecord[];
  args: string[];
  env: string[];
}

// Bun's own hasher: importing node:crypto costs every process that loads this module ~1-5 ms
export const sha256Hex = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");

export function encodeProcessFile(f: { elf: Uint8Array; interp?: Uint8Array; files: ReadonlyMap<string, Uint8Array>; args: readonly string[]; env: readonly string[] }): Uint8Array {
  return encodeProcessSection({ ...f, files: [...f.files].map(([path, data]) => ({ path, size: data.length, sha256: sha256Hex(data) })) });
}

/** The section of a decoded (or made up) ProcessFile. */
export function encodeProcessSection(f: { elf: Uint8Array; interp?: Uint8Array; files: readonly PlacedFileRecord[]; args: readonly string[]; env: readonly string[] }): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  const u32 = (v: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, true);
    parts.push(b);
  };
  const u64 = (v: number) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
    parts.push(b);
  };
  const bytes = (b: Uint8Array) => {
    u32(b.length);
    parts.push(b);
  };
  u32(PROCESS_FORMAT);
  bytes(f.elf);
  bytes(f.interp ?? new Uint8Array(0));
  u32(f.files.length);
  for (const file of f.files) {
    bytes(enc.encode(file.path));
    u64(file.size);
    parts.push(new Uint8Array(Buffer.from(file.sha256, "hex")));
  }
  for (const list of [f.args, f.env]) {
    u32(list.length);
    for (const s of list) bytes(enc.encode(s));
  }
  return new Uint8Array(Buffer.concat(parts));
}

/**
 * Reads a process section. Throws a RangeError whose message says what is wrong (the caller names
 * the file).
 */
export function decodeProcessFile(bytes: Uint8Array): ProcessFile {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dec = new TextDecoder("utf-8", { fatal: true });
  let at = 0;
  const need = (n: number, what: string) => {
    if (n > bytes.length - at) throw new RangeError(`the process section ends inside ${what}`);
  };
  const u32 = (what: string) => {
    need(4, what);
    const v = dv.getUint32(at, true);
    at += 4;
    return v;
  };
  const u64 = (what: string) => {
    need(8, what);
    const v = dv.getBigUint64(at, true);
    at += 8;
    return v;
  };
  const take = (n: number, what: string) => {
    need(n, what);
    const b = bytes.subarray(at, at + n);
    at += n;
    return b;
  };
  const text = (b: Uint8Array, what: string) => {
    try {
      return dec.decode(b);
    } catch {
      throw new RangeError(`${what} is not UTF-8`);
    }
  };
  const version = u32("its version");
  if (version !== PROCESS_FORMAT && version !== 2) throw new RangeError(`process section version ${version}, this wasp reads 2 and ${PROCESS_FORMAT}`);
  const elf = take(u32("the executable's length"), "the executable").slice();
  const interpLen = version >= 3 ? u32("the interpreter's length") : 0;
  const interp = interpLen > 0 ? take(interpLen, "the interpreter").slice() : undefined;
  const count = u32("the placed files' count");
  if (count > MAX_FILES) throw new RangeError(`${count} placed files, more than ${MAX_FILES}`);
  const files: PlacedFileRecord[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < count; i++) {
    const len = u32("a path's length");
    if (len > MAX_PATH) throw new RangeError(`placed file ${i}'s path is longer than ${MAX_PATH} bytes`);
    const path = text(take(len, "a path"), "a path");
    if (!path.startsWith("/") || path.includes("\0") || path.split("/").some((p) => p === "." || p === "..")) throw new RangeError(`placed file ${i}'s path ${JSON.stringify(path)} is not absolute without . or ..`);
    if (seen.has(path)) throw new RangeError(`${JSON.stringify(path)} is placed twice`);
    seen.add(path);
    const size = u64("a file's size");
    if (size > BigInt(MAX_FILE)) throw new RangeError(`placed file ${JSON.stringify(path)} is larger than ${MAX_FILE} bytes`);
    files.push({ path, size: Number(size), sha256: Buffer.from(take(32, "a file's hash")).toString("hex") });
  }
  const strings = (what: string) => {
    const n = u32(`the ${what}' count`);
    const out: string[] = [];
    let total = 0;
    for (let i = 0; i < n; i++) {
      const len = u32(`the ${what}`);
      total += len + 1;
      if (total > MAX_STRINGS) throw new RangeError(`the ${what} take more than ${MAX_STRINGS} bytes`);
      const s = text(take(len, `the ${what}`), `one of the ${what}`);
      if (s.includes("\0")) throw new RangeError(`one of the ${what} holds a NUL byte`);
      out.push(s);
    }
    return out;
  };
  const args = strings("arguments");
  const env = strings("environment entries");
  if (at !== bytes.length) throw new RangeError(`${bytes.length - at} bytes follow the process section's end`);
  return { elf, ...(interp && { interp }), files, args, env };
}
