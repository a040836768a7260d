// Snapshot files: a captured state written once and restored by any number of virtines, in any
// number of processes, each mapping the memory part copy-on-write (docs/snapshot-format.md).
//
//   [0, 8192)          the header (HEADER offsets below), checksummed with CRC-32
//   [8192, +mem_size)  guest memory, page for page; all-zero pages are holes of a sparse file
//
// Writing is atomic: a temporary file beside the target, fsync, rename; the file is left
// read-only (0444), since a restored snapshot is mapped and must not change underneath.
import { closeSync, fstatSync, fsyncSync, ftruncateSync, openSync, readSync, renameSync, rmSync, writeSync, chmodSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import * as libc from "../../ffi/libc.ts";
import { kvm_regs, kvm_sregs, kvm_xsave } from "../../ffi/kvm.ts";
import { BadArgsError, BadSnapshotError } from "../errors.ts";
import { MAX_MEMORY, MIB, MIN_MEMORY } from "../image/image.ts";
import { PAGE_SIZE } from "../memory/guest-memory.ts";
import type { Kvm } from "../kvm/system.ts";
import { VERSION } from "../version.ts";
import { cpuIdentity, missingFeatures, supportedXcr0, type CpuIdentity } from "./cpu.ts";
import { xcr0Of, xcrsOf } from "../kvm/xfeatures.ts";
import { Snapshot, type SnapshotMeta } from "./snapshot.ts";
import { checkXcr0, checkXsave, mxcsrMaskOf, type HostState } from "./file-state.ts";
import { FILE_KINDS, MAX_PROCESS_BYTES, fileKindOfFlags, metaOf } from "./file-kinds.ts";
import { longModeSregs } from "../image/boot.ts";
import { Layout } from "../abi/guest-abi.ts";

export const SNAPSHOT_MAGIC = 0x50414e5350534157n; // "WASPSNAP" little-endian
/**
 * 2: XCR0 at offset 232, a CPL3 guest's CR4.OSXSAVE and its AVX state reset by XRSTOR (version 1
 * files are refused: their trampoline restored SSE alone, and they carry no XCR0).
 */
export const FORMAT_VERSION = 2;
/** Bytes before guest memory: the header, page-aligned so that memory can be mapped directly. */
export const DATA_OFFSET = 8192;

/** The header's fields: byte offsets (little-endian). */
export const HEADER = {
  MAGIC: 0, // u64 "WASPSNAP"
  FORMAT_VERSION: 8, // u32
  HEADER_BYTES: 12, // u32: DATA_OFFSET
  CHECKSUM: 16, // u32: CRC-32 of [0, DATA_OFFSET) with this field zero
  FLAGS: 20, // u32: FLAG_*
  MEM_SIZE: 24, // u64
  DATA_OFFSET: 32, // u64
  POPULATED_PAGES: 40, // u64: pages written (the others are holes, zero)
  IMAGE_END: 48, // u64: the image's end in guest memory (bss included)
  WASP_VERSION: 56, // [16]u8, NUL-padded: the wasp that wrote the file
  IMAGE_NAME: 72, // [24]u8, NUL-padded
  IMAGE_SHA256: 96, // [32]u8: the image file's bytes
  MEMORY_SHA256: 128, // [32]u8: the whole memory part, holes as zeros (checked by --verify)
  CPU_VENDOR: 160, // [12]u8: CPUID leaf 0 (EBX, EDX, ECX)
  CPU_FEATURES: 172, // [7]u32: the guest CPUID's leaf 1 ECX, EDX; leaf 7 EBX, ECX, EDX; 0x80000001 ECX, EDX
  DATA_SIZE: 200, // u64: the data window at the top of RAM (call input and output; 0: none)
  STACK_SIZE: 208, // u64: the stack below the data window, guard pages under it (0: none, an older file); a Linux program's at the top of memory
  PROCESS_BYTES: 216, // u64: a Linux program's process section after the memory part (0: none)
  PROCESS_CRC: 224, // u32: CRC-32 of the process section
  XCR0: 232, // u64: the XCR0 the guest ran with (a CPL3 guest's: the host's choice; 0: XSAVE off / no XCRS)
  REGS: 256, // struct kvm_regs
  SREGS: 400, // struct kvm_sregs
  XSAVE: 1024, // struct kvm_xsave
  MSRS: 5120, // struct kvm_msrs: u32 count, u32 pad, then {u32 index, u32 reserved, u64 data} entries (privileged guests)
} as const;

/** Most model-specific registers a file may carry (the header's room after MSRS). */
const MAX_MSRS = 32;

/** The flags a file of each image kind carries (exactly one: the kind decides privilege; file-kinds.ts). */
export const FLAG_NATIVE = FILE_KINDS.native.flag;
export const FLAG_PRIVILEGED = FILE_KINDS.raw.flag;
export const FLAG_LINUX = FILE_KINDS.linux.flag;

export interface SnapshotFileInfo {
  path: string;
  formatVersion: number;
  waspVersion: string;
  memSize: number;
  populatedPages: number;
  imageName: string;
  imageEnd: number;
  /** bytes of call data at the top of RAM (0: the virtine takes no data) */
  dataSize: number;
  /** bytes of stack below the data window, guard pages under it (0: no guard) */
  stackSize: number;
  /** the image kind it snapshots */
  kind: SnapshotMeta["kind"];
  native: boolean;
  privileged: boolean;
  /** a static Linux program's snapshot: a process section follows the memory */
  linux: boolean;
  /** bytes of the process section (0 for other kinds) */
  processBytes: number;
  /** the XCR0 the guest ran with (0: XSAVE off for a CPL3 guest, or a raw one's KVM had no XCRS) */
  xcr0: number;
  imageSha256: string;
  memorySha256: string;
  cpu: CpuIdentity;
}

/** True if the bytes are the start of a Linux program's snapshot file (its magic, then its kind's flag). */
export function isLinuxSnapshotFile(bytes: Uint8Array): boolean {
  return isSnapshotFile(bytes) && bytes.length >= HEADER.FLAGS + 4 && new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(HEADER.FLAGS, true) === FLAG_LINUX;
}

/** The image name a Linux program's snapshot file gives in its first 96 bytes, or undefined for anything else. */
export function linuxSnapshotImageName(bytes: Uint8Array): string | undefined {
  if (!isLinuxSnapshotFile(bytes) || bytes.length < HEADER.IMAGE_NAME + 24) return undefined;
  return getString(bytes, HEADER.IMAGE_NAME, 24);
}

/** True if the bytes start with the snapshot file magic. */
export function isSnapshotFile(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true) === SNAPSHOT_MAGIC;
}

