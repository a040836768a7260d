// A VM shell: a VM whose RAM (slot 0, guest-physical 0) is a copy-on-write view of a snapshot's
// memory, with one vCPU (CPUID set). KVM logs the pages the guest writes, so a reset copies back
// from the snapshot only those pages: its cost grows with what a call dirtied, not with RAM size.
import { toArrayBuffer } from "bun:ffi";
import * as libc from "../../ffi/libc.ts";
import { GuestMemory, PAGE_SIZE } from "../memory/guest-memory.ts";
import { GuestAccess, type AccessRules } from "../memory/guest-access.ts";
import { NATIVE } from "../kinds/native.ts";
import { kindOfMeta } from "../kinds/kinds.ts";
import { RAW } from "../kinds/raw.ts";
import { ABI_VERSION, INFO_MAGIC, Info, Layout } from "../abi/guest-abi.ts";
import type { Kvm } from "../kvm/system.ts";
import { KVM_CAP, KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE, kvm_sregs } from "../../ffi/kvm.ts";
import { msrEntry } from "../kvm/msrs.ts";
import { BadSnapshotError } from "../errors.ts";
import type { Vm } from "../kvm/vm.ts";
import type { Vcpu } from "../kvm/vcpu.ts";
import type { Snapshot } from "../snapshot/snapshot.ts";
import { mayHoldStaleEntries } from "./translations.ts";

const ARG_REGS = ["rdi", "rsi", "rdx", "rcx", "r8", "r9"] as const;
/** Most pages kept writable between resets (manual dirty-log protection); beyond, the set is relearned. */
const STICKY_PAGES = 512;
/** Resets after which the writable set is relearned anyway. */
const RELEARN = 256;
/** CR3's page-level write-through bit */
const CR3_PWT = 0x8n;

/** How a shell's memory is put back to its snapshot after a call. */
export type ResetStrategy = "dirty-log" | "cow";

export class Shell {
  readonly vm: Vm;
  readonly vcpu: Vcpu;
  readonly mem: GuestMemory;
  /** the snapshot this shell's memory is a view of */
  readonly snapshot: Snapshot;
  /** KVM's dirty log of slot 0 (none for a one-shot shell, which KVM logs nothing for) */
  readonly #log: DirtyLog | undefined;
  /** pages stay writable once dirtied (manual dirty-log protection), until the set is relearned */
  #sticky = false;
  #resetsSinceRelearn = 0;
  /** guest memory as the guest may touch it: every host access on the guest's behalf goes through it */
  readonly guest: GuestAccess;
  /**
   * pages the host wrote on the guest's behalf (hypercalls, the info page, input): KVM does not log
   * those. Each page once (a flag per page), so the list and the reset's work are bounded by RAM's
   * pages however many writes a call makes.
   */
  readonly #hostDirty: number[] = [];
  readonly #hostMarked: Uint8Array;
  /** the info page's HEAP_END and STACK_BOTTOM: the stack guard's start and end (0: none) */
  readonly #heapEnd: bigint;
  readonly #stackBottom: bigint;
  /** true until the special registers have been loaded into this vCPU */
  #sregsStale = true;
  /** the host changed this vCPU's special registers during the call (a Linux guest's FS base) */
  #sregsChanged = false;
  /** the call's registers are loaded: host writes from here on happen while the guest runs */
  #entered = false;
  /** the host wrote guest memory while the guest ran (a hypercall's result): see reset() */
  #hostWroteInCall = false;
  /** RAM and the snapshot's memory as 4-byte words, for a privileged guest's reset (made on first use) */
  #words: { ram: Uint32Array; golden: Uint32Array } | undefined;
  /** the snapshot's special registers with another CR3, which the reset loads (#sregsAside) */
  #aside: Uint8Array | undefined;
  #translationFlushes = 0;
  /** guest ranges whose page-table entries the host changed during the call (mprotect), and whether a table entry did */
  #retranslated: { ranges: [number, number][]; split: boolean } | undefined;
  #closed = false;

  /** whether a CPL3 guest can see the data segment selectors it loads on this KVM (probe.ts) */
  readonly #keepsSelectors: boolean;
  /** a shell for one call: anonymous RAM, no dirty log, never reset */
  readonly oneShot: boolean;

