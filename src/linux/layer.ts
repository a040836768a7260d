// The host's side of the in-VM system-call layer (guests/linux/layer.zig, docs/linux-guests.md):
// the pages it runs from — the layer's code, its config page — the
// process state it starts with (the block, the table of placed files and their bytes), and the
// call page the host writes before every call (the input's length, the clock, random bytes).
// The layer's pages below LINUX_LOW are the host's (rebuilt, never read, from a snapshot file);
// the state is the program's, in its memory.
import { readFileSync } from "node:fs";
import layerBin from "../../dist/guests/layer.bin" with { type: "file" };
import { LINUX_CONFIG_MAGIC, LinuxCall, LinuxCallFlag, LinuxConfig, LinuxFiles, LinuxLayer } from "../abi/guest-abi.ts";
import { BadImageError } from "../errors.ts";
import { ERR_WINDOW, IN_WINDOW, LOG_ENTRIES, OUT_WINDOW, type LinuxLayout } from "./address-space.ts";
import { initialBlock } from "./block.ts";

const PAGE = 4096;
let blob: Uint8Array | undefined;

/** The layer's code (dist/guests/layer.bin, embedded in the standalone binary), read once. */
export function layerCode(): Uint8Array {
  if (!blob) {
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(readFileSync(layerBin));
    } catch (e) {
      throw new BadImageError(`the in-VM system-call layer is not built (${layerBin}): run npm run build:guests (${e instanceof Error ? e.message : String(e)})`);
    }
    if (bytes.length === 0 || bytes.length > LinuxLayer.CODE_SIZE) throw new BadImageError(`${layerBin} is ${bytes.length} bytes, not a layer of at most ${LinuxLayer.CODE_SIZE}`);
    blob = bytes;
  }
  return blob;
}

/** A served program's connection window: the stdout window's second half (its stdout gets the first). */
export const NET_WINDOW = OUT_WINDOW / 2;

/** The config page: where the layer finds the process's state (host-built from the layout, read-only for the guest). */
export function configPage(layout: LinuxLayout): Uint8Array {
  const page = new Uint8Array(PAGE);
  const dv = new DataView(page.buffer);
  const io = layout.io;
  const r = layout.regions;
  const put = (off: number, v: number | bigint) => dv.setBigUint64(off, BigInt(v), true);
  put(LinuxConfig.MAGIC, LINUX_CONFIG_MAGIC);
  put(LinuxConfig.BLOCK, io.block);
  put(LinuxConfig.CALL, io.call);
  put(LinuxConfig.FILES, io.table);
  put(LinuxConfig.BRK_START, r.brkStart);
  put(LinuxConfig.BRK_END, r.brkEnd);
  put(LinuxConfig.MMAP_START, r.mmapStart);
  put(LinuxConfig.MMAP_END, r.mmapEnd);
  put(LinuxConfig.PAGES, io.pages);
  put(LinuxConfig.IN, io.in);
  put(LinuxConfig.IN_CAP, IN_WINDOW);
  put(LinuxConfig.OUT, io.out);
  // a served program: the stdout window's second half is its connection's
  put(LinuxConfig.OUT_CAP, layout.net ? NET_WINDOW : OUT_WINDOW);
  if (layout.net) {
    put(LinuxConfig.NET_OUT, io.out + NET_WINDOW);
    put(LinuxConfig.NET_OUT_CAP, NET_WINDOW);
  }
  put(LinuxConfig.ERR, io.err);
  put(LinuxConfig.ERR_CAP, ERR_WINDOW);
  put(LinuxConfig.STACK_SIZE, layout.stack[1] - layout.stack[0]);
  put(LinuxConfig.MEM_END, layout.memory);
  put(LinuxConfig.LOG, io.log);
  put(LinuxConfig.LOG_CAP, LOG_ENTRIES);
  put(LinuxConfig.DIRS, layout.dirs ? 1 : 0);
  return page;
}

