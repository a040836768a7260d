// A wasp worker thread: runs calls for the main thread's `Virtine.invoke`/`call`/`run`. It holds an
// engine (Runner, with its own pool of warm shells) per virtine it has been asked to load, and
// serves its mailbox's slots in ring order. Between calls it spins briefly on the doorbell, then
// sleeps in Atomics.wait; it never returns to its event loop while it runs, so the port is read
// synchronously. A running call is stopped by main setting the slot's CANCEL flag and signalling
// this thread: the signal interrupts KVM_RUN (src/virtine/deadline.ts), and the run loop asks
// `interrupted`.
import { receiveMessageOnPort, type MessagePort } from "node:worker_threads";
import * as libc from "../../ffi/libc.ts";
import { ClosedError, WaspError } from "../errors.ts";
import { Runner } from "../virtine/runner.ts";
import { DeadlineTimer } from "../virtine/deadline.ts";
import { closeSystemKvm } from "../kvm/system.ts";
import { parseImage } from "../image/image.ts";
import { F, H, INLINE_BYTES, PING, R, S, SLOTS, STATE, C, headerOf, slotsOf, type BigReply, type Slot, type ToWorker, type VirtineSpec, type EngineOptions } from "./channel.ts";
import { encodeError } from "./wire.ts";
import { LinuxProgram } from "../virtine/linux.ts";
import { callEngine, type CallEngine } from "./engine.ts";
import type { CallReply } from "./workers.ts";

/** How long an idle worker polls its doorbell before it sleeps (a call that comes sooner costs no wake-up). */
const SPIN_MS = 0.5;
/** A reply wakes a sleeping main when this worker has at most this many calls waiting. */
const LOW_WATER = SLOTS / 4;

interface Init {
  mailbox: SharedArrayBuffer;
  control: SharedArrayBuffer;
  port: MessagePort;
}

declare const self: Worker;

self.onmessage = (e: MessageEvent<Init>) => {
  self.onmessage = null;
  serve(e.data);
};

interface Entry {
  spec: VirtineSpec;
  options: EngineOptions;
  engine?: CallEngine;
}

