// What one kind of image does differently from another: how its memory is planned, the state it
// starts in, what the host may touch for it, whether it owns its whole machine, and what a call
// gives back besides RAX. Each kind is a module of this folder (native.ts, raw.ts); adding a kind
// is a module and a line in kindOf, not a branch in the runner, the snapshot and the shell.
import { DEFAULT_MEMORY, MIB, checkMemorySize, imageFootprint, type Image } from "../image/image.ts";
import type { EntryReset } from "../image/boot.ts";
import { BadImageError } from "../errors.ts";
import type { AccessRules, GuestAccess } from "../memory/guest-access.ts";
import type { GuestMemory } from "../memory/guest-memory.ts";
import type { ConsoleSink } from "../hypercall/console.ts";

/** A virtine's memory: its size, the data window at its top, the stack below it. */
export interface MemoryPlan {
  memory: number;
  /** bytes at the top of RAM for a call's input and output (0: the kind takes no data) */
  dataSize: number;
  /** bytes of stack below the window, guard pages under it (0: the kind sets up its own) */
  stackSize: number;
}

/** The state an image is entered in (its bytes are added by the snapshot). */
export interface EntryState {
  /** (guest address, bytes) to write into memory; the rest is zero */
  pieces: [number, Uint8Array][];
  /** guest ranges [start, start+len) that may hold data (the rest are holes) */
  populated: [number, number][];
  rip: bigint;
  rsp: bigint;
  rflags: bigint;
  sregs: Uint8Array;
  /** model-specific registers every new shell loads (a kind with `shellMsrs`) */
  msrs?: [number, bigint][];
}

export interface ImageKind {
  readonly name: Image["kind"];
  /**
   * runs at CPL0 or in real mode: it owns its whole machine, so every reset restores its privileged
   * state (MSRs, debug registers, XCR0, XSAVE) and flushes KVM's translations, and its special
   * registers are loaded at every entry
   */
  readonly privileged: boolean;
  /**
   * its entry state sets model-specific registers (`EntryState.msrs`) that the guest cannot change
   * itself: loaded once into every new shell, never by a reset
   */
  readonly shellMsrs: boolean;
  /** what the host may touch on the guest's behalf (GuestAccess) */
  readonly access: AccessRules;
  /** takes a call's input and gives output through a data window */
  readonly takesData: boolean;
  /** whether it may be granted read-only files (a native image reads them with the `file` hypercall) */
  readonly readsFiles: boolean;
  /** the memory plan: `memory`, `dataSize`, `stackSize` as asked (each may be undefined: the defaults) */
  plan(image: Image, memory: number | undefined, dataSize: number | undefined, stackSize: number | undefined): MemoryPlan;
  /**
   * the entry state in `size` bytes of RAM laid out by `plan`, from a fresh vCPU's `reset` state
   * (`xcrs`: the XCR0 a CPL3 guest runs with, CR4.OSXSAVE on; none: x87 and SSE only): the image's
   * bytes among its pieces
   */
  entryState(image: Image, size: number, plan: Omit<MemoryPlan, "memory">, reset: EntryReset): EntryState;
  /**
   * after the final exit: the console the guest left in its memory (into `console`) and its output
   * (checked against what the host wrote; a guest lying about them is a MemoryFaultError)
   */
  collect(guest: GuestAccess, mem: GuestMemory, plan: Omit<MemoryPlan, "memory"> & { memory: number }, console: ConsoleSink): Uint8Array;
}

/**
 * The memory asked for (or the image's own wish, or the default), checked against the bounds and
 * against what the image needs: its footprint plus `extra` (a native image's smallest stack).
 */
export function checkMemory(image: Image, requested: number | undefined, extra: number): number {
  const wanted = requested ?? (image.kind === "native" && image.header.memWanted > 0n ? Number(image.header.memWanted) : DEFAULT_MEMORY);
  checkMemorySize(wanted);
  const need = imageFootprint(image) + extra;
  if (need > wanted) {
    throw new BadImageError(`${image.name}: the image needs ${need} bytes of guest memory (with its stack), more than the ${wanted / MIB} MiB it would get`);
  }
  return wanted;
}
