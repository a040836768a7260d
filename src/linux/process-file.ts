// A Linux program's snapshot, beyond its memory and registers: the executable (its segments decide
// the page tables the host rebuilds at restore), the files placed in its memory (their paths decide
// where wasp's own pages go; their bytes are in the memory, checked against the hashes here) and
// the arguments and environment of the call that took it. The process's state — break, mappings,
// open files, stdin's position — is in its memory (block.ts), checked wherever the host uses it.
// Written after the memory part of a snapshot file (docs/snapshot-format.md); read back from
// untrusted bytes: every count, length and value is checked against the bytes that hold it.
// Little-endian.
//
//   u32 version (5; 4, 3 and 2 are read too: 4 has no protections, 3 no directories, 2 no
//     interpreter field either)
//   u32 n, n bytes        the executable's file
//   u32 n, n bytes        its interpreter's file, for a dynamically linked program (n = 0: none)
//   u32 count, then per placed file: u32 n, n bytes of its guest path, u64 size, 32 bytes SHA-256
//   u32 argc, then per argument u32 n, n bytes; u32 envc, then per entry u32 n, n bytes
//   (4) u32 count, then per granted directory: u32 n, n bytes of its guest path (sorted, each once)
//   (4) u32 count, then per entry of the table of what the program opened in them, in table order:
//       u32 n, n bytes of its guest path (under one of the directories), 32 bytes SHA-256
//   (5) u32 count, then per run of pages whose protections the program set (where they differ
//       from its executable's headers: a dynamically linked program's libraries): u64 address,
//       u32 pages, u32 PROT bits — sorted, apart; the reader checks them against the layout
//       (src/linux/address-space.ts, checkProtections) and the restore builds its tables with them
//
// The directories are named by their guest paths alone: a snapshot file never grants itself a
// host directory (a hostile one would read the loader's files). Whoever restores it grants the
// same guest paths again, from host directories of its choosing; each opened entry is read from
// there at its first use and checked against its SHA-256 (src/linux/dirs.ts).
import { MAX_OPENED, normalizeGuest } from "./dirs.ts";
import type { ProtectionRun } from "./address-space.ts";

export const PROCESS_FORMAT = 5;
/** Most bytes of arguments and environment (as the initial stack allows), and of one path. */
const MAX_STRINGS = 128 * 1024;
const MAX_PATH = 4096;
/** Most files one program is granted, and the largest (src/virtine/files.ts). */
const MAX_FILES = 4096;
const MAX_FILE = 64 * 1024 * 1024;
/** Most directories one section names (each at least its length's 4 bytes, and checked against the bytes left). */
const MAX_DIRS = 4096;
/** Most runs of protections (one a page of the largest memory) and the end of the largest guest memory (4 GiB, more than any). */
const MAX_RUNS = 1 << 20;
const MAX_GUEST = 2 ** 32;

/** What is wrong with a process section's bytes: one line (the caller names the file). */
export class ProcessSectionError extends RangeError {
  override name = "ProcessSectionError";
}

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
  /** the guest paths of the directories the program was granted (normalized, sorted; none before version 4) */
  dirs: string[];
  /** what the program opened in them, in the order its fds name them, each with its contents' SHA-256 */
  opened: OpenedRecord[];
  /** the pages whose protections the program set (none before version 5) */
  protections: ProtectionRun[];
}

/** An entry of a program's table of opened files and directories, as the section names it (a directory's hash is its listing's). */
export interface OpenedRecord {
  path: string;
  sha256: string;
}

/** Whether `path` is `dir` or lies under it (both normalized guest paths). */
export function underDir(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir === "/" ? "/" : `${dir}/`);
}

/** A guest path as a section may hold one: absolute, normalized (no ., .., empty part or trailing slash), without NUL. */
function normalPath(path: string): boolean {
  return path.startsWith("/") && !path.includes("\0") && normalizeGuest(path) === path;
}

// Bun's own hasher: importing node:crypto costs every process that loads this module ~1-5 ms
export const sha256Hex = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");