function serve({ mailbox, control, port }: Init): void {
  const header = headerOf(mailbox);
  const ctl = new Int32Array(control);
  const slots = slotsOf(mailbox);
  const virtines = new Map<number, Entry>();
  const inputs: Uint8Array[] = [];
  let next = 0;
  let stopping = false;
  // The deadline signal is blocked in this thread before main can learn its tid: a cancellation
  // signal sent before the first guest runs then stays pending and interrupts that guest's first
  // KVM_RUN (delivered to the do-nothing handler instead, it would be lost and the guest run on).
  DeadlineTimer.forThisThread();
  Atomics.store(header, H.TID, libc.gettid());

  // Waking main costs this thread ~25 µs here (a cross-CPU wake-up): a reply wakes it only when this
  // worker is about to run dry (at most LOW_WATER calls left), so that with many calls in flight one
  // wake-up carries several replies and main refills several slots. A sleeping main also looks by
  // itself every WAIT_MS (workers.ts).
  const completed = (force = false) => {
    Atomics.add(ctl, C.COMPLETIONS, 1);
    if (Atomics.load(ctl, C.MAIN_WAITING) !== 1) return;
    if (!force) {
      let ready = 0;
      for (const s of slots) if (s.state === STATE.READY) ready++;
      if (ready > LOW_WATER) return;
    }
    Atomics.notify(ctl, C.COMPLETIONS);
  };

  // The port is read lazily: up to the message a call needs (its virtine's load, its input), or
  // all of it when no call is waiting. Every message before the one a call needs was sent before
  // that call, and the calls before it have been served: so a "drop" or "stop" never overtakes a
  // call that was handed over before it.
  const drainPort = (until?: (msg: ToWorker) => boolean) => {
    for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
      const msg = m.message as ToWorker;
      handle(msg);
      if (until?.(msg)) return;
    }
  };
  const handle = (msg: ToWorker) => {
    if (msg.op === "load") {
      virtines.set(msg.id, { spec: msg.spec, options: msg.options });
    } else if (msg.op === "drop") {
      virtines.get(msg.id)?.engine?.close();
      virtines.delete(msg.id);
      Atomics.add(header, H.CONTROL_DONE, 1);
      completed(true);
    } else if (msg.op === "input") {
      inputs.push(msg.bytes);
    } else if (msg.op === "stop") {
      stopping = true;
    }
  };

  try {
    serveLoop();
  } finally {
    // on every way out — "stop", or an error that kills this thread — everything it opened is
    // closed: the engines' VMs, vCPUs, mappings and snapshot views, /dev/kvm, the deadline timer
    for (const entry of virtines.values()) {
      try {
        entry.engine?.close();
      } catch {
        // closing the others matters more than why one failed to close
      }
    }
    virtines.clear();
    closeSystemKvm();
    DeadlineTimer.releaseThisThread();
  }
  Atomics.store(header, H.STOPPED, 1);
  completed(true);
  port.close();
  // ends this thread (a worker's global scope has close(); the DOM lib's Worker type does not say so)
  (self as unknown as { close(): void }).close();

  function serveLoop(): void {
    let seen = Atomics.load(header, H.DOORBELL);
    for (;;) {
      const slot = slots[next];
      if (slot.state === STATE.READY) {
        next = (next + 1) % slots.length;
        const id = slot.i32[S.VIRTINE];
        if (id !== PING && !virtines.has(id)) drainPort((m) => m.op === "load" && m.id === id);
        if (slot.i32[S.FLAGS] & F.INPUT_ON_PORT && inputs.length === 0) drainPort((m) => m.op === "input");
        serveCall(slot, virtines, inputs, port);
        completed();
        continue;
      }
      drainPort();
      if (slots[next].state === STATE.READY) continue;
      if (stopping) return;
      // idle: first the resets of the shells calls gave back (a worker never returns to its event
      // loop, where a pool would do them), then poll the doorbell for a while, then sleep on it
      let cleaned = 0;
      for (const entry of virtines.values()) cleaned += entry.engine?.cleanIdle() ?? 0;
      if (cleaned > 0) continue;
      const since = performance.now();
      // (yielding as it polls: on a machine with few cores, a spinning thread must not keep the
      // runtime's own threads — JIT, GC — off the CPU for a whole time slice)
      while (Atomics.load(header, H.DOORBELL) === seen && performance.now() - since < SPIN_MS) libc.schedYield();
      // SLEEPING is stored before the doorbell's last read (main's ring() reads them the other way round)
      Atomics.store(header, H.SLEEPING, 1);
      if (Atomics.load(header, H.DOORBELL) === seen) Atomics.wait(header, H.DOORBELL, seen);
      Atomics.store(header, H.SLEEPING, 0);
      seen = Atomics.load(header, H.DOORBELL);
    }
  }
}

