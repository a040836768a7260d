// The pool of worker threads behind `Virtine.invoke`/`call`/`run`: each worker runs one call at a
// time with engines (and warm shells) of its own; calls beyond the workers' slots wait in a bounded
// queue here. See channel.ts for the hand-off and worker.ts for the other side.
//
// While calls run, main learns of replies in one of two ways. If a core is free for it (fewer
// workers busy than cores), it polls the mailboxes from setImmediate callbacks — the event loop
// keeps turning, but a reply is seen within a microsecond or two instead of after a thread wake-up
// (~30-60 µs on this machine). After POLL_MS without a reply, or when every core has a busy worker,
// it waits with Atomics.waitAsync on the completion counter instead, and workers notify it.
import { availableParallelism } from "node:os";
import { MessageChannel, receiveMessageOnPort, type MessagePort } from "node:worker_threads";
import * as libc from "../../ffi/libc.ts";
import { BadArgsError, CancelledError, ClosedError, QueueFullError, WaspError } from "../errors.ts";
import { DEADLINE_SIGNAL } from "../virtine/deadline.ts";
import type { RunResult } from "../virtine/runner.ts";
import { C, F, H, INLINE_BYTES, PING, R, S, SLOTS, STATE, headerOf, newControl, newMailbox, slotsOf, type BigReply, type EngineOptions, type Slot, type ToWorker, type VirtineSpec } from "./channel.ts";
import { decodeError } from "./wire.ts";

/** Polling for replies stops after this long without one (then main sleeps until notified). */
const POLL_MS = 2;
/** Longest a sleeping main waits before it looks at the mailboxes anyway. */
const WAIT_MS = 100;
export const DEFAULT_MAX_QUEUE = 4096;
const MAX_WORKERS = 256;

export interface WorkerPoolOptions {
  /** worker threads (default: one per core) */
  size?: number;
  /** calls that may wait for a worker (default 4096); one more is refused with QueueFullError */
  maxQueue?: number;
}

/** What a worker's call gives back. */
/** A call's reply from a worker: the engine's result, as the runner gives it on this thread. */
export type CallReply = RunResult & {
  /** a Linux program's stdout went past its cap */
  outputTruncated?: boolean;
  /** how long the call ran on its thread, µs (without the wait for a worker and the hand-off) */
  runMicros?: number;
  /** the call's recording, when it was asked for */
  recording?: Uint8Array;
};

/** A virtine as the pool knows it: an id and what a worker needs to build its engine. */
export interface PoolVirtine {
  readonly id: number;
  readonly spec: VirtineSpec;
  readonly options: EngineOptions;
}

interface Call {
  virtine: PoolVirtine;
  args: readonly bigint[];
  input: Uint8Array | undefined;
  signal: AbortSignal | undefined;
  /** record the call on the worker */
  record: boolean;
  resolve: (r: CallReply) => void;
  reject: (e: unknown) => void;
  onAbort: (() => void) | undefined;
  /** where it runs, once dispatched */
  worker: WorkerHandle | undefined;
  slot: Slot | undefined;
}

class WorkerHandle {
  readonly mailbox = newMailbox();
  readonly header = headerOf(this.mailbox);
  readonly slots = slotsOf(this.mailbox);
  readonly port: MessagePort;
  readonly worker: Worker;
  /** virtines whose spec this worker has been sent */
  readonly loaded = new Set<number>();
  /** dispatched calls, oldest first (they finish in this order) */
  readonly inFlight: Call[] = [];
  nextSlot = 0;
  controlSent = 0;
  failure: WaspError | undefined;

  constructor(control: SharedArrayBuffer, onError: (w: WorkerHandle, e: WaspError) => void) {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = new Worker(threadEntry(new URL("./worker.ts", import.meta.url), "api/worker.js"));
    this.worker.addEventListener("error", (ev) => onError(this, new WaspError("WASP_INTERNAL", `a wasp worker failed: ${failureText(ev as ErrorEvent)}`)));
    this.worker.postMessage({ mailbox: this.mailbox, control, port: port2 }, [port2]);
    this.worker.unref();
  }

  send(msg: ToWorker): void {
    this.port.postMessage(msg);
  }

  ring(): void {
    Atomics.add(this.header, H.DOORBELL, 1);
    // Dekker with the worker, which stores SLEEPING before it reads the doorbell a last time: either
    // it sees this ring, or this sees it asleep (a notify costs a few µs; most rings find it awake)
    if (Atomics.load(this.header, H.SLEEPING) === 1) Atomics.notify(this.header, H.DOORBELL);
  }
}

/**
 * A worker thread's entry file: `source` when running from the sources, or, inside the standalone
 * binary, the extra entry point `npm run build:cli` bundles (`--root src` puts src/X.ts at
 * /$bunfs/root/X.js in the binary's files).
 */
