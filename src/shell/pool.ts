// A pool of warm shells for one image. A call takes a clean shell, runs, and gives it back; the
// reset that makes it clean again happens off the caller's path — on the event loop, in idle time
// (setImmediate) — and always before the shell is handed out again. A caller that never yields
// to the event loop gets its shell cleaned on demand instead.
import { Shell, type ResetStrategy } from "./shell.ts";
import type { Kvm } from "../kvm/system.ts";
import type { Snapshot } from "../snapshot/snapshot.ts";
import { BadArgsError } from "../errors.ts";

export const DEFAULT_POOL_SIZE = 4;
export const MAX_POOL_SIZE = 1024;

export interface PoolStats {
  /** shells created (the cold path) */
  created: number;
  /** resets done */
  cleaned: number;
  /** resets done in idle time, off a caller's path */
  cleanedIdle: number;
  /** pages restored by resets */
  pagesRestored: number;
  /** resets that made KVM drop every translation derived from a privileged guest's page tables (the memory slot re-added) */
  translationFlushes: number;
}

export class ShellPool {
  readonly maxSize: number;
  readonly strategy: ResetStrategy;
  readonly stats: PoolStats = { created: 0, cleaned: 0, cleanedIdle: 0, pagesRestored: 0, translationFlushes: 0 };
  #snapshot: Snapshot;
  readonly #kvm: Kvm;
  readonly #onCreate: (shell: Shell) => void;
  readonly #keepsSelectors: boolean;
  readonly #privateCopy: boolean;
  readonly #clean: Shell[] = [];
  readonly #dirty: Shell[] = [];
  /** shells handed out and not yet given back */
  #busy = 0;
  #idleScheduled = false;
  #closed = false;

  constructor(
    kvm: Kvm,
    snapshot: Snapshot,
    opts: { maxSize?: number; strategy?: ResetStrategy; onCreate?: (shell: Shell) => void; selectorsVisible?: boolean; privateCopy?: boolean } = {},
  ) {
    const maxSize = opts.maxSize ?? DEFAULT_POOL_SIZE;
    if (!Number.isSafeInteger(maxSize) || maxSize < 1 || maxSize > MAX_POOL_SIZE) {
      throw new BadArgsError(`pool size ${maxSize} is not between 1 and ${MAX_POOL_SIZE}`);
    }
    this.maxSize = maxSize;
    this.strategy = opts.strategy ?? "dirty-log";
    this.#kvm = kvm;
    this.#snapshot = snapshot;
    this.#onCreate = opts.onCreate ?? (() => {});
    this.#keepsSelectors = opts.selectorsVisible ?? true;
    this.#privateCopy = opts.privateCopy ?? false;
  }

  get snapshot(): Snapshot {
    return this.#snapshot;
  }

  /** Shells ready to hand out right now. */
  get ready(): number {
    return this.#clean.length;
  }

  /** Shells waiting for their reset. */
  get pending(): number {
    return this.#dirty.length;
  }

  /** Pre-provisions clean shells until `n` are ready (at most the pool's size). */
  ensure(n: number): void {
    const want = Math.min(n, this.maxSize);
    while (this.#clean.length + this.#dirty.length + this.#busy < this.maxSize && this.#clean.length < want) {
      this.#clean.push(this.#create());
    }
  }

  /** A clean shell: a ready one, else one cleaned now, else a new one (the pool's miss path). */
  acquire(): Shell {
    if (this.#closed) throw new BadArgsError("the shell pool is closed");
    let shell = this.#clean.pop();
    if (!shell) {
      const dirty = this.#dirty.shift();
      if (dirty) {
        this.#reset(dirty);
        shell = dirty;
      } else {
        shell = this.#create();
      }
    }
    this.#busy++;
    return shell;
  }

  /** Gives a shell back after a call; its reset is scheduled for idle time. */
  release(shell: Shell): void {
    this.#busy--;
    if (this.#closed || shell.snapshot !== this.#snapshot) {
      shell.close();
      return;
    }
    this.#dirty.push(shell);
    if (!this.#idleScheduled) {
      this.#idleScheduled = true;
      setImmediate(() => this.#cleanInIdle());
    }
  }

  /** Closes a shell whose call failed: its state is unknown, it is never reused. */
  discard(shell: Shell): void {
    this.#busy--;
    shell.close();
  }

  /** Resets every shell that is waiting (what idle time does; callable directly). */
  cleanAll(): number {
    let n = 0;
    for (let s = this.#dirty.shift(); s; s = this.#dirty.shift()) {
      this.#reset(s);
      this.#clean.push(s);
      n++;
    }
    return n;
  }

  /**
   * Installs a new snapshot (a capture replaced the entry state): shells built on the old one
   * are closed, now or when they come back. The old snapshot is closed too: shells that still map
   * its memory keep the pages alive.
   */
  replaceSnapshot(snapshot: Snapshot): void {
    const old = this.#snapshot;
    this.#snapshot = snapshot;
    for (const s of this.#clean.splice(0)) s.close();
    for (const s of this.#dirty.splice(0)) s.close();
    old.close();
  }

  #cleanInIdle(): void {
    this.#idleScheduled = false;
    if (this.#closed) return;
    this.stats.cleanedIdle += this.cleanAll();
  }

  #reset(shell: Shell): void {
    const flushes = shell.translationFlushes;
    this.stats.pagesRestored += shell.reset(this.strategy);
    this.stats.translationFlushes += shell.translationFlushes - flushes;
    this.stats.cleaned++;
  }

  #create(): Shell {
    const shell = new Shell(this.#kvm, this.#snapshot, { selectorsVisible: this.#keepsSelectors, privateCopy: this.#privateCopy });
    try {
      this.#onCreate(shell);
    } catch (e) {
      shell.close();
      throw e;
    }
    this.stats.created++;
    return shell;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const s of this.#clean.splice(0)) s.close();
    for (const s of this.#dirty.splice(0)) s.close();
    this.#snapshot.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