export function encodeProcessFile(f: { elf: Uint8Array; interp?: Uint8Array; files: ReadonlyMap<string, Uint8Array>; args: readonly string[]; env: readonly string[]; dirs?: readonly string[]; opened?: readonly OpenedRecord[]; protections?: readonly ProtectionRun[] }): Uint8Array {
  return encodeProcessSection({ ...f, files: [...f.files].map(([path, data]) => ({ path, size: data.length, sha256: sha256Hex(data) })) });
}

/** The section of a decoded (or made up) ProcessFile; the directories are written sorted. */
export function encodeProcessSection(f: { elf: Uint8Array; interp?: Uint8Array; files: readonly PlacedFileRecord[]; args: readonly string[]; env: readonly string[]; dirs?: readonly string[]; opened?: readonly OpenedRecord[]; protections?: readonly ProtectionRun[] }): Uint8Array {
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
  const dirs = [...(f.dirs ?? [])].sort(byCodeUnits);
  u32(dirs.length);
  for (const d of dirs) bytes(enc.encode(d));
  const opened = f.opened ?? [];
  u32(opened.length);
  for (const e of opened) {
    bytes(enc.encode(e.path));
    parts.push(new Uint8Array(Buffer.from(e.sha256, "hex")));
  }
  const protections = f.protections ?? [];
  u32(protections.length);
  for (const run of protections) {
    u64(run.addr);
    u32(run.pages);
    u32(run.prot);
  }
  return new Uint8Array(Buffer.concat(parts));
}

/** The order the directories are written and checked in (JavaScript's default sort). */
const byCodeUnits = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Reads a process section. Throws a ProcessSectionError whose message says what is wrong (the
 * caller names the file).
 */
