// Where an executable's functions are: from its unwind tables (PT_GNU_EH_FRAME: .eh_frame_hdr and
// the .eh_frame entries it indexes), which compilers emit for every function and stripping keeps,
// and from its symbol table (.symtab's sized functions), which also names hand-written assembly
// without unwind entries (musl's __set_thread_area). The host rewrites a system-call site only
// inside a function it can decode from its first instruction (src/linux/sites.ts): there,
// instruction boundaries are certain. The tables are the file's, untrusted: every offset and
// length is checked, and anything malformed gives no function (never an exception) — a site
// outside every known function just keeps its exit.

const PT_GNU_EH_FRAME = 0x6474e550;
/** Most functions read from one table (a large program has tens of thousands). */
const MAX_FDES = 1 << 20;

/** The functions' address ranges, sorted by start: [starts[i], ends[i]) (link-time addresses). */
export interface FunctionRanges {
  starts: Float64Array;
  ends: Float64Array;
}

/** The [start, end) of the function holding `addr`, or undefined. */
export function functionAt(ranges: FunctionRanges, addr: number): [number, number] | undefined {
  let lo = 0;
  let hi = ranges.starts.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ranges.starts[mid] <= addr) lo = mid + 1;
    else hi = mid;
  }
  const i = lo - 1;
  if (i < 0 || addr >= ranges.ends[i]) return undefined;
  return [ranges.starts[i], ranges.ends[i]];
}

/** A view of an ELF file's bytes by virtual address, through its PT_LOAD segments. */
interface Image {
  bytes: Uint8Array;
  dv: DataView;
  loads: { vaddr: number; offset: number; filesz: number }[];
}

function at(img: Image, vaddr: number, len: number): number | undefined {
  for (const s of img.loads) {
    if (vaddr >= s.vaddr && vaddr + len <= s.vaddr + s.filesz && len >= 0) return s.offset + (vaddr - s.vaddr);
  }
  return undefined;
}

/**
 * The function ranges of an ELF64 executable's file bytes (an empty set when it has no unwind
 * table, or one that does not read as one).
 */
export function functionRanges(bytes: Uint8Array): FunctionRanges {
  const list: [number, number][] = [];
  for (const read of [parse, symbols]) {
    try {
      const r = read(bytes);
      if (r) for (let i = 0; i < r.starts.length; i++) list.push([r.starts[i], r.ends[i]]);
    } catch (e) {
      if (!(e instanceof RangeError)) throw e; // a read past the bytes: not a table
    }
  }
  // by start; of two with the same start, the longer (an unwind entry may cover less than the symbol)
  list.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  const starts: number[] = [];
  const ends: number[] = [];
  for (const [start, end] of list) {
    if (starts.length && starts[starts.length - 1] === start) continue;
    starts.push(start);
    ends.push(end);
  }
  return { starts: Float64Array.from(starts), ends: Float64Array.from(ends) };
}