  /**
   * `oneShot`: the cold path of a single call (the CLI): RAM is anonymous memory with the entry
   * state's pieces written into it, and KVM logs nothing. Cheaper to make (no memfd, no dirty
   * tracking), but it cannot be reset. Only for entry snapshots.
   */
  constructor(kvm: Kvm, snapshot: Snapshot, opts: { selectorsVisible?: boolean; oneShot?: boolean; privateCopy?: boolean } = {}) {
    this.#keepsSelectors = opts.selectorsVisible ?? true;
    this.oneShot = (opts.oneShot ?? false) && snapshot.kind === "entry";
    const pages = snapshot.size / PAGE_SIZE;
    let log: DirtyLog | undefined;
    let mem: GuestMemory | undefined;
    let vm: Vm | undefined;
    let vcpu: Vcpu | undefined;
    try {
      if (this.oneShot) {
        mem = new GuestMemory(snapshot.size);
        for (const [at, bytes] of snapshot.pieces) mem.bytes.set(bytes, at);
      } else if (opts.privateCopy) {
        // no sharing at all (the baseline of the density measurements): the snapshot's pages copied
        // into anonymous memory of this shell's own
        mem = new GuestMemory(snapshot.size);
        const golden = snapshot.memory;
        for (let p = 0; p < snapshot.populated.length; p++) {
          if (snapshot.populated[p]) mem.bytes.set(golden.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE), p * PAGE_SIZE);
        }
      } else {
        mem = new GuestMemory(snapshot.size, snapshot.fd, snapshot.fileOffset);
      }
      // a one-shot shell takes the VM the reset state was read from, if kept (Kvm.vcpuResetState)
      const fresh = this.oneShot ? kvm.takeFreshVm() : undefined;
      vm = fresh?.vm ?? kvm.createVm();
      vcpu = fresh?.vcpu;
      // Manual dirty-log protection (when KVM has it): fetching the log no longer write-protects
      // the logged pages again, so pages a call dirties stay writable for the next call — which
      // would dirty them again — and are simply copied back at every reset (see reset()).
      this.#sticky = !this.oneShot && kvm.checkExtension(KVM_CAP.MANUAL_DIRTY_LOG_PROTECT2) > 0;
      if (this.#sticky) vm.enableCap(KVM_CAP.MANUAL_DIRTY_LOG_PROTECT2, KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE, "MANUAL_DIRTY_LOG_PROTECT2");
      vm.setMemoryRegion(0, 0, mem.size, mem.hostAddr, { logDirty: !this.oneShot });
      if (!vcpu) {
        vcpu = vm.createVcpu(0);
        vcpu.setCpuid(kvm.cpuid);
      }
      // A CPL3 guest's XCR0 (AVX...; CR4.OSXSAVE comes with its special registers): once per shell,
      // as XSETBV is privileged. Its registers are reset by the trampoline's XRSTOR at every entry.
      if (!snapshot.privileged && snapshot.xcrs) setXcrs(vcpu, snapshot);
      if (!this.oneShot) log = new DirtyLog(vm, pages);
      // A new vCPU's FPU is the reset state, which an entry snapshot already has; a CPL3 guest's
      // trampoline loads a captured one at every entry. A state KVM refuses (a snapshot file's)
      // fails here, with everything above closed.
      if (snapshot.kind === "captured" && snapshot.privileged) loadPrivilegedState(vcpu, snapshot);
      // a kind whose MSRs the guest cannot change (a Linux guest's SYSCALL entry): once per shell
      if (kindOfMeta(snapshot.meta).shellMsrs) vcpu.setMsrs(snapshot.msrs);
    } catch (e) {
      log?.close();
      vcpu?.close();
      vm?.close();
      mem?.close();
      throw e;
    }
    this.#log = log;
    this.vm = vm;
    this.vcpu = vcpu;
    this.mem = mem;
    this.snapshot = snapshot;
    this.#hostMarked = new Uint8Array(pages);
    const guard = snapshot.guard;
    this.#heapEnd = BigInt(guard?.start ?? 0);
    this.#stackBottom = BigInt(guard?.end ?? 0);
    this.guest = new GuestAccess(mem, kindOfMeta(snapshot.meta).access, (phys, len) => this.markHostWrite(phys, len));
  }