export function threadEntry(source: URL, bundled: string): string {
  return source.pathname.startsWith("/$bunfs/") ? `/$bunfs/root/${bundled}` : source.href;
}

export class WorkerPool implements AsyncDisposable {
  readonly size: number;
  readonly maxQueue: number;
  /** calls a worker holds at once (the running one and those next in line); more wait in the queue */
  readonly slotsPerWorker = SLOTS;
  readonly #control = newControl();
  readonly #ctl = new Int32Array(this.#control);
  #workers: WorkerHandle[] = [];
  readonly #queue: Call[] = [];
  #running = 0;
  #pumping = false;
  #lastProgress = 0;
  #controlWaits: { worker: WorkerHandle; target: number; done: () => void }[] = [];
  #closed = false;
  #completed = 0;
  readonly #cores = Math.max(1, availableParallelism());

  constructor(options: WorkerPoolOptions = {}) {
    const size = options.size ?? this.#cores;
    if (!Number.isSafeInteger(size) || size < 1 || size > MAX_WORKERS) throw new BadArgsError(`worker pool size ${size} is not between 1 and ${MAX_WORKERS}`);
    const maxQueue = options.maxQueue ?? DEFAULT_MAX_QUEUE;
    if (!Number.isSafeInteger(maxQueue) || maxQueue < 0) throw new BadArgsError(`maxQueue ${maxQueue} is not a count of calls`);
    this.size = size;
    this.maxQueue = maxQueue;
  }

  static #shared: WorkerPool | undefined;

