// The shells of one virtine on one thread, whatever its engine (Runner, LinuxProgram): the state
// calls start from until the pool takes it over, the pool of warm shells made from it, one-shot
// shells for the cold path, and the capture of a new snapshot during a call — which replaces the
// pool's snapshot when that call ends well, together with whatever the engine keeps beside it
// (`T`: a Linux program's process state).
import type { Kvm } from "../kvm/system.ts";
import { BadArgsError } from "../errors.ts";
import { userSelectorsVisible } from "../shell/probe.ts";
import { Shell, type ResetStrategy } from "../shell/shell.ts";
import { ShellPool, type PoolStats } from "../shell/pool.ts";
import { Snapshot } from "../snapshot/snapshot.ts";
import type { DeadlineTimer } from "./deadline.ts";

export interface ShellsOptions {
  /** most warm shells kept (ShellPool's default when undefined) */
  poolSize?: number;
  strategy?: ResetStrategy;
  privateCopy?: boolean;
}

export class VirtineShells<T = undefined> {
  readonly #kvm: Kvm;
  readonly #deadline: DeadlineTimer;
  readonly #makeBase: () => Snapshot;
  readonly #opts: ShellsOptions;
  /** the state calls start from until the pool exists (made on first use, or given: a restored file's) */
  #base: Snapshot | undefined;
  #pool: ShellPool | undefined;
  /** the shell of the call in progress */
  #current: Shell | undefined;
  /** a state captured during the call in progress, and what the engine keeps with it */
  #captured: { snapshot: Snapshot; with: T } | undefined;
  /** what the engine keeps with the pool's captured snapshot */
  #resume: T | undefined;
  #closed = false;

  /**
   * `base` makes the entry state when first needed; `given`, a state to start from instead (owned
   * from here on: a restored file's), with what the engine keeps beside it (`resume`)
   */
  constructor(kvm: Kvm, deadline: DeadlineTimer, base: () => Snapshot, opts: ShellsOptions = {}, given?: Snapshot, resume?: T) {
    this.#kvm = kvm;
    this.#deadline = deadline;
    this.#makeBase = base;
    this.#opts = opts;
    this.#base = given;
    this.#resume = resume;
  }

  /** The state calls start from before the pool exists (made once). */
  base(): Snapshot {
    this.#base ??= this.#makeBase();
    return this.#base;
  }

  /** The pool of warm shells, created with the base state on first use. */
  get pool(): ShellPool {
    if (this.#closed) throw new BadArgsError("the virtine is closed");
    if (!this.#pool) {
      // the pool owns the snapshot from here on (and replaces it on a capture)
      const snapshot = this.base();
      this.#base = undefined;
      this.#pool = new ShellPool(this.#kvm, snapshot, {
        maxSize: this.#opts.poolSize,
        strategy: this.#opts.strategy,
        privateCopy: this.#opts.privateCopy,
        selectorsVisible: userSelectorsVisible(this.#kvm),
        onCreate: (shell) => this.#deadline.attach(shell.vcpu.fd),
      });
    }
    return this.#pool;
  }

  /** Pre-provisions `n` warm shells (bounded by the pool size), off the path of later calls. */
  ensure(n: number): void {
    this.pool.ensure(n);
  }

  /** Resets the shells that calls gave back, now (a worker does it when it has nothing else to do). */
  cleanIdle(): number {
    return this.#pool?.cleanAll() ?? 0;
  }

  get stats(): PoolStats {
    return this.pool.stats;
  }

  /** True when calls resume from a captured state (a capture replaced the entry state, or a file's). */
  get snapshotTaken(): boolean {
    return (this.#pool?.snapshot ?? this.#base)?.kind === "captured";
  }

  /** What the engine keeps with the captured snapshot calls start from (undefined while they start at the entry). */
  get resume(): T | undefined {
    return this.snapshotTaken ? this.#resume : undefined;
  }

  /** The shell of the call in progress. */
  get current(): Shell | undefined {
    return this.#current;
  }

  /** A clean shell for a call: a warm one of the pool, or with `oneShot` a new VM of its own. */
  acquire(oneShot: boolean): Shell {
    const shell = oneShot ? this.#oneShot() : this.pool.acquire();
    this.#current = shell;
    return shell;
  }

  #oneShot(): Shell {
    const shell = new Shell(this.#kvm, this.base(), { oneShot: true });
    try {
      this.#deadline.attach(shell.vcpu.fd);
    } catch (e) {
      shell.close();
      throw e;
    }
    return shell;
  }

  /**
   * A snapshot hypercall of the call in progress: the first one of the virtine captures the shell's
   * state (with `keep` beside it) and answers 0; once one exists, 1. A one-shot shell keeps nothing: 0.
   */
  capture(keep: () => T, clear: readonly (readonly [number, number])[] = [], resumeAt?: bigint): bigint {
    const shell = this.#current;
    if (!shell || shell.oneShot) return 0n;
    const pool = this.pool;
    if (pool.snapshot.kind === "captured" || this.#captured) return 1n;
    const snapshot = Snapshot.capture(pool.snapshot, shell.vcpu, shell.mem.bytes, shell.takeDirtyPages(), clear, resumeAt);
    try {
      this.#captured = { snapshot, with: keep() };
    } catch (e) {
      snapshot.close();
      throw e;
    }
    return 0n;
  }

  /**
   * The snapshot the calls after the one in progress start from, if it ends well: the one it
   * captured, else the pool's (undefined for a one-shot shell, whose call leaves nothing).
   */
  get next(): Snapshot | undefined {
    if (!this.#current || this.#current.oneShot) return undefined;
    return this.#captured?.snapshot ?? this.#pool?.snapshot;
  }

  /**
   * Ends the call in progress: its shell goes back to the pool (reset later), or is discarded when
   * the call failed or captured (it holds the capture plus what ran after it); a capture of a call
   * that ended well becomes the pool's snapshot.
   */
  finish(ok: boolean): void {
    const shell = this.#current;
    this.#current = undefined;
    if (!shell) return;
    if (shell.oneShot) {
      shell.close();
      return;
    }
    const pool = this.#pool;
    const captured = this.#captured;
    this.#captured = undefined;
    if (!pool) {
      // closed during the call
      shell.close();
      captured?.snapshot.close();
      return;
    }
    if (captured) {
      pool.discard(shell);
      if (ok) {
        pool.replaceSnapshot(captured.snapshot);
        this.#resume = captured.with;
      } else captured.snapshot.close();
      return;
    }
    if (ok) pool.release(shell);
    else pool.discard(shell);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pool?.close();
    this.#pool = undefined;
    this.#base?.close();
    this.#base = undefined;
    this.#resume = undefined;
  }
}
