// x86-64 Linux executables and shared objects (ELF64): the header and program headers, every field
// checked before anything is loaded (the file is as hostile as the code in it). What loading needs:
// PT_LOAD segments with their permissions, the entry point, where the program headers are (the
// auxiliary vector's AT_PHDR), the TLS template; for a dynamically linked program, the interpreter
// it names (PT_INTERP) and, from its dynamic section, the libraries it needs (DT_NEEDED) and where
// it says to look for them (DT_RUNPATH, DT_RPATH). The ELF specification (gABI) and the x86-64
// psABI give the layouts; offsets are named below.
import { BadImageError } from "../errors.ts";

/** e_ident and ELF header offsets (ELF64). */
const E = {
  CLASS: 4, // EI_CLASS: 2 = ELFCLASS64
  DATA: 5, // EI_DATA: 1 = little-endian
  VERSION_IDENT: 6, // EI_VERSION: 1
  TYPE: 16, // u16: 2 = ET_EXEC, 3 = ET_DYN
  MACHINE: 18, // u16: 62 = EM_X86_64
  VERSION: 20, // u32: 1
  ENTRY: 24, // u64
  PHOFF: 32, // u64
  EHSIZE: 52, // u16: 64
  PHENTSIZE: 54, // u16: 56
  PHNUM: 56, // u16
  SIZE: 64,
} as const;

/** Program header offsets (Elf64_Phdr). */
const PH = { TYPE: 0, FLAGS: 4, OFFSET: 8, VADDR: 16, FILESZ: 32, MEMSZ: 40, ALIGN: 48, SIZE: 56 } as const;

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const PT_PHDR = 6;
const PT_TLS = 7;
const PF_X = 1;
const PF_W = 2;
const PF_R = 4;
const ET_EXEC = 2;
const ET_DYN = 3;
const EM_X86_64 = 62;
/** More program headers than any real executable has: a bound on the work a file can ask for. */
const MAX_PHNUM = 128;
/** Dynamic section tags (gABI): the end, a needed library, the string table, its size, the search paths. */
const DT = { NULL: 0, NEEDED: 1, STRTAB: 5, STRSZ: 10, RPATH: 15, RUNPATH: 29 } as const;
/** Bounds on a dynamic section: entries read, libraries named, the length of a name or path. */
const MAX_DYNAMIC = 4096;
const MAX_NEEDED = 256;
const MAX_PATH = 4096;
const PAGE = 4096;

export interface ElfSegment {
  /** guest address of the segment (for a static-PIE, relative to its load base) */
  vaddr: number;
  /** bytes in memory; past `filesz` they are zero (bss) */
  memsz: number;
  /** bytes from the file, at `offset` */
  filesz: number;
  offset: number;
  read: boolean;
  write: boolean;
  exec: boolean;
}

export interface ElfExecutable {
  name: string;
  bytes: Uint8Array;
  /** ET_EXEC: fixed addresses; ET_DYN without an interpreter: a static-PIE, loaded at a base of wasp's choice */
  pie: boolean;
  entry: number;
  segments: ElfSegment[];
  /** where the program headers are in memory (AT_PHDR), their size (AT_PHENT) and count (AT_PHNUM) */
  phdr: number;
  phent: number;
  phnum: number;
  /** the PT_TLS template, when the program has thread-local storage */
  tls: { vaddr: number; filesz: number; memsz: number; align: number } | undefined;
  /** the lowest and highest (exclusive) address the segments occupy, page-aligned */
  low: number;
  high: number;
  /** a dynamically linked program's interpreter (PT_INTERP: an absolute path) */
  interp?: string;
  /** the libraries its dynamic section names (DT_NEEDED), in order, and its search paths (DT_RUNPATH, else DT_RPATH; `:`-separated, split) */
  needed: string[];
  runpath: string[];
}

/** True if the bytes start with ELF's magic. */
export function isElf(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x7f && bytes[1] === 0x45 && bytes[2] === 0x4c && bytes[3] === 0x46;
}