  /** The process-wide pool used when a virtine is given none: one worker per core. */
  static shared(): WorkerPool {
    if (!WorkerPool.#shared || WorkerPool.#shared.#closed) WorkerPool.#shared = new WorkerPool();
    return WorkerPool.#shared;
  }

  /** Calls waiting for a worker, calls in workers, calls finished. */
  get stats(): { queued: number; running: number; completed: number; workers: number } {
    return { queued: this.#queue.length, running: this.#running, completed: this.#completed, workers: this.#workers.length };
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Runs one call of `virtine` on a worker. */
  submit(virtine: PoolVirtine, args: readonly bigint[], input: Uint8Array | undefined, signal: AbortSignal | undefined, record = false): Promise<CallReply> {
    if (this.#closed) return Promise.reject(new ClosedError("worker pool"));
    if (signal?.aborted) return Promise.reject(signal.reason);
    let call!: Call;
    const promise = new Promise<CallReply>((resolve, reject) => {
      call = { virtine, args, input, signal, record, resolve, reject, onAbort: undefined, worker: undefined, slot: undefined };
    });
    const worker = this.#freeWorker();
    if (worker) this.#dispatch(call, worker);
    else if (this.#queue.length >= this.maxQueue) return Promise.reject(new QueueFullError(this.maxQueue));
    else this.#queue.push(call);
    if (signal) {
      call.onAbort = () => this.#abort(call);
      signal.addEventListener("abort", call.onAbort, { once: true });
    }
    this.#startPump();
    return promise;
  }

  /** A round trip to a worker that runs no guest: what the hand-off alone costs. */
  ping(): Promise<CallReply> {
    return this.submit(PING_VIRTINE, [], undefined, undefined);
  }

  /**
   * Tells every worker that loaded `virtine` to close its engine; resolves once they have (their
   * VMs and files closed). Calls of it still queued are rejected with ClosedError.
   */
  release(virtine: PoolVirtine): Promise<void> {
    for (let i = this.#queue.length - 1; i >= 0; i--) {
      const call = this.#queue[i];
      if (call.virtine.id !== virtine.id) continue;
      this.#queue.splice(i, 1);
      this.#settle(call, () => call.reject(new ClosedError("virtine")));
    }
    const waits: Promise<void>[] = [];
    for (const w of this.#workers) {
      if (!w.loaded.delete(virtine.id)) continue;
      w.send({ op: "drop", id: virtine.id });
      w.controlSent++;
      const target = w.controlSent;
      waits.push(new Promise<void>((done) => this.#controlWaits.push({ worker: w, target, done })));
      w.ring();
    }
    if (waits.length > 0) this.#startPump();
    return Promise.all(waits).then(() => undefined);
  }

  /**
   * Closes the pool: queued calls are rejected with ClosedError, running ones finish, then every
   * worker closes its engines and stops.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const call of this.#queue.splice(0)) this.#settle(call, () => call.reject(new ClosedError("worker pool")));
    // the pump runs while calls do: it settles the held ones
    while (this.#running > 0) await Bun.sleep(1);
    for (const w of this.#workers) {
      w.send({ op: "stop" });
      w.ring();
    }
    while (this.#workers.some((w) => Atomics.load(w.header, H.STOPPED) === 0 && !w.failure)) await Bun.sleep(1);
    for (const w of this.#workers) {
      w.port.close();
      w.worker.terminate();
    }
    this.#workers = [];
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---------------------------------------------------------------------------------------------

  /** The worker with the fewest calls, if it has a free slot (workers are started as needed). */
  #freeWorker(): WorkerHandle | undefined {
    let best: WorkerHandle | undefined;
    for (const w of this.#workers) if (!w.failure && (!best || w.inFlight.length < best.inFlight.length)) best = w;
    if ((!best || best.inFlight.length > 0) && this.#workers.length < this.size) {
      best = new WorkerHandle(this.#control, (w, e) => this.#workerFailed(w, e));
      this.#workers.push(best);
    }
    return best && best.inFlight.length < SLOTS ? best : undefined;
  }

  #dispatch(call: Call, w: WorkerHandle): void {
    const { virtine } = call;
    if (virtine.id !== PING && !w.loaded.has(virtine.id)) {
      w.send({ op: "load", id: virtine.id, spec: virtine.spec, options: virtine.options });
      w.loaded.add(virtine.id);
    }
    const slot = w.slots[w.nextSlot];
    w.nextSlot = (w.nextSlot + 1) % SLOTS;
    const i32 = slot.i32;
    const { args, input } = call;
    i32[S.VIRTINE] = virtine.id;
    i32[S.ARGC] = args.length;
    for (let i = 0; i < args.length; i++) slot.setArg(i, args[i]);
    let flags = call.record ? F.RECORD : 0;
    const len = input?.length ?? 0;
    if (input && len > INLINE_BYTES) {
      flags |= F.INPUT_ON_PORT;
      w.send({ op: "input", bytes: input });
    } else if (input) {
      slot.data.set(input, 0);
    }
    i32[S.FLAGS] = flags;
    i32[S.DATA_LEN] = len;
    Atomics.store(i32, S.CANCEL, 0);
    slot.state = STATE.READY;
    call.worker = w;
    call.slot = slot;
    w.inFlight.push(call);
    this.#running++;
    w.ring();
  }

  #abort(call: Call): void {
    const queued = this.#queue.indexOf(call);
    if (queued >= 0) {
      this.#queue.splice(queued, 1);
      this.#settle(call, () => call.reject(call.signal?.reason));
      return;
    }
    const { slot, worker } = call;
    if (!slot || !worker || slot.state === STATE.FREE) return;
    // Dekker with the worker: CANCEL is stored before the state is read. Either the worker sees the
    // flag before it starts the guest, or the guest is running and the signal interrupts it.
    Atomics.store(slot.i32, S.CANCEL, 1);
    if (slot.state === STATE.RUNNING) {
      const tid = Atomics.load(worker.header, H.TID);
      if (tid > 0) libc.tgkill(tid, DEADLINE_SIGNAL);
    }
  }

  #startPump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    this.#lastProgress = performance.now();
    for (const w of this.#workers) w.worker.ref();
    setImmediate(this.#pump);
  }

  readonly #pump = (): void => {
    const seen = Atomics.load(this.#ctl, C.COMPLETIONS);
    if (this.#harvest()) this.#lastProgress = performance.now();
    if (this.#running === 0 && this.#queue.length === 0 && this.#controlWaits.length === 0) {
      this.#pumping = false;
      for (const w of this.#workers) w.worker.unref();
      return;
    }
    let busy = 0;
    for (const w of this.#workers) if (w.inFlight.length > 0) busy++;
    // poll while latency matters: each busy worker has just the one call, and a core is free for main
    const backlog = this.#running > busy || this.#queue.length > 0;
    if (!backlog && busy < this.#cores && performance.now() - this.#lastProgress < POLL_MS) {
      setImmediate(this.#pump);
      return;
    }
    Atomics.store(this.#ctl, C.MAIN_WAITING, 1);
    const wait = Atomics.waitAsync(this.#ctl, C.COMPLETIONS, seen, WAIT_MS);
    const wake = () => {
      Atomics.store(this.#ctl, C.MAIN_WAITING, 0);
      this.#lastProgress = performance.now();
      this.#pump();
    };
    if (wait.async) void wait.value.then(wake);
    else setImmediate(wake);
  };

  /** Settles every finished call and fills the freed slots from the queue; true if anything finished. */
  #harvest(): boolean {
    let progress = false;
    for (const w of this.#workers) {
      while (w.inFlight.length > 0) {
        const call = w.inFlight[0];
        const slot = call.slot!;
        if (slot.state !== STATE.DONE) break;
        w.inFlight.shift();
        this.#running--;
        this.#completed++;
        progress = true;
        this.#finish(call, w, slot);
      }
    }
    for (let i = this.#controlWaits.length - 1; i >= 0; i--) {
      const wait = this.#controlWaits[i];
      if (Atomics.load(wait.worker.header, H.CONTROL_DONE) >= wait.target || wait.worker.failure) {
        this.#controlWaits.splice(i, 1);
        wait.done();
        progress = true;
      }
    }
    this.#fillSlots();
    return progress;
  }

  /** Hands queued calls to workers while they have free slots. */
  #fillSlots(): void {
    while (this.#queue.length > 0) {
      const w = this.#freeWorker();
      if (!w) break;
      this.#dispatch(this.#queue.shift()!, w);
    }
  }

  /** Reads a DONE slot's reply, frees the slot and settles the call. */
  #finish(call: Call, w: WorkerHandle, slot: Slot): void {
    const i32 = slot.i32;
    const flags = i32[S.FLAGS];
    const result = i32[S.RESULT];
    let output: Uint8Array;
    let consoleBytes: Uint8Array;
    let error: string | undefined;
    let recording: Uint8Array | undefined;
    if (flags & F.REPLY_ON_PORT) {
      const reply = receiveMessageOnPort(w.port)?.message as BigReply | undefined;
      if (!reply) throw new WaspError("WASP_INTERNAL", "a worker's reply is missing from its port");
      ({ output, console: consoleBytes, error, recording } = reply);
    } else {
      const dataLen = i32[S.DATA_LEN];
      const consoleLen = i32[S.CONSOLE_LEN];
      const recordingLen = i32[S.RECORDING_LEN];
      // the worker's lengths are checked against the slot before they are used
      if (dataLen < 0 || consoleLen < 0 || recordingLen < 0 || dataLen + consoleLen + recordingLen > INLINE_BYTES) throw new WaspError("WASP_INTERNAL", "a worker's reply does not fit its slot");
      const data = dataLen > 0 ? slot.data.slice(0, dataLen) : EMPTY;
      consoleBytes = consoleLen > 0 ? slot.data.slice(dataLen, dataLen + consoleLen) : EMPTY;
      if (recordingLen > 0) recording = slot.data.slice(dataLen + consoleLen, dataLen + consoleLen + recordingLen);
      if (result === R.ERROR) {
        error = new TextDecoder().decode(data);
        output = EMPTY;
      } else output = data;
    }
    const value = slot.value;
    const exits = i32[S.EXITS];
    const runMicros = i32[S.RUN_US];
    slot.state = STATE.FREE;
    this.#settle(call, () => {
      if (call.signal?.aborted) call.reject(call.signal.reason);
      else if (result === R.CANCELLED) call.reject(new CancelledError());
      else if (result === R.ERROR) {
        const e = decodeError(error ?? "{}");
        if (recording && e instanceof WaspError) e.recording = recording;
        call.reject(e);
      } else call.resolve({ value, output, console: consoleBytes, consoleTruncated: (flags & F.CONSOLE_TRUNCATED) !== 0, outputTruncated: (flags & F.OUTPUT_TRUNCATED) !== 0, exits, runMicros, ...(recording && { recording }) });
    });
  }

  #settle(call: Call, how: () => void): void {
    if (call.onAbort) call.signal?.removeEventListener("abort", call.onAbort);
    call.onAbort = undefined;
    how();
  }

  /**
   * A worker died (it should not: an uncaught error in it). The calls it held fail with `e`; it is
   * dropped, and the next call that needs a worker starts one in its place (queued calls at once).
   */
  #workerFailed(w: WorkerHandle, e: WaspError): void {
    if (w.failure) return;
    w.failure = e;
    for (const call of w.inFlight.splice(0)) {
      this.#running--;
      this.#settle(call, () => call.reject(e));
    }
    this.#workers = this.#workers.filter((x) => x !== w);
    w.port.close();
    void w.worker.terminate();
    if (!this.#closed) this.#fillSlots();
  }
}

/**
 * What killed a worker, as one line: the thrown error's own message when there is one (the event's
 * message may carry the runtime's source excerpt, several lines long).
 */
function failureText(ev: ErrorEvent): string {
  const thrown: unknown = ev.error;
  const text = thrown instanceof Error ? thrown.message : String(ev.message || "unknown error");
  const lines = text.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  // without the thrown object, the runtime's own line ("error: ...") says what happened
  return (thrown instanceof Error ? lines.join(" ") : lines.find((l) => /^\w*error\b/i.test(l)) ?? lines[0] ?? "unknown error").replace(/^error: /i, "");
}

const PING_VIRTINE: PoolVirtine = { id: PING, spec: { kind: "image", bytes: new Uint8Array(0), name: "ping" }, options: {} };
const EMPTY: Uint8Array = new Uint8Array(0);
