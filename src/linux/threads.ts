// A served program's threads after its snapshot (`wasp serve --program`): a server that starts a
// thread per connection (Python's ThreadingHTTPServer) runs its threads in the connection's one
// vCPU, one at a time. A thread runs until it blocks — a futex wait on a value that matches, its
// exit, a wait for another connection — and then the next runnable thread runs from where it last
// blocked (its registers, FS base and FPU state kept here while it does not run). There is no
// preemption and no parallelism: a thread that never blocks keeps the vCPU until the deadline.
// Time does not pass while a thread waits: a futex wait with a timeout that nothing can wake times
// out at once. Every thread waiting on a futex nobody can wake is a deadlock: the connection ends.

/** What a thread that does not run resumes with: its registers (a kvm_regs image, RAX its system call's result), FS base, XSAVE area. */
export interface ThreadState {
  regs: Uint8Array;
  fs: bigint;
  xsave: Uint8Array;
}

export interface GreenThread {
  tid: number;
  /** its state while another runs */
  state?: ThreadState;
  /** CLONE_CHILD_CLEARTID: cleared and woken at its exit (pthread_join waits on it) */
  clearTid: bigint;
  /** what it waits for: a futex word (and its bitset), or another connection (never, in this call) */
  wait?: { futex: bigint; bitset: number } | { connection: true };
}

/** Most threads a connection may make at once. */
export const MAX_THREADS = 64;

export class Threads {
  readonly all: GreenThread[] = [{ tid: 1, clearTid: 0n }];
  current: GreenThread = this.all[0];
  #nextTid = 2;

  /** More than the main thread: the layer hands futex, gettid and exit to the host. */
  get many(): boolean {
    return this.all.length > 1;
  }

  spawn(clearTid: bigint): GreenThread | undefined {
    if (this.all.length >= MAX_THREADS) return undefined;
    const t: GreenThread = { tid: this.#nextTid++, clearTid };
    this.all.push(t);
    return t;
  }

  /** The next thread that can run, after the current one in turn. */
  runnable(): GreenThread | undefined {
    const at = this.all.indexOf(this.current);
    for (let i = 1; i <= this.all.length; i++) {
      const t = this.all[(at + i) % this.all.length];
      if (t !== this.current && t.wait === undefined) return t;
    }
    return undefined;
  }

  /** Wakes at most `n` threads waiting on `addr` (whose bitset meets `bitset`): how many. */
  wake(addr: bigint, n: number, bitset = 0xffffffff): number {
    let woken = 0;
    for (const t of this.all) {
      if (woken >= n) break;
      const w = t.wait;
      if (w && "futex" in w && w.futex === addr && (w.bitset & bitset) !== 0) {
        t.wait = undefined;
        woken++;
      }
    }
    return woken;
  }

  /** FUTEX_REQUEUE: wakes at most `n` waiters on `addr`, moves at most `m` more to wait on `to`; how many woke and moved. */
  requeue(addr: bigint, n: number, to: bigint, m: number): number {
    const woken = this.wake(addr, n);
    let moved = 0;
    for (const t of this.all) {
      if (moved >= m) break;
      const w = t.wait;
      if (w && "futex" in w && w.futex === addr) {
        w.futex = to;
        moved++;
      }
    }
    return woken + moved;
  }

  /** Removes the current thread (its exit). */
  remove(t: GreenThread): void {
    const i = this.all.indexOf(t);
    if (i >= 0) this.all.splice(i, 1);
  }

  /** Every thread but the current waits on a futex: nothing could ever wake them. */
  get deadlocked(): boolean {
    return this.all.every((t) => t === this.current || (t.wait !== undefined && "futex" in t.wait));
  }
}