/**
 * Parses and checks a static x86-64 Linux executable. `maxAddress` bounds where its segments may
 * lie (for a static-PIE, relative to its base): past it is no guest memory. Every failure is a
 * BadImageError naming what is wrong.
 */
export function parseElf(bytes: Uint8Array, name: string, maxAddress: number, opts: { library?: boolean } = {}): ElfExecutable {
  const bad = (why: string): never => {
    throw new BadImageError(`${name}: ${why}`);
  };
  if (!isElf(bytes)) bad("not an ELF file");
  if (bytes.length < E.SIZE) bad(`truncated: ${bytes.length} bytes, shorter than the 64-byte ELF header`);
  if (bytes[E.CLASS] !== 2) bad(`a ${bytes[E.CLASS] === 1 ? "32-bit" : "non-64-bit"} ELF file: wasp runs x86-64 (64-bit) programs`);
  if (bytes[E.DATA] !== 1) bad("a big-endian ELF file: wasp runs little-endian x86-64 programs");
  if (bytes[E.VERSION_IDENT] !== 1) bad(`ELF identification version ${bytes[E.VERSION_IDENT]}, not 1`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u16 = (at: number) => dv.getUint16(at, true);
  const u32 = (at: number) => dv.getUint32(at, true);
  // 64-bit fields as numbers only when they are safe integers: anything larger is refused by name
  const u64 = (at: number, what: string): number => {
    const v = dv.getBigUint64(at, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) bad(`${what} 0x${v.toString(16)} is out of range`);
    return Number(v);
  };
  const machine = u16(E.MACHINE);
  if (machine !== EM_X86_64) bad(`built for machine ${machine}${machine === 183 ? " (AArch64)" : machine === 3 ? " (i386)" : ""}, not x86-64 (62)`);
  if (u32(E.VERSION) !== 1) bad(`ELF version ${u32(E.VERSION)}, not 1`);
  const type = u16(E.TYPE);
  if (type !== ET_EXEC && type !== ET_DYN) bad(`ELF type ${type}: not an executable (a relocatable object or core file?)`);
  if (u16(E.EHSIZE) !== E.SIZE) bad(`ELF header size ${u16(E.EHSIZE)}, not 64`);
  const phoff = u64(E.PHOFF, "program header offset");
  const phent = u16(E.PHENTSIZE);
  const phnum = u16(E.PHNUM);
  if (phent !== PH.SIZE) bad(`program header size ${phent}, not ${PH.SIZE}`);
  if (phnum === 0) bad("no program headers: nothing to load");
  if (phnum > MAX_PHNUM) bad(`${phnum} program headers, more than ${MAX_PHNUM}`);
  if (phoff + phnum * PH.SIZE > bytes.length) bad(`the program headers (${phnum} at offset ${phoff}) run past the end of the file (${bytes.length} bytes)`);

  const segments: ElfSegment[] = [];
  let phdr: number | undefined;
  let tls: ElfExecutable["tls"];
  let interp: string | undefined;
  let dynamic: { offset: number; size: number } | undefined;
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * PH.SIZE;
    const ptype = u32(at + PH.TYPE);
    if (ptype === PT_INTERP) {
      if (interp !== undefined) bad("two interpreters named (PT_INTERP)");
      interp = cString(bytes, u64(at + PH.OFFSET, "the interpreter's offset"), u64(at + PH.FILESZ, "the interpreter's size"), "the interpreter's path (PT_INTERP)", bad);
      if (!interp.startsWith("/")) bad(`the interpreter ${JSON.stringify(interp)} is not an absolute path`);
    }
    if (ptype === PT_DYNAMIC) dynamic = { offset: u64(at + PH.OFFSET, "the dynamic section's offset"), size: u64(at + PH.FILESZ, "the dynamic section's size") };
    if (ptype === PT_PHDR) phdr = u64(at + PH.VADDR, "PT_PHDR address");
    if (ptype === PT_TLS) {
      const align = u64(at + PH.ALIGN, "TLS alignment");
      if (align !== 0 && (align & (align - 1)) !== 0) bad(`TLS alignment ${align} is not a power of two`);
      tls = { vaddr: u64(at + PH.VADDR, "TLS address"), filesz: u64(at + PH.FILESZ, "TLS file size"), memsz: u64(at + PH.MEMSZ, "TLS size"), align };
      if (tls.filesz > tls.memsz) bad("the TLS template's file size is larger than its memory size");
    }
    if (ptype !== PT_LOAD) continue;
    const flags = u32(at + PH.FLAGS);
    const seg: ElfSegment = {
      vaddr: u64(at + PH.VADDR, `segment ${i}'s address`),
      memsz: u64(at + PH.MEMSZ, `segment ${i}'s memory size`),
      filesz: u64(at + PH.FILESZ, `segment ${i}'s file size`),
      offset: u64(at + PH.OFFSET, `segment ${i}'s offset`),
      read: (flags & PF_R) !== 0,
      write: (flags & PF_W) !== 0,
      exec: (flags & PF_X) !== 0,
    };
    const align = u64(at + PH.ALIGN, `segment ${i}'s alignment`);
    if (seg.filesz > seg.memsz) bad(`segment ${i}: its file size ${seg.filesz} is larger than its memory size ${seg.memsz}`);
    if (seg.offset + seg.filesz > bytes.length) bad(`segment ${i}: bytes ${seg.offset}-${seg.offset + seg.filesz} lie past the end of the file (${bytes.length} bytes)`);
    if (seg.memsz === 0) continue;
    if (align > 1 && (align & (align - 1)) !== 0) bad(`segment ${i}: alignment ${align} is not a power of two`);
    if (seg.vaddr % PAGE !== seg.offset % PAGE) bad(`segment ${i}: its address 0x${seg.vaddr.toString(16)} and file offset 0x${seg.offset.toString(16)} differ within a page, so it cannot be mapped`);
    if (seg.vaddr + seg.memsz > maxAddress) bad(`segment ${i}: [0x${seg.vaddr.toString(16)}, 0x${(seg.vaddr + seg.memsz).toString(16)}) lies past the guest memory (0x${maxAddress.toString(16)})`);
    for (const [j, other] of segments.entries()) {
      if (seg.vaddr < other.vaddr + other.memsz && other.vaddr < seg.vaddr + seg.memsz) bad(`segments ${j} and ${i} overlap`);
    }
    segments.push(seg);
  }
  if (segments.length === 0) bad("no loadable segment");
  const entry = u64(E.ENTRY, "entry point");
  // a shared library has no entry of its own to check (0, or one the loader never jumps to)
  if (opts.library) {
    if (type !== ET_DYN) bad(`ELF type ${type}: a shared library is position-independent (ET_DYN)`);
  } else if (!segments.some((s) => s.exec && entry >= s.vaddr && entry < s.vaddr + s.memsz)) bad(`the entry point 0x${entry.toString(16)} is not in an executable segment`);
  const low = Math.min(...segments.map((s) => s.vaddr - (s.vaddr % PAGE)));
  const high = Math.max(...segments.map((s) => Math.ceil((s.vaddr + s.memsz) / PAGE) * PAGE));
  // AT_PHDR: PT_PHDR's address, else where the loaded file bytes put the program headers
  if (phdr === undefined) {
    const holding = segments.find((s) => phoff >= s.offset && phoff + phnum * PH.SIZE <= s.offset + s.filesz);
    phdr = holding ? holding.vaddr + (phoff - holding.offset) : 0;
  }
  const { needed, runpath } = dynamic ? dynamicNames(bytes, dv, dynamic, segments, bad) : { needed: [], runpath: [] };
  return { name, bytes, pie: type === ET_DYN, entry, segments, phdr, phent, phnum, tls, low, high, ...(interp !== undefined && { interp }), needed, runpath };
}