/**
 * Writes `snapshot` (a captured state) to `path`, atomically. `imageBytes` identifies the image
 * it came from (its SHA-256 goes into the header). A Linux program's snapshot comes with its
 * process section (src/linux/process-file.ts), written after the memory.
 */
export function writeSnapshotFile(path: string, snapshot: Snapshot, imageBytes: Uint8Array | undefined, kvm: Kvm, processSection?: Uint8Array): SnapshotFileInfo {
  const kind = FILE_KINDS[snapshot.meta.kind];
  const flags = kind.flag;
  if (kind.hasSection !== (processSection !== undefined)) throw new RangeError("a Linux program's snapshot, and only it, is written with a process section");
  const memory = snapshot.memory;
  const header = new Uint8Array(DATA_OFFSET);
  const dv = new DataView(header.buffer);
  dv.setBigUint64(HEADER.MAGIC, SNAPSHOT_MAGIC, true);
  dv.setUint32(HEADER.FORMAT_VERSION, FORMAT_VERSION, true);
  dv.setUint32(HEADER.HEADER_BYTES, DATA_OFFSET, true);
  dv.setUint32(HEADER.FLAGS, flags, true);
  dv.setBigUint64(HEADER.MEM_SIZE, BigInt(snapshot.size), true);
  dv.setBigUint64(HEADER.DATA_OFFSET, BigInt(DATA_OFFSET), true);
  dv.setBigUint64(HEADER.IMAGE_END, BigInt(snapshot.meta.footprint), true);
  dv.setBigUint64(HEADER.DATA_SIZE, BigInt(snapshot.meta.dataSize), true);
  dv.setBigUint64(HEADER.STACK_SIZE, BigInt(snapshot.meta.stackSize), true);
  if (processSection) {
    dv.setBigUint64(HEADER.PROCESS_BYTES, BigInt(processSection.length), true);
    dv.setUint32(HEADER.PROCESS_CRC, Bun.hash.crc32(processSection), true);
  }
  putString(header, HEADER.WASP_VERSION, 16, VERSION);
  putString(header, HEADER.IMAGE_NAME, 24, snapshot.meta.name);
  if (imageBytes) header.set(sha256(imageBytes), HEADER.IMAGE_SHA256);
  header.set(sha256(memory), HEADER.MEMORY_SHA256);
  const cpu = cpuIdentity(kvm);
  header.set(new TextEncoder().encode(cpu.vendor).subarray(0, 12), HEADER.CPU_VENDOR); // exactly 12 bytes, no NUL
  cpu.features.forEach((f, i) => dv.setUint32(HEADER.CPU_FEATURES + i * 4, f, true));
  header.set(snapshot.regs, HEADER.REGS);
  header.set(snapshot.sregs, HEADER.SREGS);
  header.set(snapshot.fpu.subarray(0, kvm_xsave.size), HEADER.XSAVE);
  dv.setBigUint64(HEADER.XCR0, snapshot.xcrs ? xcr0Of(snapshot.xcrs) : 0n, true);
  const msrs = kind.msrsToWrite(snapshot);
  if (msrs.length > 8 + MAX_MSRS * 16) throw new BadArgsError(`too many model-specific registers for the header (${msrs.length} bytes)`);
  header.set(msrs, HEADER.MSRS);

  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  let fd: number | undefined;
  let populated = 0;
  try {
    fd = openSync(tmp, "w", 0o644);
    ftruncateSync(fd, DATA_OFFSET + snapshot.size + (processSection?.length ?? 0)); // sparse: pages never written stay holes
    for (let page = 0; page < snapshot.size / PAGE_SIZE; page++) {
      if (!snapshot.populated[page]) continue;
      const at = page * PAGE_SIZE;
      const bytes = memory.subarray(at, at + PAGE_SIZE);
      if (isZero(bytes)) continue;
      writeSync(fd, bytes, 0, PAGE_SIZE, DATA_OFFSET + at);
      populated++;
    }
    if (processSection) writeSync(fd, processSection, 0, processSection.length, DATA_OFFSET + snapshot.size);
    dv.setBigUint64(HEADER.POPULATED_PAGES, BigInt(populated), true);
    dv.setUint32(HEADER.CHECKSUM, Bun.hash.crc32(header), true);
    writeSync(fd, header, 0, DATA_OFFSET, 0);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    chmodSync(tmp, 0o444);
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    throw new BadArgsError(`cannot write the snapshot file ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  return describe(path, header);
}

/**
 * What a thread needs to restore a loaded snapshot file without opening anything: the sealed
 * memfd every thread of the process shares, and the checked header. Structured-clonable, so a
 * worker thread restores exactly what `load` opened, whatever happens to the path afterwards.
 */
export interface LoadedSnapshotFile {
  fd: number;
  info: SnapshotFileInfo;
  header: Uint8Array;
  populated: Uint8Array;
  /** the model-specific registers a reset restores (the file's merged over a fresh vCPU's) */
  msrs: Uint8Array;
  /** a raw image's debug registers: a fresh vCPU's (the file does not carry them) */
  debugregs?: Uint8Array;
  /** XCR0: a raw image's, the file's (a fresh vCPU's if it has none); a CPL3 guest's, this host's */
  xcrs?: Uint8Array;
  /** a Linux program's process section (checked against its executable; src/linux/process-file.ts) */
  process?: Uint8Array;
}

/**
 * An open, validated snapshot file. Its memory is copied at open into a sealed memfd (nobody can
 * write, shrink or grow it again): no later change to the file — truncation, a rewrite in place, a
 * rename over it — can reach a virtine restored from it, or crash the process (a truncated file
 * mapped directly raises SIGBUS at the next touch). Every virtine and thread of the process shares
 * the memfd's pages; close the file when no virtine restored from it runs any more.
 */
export class SnapshotFile {
  readonly info: SnapshotFileInfo;
  readonly #loaded: LoadedSnapshotFile;
  /** false for a view of another thread's file (`SnapshotFile.adopt`): the memfd is not ours */
  readonly #owns: boolean;
  #closed = false;

  /** Opens and validates `path` (see `validate` and file-state.ts for every check); `kvm` gives this host's state. */
  constructor(path: string, kvm: Kvm);
  constructor(loaded: LoadedSnapshotFile);
  constructor(source: string | LoadedSnapshotFile, kvm?: Kvm) {
    if (typeof source !== "string") {
      this.#loaded = source;
      this.info = source.info;
      this.#owns = false;
      return;
    }
    if (!kvm) throw new BadArgsError("a snapshot file is opened with a KVM handle");
    this.#loaded = loadSnapshotFile(source, hostState(kvm), cpuIdentity(kvm));
    this.info = this.#loaded.info;
    this.#owns = true;
  }

  /** What another thread of this process needs to restore the same snapshot (valid while this file is open). */
  get loaded(): LoadedSnapshotFile {
    return this.#loaded;
  }

  /** A snapshot of the file's state for a virtine (`new Runner(file.restore())`); close it if the virtine is not made. */
  restore(): Snapshot {
    if (this.#closed) throw new BadSnapshotError(`${this.info.path}: the snapshot file is closed`);
    const { fd, header: h, info, populated, msrs, debugregs, xcrs } = this.#loaded;
    return Snapshot.fromFile(fd, 0, {
      populated,
      size: info.memSize,
      meta: restoredMeta(info),
      privileged: info.privileged,
      regs: h.slice(HEADER.REGS, HEADER.REGS + kvm_regs.size),
      sregs: h.slice(HEADER.SREGS, HEADER.SREGS + kvm_sregs.size),
      fpu: h.slice(HEADER.XSAVE, HEADER.XSAVE + kvm_xsave.size),
      msrs,
      debugregs,
      xcrs,
    });
  }

  /**
   * Checks the memory (as loaded: what virtines run) against the header's SHA-256. A Linux
   * program's host pages are rebuilt at load, not copied: for it the file's own memory part is
   * checked (read again from the path).
   */
  verify(): void {
    const { fd, info } = this.#loaded;
    let source = fd;
    let base = 0;
    if (FILE_KINDS[info.kind].verifiesFile) {
      try {
        source = openSync(info.path, "r");
      } catch (e) {
        throw new BadSnapshotError(`${info.path}: cannot open the snapshot file (${e instanceof Error ? e.message : String(e)})`);
      }
      base = DATA_OFFSET;
    }
    const hasher = new Bun.CryptoHasher("sha256");
    const chunk = new Uint8Array(1 << 20);
    try {
      for (let off = 0; off < info.memSize; off += chunk.length) {
        const n = Math.min(chunk.length, info.memSize - off);
        const got = readSync(source, chunk, 0, n, base + off);
        if (got !== n) throw new BadSnapshotError(`${info.path}: the memory part is truncated at byte ${off + got}`);
        hasher.update(chunk.subarray(0, n));
      }
    } finally {
      if (source !== fd) closeSync(source);
    }
    const digest = Buffer.from(hasher.digest()).toString("hex");
    if (digest !== info.memorySha256) {
      throw new BadSnapshotError(`${info.path}: the memory part does not match the header's checksum (sha256 ${digest}, expected ${info.memorySha256})`);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#owns) libc.close(this.#loaded.fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** Bytes read from the file at a time while it is copied into the memfd. */
const COPY_CHUNK = 1 << 20;

/**
 * Opens `path`, checks its header against `host` (what this host would have written,
 * file-state.ts) and `cpu`, copies its stored pages into a new memfd, checks the host pages there,
 * and seals the memfd. The file is closed before returning.
 */
export function loadSnapshotFile(path: string, host: HostState, cpu: CpuIdentity): LoadedSnapshotFile {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new BadSnapshotError(`${path}: cannot open the snapshot file (${e instanceof Error ? e.message : String(e)})`);
  }
  let memfd = -1;
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new BadSnapshotError(`${path}: not a regular file`);
    const header = new Uint8Array(DATA_OFFSET);
    const got = st.size >= DATA_OFFSET ? readSync(fd, header, 0, DATA_OFFSET, 0) : 0;
    const { info, msrs } = validate(path, header, got, st.size, cpu, host);
    const kind = FILE_KINDS[info.kind];
    const bad = (why: string): never => {
      throw new BadSnapshotError(`${path}: ${why}`);
    };
    // the kind's own section (a Linux program's process section): read and checked before any memory
    const crc = new DataView(header.buffer, header.byteOffset).getUint32(HEADER.PROCESS_CRC, true);
    const section = kind.readSection?.(info, fd, DATA_OFFSET + info.memSize, crc, bad);
    memfd = libc.memfdCreate(`wasp-snapshot:${basename(path)}`, libc.MFD_CLOEXEC | libc.MFD_ALLOW_SEALING);
    libc.ftruncate(memfd, info.memSize);
    const populated = new Uint8Array(info.memSize / PAGE_SIZE);
    const chunk = new Uint8Array(COPY_CHUNK);
    for (const [start, end] of libc.dataRanges(fd, DATA_OFFSET, DATA_OFFSET + info.memSize)) {
      for (let at = start; at < end; ) {
        const n = Math.min(COPY_CHUNK, end - at);
        const read = readSync(fd, chunk, 0, n, at);
        if (read !== n) throw new BadSnapshotError(`${path}: the file changed while it was read (short read at byte ${at + read})`);
        copyNonZeroPages(chunk.subarray(0, n), memfd, at - DATA_OFFSET, populated, kind.hostBelow);
        at += n;
      }
    }
    kind.finishMemory(info, memfd, populated, section, host, bad);
    libc.addSeals(memfd, libc.F_SEAL_WRITE | libc.F_SEAL_SHRINK | libc.F_SEAL_GROW | libc.F_SEAL_SEAL);
    const privileged = info.privileged ? host.privileged() : undefined;
    const xcrs = privileged ? (info.xcr0 !== 0 && privileged.xcrs ? xcrsOf(BigInt(info.xcr0)) : privileged.xcrs) : host.userXcr0 !== 0n ? xcrsOf(host.userXcr0) : undefined;
    return { fd: memfd, info, header, populated, msrs, debugregs: privileged?.debugregs, xcrs, process: section?.bytes };
  } catch (e) {
    if (memfd >= 0) libc.close(memfd);
    throw e;
  } finally {
    closeSync(fd);
  }
}

/** What this host would have written into a snapshot file, to hold a file to (cached per KVM handle). */
function hostState(kvm: Kvm): HostState {
  let s = hostStates.get(kvm);
  if (!s) {
    const reset = kvm.vcpuResetState();
    s = {
      longModeSregs: longModeSregs(reset.sregs, kvm.userXcr0 !== 0n),
      resetMsrs: reset.msrs,
      privileged: () => kvm.privilegedResetState(),
      supportedXcr0: supportedXcr0(kvm),
      userXcr0: kvm.userXcr0,
      mxcsrMask: mxcsrMaskOf(reset.fpu),
    };
    hostStates.set(kvm, s);
  }
  return s;
}
const hostStates = new WeakMap<Kvm, HostState>();

/** What a restored snapshot knows of its image, from a checked header. */
function restoredMeta(info: SnapshotFileInfo): SnapshotMeta {
  return metaOf(FILE_KINDS[info.kind], info);
}

/**
 * Writes the pages of `bytes` (file data for guest-physical `gpa`, page-aligned) into the memfd,
 * but not the pages that are all zero: the memfd reads as zero there already, and an unwritten
 * page costs no memory. This also keeps the holes of a file system that reports none (9p, some
 * NFS: SEEK_DATA sees one extent). Marks each written page populated.
 */
function copyNonZeroPages(bytes: Uint8Array, memfd: number, gpa: number, populated: Uint8Array, hostBelow = 0): void {
  if (gpa < hostBelow) {
    // a Linux program's host pages are the host's to write: of the file's, only the trampoline page
    const skip = Math.min(bytes.length, hostBelow - gpa);
    const tramp = Layout.TRAMPOLINE - gpa;
    if (tramp >= 0 && tramp + PAGE_SIZE <= skip) copyNonZeroPages(bytes.subarray(tramp, tramp + PAGE_SIZE), memfd, Layout.TRAMPOLINE, populated);
    if (skip < bytes.length) copyNonZeroPages(bytes.subarray(skip), memfd, gpa + skip, populated);
    return;
  }
  if (gpa % PAGE_SIZE !== 0 || bytes.byteOffset % 8 !== 0) {
    // an extent that does not start on a page (a file system with smaller blocks): copied whole
    libc.pwrite(memfd, bytes, gpa);
    populated.fill(1, Math.floor(gpa / PAGE_SIZE), Math.ceil((gpa + bytes.length) / PAGE_SIZE));
    return;
  }
  const words = new BigUint64Array(bytes.buffer, bytes.byteOffset, Math.floor(bytes.length / 8));
  const perPage = PAGE_SIZE / 8;
  const pages = Math.ceil(bytes.length / PAGE_SIZE);
  let run = -1; // first page of the current run of non-zero pages
  for (let p = 0; p <= pages; p++) {
    let zero = true;
    if (p < pages) {
      const end = Math.min((p + 1) * perPage, words.length);
      for (let w = p * perPage; w < end; w++) {
        if (words[w] !== 0n) {
          zero = false;
          break;
        }
      }
      for (let b = words.length * 8; zero && b < Math.min((p + 1) * PAGE_SIZE, bytes.length); b++) if (bytes[b] !== 0) zero = false;
    }
    if (!zero && run < 0) run = p;
    if (zero && run >= 0) {
      libc.pwrite(memfd, bytes.subarray(run * PAGE_SIZE, Math.min(p * PAGE_SIZE, bytes.length)), gpa + run * PAGE_SIZE);
      populated.fill(1, gpa / PAGE_SIZE + run, gpa / PAGE_SIZE + p);
      run = -1;
    }
  }
}

export function validate(path: string, header: Uint8Array, got: number, fileSize: number, cpu: CpuIdentity, host: HostState): { info: SnapshotFileInfo; msrs: Uint8Array } {
  const bad = (why: string): never => {
    throw new BadSnapshotError(`${path}: ${why}`);
  };
  if (got < DATA_OFFSET) bad(`truncated: the file is ${fileSize} bytes, shorter than the ${DATA_OFFSET}-byte header`);
  const dv = new DataView(header.buffer, header.byteOffset, header.byteLength);
  if (dv.getBigUint64(HEADER.MAGIC, true) !== SNAPSHOT_MAGIC) bad("not a wasp snapshot file (wrong magic)");
  const version = dv.getUint32(HEADER.FORMAT_VERSION, true);
  const writer = getString(header, HEADER.WASP_VERSION, 16);
  if (version > FORMAT_VERSION) bad(`format version ${version} is newer than this wasp reads (${FORMAT_VERSION}); it was written by wasp ${writer || "(unknown)"}`);
  if (version < 1) bad(`format version ${version} is not a valid version`);
  if (version < FORMAT_VERSION) {
    bad(`format version ${version} (written by wasp ${writer || "(unknown)"}) predates the XCR0 and AVX state snapshots carry since version ${FORMAT_VERSION}: write the snapshot again with this wasp (wasp snapshot)`);
  }
  const stored = dv.getUint32(HEADER.CHECKSUM, true);
  const copy = header.slice();
  new DataView(copy.buffer).setUint32(HEADER.CHECKSUM, 0, true);
  const actual = Bun.hash.crc32(copy);
  if (stored !== actual) bad(`header checksum mismatch (stored 0x${stored.toString(16)}, computed 0x${actual.toString(16)}): the file is corrupt`);
  if (dv.getUint32(HEADER.HEADER_BYTES, true) !== DATA_OFFSET || dv.getBigUint64(HEADER.DATA_OFFSET, true) !== BigInt(DATA_OFFSET)) {
    bad(`unexpected header size or data offset (this wasp writes ${DATA_OFFSET})`);
  }
  const flags = dv.getUint32(HEADER.FLAGS, true);
  // The image kind decides privilege: a native image and a Linux program run at CPL3, a raw one owns its machine.
  const kind = fileKindOfFlags(flags);
  if (!kind) {
    const kinds = Object.values(FILE_KINDS).map((k) => `${k.named} (0x${k.flag.toString(16)})`);
    bad(`flags 0x${flags.toString(16)} are neither ${kinds.slice(0, -1).join(", ")} nor ${kinds[kinds.length - 1]}`);
  }
  const processBytes = dv.getBigUint64(HEADER.PROCESS_BYTES, true);
  if (kind!.hasSection ? processBytes === 0n || processBytes > BigInt(MAX_PROCESS_BYTES) : processBytes !== 0n || dv.getUint32(HEADER.PROCESS_CRC, true) !== 0) {
    bad(kind!.hasSection ? `${kind!.named} process section of ${processBytes} bytes is not between 1 and ${MAX_PROCESS_BYTES}` : "only a Linux program's snapshot has a process section");
  }
  const memSize = dv.getBigUint64(HEADER.MEM_SIZE, true);
  if (memSize > BigInt(MAX_MEMORY)) bad(`memory size ${memSize} bytes is above the cap of ${MAX_MEMORY / MIB} MiB`);
  if (memSize < BigInt(MIN_MEMORY) || memSize % BigInt(PAGE_SIZE) !== 0n) bad(`memory size ${memSize} bytes is not a valid guest memory size`);
  if (BigInt(fileSize) !== BigInt(DATA_OFFSET) + memSize + processBytes) bad(`truncated: the file is ${fileSize} bytes, the header says ${BigInt(DATA_OFFSET) + memSize + processBytes}`);
  for (const [field, at] of [["image end", HEADER.IMAGE_END], ["data window", HEADER.DATA_SIZE], ["stack", HEADER.STACK_SIZE], ["stored page count", HEADER.POPULATED_PAGES]] as const) {
    if (dv.getBigUint64(at, true) > memSize) bad(`${field} ${dv.getBigUint64(at, true)} is beyond the memory`);
  }
  const info = describe(path, header);
  if (info.cpu.vendor !== cpu.vendor) bad(`written on a ${info.cpu.vendor} CPU; this one is ${cpu.vendor}`);
  const missing = missingFeatures(info.cpu, cpu);
  if (missing) bad(`written on a CPU with features this one lacks (${missing})`);
  if (info.imageEnd > info.memSize) bad(`image end 0x${info.imageEnd.toString(16)} lies beyond the memory`);
  if (info.dataSize % PAGE_SIZE !== 0 || info.dataSize > info.memSize - info.imageEnd) bad(`data window of ${info.dataSize} bytes does not fit above the image`);
  if (info.stackSize % PAGE_SIZE !== 0 || info.stackSize > info.memSize - info.imageEnd - info.dataSize) bad(`stack of ${info.stackSize} bytes does not fit between the image and the data window`);
  kind!.checkLayout(info, bad);
  const count = dv.getUint32(HEADER.MSRS, true);
  if (count > MAX_MSRS) bad(`${count} model-specific registers recorded, at most ${MAX_MSRS} fit`);
  if (dv.getUint32(HEADER.MSRS + 4, true) !== 0) bad("the model-specific register list's padding is not zero");
  const xsave = checkXsave(header.subarray(HEADER.XSAVE, HEADER.XSAVE + kvm_xsave.size), host);
  if (xsave) bad(xsave);
  const xcr0 = checkXcr0(dv.getBigUint64(HEADER.XCR0, true), header.subarray(HEADER.XSAVE, HEADER.XSAVE + kvm_xsave.size), !kind!.privileged, host);
  if (xcr0) bad(xcr0);
  const msrs = kind!.checkState(header, HEADER, host, count, bad);
  return { info, msrs };
}

function describe(path: string, header: Uint8Array): SnapshotFileInfo {
  const dv = new DataView(header.buffer);
  const flags = dv.getUint32(HEADER.FLAGS, true);
  const hex = (at: number) => Buffer.from(header.subarray(at, at + 32)).toString("hex");
  return {
    path,
    formatVersion: dv.getUint32(HEADER.FORMAT_VERSION, true),
    waspVersion: getString(header, HEADER.WASP_VERSION, 16),
    memSize: Number(dv.getBigUint64(HEADER.MEM_SIZE, true)),
    populatedPages: Number(dv.getBigUint64(HEADER.POPULATED_PAGES, true)),
    imageName: getString(header, HEADER.IMAGE_NAME, 24),
    imageEnd: Number(dv.getBigUint64(HEADER.IMAGE_END, true)),
    dataSize: Number(dv.getBigUint64(HEADER.DATA_SIZE, true)),
    stackSize: Number(dv.getBigUint64(HEADER.STACK_SIZE, true)),
    kind: fileKindOfFlags(flags)?.kind ?? "raw", // (a header is described once its flags are checked)
    native: (flags & FLAG_NATIVE) !== 0,
    privileged: (flags & FLAG_PRIVILEGED) !== 0,
    linux: (flags & FLAG_LINUX) !== 0,
    processBytes: Number(dv.getBigUint64(HEADER.PROCESS_BYTES, true)),
    // at most 64 bits; the valid ones (checked in validate) are far below 2^53
    xcr0: Number(dv.getBigUint64(HEADER.XCR0, true)),
    imageSha256: hex(HEADER.IMAGE_SHA256),
    memorySha256: hex(HEADER.MEMORY_SHA256),
    cpu: {
      vendor: getString(header, HEADER.CPU_VENDOR, 12),
      features: Array.from({ length: 7 }, (_, i) => dv.getUint32(HEADER.CPU_FEATURES + i * 4, true)),
    },
  };
}

function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(new Bun.CryptoHasher("sha256").update(bytes).digest());
}

/** A NUL-padded string field of `len` bytes (at most len - 1 characters, so a NUL always ends it). */
function putString(buf: Uint8Array, at: number, len: number, s: string): void {
  buf.set(new TextEncoder().encode(s).subarray(0, len - 1), at);
}

function getString(buf: Uint8Array, at: number, len: number): string {
  const b = buf.subarray(at, at + len);
  const nul = b.indexOf(0);
  return new TextDecoder().decode(b.subarray(0, nul < 0 ? len : nul)).replace(/[^\x20-\x7e]/g, "?");
}

function isZero(page: Uint8Array): boolean {
  const words = new BigUint64Array(page.buffer, page.byteOffset, page.byteLength / 8);
  for (let i = 0; i < words.length; i++) if (words[i] !== 0n) return false;
  return true;
}
