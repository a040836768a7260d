// A Linux program's snapshot, beyond its memory and registers: the executable (its segments decide
// the page tables the host rebuilds at restore), the process state the host keeps (break, mapped
// pages, open files and their offsets, TLS bases) and the arguments and environment of the call
// that took it. Written after the memory part of a snapshot file (docs/snapshot-format.md); read
// back from untrusted bytes: every count, length and value is checked against the bytes that hold
// it, and the result against the executable's layout (checkProcessState). Little-endian.
//
//   u32 version (1)
//   u32 n, n bytes        the executable's file
//   u64 brk, u64 brkHigh
//   u32 pages, pages bytes mapped (0 or 1), pages bytes used (0 or 1)   the mmap region
//   u64 fsBase, u64 gsBase
//   u32 count, then per fd: i32 fd, u8 kind (0 stdin, 1 stdout, 2 stderr, 3 file), 3 zero bytes,
//                           u64 offset, u32 n, n bytes of the granted path (files only)
//   u32 argc, then per argument u32 n, n bytes; u32 envc, then per entry u32 n, n bytes
import type { LinuxLayout } from "./address-space.ts";
import { MAX_FDS, type ProcessState } from "./process.ts";

export const PROCESS_FORMAT = 1;
/** Most bytes of arguments and environment (as the initial stack allows), and of one path. */
const MAX_STRINGS = 128 * 1024;
const MAX_PATH = 4096;
const USER_TOP = 1n << 47n;

/** An open file as the section records it: a stream, or a granted path and its offset. */
export type FdRecord = [number, "stdin" | "stdout" | "stderr" | { path: string; pos: number }];

export interface ProcessFile {
  elf: Uint8Array;
  process: Omit<ProcessState, "fds"> & { fds: FdRecord[] };
  args: string[];
  env: string[];
}

const KINDS = ["stdin", "stdout", "stderr"] as const;

export function encodeProcessFile(f: { elf: Uint8Array; process: ProcessState; args: readonly string[]; env: readonly string[] }): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  const u32 = (v: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, true);
    parts.push(b);
  };
  const u64 = (v: bigint) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v, true);
    parts.push(b);
  };
  const bytes = (b: Uint8Array) => {
    u32(b.length);
    parts.push(b);
  };
  u32(PROCESS_FORMAT);
  bytes(f.elf);
  const m = f.process.memory;
  u64(BigInt(m.brk));
  u64(BigInt(m.brkHigh));
  u32(m.mapped.length);
  parts.push(m.mapped, m.used);
  u64(f.process.fsBase);
  u64(f.process.gsBase);
  u32(f.process.fds.length);
  for (const [fd, file] of f.process.fds) {
    const head = new Uint8Array(16);
    const dv = new DataView(head.buffer);
    dv.setInt32(0, fd, true);
    head[4] = typeof file === "string" ? KINDS.indexOf(file) : 3;
    dv.setBigUint64(8, BigInt(typeof file === "string" ? 0 : file.pos), true);
    parts.push(head);
    bytes(typeof file === "string" ? new Uint8Array(0) : enc.encode(file.path));
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
  if (version !== PROCESS_FORMAT) throw new RangeError(`process section version ${version}, this wasp reads ${PROCESS_FORMAT}`);
  const elf = take(u32("the executable's length"), "the executable").slice();
  const brk = u64("the break");
  const brkHigh = u64("the break");
  if (brk > BigInt(Number.MAX_SAFE_INTEGER) || brkHigh > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError("the break is past any memory");
  const pages = u32("the mapped pages' count");
  const mapped = take(pages, "the mapped pages").slice();
  const used = take(pages, "the used pages").slice();
  for (let i = 0; i < pages; i++) {
    if (mapped[i] > 1 || used[i] > 1) throw new RangeError(`page ${i} of the mmap region is marked ${mapped[i]}/${used[i]}, not 0 or 1`);
    if (mapped[i] && !used[i]) throw new RangeError(`page ${i} of the mmap region is mapped but never used`);
  }
  const fsBase = u64("the FS base");
  const gsBase = u64("the GS base");
  if (fsBase >= USER_TOP || gsBase >= USER_TOP) throw new RangeError("a TLS base is not a canonical user address");
  const count = u32("the open files' count");
  if (count > MAX_FDS) throw new RangeError(`${count} open files, more than ${MAX_FDS}`);
  const fds: FdRecord[] = [];
  const seen = new Set<number>();
  for (let i = 0; i < count; i++) {
    const head = take(16, "an open file");
    const hv = new DataView(head.buffer, head.byteOffset, 16);
    const fd = hv.getInt32(0, true);
    const kind = head[4];
    const pos = hv.getBigUint64(8, true);
    const path = text(take(Math.min(u32("a path's length"), MAX_PATH + 1), "a path"), "a path");
    if (fd < 0 || fd >= MAX_FDS || seen.has(fd)) throw new RangeError(`fd ${fd} is out of range or listed twice`);
    seen.add(fd);
    if (head[5] !== 0 || head[6] !== 0 || head[7] !== 0) throw new RangeError(`fd ${fd}'s padding is not zero`);
    if (kind < 3) {
      if (pos !== 0n || path !== "") throw new RangeError(`fd ${fd} is a stream with an offset or a path`);
      fds.push([fd, KINDS[kind]]);
      continue;
    }
    if (kind !== 3) throw new RangeError(`fd ${fd} is of unknown kind ${kind}`);
    if (path.length > MAX_PATH || !path.startsWith("/")) throw new RangeError(`fd ${fd}'s path is not absolute or longer than ${MAX_PATH} bytes`);
    if (pos > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`fd ${fd}'s offset is too large`);
    fds.push([fd, { path, pos: Number(pos) }]);
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
  return { elf, process: { memory: { brk: Number(brk), brkHigh: Number(brkHigh), mapped, used }, fds, fsBase, gsBase }, args, env };
}

/**
 * The process state of a decoded section, its open files backed by the program's granted `files`:
 * a path the snapshot holds open that is not granted is refused (RangeError).
 */
export function processStateOf(f: ProcessFile, files: ReadonlyMap<string, Uint8Array>): ProcessState {
  const fds = f.process.fds.map(([fd, r]): ProcessState["fds"][number] => {
    if (typeof r === "string") return [fd, r];
    const data = files.get(r.path);
    if (data === undefined) throw new RangeError(`the program holds ${JSON.stringify(r.path)} open (fd ${fd}): grant that file to restore it (files, --file)`);
    return [fd, { path: r.path, data, pos: r.pos }];
  });
  return { ...f.process, fds };
}

/** Whether a decoded process state fits `layout` (the executable's, in the snapshot's memory): why not, or undefined. */
export function checkProcessState(p: ProcessFile["process"], layout: LinuxLayout): string | undefined {
  const r = layout.regions;
  const m = p.memory;
  if (m.brk < r.brkStart || m.brk > r.brkEnd) return `the break 0x${m.brk.toString(16)} is outside its region [0x${r.brkStart.toString(16)}, 0x${r.brkEnd.toString(16)}]`;
  if (m.brkHigh < m.brk || m.brkHigh > r.brkEnd) return `the break's high mark 0x${m.brkHigh.toString(16)} is outside [break, 0x${r.brkEnd.toString(16)}]`;
  const pages = (r.mmapEnd - r.mmapStart) / 4096;
  if (m.mapped.length !== pages) return `the mmap region has ${m.mapped.length} pages recorded, the layout ${pages}`;
  return undefined;
}