/** The sized functions of the file's symbol table (SHT_SYMTAB, STT_FUNC), when it has one. */
function symbols(bytes: Uint8Array): FunctionRanges | undefined {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 64) return undefined;
  const shoff = Number(dv.getBigUint64(40, true));
  const shentsize = dv.getUint16(58, true);
  const shnum = dv.getUint16(60, true);
  if (shoff === 0 || shentsize < 64 || shnum > 65535) return undefined;
  const section = (i: number) => {
    const at = shoff + i * shentsize;
    if (at + 64 > bytes.length) throw new RangeError("section header");
    return { type: dv.getUint32(at + 4, true), offset: Number(dv.getBigUint64(at + 24, true)), size: Number(dv.getBigUint64(at + 32, true)), link: dv.getUint32(at + 40, true), entsize: Number(dv.getBigUint64(at + 56, true)) };
  };
  const starts: number[] = [];
  const ends: number[] = [];
  for (let i = 0; i < shnum; i++) {
    const sh = section(i);
    if (sh.type !== 2 || sh.entsize < 24 || sh.offset + sh.size > bytes.length) continue; // SHT_SYMTAB
    const count = Math.min(Math.floor(sh.size / sh.entsize), MAX_FDES);
    for (let k = 0; k < count; k++) {
      const at = sh.offset + k * sh.entsize;
      const info = bytes[at + 4];
      const value = Number(dv.getBigUint64(at + 8, true));
      const size = Number(dv.getBigUint64(at + 16, true));
      if ((info & 0xf) !== 2 || value === 0 || !Number.isSafeInteger(value + size)) continue; // STT_FUNC
      starts.push(value);
      ends.push(size > 0 ? value + size : 0);
    }
  }
  // hand-written assembly often leaves a function's size out (0): it ends where the next function
  // starts, within UNSIZED bytes
  const order = starts.map((_, i) => i).sort((a, b) => starts[a] - starts[b]);
  for (let k = 0; k < order.length; k++) {
    const i = order[k];
    if (ends[i] !== 0) continue;
    let next = starts[i] + UNSIZED;
    for (let j = k + 1; j < order.length; j++) {
      if (starts[order[j]] > starts[i]) {
        next = Math.min(next, starts[order[j]]);
        break;
      }
    }
    ends[i] = next;
  }
  return { starts: Float64Array.from(starts), ends: Float64Array.from(ends) };
}

/** The most an unsized function symbol is taken to cover. */
const UNSIZED = 4096;

/** The functions the unwind table (PT_GNU_EH_FRAME) indexes, when there is one. */
function parse(bytes: Uint8Array): FunctionRanges | undefined {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 64) return undefined;
  const phoff = Number(dv.getBigUint64(32, true));
  const phentsize = dv.getUint16(54, true);
  const phnum = dv.getUint16(56, true);
  if (phentsize < 56 || phnum > 4096) return undefined;
  const img: Image = { bytes, dv, loads: [] };
  let hdr: { vaddr: number; size: number } | undefined;
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    if (p < 0 || p + 56 > bytes.length) return undefined;
    const type = dv.getUint32(p, true);
    const offset = Number(dv.getBigUint64(p + 8, true));
    const vaddr = Number(dv.getBigUint64(p + 16, true));
    const filesz = Number(dv.getBigUint64(p + 32, true));
    if (type === 1 && offset + filesz <= bytes.length) img.loads.push({ vaddr, offset, filesz });
    if (type === PT_GNU_EH_FRAME) hdr = { vaddr, size: Number(dv.getBigUint64(p + 40, true)) };
  }
  if (!hdr) return undefined;
  const h = at(img, hdr.vaddr, 4);
  if (h === undefined || bytes[h] !== 1) return undefined;
  const [ptrEnc, countEnc, tableEnc] = [bytes[h + 1], bytes[h + 2], bytes[h + 3]];
  const cur = { pos: hdr.vaddr + 4 };
  const ehFrame = encoded(img, cur, ptrEnc, hdr.vaddr);
  const count = encoded(img, cur, countEnc, hdr.vaddr);
  if (ehFrame === undefined || count === undefined || count < 0 || count > MAX_FDES) return undefined;
  const starts: number[] = [];
  const ends: number[] = [];
  for (let i = 0; i < count; i++) {
    const start = encoded(img, cur, tableEnc, hdr.vaddr);
    const fde = encoded(img, cur, tableEnc, hdr.vaddr);
    if (start === undefined || fde === undefined) return undefined;
    const range = fdeRange(img, fde);
    if (range === undefined || range <= 0) continue;
    starts.push(start);
    ends.push(start + range);
  }
  // the table is sorted by start; kept only if it is (a forged one is no table)
  for (let i = 1; i < starts.length; i++) if (starts[i] < starts[i - 1]) return undefined;
  return { starts: Float64Array.from(starts), ends: Float64Array.from(ends) };
}