/** The table of placed files (LinuxFiles): entries, then the paths. */
export function fileTable(layout: LinuxLayout): Uint8Array {
  const io = layout.io;
  const table = new Uint8Array(io.tableBytes);
  const dv = new DataView(table.buffer);
  dv.setBigUint64(LinuxFiles.COUNT, BigInt(io.files.length), true);
  let path = LinuxFiles.ENTRIES + io.files.length * LinuxFiles.ENTRY_SIZE;
  const enc = new TextEncoder();
  io.files.forEach((f, i) => {
    const at = LinuxFiles.ENTRIES + i * LinuxFiles.ENTRY_SIZE;
    const bytes = enc.encode(f.path);
    dv.setBigUint64(at + LinuxFiles.PATH, BigInt(path), true);
    dv.setBigUint64(at + LinuxFiles.PATH_LEN, BigInt(bytes.length), true);
    dv.setBigUint64(at + LinuxFiles.DATA, BigInt(f.addr), true);
    dv.setBigUint64(at + LinuxFiles.DATA_SIZE, BigInt(f.size), true);
    table.set(bytes, path);
    path += bytes.length;
  });
  return table;
}

/** The layer's host pages (rebuilt from the layout whenever a snapshot file is loaded): the code, the config page. */
export function layerHostPieces(layout: LinuxLayout): [number, Uint8Array][] {
  return [
    [LinuxLayer.CODE, layerCode()],
    [LinuxLayer.CONFIG, configPage(layout)],
  ];
}

/** The process's state as a new process starts: the block, the table of placed files, the files' bytes. */
export function processPieces(layout: LinuxLayout, files: ReadonlyMap<string, Uint8Array>): [number, Uint8Array][] {
  const io = layout.io;
  const pieces: [number, Uint8Array][] = [
    [io.block, initialBlock(layout)],
    [io.table, fileTable(layout)],
  ];
  for (const f of io.files) {
    const data = files.get(f.path);
    if (!data || data.length !== f.size) throw new RangeError(`the layout places ${f.path} (${f.size} bytes), which is not among the files given`);
    if (data.length > 0) pieces.push([f.addr, data]);
  }
  return pieces;
}

/** What the host writes into the call page before a call: stdin's window, the clock, random bytes. */
export interface CallStart {
  /** the input's whole length; `window` of its bytes are in the stdin window */
  inTotal: number;
  window: number;
  /** hand every system call to the host */
  forward: boolean;
  /** log every system call the layer answers (a recorded call) */
  log?: boolean;
  /** the grants the layer answers by: the clock, randomness */
  time: boolean;
  random: boolean;
  /** the clock: ns since the epoch at TSC `tsc`, `mult` ns per TSC tick << 32 (0: no clock in the VM) */
  clock?: { tsc: bigint; ns: bigint; mult: bigint };
  /** bytes for getrandom */
  randomBytes?: Uint8Array;
}

/** The call page's bytes for a call (LinuxCall); `dv` a view of `into` made once by a caller that writes it per call. */
export function callPage(start: CallStart, into: Uint8Array, dv: DataView = new DataView(into.buffer, into.byteOffset, LinuxCall.SIZE)): void {
  into.fill(0, 0, LinuxCall.SIZE);
  const flags = (start.forward ? LinuxCallFlag.FORWARD : 0) | (start.time ? LinuxCallFlag.TIME : 0) | (start.random ? LinuxCallFlag.RANDOM : 0) | (start.log ? LinuxCallFlag.LOG : 0);
  // a u64's high half stays zero: lengths and flags are below 2^32
  dv.setUint32(LinuxCall.FLAGS, flags, true);
  dv.setUint32(LinuxCall.IN_LEN, start.window, true);
  dv.setBigUint64(LinuxCall.IN_TOTAL, BigInt(start.inTotal), true);
  if (start.clock) {
    dv.setBigUint64(LinuxCall.TSC_BASE, start.clock.tsc, true);
    dv.setBigUint64(LinuxCall.NS_BASE, start.clock.ns, true);
    dv.setBigUint64(LinuxCall.TSC_MULT, start.clock.mult, true);
  }
  if (start.randomBytes) {
    const n = Math.min(start.randomBytes.length, LinuxCall.RANDOM_CAP);
    into.set(start.randomBytes.subarray(0, n), LinuxCall.RANDOM);
    dv.setUint32(LinuxCall.RANDOM_LEN, n, true);
  }
}