function serveCall(slot: Slot, virtines: Map<number, Entry>, inputs: Uint8Array[], port: MessagePort): void {
  const i32 = slot.i32;
  slot.state = STATE.RUNNING;
  const flags = i32[S.FLAGS];
  const input = flags & F.INPUT_ON_PORT ? inputs.shift() : i32[S.DATA_LEN] > 0 ? slot.data.slice(0, i32[S.DATA_LEN]) : undefined;
  let output: Uint8Array = EMPTY;
  let consoleBytes: Uint8Array = EMPTY;
  let error: string | undefined;
  let result: number = R.OK;
  let replyFlags = 0;
  let recording: Uint8Array | undefined;
  // Dekker with main's cancel: RUNNING is stored before CANCEL is read (both sequentially consistent)
  if (Atomics.load(i32, S.CANCEL) === 1) {
    result = R.CANCELLED;
  } else if (i32[S.VIRTINE] === PING) {
    // no guest: what the hand-off alone costs (`wasp bench` handoff_atomics)
    slot.value = 0n;
    i32[S.EXITS] = 0;
    i32[S.RUN_US] = 0;
  } else {
    try {
      const engine = engineOf(virtines, i32[S.VIRTINE]);
      const args: bigint[] = [];
      for (let i = 0; i < i32[S.ARGC]; i++) args.push(slot.arg(i));
      const opts = { input, interrupted: () => Atomics.load(i32, S.CANCEL) === 1, record: (flags & F.RECORD) !== 0 };
      const t = Bun.nanoseconds();
      const r: CallReply = engine.run(args, opts);
      i32[S.RUN_US] = Math.min(0x7fffffff, Math.round((Bun.nanoseconds() - t) / 1000));
      slot.value = r.value;
      i32[S.EXITS] = r.exits;
      output = r.output;
      consoleBytes = r.console;
      if (r.consoleTruncated) replyFlags |= F.CONSOLE_TRUNCATED;
      if (r.outputTruncated) replyFlags |= F.OUTPUT_TRUNCATED;
      recording = r.recording;
    } catch (e) {
      if (e instanceof WaspError && e.code === "WASP_CANCELLED") result = R.CANCELLED;
      else {
        result = R.ERROR;
        error = encodeError(e);
        if (e instanceof WaspError) recording = e.recording;
      }
    }
  }
  const errorBytes = error === undefined ? EMPTY : new TextEncoder().encode(error);
  // a recording rides in the slot too when it fits: a message on the port costs a thread wake-up
  // each way (--record-failures records every call: ~19% of a served snapshot's requests/s by port)
  const recordingBytes = recording ?? EMPTY;
  if (output.length + consoleBytes.length + errorBytes.length + recordingBytes.length > INLINE_BYTES) {
    replyFlags |= F.REPLY_ON_PORT;
    const reply: BigReply = { output, console: consoleBytes, error, ...(recording && { recording }) };
    port.postMessage(reply);
    i32[S.DATA_LEN] = 0;
    i32[S.CONSOLE_LEN] = 0;
    i32[S.RECORDING_LEN] = 0;
  } else {
    // an error's text goes where the output would (a failed call has none)
    const data = error === undefined ? output : errorBytes;
    slot.data.set(data, 0);
    slot.data.set(consoleBytes, data.length);
    slot.data.set(recordingBytes, data.length + consoleBytes.length);
    i32[S.DATA_LEN] = data.length;
    i32[S.CONSOLE_LEN] = consoleBytes.length;
    i32[S.RECORDING_LEN] = recording ? recordingBytes.length : 0;
  }
  i32[S.FLAGS] = replyFlags;
  i32[S.RESULT] = result;
  slot.state = STATE.DONE;
}

/** The worker's engine of a virtine, built on its first call here. */
function engineOf(virtines: Map<number, Entry>, id: number): CallEngine {
  const entry = virtines.get(id);
  if (!entry) throw new ClosedError("virtine");
  if (!entry.engine) {
    const { spec, options } = entry;
    if (spec.kind === "linux" || (spec.kind === "snapshot" && spec.file.info.linux)) {
      const { dataSize: _, ...linux } = options;
      entry.engine = callEngine(spec.kind === "linux" ? LinuxProgram.fromBytes(spec.bytes, spec.name, { ...linux, interpreter: spec.interpreter }) : LinuxProgram.fromSnapshotFile(spec.file, linux), spec);
    } else {
      const { env: _e, ...runner } = options;
      entry.engine = callEngine(spec.kind === "snapshot" ? Runner.fromSnapshotFile(spec.file, runner) : new Runner(parseImage(spec.bytes, spec.name, { raw: spec.raw }), runner), spec);
    }
  }
  return entry.engine;
}

const EMPTY: Uint8Array = new Uint8Array(0);