/**
 * A NUL-terminated string of `size` bytes at `offset` of the file (PT_INTERP's), printable ASCII
 * but for its NUL, at most MAX_PATH bytes.
 */
function cString(bytes: Uint8Array, offset: number, size: number, what: string, bad: (why: string) => never): string {
  if (size === 0 || size > MAX_PATH) bad(`${what} is ${size} bytes, not between 1 and ${MAX_PATH}`);
  if (offset + size > bytes.length) bad(`${what} lies past the end of the file`);
  const raw = bytes.subarray(offset, offset + size);
  const nul = raw.indexOf(0);
  if (nul <= 0) bad(`${what} is ${nul === 0 ? "empty" : "not NUL-terminated"}`);
  const text = raw.subarray(0, nul);
  if (text.some((b) => b < 0x20 || b > 0x7e)) bad(`${what} holds bytes that are not printable ASCII`);
  return new TextDecoder().decode(text);
}

/**
 * DT_NEEDED's names and DT_RUNPATH's (else DT_RPATH's) directories from the dynamic section at
 * `dyn` (file offset and size), their strings read from DT_STRTAB (an address, found in the file
 * through the segment that loads it), each bounded by DT_STRSZ and the file.
 */
function dynamicNames(bytes: Uint8Array, dv: DataView, dyn: { offset: number; size: number }, segments: readonly ElfSegment[], bad: (why: string) => never): { needed: string[]; runpath: string[] } {
  if (dyn.offset + dyn.size > bytes.length) bad("the dynamic section lies past the end of the file");
  const count = Math.min(Math.floor(dyn.size / 16), MAX_DYNAMIC);
  const needed: bigint[] = [];
  let strtab: bigint | undefined;
  let strsz: bigint | undefined;
  let rpath: bigint | undefined;
  let runpath: bigint | undefined;
  for (let i = 0; i < count; i++) {
    const tag = dv.getBigInt64(dyn.offset + i * 16, true);
    const val = dv.getBigUint64(dyn.offset + i * 16 + 8, true);
    if (tag === BigInt(DT.NULL)) break;
    if (tag === BigInt(DT.NEEDED)) {
      if (needed.length >= MAX_NEEDED) bad(`more than ${MAX_NEEDED} libraries needed`);
      needed.push(val);
    } else if (tag === BigInt(DT.STRTAB)) strtab = val;
    else if (tag === BigInt(DT.STRSZ)) strsz = val;
    else if (tag === BigInt(DT.RPATH)) rpath = val;
    else if (tag === BigInt(DT.RUNPATH)) runpath = val;
  }
  const paths = runpath ?? rpath;
  if (needed.length === 0 && paths === undefined) return { needed: [], runpath: [] };
  if (strtab === undefined || strsz === undefined) bad("the dynamic section names libraries but has no string table");
  // the string table's file offset: the loaded segment that holds its address
  const seg = segments.find((s) => BigInt(s.vaddr) <= strtab! && strtab! < BigInt(s.vaddr + s.filesz));
  if (!seg) bad(`the string table's address 0x${strtab!.toString(16)} is in no segment's file bytes`);
  const start = seg!.offset + Number(strtab! - BigInt(seg!.vaddr));
  const end = Math.min(start + Number(strsz! > BigInt(bytes.length) ? BigInt(bytes.length) : strsz!), seg!.offset + seg!.filesz);
  const table = bytes.subarray(start, end);
  const str = (off: bigint, what: string): string => {
    if (off >= BigInt(table.length)) bad(`${what} lies past the string table`);
    const from = Number(off);
    const nul = table.indexOf(0, from);
    if (nul < 0 || nul - from > MAX_PATH) bad(`${what} is not a NUL-terminated string of at most ${MAX_PATH} bytes`);
    const text = table.subarray(from, nul);
    if (text.some((b) => b < 0x20 || b > 0x7e)) bad(`${what} holds bytes that are not printable ASCII`);
    return new TextDecoder().decode(text);
  };
  const names = needed.map((off, i) => {
    const n = str(off, `needed library ${i + 1}'s name`);
    if (n === "" || n === "." || n === "..") bad(`needed library ${i + 1}'s name ${JSON.stringify(n)} is not a file name`);
    return n;
  });
  return { needed: names, runpath: paths === undefined ? [] : str(paths, "the library search path").split(":").filter((p) => p !== "") };
}