  /**
   * Loads the snapshot's registers (with the call's arguments in RDI..R9 for an entry state) into
   * kvm_run's sync area; KVM applies them at the next KVM_RUN. No ioctl.
   */
  loadRegisters(argv: readonly bigint[]): void {
    const { vcpu, snapshot } = this;
    vcpu.putRegs(snapshot.regs);
    if (snapshot.argsInRegs) for (let i = 0; i < argv.length; i++) vcpu.setReg(ARG_REGS[i], argv[i]);
    // Loading special registers costs ~15 µs on this machine, in the sync area or by ioctl alike.
    // A guest that runs at CPL0 or in real mode can change all of them: reload every call. A CPL3
    // guest can change only its data segment selectors; those are reset by the reset, off the
    // caller's path (KVM_SET_SREGS), so a warm shell's entry loads the general registers alone.
    const sregs = this.#sregsStale || snapshot.privileged;
    if (sregs) vcpu.putSregs(snapshot.sregs);
    this.#sregsStale = false;
    vcpu.markRegsDirty(sregs);
    this.#entered = true;
  }

  /**
   * Writes the info page of a call: arguments, memory size, console bookkeeping, heap start, and
   * the call's data — `input` copied to the bottom of the snapshot's data window (the top of RAM),
   * the output room after it. The caller has checked that the input fits.
   */
  writeInfo(argv: readonly bigint[], imageEnd: number, input?: Uint8Array): void {
    // the info page through the guest's own view of it, like any write made on its behalf
    const at = this.guest.check(Layout.INFO, Info.SIZE, "write", "the info page");
    const dv = this.mem.view;
    dv.setBigUint64(at + Info.MAGIC, INFO_MAGIC, true);
    dv.setUint32(at + Info.ABI_VERSION, ABI_VERSION, true);
    dv.setUint32(at + Info.ARGC, argv.length, true);
    for (let i = 0; i < ARG_REGS.length; i++) dv.setBigUint64(at + Info.ARGS + i * 8, argv[i] ?? 0n, true);
    dv.setBigUint64(at + Info.MEM_SIZE, BigInt(this.mem.size), true);
    dv.setBigUint64(at + Info.CONSOLE_ADDR, BigInt(Layout.CONSOLE), true);
    dv.setBigUint64(at + Info.CONSOLE_CAP, BigInt(Layout.CONSOLE_SIZE), true);
    dv.setBigUint64(at + Info.CONSOLE_LEN, 0n, true);
    dv.setBigUint64(at + Info.HEAP_START, BigInt(Math.ceil(imageEnd / PAGE_SIZE) * PAGE_SIZE), true);
    const window = this.mem.size - this.snapshot.meta.dataSize;
    const inputLen = input?.length ?? 0;
    const outputAt = window + Math.ceil(inputLen / PAGE_SIZE) * PAGE_SIZE;
    dv.setBigUint64(at + Info.INPUT_ADDR, BigInt(window), true);
    dv.setBigUint64(at + Info.INPUT_LEN, BigInt(inputLen), true);
    dv.setBigUint64(at + Info.OUTPUT_ADDR, BigInt(outputAt), true);
    dv.setBigUint64(at + Info.OUTPUT_CAP, BigInt(this.mem.size - outputAt), true);
    dv.setBigUint64(at + Info.OUTPUT_LEN, 0n, true);
    dv.setBigUint64(at + Info.HEAP_END, this.#heapEnd, true);
    dv.setBigUint64(at + Info.STACK_BOTTOM, this.#stackBottom, true);
    this.markHostWrite(at, Info.SIZE); // so that the reset puts the snapshot's page back
    if (input && inputLen > 0) this.guest.write(window, input, "the call's input");
  }

  /**
   * The host changed the page-table entries of guest `ranges` (a Linux guest's mprotect; `split`: a
   * directory entry too): KVM drops the translations it derived from the old ones, now and again
   * after the reset puts the snapshot's tables back (src/linux/protect.ts says which operation
   * does that, measured).
   */
  retranslate(ranges: readonly [number, number][], split: boolean): void {
    // a split re-adds the slot, which drops KVM's log of the pages the call wrote so far: they are
    // kept first, as the host's own writes are, so that the reset (or a capture) still sees them
    if (split) this.#keepDirtyLog();
    this.#dropTranslations(ranges, split);
    const r = (this.#retranslated ??= { ranges: [], split: false });
    r.ranges.push(...ranges);
    r.split ||= split;
  }

  /** Moves the pages KVM logged as written into the host's own set (before the slot is re-added, which drops the log). */
  #keepDirtyLog(): void {
    const log = this.#log;
    if (!log) return; // a one-shot shell: never reset, never captured
    this.vm.getDirtyLog(log.logArg);
    const words = log.bitmap32;
    const marked = this.#hostMarked;
    for (let w = 0; w < words.length; w++) {
      for (let bits = words[w]; bits !== 0; bits &= bits - 1) {
        const p = w * 32 + 31 - Math.clz32(bits & -bits);
        if (marked[p]) continue;
        marked[p] = 1;
        this.#hostDirty.push(p);
      }
    }
  }

  #dropTranslations(ranges: readonly [number, number][], split: boolean): void {
    if (split) {
      this.vm.refreshSlot();
      return;
    }
    // the MMU notifier zaps the translations of pages whose host mapping changes
    for (const [start, end] of ranges) {
      libc.mprotect(this.mem.hostAddr + start, end - start, libc.PROT_READ);
      libc.mprotect(this.mem.hostAddr + start, end - start, libc.PROT_READ | libc.PROT_WRITE);
    }
  }

  /** Records that the host changed the vCPU's special registers (KVM_SET_SREGS): the reset loads the snapshot's again. */
  markSregsChanged(): void {
    this.#sregsChanged = true;
  }

  /** Records that the host wrote guest-physical [addr, addr+len) (already checked), once per page. */
  markHostWrite(addr: number, len: number): void {
    if (this.#entered) this.#hostWroteInCall = true;
    const marked = this.#hostMarked;
    for (let p = Math.floor(addr / PAGE_SIZE); p < Math.ceil((addr + len) / PAGE_SIZE); p++) {
      if (marked[p]) continue;
      marked[p] = 1;
      this.#hostDirty.push(p);
    }
  }

  /** Forgets the host's writes (after the reset restored them, or a capture took them). */
  #clearHostWrites(): void {
    for (const p of this.#hostDirty) this.#hostMarked[p] = 0;
    this.#hostDirty.length = 0;
  }

  /**
   * The pages written since the last reset, one byte per page (fetching KVM's log clears it).
   * Used by a snapshot capture; the shell is discarded afterwards.
   */
  takeDirtyPages(): Uint8Array {
    const log = this.#dirtyLog();
    const out = new Uint8Array(this.snapshot.size / PAGE_SIZE);
    this.vm.getDirtyLog(log.logArg);
    const words = log.bitmap32;
    for (let w = 0; w < words.length; w++) {
      for (let bits = words[w]; bits !== 0; bits &= bits - 1) out[w * 32 + 31 - Math.clz32(bits & -bits)] = 1;
    }
    for (const p of this.#hostDirty) out[p] = 1;
    this.#clearHostWrites();
    return out;
  }

  /**
   * Puts memory, FPU/SSE state and special registers back to the snapshot (general registers are
   * loaded at the next entry). Returns the number of pages restored.
   * "dirty-log" copies back the pages KVM logged as written; "cow" drops every private page of the
   * copy-on-write view with MADV_DONTNEED, so they read the snapshot's again.
   */
  reset(strategy: ResetStrategy = "dirty-log"): number {
    if (this.oneShot) throw new RangeError("a one-shot shell cannot be reset");
    const log = this.#dirtyLog();
    const ram = this.mem.bytes;
    const golden = this.snapshot.memory;
    let restored = 0;
    // a privileged guest's restored page that may leave KVM a stale translation (translations.ts)
    const privileged = this.snapshot.privileged;
    const words = privileged ? this.#wordViews() : undefined;
    let stale = false;
    // Fetch the log in both strategies: without manual protection it also re-arms write tracking.
    this.vm.getDirtyLog(log.logArg);
    if (strategy === "cow") {
      this.mem.discard();
      if (this.#sticky) this.vm.clearDirtyLog(log.clearArg);
    } else {
      // Scan the bitmap as 32-bit numbers: a bigint per 64 pages would cost more than the copies
      // (1024 words for 256 MiB of RAM).
      const bitmap = log.bitmap32;
      for (let w = 0; w < bitmap.length; w++) {
        let bits = bitmap[w];
        while (bits !== 0) {
          const b = 31 - Math.clz32(bits & -bits);
          bits &= bits - 1;
          const page = w * 32 + b;
          const at = page * PAGE_SIZE;
          if (words && !stale) stale = mayHoldStaleEntries(words.ram, words.golden, page);
          ram.set(golden.subarray(at, at + PAGE_SIZE), at);
          restored++;
        }
      }
      for (const p of this.#hostDirty) {
        const at = p * PAGE_SIZE;
        if (words && !stale) stale = mayHoldStaleEntries(words.ram, words.golden, p);
        ram.set(golden.subarray(at, at + PAGE_SIZE), at);
        restored++;
      }
      // With manual protection the log keeps every page dirtied since it was last cleared, and
      // those pages stay writable: the next call writes them without a fault (a write-protection
      // fault costs a few µs here, copying a page back a fraction of one). Correct either way —
      // a page in the set is copied back at every reset. When the set grows past STICKY_PAGES, or
      // every RELEARN resets, it is cleared (and its pages protected) so that it follows what
      // calls dirty now.
      if (this.#sticky && (restored > STICKY_PAGES || ++this.#resetsSinceRelearn >= RELEARN)) {
        this.vm.clearDirtyLog(log.clearArg);
        this.#resetsSinceRelearn = 0;
      }
    }
    this.#clearHostWrites();
    // the snapshot's page tables are back: what KVM derived from the call's is dropped
    if (this.#retranslated) {
      this.#dropTranslations(this.#retranslated.ranges, this.#retranslated.split);
      this.#retranslated = undefined;
    }
    // A privileged guest builds its own page tables anywhere in its RAM, and KVM (shadow paging on
    // this machine) keeps what it derived from them; the copies above went behind its back. Without
    // a flush a call could keep the mappings an earlier call made on the same shell (tests prove
    // it on a KVM that shadows: tests/reset.test.ts, raw_remap and raw_transient). KVM drops them
    // all when the slot is re-added (~400 µs here); that is needed only when a restored page held
    // an entry KVM may have used that the snapshot's page does not hold (translations.ts), when the
    // host wrote guest memory while the guest ran (KVM may have used what it overwrote), or when
    // the "cow" reset dropped pages without looking at them. Otherwise the restored memory gives
    // KVM's translations exactly, but for a leaf table KVM let the guest write without trapping
    // ("unsync"): KVM reads those again when the MMU is reloaded, which loading special registers
    // with another CR3 makes it do at the next entry (its CR3 differs from the one set here).
    // A CPL3 guest never needs any of it: its tables are the host's, which neither it nor a host
    // write made for it (GuestAccess) can change.
    if (privileged && (strategy === "cow" || (restored > 0 && (stale || this.#hostWroteInCall)))) {
      this.vm.refreshSlot();
      this.#resetsSinceRelearn = 0;
      this.#translationFlushes++;
    } else if (privileged && restored > 0) {
      this.vcpu.setSregs(this.#sregsAside());
    }
    this.#entered = false;
    this.#hostWroteInCall = false;
    // FPU/SSE/AVX state: a CPL3 guest starts every call in the entry trampoline, which loads the
    // snapshot's state itself (image/boot.ts, trampolinePage: XRSTOR of every feature its XCR0
    // enables); privileged guests get it here.
    // (Knowing whether the guest touched it is not cheap: CR0.TS does not trap a CPL3 guest's SSE
    // instructions under PVM; measured.)
    if (this.snapshot.privileged) loadPrivilegedState(this.vcpu, this.snapshot);
    // The data segment selectors are all a CPL3 guest can change in its special registers, and only
    // where KVM lets it see what it loaded (probe.ts); privileged guests get theirs at every entry.
    // The host's own changes (a Linux guest's arch_prctl) are undone here too.
    if (!this.snapshot.privileged && (this.#keepsSelectors || this.#sregsChanged)) this.vcpu.setSregs(this.snapshot.sregs);
    this.#sregsChanged = false;
    return restored;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.vcpu.close();
    this.vm.close();
    this.mem.close();
    this.#log?.close();
  }

  /** Resets that made KVM drop every translation it derived from the guest's page tables (the slot re-added). */
  get translationFlushes(): number {
    return this.#translationFlushes;
  }

  /** 4-byte views of RAM and of the snapshot's memory (a privileged guest's reset compares them). */
  #wordViews(): { ram: Uint32Array; golden: Uint32Array } {
    const view = (b: Uint8Array) => new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    this.#words ??= { ram: view(this.mem.bytes), golden: view(this.snapshot.memory) };
    return this.#words;
  }

  /**
   * The snapshot's special registers with CR3's PWT bit (3) flipped — legal in every mode, and
   * ignored where paging is off — loaded by the reset so that the next entry's CR3 differs from
   * the vCPU's: KVM then reloads its MMU, reading again every table the guest wrote unseen.
   */
  #sregsAside(): Uint8Array {
    if (!this.#aside) {
      const aside = this.snapshot.sregs.slice();
      const dv = new DataView(aside.buffer);
      const at = kvm_sregs.off("cr3");
      dv.setBigUint64(at, dv.getBigUint64(at, true) ^ CR3_PWT, true);
      this.#aside = aside;
    }
    return this.#aside;
  }

  /** The dirty log, which a one-shot shell has none of. */
  #dirtyLog(): DirtyLog {
    if (!this.#log) throw new RangeError("a one-shot shell logs no dirty pages");
    return this.#log;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}


/**
 * KVM's dirty bitmap of slot 0 (one bit per page) in a mapping of its own, so that its address
 * never moves, with the ioctl arguments that name it, built once. A one-shot shell has none: its
 * slot is not logged (and the mapping cost ~15 µs of its creation).
 */
class DirtyLog {
  /** KVM's 64-bit bitmap words read as 32-bit ones (little-endian: word 2k holds pages 64k..64k+31) */
  readonly bitmap32: Uint32Array;
  readonly logArg: Uint8Array;
  readonly clearArg: Uint8Array;
  readonly #addr: number;
  readonly #bytes: number;

  constructor(vm: Vm, pages: number) {
    this.#bytes = Math.ceil(pages / 64) * 8;
    this.#addr = libc.mmap(this.#bytes, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS);
    this.bitmap32 = new Uint32Array(toArrayBuffer(this.#addr, 0, this.#bytes));
    this.logArg = vm.dirtyLogArg(0, this.#addr);
    this.clearArg = vm.clearDirtyLogArg(0, pages, this.#addr);
  }

  close(): void {
    libc.munmap(this.#addr, this.#bytes);
  }
}

/**
 * What a guest may have the host touch for it: its kind's rules (kinds/). A CPL3 guest addresses
 * memory through the host's page tables and may never reach the host's pages; a privileged guest
 * owns all of its RAM and addresses it physically.
 */
export function accessRules(privileged: boolean): AccessRules {
  return (privileged ? RAW : NATIVE).access;
}

/**
 * The state only a privileged guest can change besides its registers: XCR0 (xsetbv), the XSAVE
 * area, every model-specific register KVM restores (wrmsr) and the debug registers. A state KVM
 * refuses is the snapshot's fault (a file's): a BadSnapshotError naming it.
 */
function setXcrs(vcpu: Vcpu, snapshot: Snapshot): void {
  try {
    if (snapshot.xcrs) vcpu.setXcrs(snapshot.xcrs);
  } catch (e) {
    throw new BadSnapshotError(`${snapshot.meta.name}: KVM refused the snapshot's XCR0 (${e instanceof Error ? e.message : String(e)})`);
  }
}

function loadPrivilegedState(vcpu: Vcpu, snapshot: Snapshot): void {
  const refused = (what: string, e: unknown) =>
    new BadSnapshotError(`${snapshot.meta.name}: KVM refused the snapshot's ${what} (${e instanceof Error ? e.message : String(e)})`);
  // XCR0 first: it decides which XSAVE features the XSAVE area may hold
  setXcrs(vcpu, snapshot);
  try {
    vcpu.setXsave(snapshot.fpu);
  } catch (e) {
    throw refused("FPU/SSE state", e);
  }
  const set = vcpu.trySetMsrs(snapshot.msrs);
  if (set !== undefined) {
    throw new BadSnapshotError(`${snapshot.meta.name}: KVM refused the snapshot's value of model-specific register 0x${msrEntry(snapshot.msrs, set).index.toString(16)}`);
  }
  try {
    if (snapshot.debugregs) vcpu.setDebugRegs(snapshot.debugregs);
  } catch (e) {
    throw refused("debug registers", e);
  }
}
