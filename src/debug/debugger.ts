// gdb attached to one call (`wasp invoke --gdb`, `wasp replay --gdb`): a TCP listener the
// debugger connects to, and the DebugHook a run loop calls (src/virtine/debug-hook.ts). The guest
// stops at its start; breakpoints are HLT bytes, single steps RFLAGS.TF, both reported by the guest's
// #BP and #DB through the host's IDT (target.ts). A fault stops the guest with the signal a
// process would get (gdb shows where), then ends the call as without a debugger. gdb's detach, or a
// debugger that goes away, lets the call run on to its end; gdb's kill ends it (WASP_CANCELLED).
import { acceptTcp, closeFd, listenTcp, readSome, readable, writeAll } from "../../ffi/net.ts";
import { SEL_USER_CODE } from "../image/boot.ts";
import type { Vcpu } from "../kvm/vcpu.ts";
import type { GuestMemory } from "../memory/guest-memory.ts";
import type { DebugHook } from "../virtine/debug-hook.ts";
import { BadArgsError, CancelledError, GuestFaultError, GuestPanicError, PolicyViolationError, StackOverflowError } from "../errors.ts";
import { GdbSession, type Connection, type Resume, type Stop } from "./session.ts";
import { StoppedGuest, TF, readTrapFrame, type Watchpoint } from "./target.ts";

const SIGINT = 2;
const SIGILL = 4;
const SIGTRAP = 5;
const SIGABRT = 6;
const SIGFPE = 8;
const SIGSEGV = 11;
const SIGSYS = 31;

/** The signal a process would get for exception `vector`. */
function signalOf(vector: number): number {
  if (vector === 1 || vector === 3) return SIGTRAP;
  if (vector === 0 || vector === 16 || vector === 19) return SIGFPE;
  if (vector === 6) return SIGILL;
  return SIGSEGV;
}

/** `HOST:PORT`, `:PORT` or `PORT` (an IPv4 address; `localhost`; 127.0.0.1 when none is given). */
export function parseListenAddress(spec: string, flag: string): { host: string; port: number } {
  const m = /^(?:(localhost|\d{1,3}(?:\.\d{1,3}){3})?:)?(\d{1,5})$/.exec(spec);
  const host = m?.[1] === undefined || m[1] === "localhost" ? "127.0.0.1" : m[1];
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535 || host.split(".").some((p) => Number(p) > 255)) {
    throw new BadArgsError(`${flag} ${spec}: not HOST:PORT (an IPv4 address or localhost, and a port 0-65535; 0 picks one)`);
  }
  return { host, port };
}

/** A listening socket for one debugger. */
export class GdbListener {
  readonly fd: number;
  readonly host: string;
  readonly port: number;

  constructor(host: string, port: number) {
    try {
      const l = listenTcp(host, port);
      this.fd = l.fd;
      this.port = l.port;
    } catch (e) {
      throw new BadArgsError(`--gdb ${host}:${port}: cannot listen there (${e instanceof Error ? e.message : String(e)})`);
    }
    this.host = host;
  }

  /** Waits for the debugger; the listener is closed then (one debugger per call). */
  accept(): GdbDebugger {
    try {
      const { fd } = acceptTcp(this.fd);
      return new GdbDebugger(new GdbSession(socketConnection(fd)));
    } finally {
      this.close();
    }
  }

  close(): void {
    if (this.fd >= 0) closeFd(this.fd);
    (this as { fd: number }).fd = -1;
  }
}

function socketConnection(fd: number): Connection {
  const buf = new Uint8Array(65536);
  let open = true;
  return {
    read: () => (open ? readSome(fd, buf).slice() : new Uint8Array(0)),
    write: (bytes) => open && writeAll(fd, bytes),
    readable: () => open && readable(fd),
    close: () => {
      if (open) closeFd(fd);
      open = false;
    },
  };
}

export class GdbDebugger implements DebugHook {
  readonly #session: GdbSession;
  readonly #breakpoints = new Map<bigint, number>();
  readonly #watchpoints = new Map<string, Watchpoint>();
  /** gdb continued with write watchpoints set: the stub steps the guest itself, looking at them after each instruction */
  #watching = false;
  #watchSteps = 0;
  /** gdb let go (detach, or its connection ended): the call runs on without it */
  #detached = false;
  #stepping = false;

  constructor(session: GdbSession) {
    this.#session = session;
  }