/** A DW_EH_PE-encoded value at cur.pos (advanced past it); `datarel` the base of DW_EH_PE_datarel. */
function encoded(img: Image, cur: { pos: number }, enc: number, datarel: number): number | undefined {
  if (enc === 0xff) return undefined; // DW_EH_PE_omit
  const format = enc & 0x0f;
  const size = format === 0x00 || format === 0x04 || format === 0x0c ? 8 : format === 0x03 || format === 0x0b ? 4 : format === 0x02 || format === 0x0a ? 2 : 0;
  if (size === 0) return undefined;
  const off = at(img, cur.pos, size);
  if (off === undefined) return undefined;
  const dv = img.dv;
  let v: number;
  if (size === 8) v = Number(format === 0x0c ? dv.getBigInt64(off, true) : dv.getBigUint64(off, true));
  else if (size === 4) v = format === 0x0b ? dv.getInt32(off, true) : dv.getUint32(off, true);
  else v = format === 0x0a ? dv.getInt16(off, true) : dv.getUint16(off, true);
  const app = enc & 0x70;
  const base = app === 0x00 ? 0 : app === 0x10 ? cur.pos : app === 0x30 ? datarel : undefined;
  cur.pos += size;
  if (base === undefined || !Number.isSafeInteger(v)) return undefined;
  return base + v;
}

/** The address range an FDE covers (its pc_range), read through its CIE's pointer encoding. */
function fdeRange(img: Image, fde: number): number | undefined {
  const o = at(img, fde, 8);
  if (o === undefined) return undefined;
  const dv = img.dv;
  const length = dv.getUint32(o, true);
  if (length === 0 || length === 0xffffffff) return undefined; // a terminator, or a 64-bit entry (not emitted for x86-64 code)
  const ciePtr = dv.getUint32(o + 4, true);
  if (ciePtr === 0) return undefined; // a CIE, not an FDE
  const enc = cieEncoding(img, fde + 4 - ciePtr);
  if (enc === undefined) return undefined;
  const cur = { pos: fde + 8 };
  if (encoded(img, cur, enc, 0) === undefined) return undefined; // pc_begin (the table gave it)
  return encoded(img, cur, enc & 0x0f, 0); // pc_range: the same size, absolute
}

/** The FDE pointer encoding of the CIE at `cie` ('R' in its augmentation; absptr without one). */
function cieEncoding(img: Image, cie: number): number | undefined {
  const o = at(img, cie, 9);
  if (o === undefined) return undefined;
  const bytes = img.bytes;
  const dv = img.dv;
  const length = dv.getUint32(o, true);
  if (length < 5 || dv.getUint32(o + 4, true) !== 0) return undefined;
  const end = o + 4 + length;
  if (end > bytes.length) return undefined;
  const version = bytes[o + 8];
  let p = o + 9;
  let aug = "";
  while (p < end && bytes[p] !== 0 && aug.length < 16) aug += String.fromCharCode(bytes[p++]);
  if (p >= end || bytes[p] !== 0) return undefined;
  p++;
  const uleb = () => {
    let v = 0;
    let shift = 0;
    for (;;) {
      if (p >= end || shift > 28) throw new RangeError("leb128");
      const b = bytes[p++];
      v |= (b & 0x7f) << shift;
      shift += 7;
      if ((b & 0x80) === 0) return v >>> 0;
    }
  };
  uleb(); // code alignment
  uleb(); // data alignment (sleb: only skipped)
  if (version === 1) p++;
  else uleb(); // return address register
  if (!aug.startsWith("z")) return 0x00;
  uleb(); // augmentation data's length
  for (const c of aug.slice(1)) {
    if (p >= end) return undefined;
    if (c === "R") return bytes[p];
    if (c === "L") p++;
    else if (c === "P") {
      const penc = bytes[p++];
      const cur = { pos: 0 };
      // the personality pointer's size from its encoding, skipped
      const format = penc & 0x0f;
      cur.pos = format === 0x00 || format === 0x04 || format === 0x0c ? 8 : format === 0x02 || format === 0x0a ? 2 : 4;
      p += cur.pos;
    } else if (c !== "S" && c !== "B") return undefined;
  }
  return 0x00;
}