export function decodeProcessFile(bytes: Uint8Array): ProcessFile {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dec = new TextDecoder("utf-8", { fatal: true });
  let at = 0;
  const need = (n: number, what: string) => {
    if (n > bytes.length - at) throw new ProcessSectionError(`the process section ends inside ${what}`);
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
      throw new ProcessSectionError(`${what} is not UTF-8`);
    }
  };
  const version = u32("its version");
  if (version < 2 || version > PROCESS_FORMAT) throw new ProcessSectionError(`process section version ${version}, this wasp reads 2 to ${PROCESS_FORMAT}`);
  const elf = take(u32("the executable's length"), "the executable").slice();
  const interpLen = version >= 3 ? u32("the interpreter's length") : 0;
  const interp = interpLen > 0 ? take(interpLen, "the interpreter").slice() : undefined;
  const count = u32("the placed files' count");
  if (count > MAX_FILES) throw new ProcessSectionError(`${count} placed files, more than ${MAX_FILES}`);
  const files: PlacedFileRecord[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < count; i++) {
    const len = u32("a path's length");
    if (len > MAX_PATH) throw new ProcessSectionError(`placed file ${i}'s path is longer than ${MAX_PATH} bytes`);
    const path = text(take(len, "a path"), "a path");
    if (!path.startsWith("/") || path.includes("\0") || path.split("/").some((p) => p === "." || p === "..")) throw new ProcessSectionError(`placed file ${i}'s path ${JSON.stringify(path)} is not absolute without . or ..`);
    if (seen.has(path)) throw new ProcessSectionError(`${JSON.stringify(path)} is placed twice`);
    seen.add(path);
    const size = u64("a file's size");
    if (size > BigInt(MAX_FILE)) throw new ProcessSectionError(`placed file ${JSON.stringify(path)} is larger than ${MAX_FILE} bytes`);
    files.push({ path, size: Number(size), sha256: Buffer.from(take(32, "a file's hash")).toString("hex") });
  }
  const strings = (what: string) => {
    const n = u32(`the ${what}' count`);
    const out: string[] = [];
    let total = 0;
    for (let i = 0; i < n; i++) {
      const len = u32(`the ${what}`);
      total += len + 1;
      if (total > MAX_STRINGS) throw new ProcessSectionError(`the ${what} take more than ${MAX_STRINGS} bytes`);
      const s = text(take(len, `the ${what}`), `one of the ${what}`);
      if (s.includes("\0")) throw new ProcessSectionError(`one of the ${what} holds a NUL byte`);
      out.push(s);
    }
    return out;
  };
  const args = strings("arguments");
  const env = strings("environment entries");
  const dirs: string[] = [];
  const opened: OpenedRecord[] = [];
  if (version >= 4) {
    const path = (what: string) => {
      const len = u32(`${what}'s length`);
      if (len > MAX_PATH) throw new ProcessSectionError(`${what}'s path is longer than ${MAX_PATH} bytes`);
      const p = text(take(len, `${what}'s path`), `${what}'s path`);
      if (!normalPath(p)) throw new ProcessSectionError(`${what}'s path ${JSON.stringify(p)} is not absolute and normalized (no ., .., empty part or trailing slash)`);
      return p;
    };
    // a count is held to the bytes left before anything is read for it (each entry takes at least its length's 4 bytes)
    const count = (what: string, max: number, least: number) => {
      const n = u32(`the ${what}' count`);
      if (n > max) throw new ProcessSectionError(`${n} ${what}, more than ${max}`);
      if (n * least > bytes.length - at) throw new ProcessSectionError(`${n} ${what} cannot fit in the ${bytes.length - at} bytes left`);
      return n;
    };
    const nDirs = count("granted directories", MAX_DIRS, 4);
    for (let i = 0; i < nDirs; i++) {
      const d = path(`granted directory ${i}`);
      if (i > 0 && byCodeUnits(dirs[i - 1], d) >= 0) throw new ProcessSectionError(`granted directory ${JSON.stringify(d)} ${dirs[i - 1] === d ? "is named twice" : "is out of order (they are sorted)"}`);
      dirs.push(d);
    }
    const nOpened = count("opened files", MAX_OPENED, 36);
    const seenOpened = new Set<string>();
    for (let i = 0; i < nOpened; i++) {
      const p = path(`opened file ${i}`);
      if (!dirs.some((d) => underDir(p, d))) throw new ProcessSectionError(`opened file ${JSON.stringify(p)} is under none of the granted directories`);
      if (seenOpened.has(p)) throw new ProcessSectionError(`opened file ${JSON.stringify(p)} is in the table twice`);
      seenOpened.add(p);
      opened.push({ path: p, sha256: Buffer.from(take(32, "an opened file's hash")).toString("hex") });
    }
  }
  const protections: ProtectionRun[] = [];
  if (version >= 5) {
    const n = u32("the protections' count");
    if (n > MAX_RUNS) throw new ProcessSectionError(`${n} runs of protections, more than ${MAX_RUNS}`);
    if (n * 16 > bytes.length - at) throw new ProcessSectionError(`${n} runs of protections cannot fit in the ${bytes.length - at} bytes left`);
    let end = 0n;
    for (let i = 0; i < n; i++) {
      const addr = u64("a protected run's address");
      const pages = u32("a protected run's pages");
      const prot = u32("a protected run's protections");
      if (addr % 4096n !== 0n || pages === 0 || prot > 7) throw new ProcessSectionError(`protected run ${i} is not whole pages (0x${addr.toString(16)}, ${pages}) with PROT bits (${prot})`);
      if (addr < end) throw new ProcessSectionError(`protected run ${i} at 0x${addr.toString(16)} is out of order or overlaps the one before`);
      end = addr + BigInt(pages) * 4096n;
      if (end > BigInt(MAX_GUEST)) throw new ProcessSectionError(`protected run ${i} ends past any guest memory (0x${end.toString(16)})`);
      protections.push({ addr: Number(addr), pages, prot });
    }
  }
  if (at !== bytes.length) throw new ProcessSectionError(`${bytes.length - at} bytes follow the process section's end`);
  return { elf, ...(interp && { interp }), files, args, env, dirs, opened, protections };
}
