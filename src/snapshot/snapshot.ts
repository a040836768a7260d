// A snapshot: the complete state a call starts from — guest memory, general registers, special
// registers and FPU/SSE state. Every image has one from the start (its *entry* state: the image
// loaded, the host's tables written, registers at the entry point); a guest that makes the
// `snapshot` hypercall replaces it, once, with a *captured* state taken at that point, so that later
// calls skip its initialization. Memory lives in a memfd: shells map it MAP_PRIVATE (copy-on-write),
// so their unmodified pages are the snapshot's own, shared. An entry state's memfd is made only
// when a pooled shell first needs it: a one-shot shell writes the few populated pieces (host
// tables, trampoline, image) straight into anonymous memory instead.
import { toArrayBuffer } from "bun:ffi";
import * as libc from "../../ffi/libc.ts";
import { kvm_regs, kvm_segment, kvm_sregs } from "../../ffi/kvm.ts";
import { Layout, Port } from "../abi/guest-abi.ts";
import { PAGE_SIZE } from "../memory/guest-memory.ts";
import { stackGuard, writeTrampoline, type StackGuard } from "../image/boot.ts";
import { kindOf } from "../kinds/kinds.ts";
import { imageFootprint, type Image } from "../image/image.ts";
import type { Vcpu } from "../kvm/vcpu.ts";
import type { PrivilegedState } from "../kvm/system.ts";
import { msrIndices, msrValues, overlayMsrs } from "../kvm/msrs.ts";
import { limitXstate, xcr0Of } from "../kvm/xfeatures.ts";
import { ClosedError, GuestFaultError } from "../errors.ts";

export type SnapshotKind = "entry" | "captured";

/** What a call needs to know of the image a snapshot came from. */
export interface SnapshotMeta {
  /** the image's name (for messages) */
  name: string;
  /** the image's kind (src/kinds/): what a shell, a reset and a call do for it */
  kind: Image["kind"];
  /** end of the image in guest memory, bss included: the heap starts at the next page */
  footprint: number;
  /**
   * bytes at the top of RAM kept for call data (the input, then the output; native images): the
   * stack starts below them. 0: the virtine takes no data.
   */
  dataSize: number;
  /**
   * bytes of stack below the data window (native images), with unmapped guard pages under it
   * (`Snapshot.guard`). 0: no guard (a raw image, or a snapshot file written before guards).
   */
  stackSize: number;
}

/** The guard of a native guest's stack: right below it, which is right below the data window. */
export function guardOf(meta: SnapshotMeta, size: number): StackGuard | undefined {
  return meta.stackSize > 0 ? stackGuard(size - meta.dataSize - meta.stackSize) : undefined;
}

export class Snapshot {
  readonly size: number;
  #fd = -1;
  /** where guest-physical 0 is in the file: 0 in a memfd, the header's size in a snapshot file */
  #offset = 0;
  /** false for a snapshot file: it is read, never written, and not ours to close */
  #ownsFd = true;
  #addr = 0;
  #memory: Uint8Array | undefined;
  /** an entry state's contents as (guest address, bytes) pieces; the rest of memory is zero */
  readonly pieces: [number, Uint8Array][] = [];
  /** one byte per page: 1 if the page may hold non-zero data (others are holes of the memfd) */
  readonly populated: Uint8Array;
  readonly regs = new Uint8Array(kvm_regs.size);
  readonly sregs: Uint8Array;
  /** x87/SSE state with MXCSR: a struct kvm_xsave */
  readonly fpu: Uint8Array;
  /**
   * model-specific registers (struct kvm_msrs): for a privileged guest every one it could change and
   * KVM restores (Kvm.privilegedResetState), loaded by every reset; for a kind with `shellMsrs` (a
   * Linux guest: SYSCALL's entry) the ones its entry state sets, loaded once into every new shell;
   * a native guest's are not used
   */
  msrs: Uint8Array = new Uint8Array(8);
  /** a privileged guest's debug registers (struct kvm_debugregs), where KVM has them */
  debugregs: Uint8Array | undefined;
  /**
   * XCR0 (struct kvm_xcrs): a privileged guest's, loaded by every reset, where KVM has it; a CPL3
   * guest's, the host's choice (Kvm.userXcr0: it cannot change it), loaded once per shell — none
   * when XSAVE is off for it (then its trampoline restores x87 and SSE with FXRSTOR)
   */
  xcrs: Uint8Array | undefined;
  #closed = false;

