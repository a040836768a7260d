// Native images (built with the Zig SDK): entered directly in 64-bit long mode at CPL3 on page
// tables, GDT, IDT and TSS the host builds (image/boot.ts), through the entry trampoline that loads
// the FPU/SSE state. A call's data lives in a window at the top of RAM, the stack below it with
// guard pages under it, the console in a buffer the guest fills; the host reads them at the exit.
import { Info, Layout } from "../abi/guest-abi.ts";
import { GUARD_BYTES, RFLAGS_NATIVE, longModeSregs, longModeTablePieces, stackGuard, trampolinePage } from "../image/boot.ts";
import { MIB, imageFootprint, type Image } from "../image/image.ts";
import { BadArgsError, MemoryFaultError } from "../errors.ts";
import { checkMemory, type ImageKind, type MemoryPlan } from "./kind.ts";

/** The smallest stack a native image may have. */
export const MIN_STACK = 64 * 1024;
/** A native guest's stack when none is given (less in a memory too small for it). */
export const DEFAULT_STACK_SIZE = MIB;
/** The data window of a native image when none is given: room for a call's input and output. */
export const DEFAULT_DATA_SIZE = MIB;

const EMPTY: Uint8Array = new Uint8Array(0);

export const NATIVE: ImageKind = {
  name: "native",
  privileged: false,
  shellMsrs: false,
  // through the host's page tables (which it cannot change), never into the host's pages: the
  // tables, GDT and IDT, the TSS, the fault stack, the trampoline, the stack guard's page table
  access: {
    root: Layout.PML4,
    hostRanges: [
      [Layout.PML4, Layout.INFO],
      [Layout.TSS, Layout.HOST_END],
    ],
  },
  takesData: true,
  readsFiles: true,
  plan: planMemory,
  entryState(image, size, plan, reset) {
    if (image.kind !== "native") throw new RangeError(`${image.name} is not a native image`);
    const guard = plan.stackSize > 0 ? stackGuard(size - plan.dataSize - plan.stackSize) : undefined;
    return {
      pieces: [...longModeTablePieces(guard), [Layout.TRAMPOLINE, trampolinePage(image.header.entry, reset.fpu, reset.xcrs !== undefined)], [image.loadAddr, image.bytes]],
      populated: [
        [Layout.PML4, Layout.INFO - Layout.PML4],
        [Layout.TSS, Layout.HOST_END - Layout.TSS],
        [image.loadAddr, image.bytes.length],
      ],
      rip: BigInt(Layout.TRAMPOLINE),
      rsp: BigInt(size - plan.dataSize),
      rflags: RFLAGS_NATIVE,
      sregs: longModeSregs(reset.sregs, reset.xcrs !== undefined),
    };
  },
  collect(guest, mem, plan, console) {
    // the console the SDK buffered in guest memory, its length checked against the buffer
    const dv = mem.view;
    const consoleLen = dv.getBigUint64(Layout.INFO + Info.CONSOLE_LEN, true);
    if (consoleLen > BigInt(Layout.CONSOLE_SIZE)) {
      throw new MemoryFaultError(`the guest's console length ${consoleLen} exceeds its ${Layout.CONSOLE_SIZE}-byte buffer`, BigInt(Layout.INFO + Info.CONSOLE_LEN), "read");
    }
    if (consoleLen > 0n) console.append(guest.read(Layout.CONSOLE, Number(consoleLen), "console buffer"));
    // the output, its length checked against the room it had; the host's own values re-read from
    // guest memory: the guest may have overwritten them
    const len = dv.getBigUint64(Layout.INFO + Info.OUTPUT_LEN, true);
    if (len === 0n) return EMPTY;
    const at = dv.getBigUint64(Layout.INFO + Info.OUTPUT_ADDR, true);
    const cap = dv.getBigUint64(Layout.INFO + Info.OUTPUT_CAP, true);
    const window = BigInt(plan.memory - plan.dataSize);
    if (at < window || at > BigInt(plan.memory) || cap !== BigInt(plan.memory) - at || len > cap) {
      throw new MemoryFaultError(`the guest's output (${len} bytes at 0x${at.toString(16)}) lies outside its data window`, at, "read");
    }
    return guest.read(at, Number(len), "output");
  },
};

/**
 * A native image's guest memory, data window and stack: the memory asked for (or the image's, or
 * the default), checked against the cap and the image's needs. From the top of RAM down: its data
 * window, its stack, the stack's guard pages (unmapped), and its heap down to the image. Sizes
 * given must fit; sizes not given are the defaults (1 MiB each), or in a memory too small for them
 * what fits — the stack at least 64 KiB — so that the smallest memory runs.
 */
export function planMemory(image: Image, requested?: number, dataSize?: number, stackSize?: number): MemoryPlan {
  if (image.kind !== "native") throw new RangeError(`${image.name} is not a native image`);
  const memory = checkMemory(image, requested, MIN_STACK + GUARD_BYTES);
  if (dataSize !== undefined) checkDataSize(dataSize);
  if (stackSize !== undefined) checkStackSize(stackSize);
  const heapStart = Math.ceil(imageFootprint(image) / 4096) * 4096;
  const room = memory - heapStart - GUARD_BYTES; // for the stack and the data window
  const page = (n: number) => Math.max(0, Math.floor(n / 4096) * 4096);
  const stack = stackSize ?? Math.min(DEFAULT_STACK_SIZE, Math.max(MIN_STACK, page((room - (dataSize ?? 0)) / 2)));
  const data = dataSize ?? Math.min(DEFAULT_DATA_SIZE, page(room - stack));
  const guard = stackGuard(memory - data - stack);
  if (stack + data > memory - heapStart || guard.start < heapStart) {
    throw new BadArgsError(
      `${image.name}: a stack of ${stack} bytes and a data window of ${data} bytes do not fit the ${memory / MIB} MiB of guest memory above the image (it ends at 0x${heapStart.toString(16)}); raise the memory or lower them (--stack, --data-size)`,
    );
  }
  return { memory, dataSize: data, stackSize: stack };
}

function checkDataSize(size: number): void {
  if (!Number.isSafeInteger(size) || size < 0 || size % 4096 !== 0) throw new BadArgsError(`data window size ${size} is not a multiple of 4 KiB`);
}

function checkStackSize(size: number): void {
  if (!Number.isSafeInteger(size) || size % 4096 !== 0 || size < MIN_STACK) throw new BadArgsError(`stack size ${size} is not a multiple of 4 KiB of at least ${MIN_STACK / 1024} KiB`);
}
