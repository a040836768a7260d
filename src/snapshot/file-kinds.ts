// What a snapshot file holds for each image kind, beyond the format every file shares (file.ts):
// the flag that names the kind, the model-specific registers it carries, the header's checks only
// that kind has, its own section after the memory (a Linux program's process section), which of
// its pages are the host's (not copied from the file but checked or rebuilt), and where its
// memory's checksum is read from. file.ts owns the format and calls these; a new kind is a row
// here, not a branch there.
import { readSync } from "node:fs";
import * as libc from "../../ffi/libc.ts";
import { kvm_sregs } from "../../ffi/kvm.ts";
import { BadSnapshotError } from "../errors.ts";
import { MAX_MEMORY, MIB } from "../image/image.ts";
import { PAGE_SIZE } from "../memory/guest-memory.ts";
import { Layout } from "../abi/guest-abi.ts";
import { GUEST_WRITABLE_MSRS } from "../kvm/system.ts";
import { msrBuffer, msrValues, selectMsrs } from "../kvm/msrs.ts";
import { checkProtections, LINUX_LOW, planLinux, type LinuxLayout, type ProtectionRun } from "../linux/address-space.ts";
import { parseElf, type ElfExecutable } from "../linux/elf.ts";
import { linuxSyscallMsrs } from "../linux/entry.ts";
import { decodeProcessFile } from "../linux/process-file.ts";
import { linuxHostPieces } from "../linux/start.ts";
import { checkHostPages, checkLinuxSregs, checkNativeSregs, checkTrampoline, mergeMsrs, type HostState } from "./file-state.ts";
import { guardOf, type Snapshot, type SnapshotMeta } from "./snapshot.ts";

/** The header's fields a kind reads (file.ts's HEADER). */
export interface KindHeader {
  readonly SREGS: number;
  readonly MSRS: number;
  readonly PROCESS_CRC: number;
}

/** What a kind's checks read of the header, already checked by file.ts. */
export interface KindInfo {
  path: string;
  memSize: number;
  imageName: string;
  imageEnd: number;
  dataSize: number;
  stackSize: number;
  processBytes: number;
}

/** A kind's own section, read and checked at load (a Linux program's process section). */
export interface KindSection {
  /** its bytes, as the loaded file keeps them */
  bytes: Uint8Array;
  elf: ElfExecutable;
  layout: LinuxLayout;
  /** the protections the program set on its pages (checked against the layout) */
  protections: ProtectionRun[];
}

export interface FileKind {
  readonly kind: SnapshotMeta["kind"];
  /** the header's FLAGS of a file of this kind (exactly one: the kind decides privilege) */
  readonly flag: number;
  /** "a native image's": how an error names a file of this kind */
  readonly named: string;
  readonly native: boolean;
  readonly privileged: boolean;
  /** whether a section of its own follows the memory */
  readonly hasSection: boolean;
  /** the model-specific registers its file carries */
  msrsToWrite(snapshot: Snapshot): Uint8Array;
  /** the header's checks of where things are that only this kind has (each failure through `bad`) */
  checkLayout(info: KindInfo, bad: (why: string) => never): void;
  /** the header's checks of the vCPU's state that only this kind has; the MSRs a reset restores */
  checkState(header: Uint8Array, at: KindHeader, host: HostState, msrCount: number, bad: (why: string) => never): Uint8Array;
  /** its section, read from the open file at `offset` and checked, before any memory is copied */
  readSection?(info: KindInfo, fd: number, offset: number, crc: number, bad: (why: string) => never): KindSection;
  /** below this guest address, the file's pages are the host's: not copied (but the trampoline's) */
  readonly hostBelow: number;
  /** after the memory is in the memfd: the host's pages there checked, or rebuilt from the section; the trampoline's code checked */
  finishMemory(info: KindInfo, memfd: number, populated: Uint8Array, section: KindSection | undefined, host: HostState, bad: (why: string) => never): void;
  /** its memory's checksum is of the file's own memory part (the loaded copy's host pages are rebuilt) */
  readonly verifiesFile: boolean;
}