  private constructor(
    readonly kind: SnapshotKind,
    readonly meta: SnapshotMeta,
    /** the guest runs at CPL0 or in real mode (a raw image): it can change every special register */
    readonly privileged: boolean,
    size: number,
    sregs: Uint8Array,
    fpu: Uint8Array,
  ) {
    this.size = size;
    this.populated = new Uint8Array(size / PAGE_SIZE);
    this.sregs = sregs.slice();
    this.fpu = fpu.slice();
  }

  /** The memfd holding the memory (made, and the pieces written into it, on first use). */
  get fd(): number {
    if (this.#fd < 0) this.#materialize();
    return this.#fd;
  }

  /** Offset of guest-physical 0 in `fd`. */
  get fileOffset(): number {
    return this.#offset;
  }

  /**
   * A captured state read from a snapshot file (src/snapshot/file.ts, already validated): its
   * memory is the file's sealed memfd copy from `offset`, mapped copy-on-write by every shell, so
   * its pages are shared by every virtine and thread of the process. `fd` stays the caller's.
   */
  static fromFile(
    fd: number,
    offset: number,
    state: {
      size: number;
      meta: SnapshotMeta;
      privileged: boolean;
      regs: Uint8Array;
      sregs: Uint8Array;
      fpu: Uint8Array;
      msrs: Uint8Array;
      debugregs?: Uint8Array;
      xcrs?: Uint8Array;
      populated: Uint8Array;
    },
  ): Snapshot {
    const s = new Snapshot("captured", state.meta, state.privileged, state.size, state.sregs, state.fpu);
    s.regs.set(state.regs);
    s.msrs = state.msrs.slice();
    s.debugregs = state.debugregs?.slice();
    s.xcrs = state.xcrs?.slice();
    s.populated.set(state.populated);
    s.#fd = fd;
    s.#offset = offset;
    s.#ownsFd = false;
    s.#addr = libc.mmap(state.size, libc.PROT_READ, libc.MAP_PRIVATE, fd, offset);
    s.#memory = new Uint8Array(toArrayBuffer(s.#addr, 0, state.size));
    return s;
  }

  /** The memory, mapped shared (made on first use); written only while the snapshot is built. */
  get memory(): Uint8Array {
    // SAFETY: the view aliases the mapping, unmapped by close(): never handed out after it
    if (this.#closed) throw new ClosedError("snapshot");
    if (!this.#memory) this.#materialize();
    return this.#memory as Uint8Array;
  }

  #materialize(): void {
    if (this.#closed) throw new RangeError("the snapshot is closed");
    const fd = libc.memfdCreate(`wasp-snapshot-${this.kind}`);
    try {
      libc.ftruncate(fd, this.size);
      // Written with pwrite rather than through the mapping: no page faults in this process (each
      // costs ~10-20 µs under nested paging); the mapping is read only by resets, later.
      for (const [at, bytes] of this.pieces) libc.pwrite(fd, bytes, at);
      this.#addr = libc.mmap(this.size, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED, fd, 0);
    } catch (e) {
      libc.raw.close(fd);
      throw e;
    }
    this.#fd = fd;
    this.#memory = new Uint8Array(toArrayBuffer(this.#addr, 0, this.size));
  }

  /** The unmapped pages under a native guest's stack, where an overflow faults; none without a stack size. */
  get guard(): StackGuard | undefined {
    return guardOf(this.meta, this.size);
  }

  /** True when the arguments of a call go into RDI..R9 (entry state); a captured state keeps its registers. */
  get argsInRegs(): boolean {
    return this.kind === "entry";
  }

  /** The entry state of an image: host tables (native), the image, registers at the entry point. */
  static entry(
    image: Image,
    size: number,
    reset: { sregs: Uint8Array; fpu: Uint8Array; msrs: Uint8Array; xcrs?: Uint8Array },
    /** a native image's data window and stack (runner.ts, planMemory); none by default */
    layout: { dataSize?: number; stackSize?: number } = {},
    /** a raw image's: the privileged state every reset loads */
    privileged?: PrivilegedState,
  ): Snapshot {
    const kind = kindOf(image.kind);
    // a data window only for a kind that takes data; a stack for a native guest (below its window)
    // or a Linux one (at the top of memory)
    const plan = { dataSize: kind.takesData ? (layout.dataSize ?? 0) : 0, stackSize: layout.stackSize ?? 0 };
    const meta = { name: image.name, kind: image.kind, footprint: imageFootprint(image), ...plan };
    const state = kind.entryState(image, size, plan, reset);
    const s = new Snapshot("entry", meta, kind.privileged, size, state.sregs, reset.fpu);
    s.msrs = (privileged?.msrs ?? reset.msrs).slice();
    s.debugregs = privileged?.debugregs?.slice();
    s.xcrs = (kind.privileged ? privileged?.xcrs : reset.xcrs)?.slice();
    try {
      s.pieces.push(...state.pieces);
      for (const [at, len] of state.populated) s.#markRange(at, len);
      if (state.msrs) s.msrs = msrValues(state.msrs);
      // bss is zero in a fresh memfd; the info page is written at every call
      s.#markRange(Layout.INFO, PAGE_SIZE);
      kvm_regs.write(new DataView(s.regs.buffer), 0, { rip: state.rip, rsp: state.rsp, rflags: state.rflags });
      return s;
    } catch (e) {
      s.close();
      throw e;
    }
  }

  /**
   * Captures a running shell at its `snapshot` hypercall: memory is the basis snapshot's populated
   * pages plus every page dirtied since (`dirty`, one byte per page); registers are the synced ones
   * with RIP moved past the `OUT` and RAX = 1 (what the guest sees when a later call resumes here).
   */
  /**
   * `clear`: guest-physical ranges the snapshot keeps as zeros whatever the shell held there (a
   * Linux program's call page and stdin window: the capturing call's own data, never later calls')
   */
  /**
   * `resumeAt`: where a later call resumes instead of past the OUT at RIP (a Linux program's
   * snapshot point reached through the CPL0 system-call entry, whose return the host made itself)
   */
  static capture(basis: Snapshot, vcpu: Vcpu, guestRam: Uint8Array, dirty: Uint8Array, clear: readonly (readonly [number, number])[] = [], resumeAt?: bigint): Snapshot {
    const sregs = vcpu.getSregs();
    const s = new Snapshot("captured", basis.meta, basis.privileged, basis.size, sregs, vcpu.getXsave());
    s.msrs = basis.msrs.slice();
    if (basis.privileged) {
      // the guest's values where KVM reads them, the basis's for any it would not
      const got = overlayMsrs(basis.msrs, vcpu.getMsrs(msrIndices(basis.msrs)));
      if (typeof got !== "number") s.msrs = got;
      s.debugregs = basis.debugregs && vcpu.getDebugRegs();
      s.xcrs = basis.xcrs && vcpu.getXcrs();
    } else {
      s.xcrs = basis.xcrs?.slice(); // the host's, which the guest cannot change
      if (s.xcrs) limitXstate(s.fpu, xcr0Of(s.xcrs)); // what the trampoline's XRSTOR loads
    }
    try {
      for (let page = 0; page < s.populated.length; page++) {
        if (!basis.populated[page] && !dirty[page]) continue;
        const at = page * PAGE_SIZE;
        const src = guestRam.subarray(at, at + PAGE_SIZE);
        if (!basis.populated[page] && isZero(src)) continue; // a page that was written back to zeros
        s.memory.set(src, at);
        s.populated[page] = 1;
      }
      for (const [start, end] of clear) s.memory.fill(0, start, end);
      s.regs.set(vcpu.runBytes.subarray(vcpu.syncRegsOffset, vcpu.syncRegsOffset + kvm_regs.size));
      const dv = new DataView(s.regs.buffer);
      const rip = dv.getBigUint64(kvm_regs.off("rip"), true);
      const csBase = new DataView(sregs.buffer).getBigUint64(kvm_sregs.off("cs") + kvm_segment.off("base"), true);
      const resume = resumeAt ?? rip + BigInt(outLength(guestRam, csBase + rip));
      dv.setBigUint64(kvm_regs.off("rax"), 1n, true);
      if (basis.privileged) {
        dv.setBigUint64(kvm_regs.off("rip"), resume, true);
      } else {
        // resume through the trampoline, which loads the captured FPU/SSE/AVX state first
        writeTrampoline(s.memory, resume, s.fpu, s.xcrs !== undefined);
        s.populated[Layout.TRAMPOLINE / PAGE_SIZE] = 1;
        dv.setBigUint64(kvm_regs.off("rip"), BigInt(Layout.TRAMPOLINE), true);
      }
      return s;
    } catch (e) {
      s.close();
      throw e;
    }
  }

  /**
   * Writes `bytes` at guest-physical `at` into the snapshot's memory — what every shell made from it
   * sees (a Linux program's rewritten system-call sites, learned by the call that trained it).
   * False for a snapshot file's, whose sealed memory never changes.
   */
  patch(at: number, bytes: Uint8Array): boolean {
    if (!this.#ownsFd) return false;
    this.memory.set(bytes, at);
    this.#markRange(at, bytes.length);
    return true;
  }

  /**
   * Sets the base of segment `seg` in the special registers every shell made from the snapshot
   * loads (a Linux program's TLS, as its training call set it). False for a snapshot file's.
   */
  patchSegmentBase(seg: "fs" | "gs", base: bigint): boolean {
    if (!this.#ownsFd) return false;
    new DataView(this.sregs.buffer, this.sregs.byteOffset).setBigUint64(kvm_sregs.off(seg) + kvm_segment.off("base"), base, true);
    return true;
  }

  #markRange(addr: number, len: number): void {
    for (let p = Math.floor(addr / PAGE_SIZE); p < Math.ceil((addr + len) / PAGE_SIZE); p++) this.populated[p] = 1;
  }

  /** Number of pages that hold data (the rest are holes). */
  get populatedPages(): number {
    let n = 0;
    for (const b of this.populated) n += b;
    return n;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#addr !== 0) libc.munmap(this.#addr, this.size);
    if (this.#fd >= 0 && this.#ownsFd) libc.close(this.#fd);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * How far RIP must move so that a resumed call continues after the guest's hypercall `OUT`.
 * KVM on this machine reports the exit with RIP already past the instruction (measured for both
 * host-built CPL3 code and emulated modes); other KVMs complete a port write only at the next
 * KVM_RUN, with RIP still on it. Both are recognized from the bytes around RIP (guest linear =
 * guest-physical here: identity-mapped long mode, or real mode with the CS base added).
 */
function outLength(ram: Uint8Array, at: bigint): number {
  if (at < 2n || at + 3n > BigInt(ram.length)) throw new GuestFaultError(`the snapshot hypercall's RIP 0x${at.toString(16)} is outside guest RAM`, "snapshot", at);
  const a = Number(at);
  // the hypercall's port, or the in-VM layer's, which hands over a system call (a snapshot point reached by one)
  const isOutImm = (i: number) => (ram[i] === 0xe6 || ram[i] === 0xe7) && (ram[i + 1] === Port.HYPERCALL || ram[i + 1] === Port.LINUX_FORWARD);
  const isOutDx = (i: number) => ram[i] === 0xee || ram[i] === 0xef;
  if (isOutImm(a - 2) || isOutDx(a - 1)) return 0; // already past it
  const prefix = ram[a] === 0x66 ? 1 : 0;
  if (isOutImm(a + prefix)) return prefix + 2;
  if (isOutDx(a + prefix)) return prefix + 1;
  throw new GuestFaultError(`the snapshot hypercall's RIP 0x${at.toString(16)} is not at or after an OUT instruction`, "snapshot", at);
}

function isZero(page: Uint8Array): boolean {
  const words = new BigUint64Array(page.buffer, page.byteOffset, page.byteLength / 8);
  for (let i = 0; i < words.length; i++) if (words[i] !== 0n) return false;
  return true;
}