  start(vcpu: Vcpu, mem: GuestMemory): void {
    if (this.#detached) return;
    const guest = new StoppedGuest(vcpu, mem, this.#breakpoints, this.#watchpoints);
    this.#go(guest, this.#session.serve(guest, { signal: SIGTRAP }, false));
  }

  exception(vcpu: Vcpu, mem: GuestMemory): boolean {
    if (this.#detached) return false;
    const frame = readTrapFrame(vcpu, mem);
    // only a trap in the guest's own code can be resumed (the host's entry code is never stepped)
    if (!frame || frame.cs !== BigInt(SEL_USER_CODE)) return false;
    const guest = new StoppedGuest(vcpu, mem, this.#breakpoints, this.#watchpoints, frame);
    let stop: Stop;
    if (frame.vector === 1) {
      if (this.#stepping || this.#watching) guest.regs.rflags &= ~TF;
      const hit = this.#watchpoints.size > 0 ? guest.changedWatchpoint() : undefined;
      if (hit) stop = { signal: SIGTRAP, watch: hit.addr };
      else if (this.#watching) {
        // one of the stub's own steps, with nothing written: on, unless gdb asked to stop meanwhile
        if (++this.#watchSteps % 1024 !== 0 || !this.#session.pollInterrupt()) {
          guest.resume(true);
          return true;
        }
        stop = { signal: SIGINT };
      } else stop = { signal: SIGTRAP };
    } else if (frame.vector === 13 && frame.error === 0n && this.#breakpoints.has(frame.rip)) {
      // gdb's breakpoint: the HLT byte written there faults (#GP) before it runs, RIP on it
      stop = { signal: SIGTRAP, swbreak: true };
    } else if (frame.vector === 3 || (frame.vector === 13 && frame.error === (3n << 3n) + 2n)) {
      // the guest's own INT3: it traps with RIP after it; where the IDT gate's privilege refuses
      // it (#GP naming vector 3), RIP is the INT3 itself
      const at = frame.vector === 3 ? frame.rip - 1n : frame.rip;
      if (this.#breakpoints.has(at)) {
        guest.regs.rip = at;
        stop = { signal: SIGTRAP, swbreak: true };
      } else {
        guest.regs.rip = at + 1n; // the guest's own INT3: it goes on after it, as a process does
        stop = { signal: SIGTRAP };
      }
    } else {
      // a fault: shown where it happened, then the call ends with it whatever gdb says
      const resume = this.#session.serve(guest, { signal: signalOf(frame.vector) }, true);
      if (resume === "detach") this.#detach(guest);
      return false;
    }
    this.#go(guest, this.#session.serve(guest, stop, true));
    return true;
  }

  interrupted(vcpu: Vcpu, mem: GuestMemory): void {
    if (this.#detached) return;
    if (!this.#session.pollInterrupt()) {
      // gdb went away while the guest ran: its breakpoints go with it, the call runs on
      if (this.#session.gone) this.#detach(new StoppedGuest(vcpu, mem, this.#breakpoints, this.#watchpoints));
      return;
    }
    const guest = new StoppedGuest(vcpu, mem, this.#breakpoints, this.#watchpoints);
    this.#go(guest, this.#session.serve(guest, { signal: SIGINT }, true));
  }

  ended(outcome: { status: bigint } | { error: unknown }): void {
    if (!this.#detached) {
      // gdb's exit codes have 8 bits: the whole value is said first
      if ("status" in outcome) this.#session.ended({ status: Number(outcome.status & 0xffn) }, `wasp: the call ended with ${outcome.status}\n`);
      else if (!(outcome.error instanceof CancelledError)) {
        const e = outcome.error;
        this.#session.ended({ signal: endSignal(e) }, e instanceof Error ? `wasp: ${e.message}\n` : undefined);
      }
    }
    this.close();
  }

  close(): void {
    this.#detached = true;
    this.#session.close();
  }

  #go(guest: StoppedGuest, resume: Resume): void {
    switch (resume) {
      case "continue":
      case "step":
        this.#stepping = resume === "step";
        // write watchpoints: the guest goes on one instruction at a time, each looked at
        this.#watching = resume === "continue" && this.#watchpoints.size > 0;
        guest.resume(this.#stepping || this.#watching);
        return;
      case "detach":
        this.#detach(guest);
        guest.resume(false);
        return;
      case "kill":
        this.close();
        throw new CancelledError("gdb killed the call");
    }
  }

  #detach(guest: StoppedGuest): void {
    guest.removeAll();
    this.#watchpoints.clear();
    this.#watching = false;
    this.#stepping = false;
    this.close();
  }
}

/** The signal gdb is told ended the guest, for the error that ended the call. */
function endSignal(e: unknown): number {
  if (e instanceof StackOverflowError) return SIGSEGV;
  if (e instanceof GuestFaultError) return e.vector === undefined ? SIGSEGV : signalOf(e.vector);
  if (e instanceof PolicyViolationError) return SIGSYS;
  if (e instanceof GuestPanicError) return SIGABRT;
  return SIGABRT;
}
