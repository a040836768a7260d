// Static Linux executables (issue 13): entered at CPL3 through the same trampoline as native
// guests, on page tables that give each page its program header's permissions (src/linux/). The
// entry state holds everything but the initial stack — a call writes its own (arguments,
// environment, AT_RANDOM) — and sets the MSRs that send `syscall` to the host's CPL0 entry, which
// the guest cannot change: every new shell loads them once. A call's input is its fd 0 and its
// output its fd 1, answered by the host as system calls (src/linux/process.ts): no data window.
import { BadArgsError } from "../errors.ts";
import { MAX_MEMORY, MIB, type Image } from "../image/image.ts";
import { linuxAccessRules, planLinux, type FileSpec, type LinuxLayout } from "../linux/address-space.ts";
import { parseElf, type ElfExecutable } from "../linux/elf.ts";
import { linuxBaseState } from "../linux/start.ts";
import type { ImageKind } from "./kind.ts";

/** A Linux program's memory when none is given: libc and malloc want more room than a native guest. */
export const DEFAULT_LINUX_MEMORY = 64 * MIB;
/** A dynamically linked program's: its libraries are placed whole, and mapped again by its interpreter (untouched pages cost nothing). */
export const DEFAULT_DYNAMIC_MEMORY = 256 * MIB;

const EMPTY: Uint8Array = new Uint8Array(0);

/** The image of a parsed static executable, with the read-only files granted to it (placed in its memory). */
export function linuxImage(elf: ElfExecutable, files: ReadonlyMap<string, Uint8Array> = new Map(), interp?: ElfExecutable, dirs = false, net = false): Image {
  return { kind: "linux", name: elf.name, bytes: elf.bytes, loadAddr: 0, end: elf.high + (elf.pie ? 0x400000 : 0), files, ...(interp && { interp: interp.bytes }), ...(dirs && { dirs }), ...(net && { net }) };
}

/** The granted files of a Linux image, as the plan sees them (path and size, in grant order). */
export function fileSpecs(files: ReadonlyMap<string, Uint8Array> | undefined): FileSpec[] {
  return [...(files ?? new Map<string, Uint8Array>())].map(([path, data]) => ({ path, size: data.length }));
}

/** The executable of a Linux image (parsed again from its bytes: checked when the image was made). */
export function elfOf(image: Image): ElfExecutable {
  if (image.kind !== "linux") throw new RangeError(`${image.name} is not a Linux executable`);
  return parseElf(image.bytes, image.name, MAX_MEMORY);
}

/** A dynamically linked program's interpreter, from its image (parsed again: checked when the image was made). */
export function interpOf(image: Image): ElfExecutable | undefined {
  if (image.kind !== "linux" || !image.interp) return undefined;
  return parseElf(image.interp, "interpreter", MAX_MEMORY);
}

/** Guest memory for a Linux program: whole pages, at most MAX_MEMORY (default 64 MiB; 256 MiB for a dynamically linked one). */
export function linuxMemory(memory: number | undefined, dynamic = false): number {
  const m = memory ?? (dynamic ? DEFAULT_DYNAMIC_MEMORY : DEFAULT_LINUX_MEMORY);
  if (!Number.isSafeInteger(m) || m % 4096 !== 0 || m <= 0 || m > MAX_MEMORY) {
    throw new BadArgsError(`memory size ${m} is not a multiple of 4 KiB up to ${MAX_MEMORY / MIB} MiB`);
  }
  return m;
}

/** Where everything of `image` goes in `memory` bytes with a stack of `stackSize` (0 or undefined: the default). */
export function linuxLayoutOf(image: Image, memory: number, stackSize: number | undefined): LinuxLayout {
  return planLinux(elfOf(image), memory, stackSize || undefined, fileSpecs(image.kind === "linux" ? image.files : undefined), interpOf(image), image.kind === "linux" && image.dirs === true, image.kind === "linux" && image.net === true);
}

export const LINUX: ImageKind = {
  name: "linux",
  privileged: false,
  shellMsrs: true,
  // through its own page tables (which it cannot reach), never below LINUX_LOW
  access: linuxAccessRules(),
  takesData: false,
  readsFiles: true,
  plan(image, memory, dataSize, stackSize) {
    if (dataSize) throw new BadArgsError(`${image.name} is a Linux program: its input is fd 0, it has no data window`);
    const m = linuxMemory(memory, image.kind === "linux" && image.interp !== undefined);
    const layout = linuxLayoutOf(image, m, stackSize);
    return { memory: m, dataSize: 0, stackSize: layout.stack[1] - layout.stack[0] };
  },
  entryState(image, size, plan, reset) {
    const elf = elfOf(image);
    const files = image.kind === "linux" ? (image.files ?? new Map()) : new Map<string, Uint8Array>();
    const state = linuxBaseState(elf, planLinux(elf, size, plan.stackSize || undefined, fileSpecs(files), interpOf(image), image.kind === "linux" && image.dirs === true, image.kind === "linux" && image.net === true), reset, files);
    return { ...state, populated: state.pieces.map(([at, bytes]) => [at, bytes.length]) };
  },
  collect() {
    // its output went to the host at every write(2)
    return EMPTY;
  },
};