/** Most bytes of a process section: the executable (at most the memory) and the process's state. */
export const MAX_PROCESS_BYTES = MAX_MEMORY + 16 * MIB;

const SREGS_SIZE = kvm_sregs.size;
const sregsOf = (header: Uint8Array, at: KindHeader) => header.subarray(at.SREGS, at.SREGS + SREGS_SIZE);
const msrListOf = (header: Uint8Array, at: KindHeader, count: number) => header.subarray(at.MSRS, at.MSRS + 8 + count * 16);

/** The meta a restored snapshot of this kind knows of its image. */
export function metaOf(kind: FileKind, info: KindInfo): SnapshotMeta {
  return { name: info.imageName, kind: kind.kind, footprint: info.imageEnd, dataSize: info.dataSize, stackSize: info.stackSize };
}

const NATIVE: FileKind = {
  kind: "native",
  flag: 1,
  named: "a native image's",
  native: true,
  privileged: false,
  hasSection: false,
  msrsToWrite: (s) => selectMsrs(s.msrs, GUEST_WRITABLE_MSRS),
  checkLayout(info, bad) {
    if (info.stackSize > 0) {
      const guard = guardOf(metaOf(NATIVE, info), info.memSize);
      if (!guard || guard.start < Math.ceil(info.imageEnd / PAGE_SIZE) * PAGE_SIZE) bad(`the stack's guard pages would overlap the image`);
    }
    if (info.imageEnd < Layout.HOST_END) bad(`image end 0x${info.imageEnd.toString(16)} lies inside the host's pages`);
  },
  checkState(header, at, host, count, bad) {
    const msrs = mergeMsrs(msrListOf(header, at, count), count, host.resetMsrs);
    if (typeof msrs === "string") bad(msrs);
    const sregs = checkNativeSregs(sregsOf(header, at), host);
    if (sregs) bad(`a native image's snapshot must run at CPL3 on the host's tables: ${sregs}`);
    return msrs as Uint8Array;
  },
  hostBelow: 0,
  finishMemory(info, memfd, _populated, _section, host, bad) {
    // the host pages as they will run: read back from the memfd, not trusted from the header
    const pages = new Uint8Array(Layout.HOST_END);
    readSync(memfd, pages, 0, pages.length, 0);
    const why = checkHostPages(pages, guardOf(metaOf(NATIVE, info), info.memSize)) ?? checkTrampoline(pages.subarray(Layout.TRAMPOLINE, Layout.TRAMPOLINE + PAGE_SIZE), host);
    if (why) bad(why);
  },
  verifiesFile: false,
};

const RAW: FileKind = {
  kind: "raw",
  flag: 2,
  named: "a raw image's",
  native: false,
  privileged: true,
  hasSection: false,
  // the registers a file carries; a raw guest's others start as a fresh vCPU's when it is restored
  msrsToWrite: (s) => selectMsrs(s.msrs, GUEST_WRITABLE_MSRS),
  checkLayout(info, bad) {
    if (info.dataSize > 0) bad("a raw image's snapshot cannot have a data window");
    if (info.stackSize > 0) bad("a raw image's snapshot cannot have a host-made stack");
  },
  checkState(header, at, host, count, bad) {
    const msrs = mergeMsrs(msrListOf(header, at, count), count, host.privileged().msrs);
    if (typeof msrs === "string") bad(msrs);
    return msrs as Uint8Array;
  },
  hostBelow: 0,
  finishMemory() {},
  verifiesFile: false,
};

const LINUX: FileKind = {
  kind: "linux",
  flag: 4,
  named: "a Linux program's",
  native: false,
  privileged: false,
  hasSection: true,
  // a Linux guest's (SYSCALL's entry) are the host's own, never read from a file
  msrsToWrite: () => msrBuffer([]),
  checkLayout(info, bad) {
    if (info.dataSize > 0) bad("a Linux program's snapshot cannot have a data window");
    if (info.stackSize === 0 || info.imageEnd < LINUX_LOW) bad("a Linux program's snapshot needs its stack size and an image above the host's pages");
  },
  checkState(header, at, host, count, bad) {
    if (count !== 0) bad("a Linux program's snapshot lists model-specific registers (its are the host's own)");
    const sregs = checkLinuxSregs(sregsOf(header, at), host);
    if (sregs) bad(`a Linux program's snapshot must run at CPL3 on the host's tables: ${sregs}`);
    return msrValues(linuxSyscallMsrs());
  },
  /**
   * The process section, read from the open file and checked: its CRC, its encoding, its
   * executable (parsed as any executable is, and placed in the snapshot's memory as the header
   * says), and its state against that layout.
   */
  readSection(info, fd, offset, crc, bad) {
    const bytes = new Uint8Array(info.processBytes);
    if (readSync(fd, bytes, 0, bytes.length, offset) !== bytes.length) bad("the process section is cut short");
    if (Bun.hash.crc32(bytes) !== crc) bad("the process section's checksum does not match: the file is corrupt");
    let decoded;
    try {
      decoded = decodeProcessFile(bytes);
    } catch (e) {
      return bad(e instanceof Error ? e.message : String(e));
    }
    let elf: ElfExecutable;
    let layout: LinuxLayout;
    try {
      elf = parseElf(decoded.elf, info.imageName, MAX_MEMORY);
      const interp = decoded.interp && parseElf(decoded.interp, "interpreter", MAX_MEMORY);
      // granted directories (their guest paths) decide the layer's configuration rebuilt below
      layout = planLinux(elf, info.memSize, info.stackSize, decoded.files, interp, decoded.dirs.length > 0);
    } catch (e) {
      return bad(`its executable: ${e instanceof Error ? e.message : String(e)}`);
    }
    // the image's end is the executable's own (a dynamically linked program's interpreter lies above it)
    const exeEnd = elf.high + layout.bias;
    if (exeEnd !== info.imageEnd) bad(`image end 0x${info.imageEnd.toString(16)} is not where its executable ends (0x${exeEnd.toString(16)})`);
    // the protections the program set, only ever on its own pages: the restore's tables give them
    const why = checkProtections(layout, decoded.protections);
    if (why) bad(why);
    return { bytes, elf, layout, protections: decoded.protections };
  },
  hostBelow: LINUX_LOW,
  finishMemory(_info, memfd, populated, section, host, bad) {
    // the host's pages as the host builds them for this executable: whatever the file held below
    // LINUX_LOW was not copied (but the trampoline, the guest's own CPL3 code)
    if (!section) throw new BadSnapshotError("a Linux program's snapshot without its process section");
    for (const [at, bytes] of linuxHostPieces(section.elf, section.layout, section.protections)) {
      libc.pwrite(memfd, bytes, at);
      populated.fill(1, Math.floor(at / PAGE_SIZE), Math.ceil((at + bytes.length) / PAGE_SIZE));
    }
    const trampoline = new Uint8Array(PAGE_SIZE);
    readSync(memfd, trampoline, 0, PAGE_SIZE, Layout.TRAMPOLINE);
    const why = checkTrampoline(trampoline, host);
    if (why) bad(why);
  },
  verifiesFile: true,
};

/** Each kind's file, by the image kind it snapshots. */
export const FILE_KINDS: Readonly<Record<SnapshotMeta["kind"], FileKind>> = { native: NATIVE, raw: RAW, linux: LINUX };

/** The kind a header's FLAGS name, or undefined for flags no kind has. */
export function fileKindOfFlags(flags: number): FileKind | undefined {
  return Object.values(FILE_KINDS).find((k) => k.flag === flags);
}
