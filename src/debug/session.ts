// One debugger's session: the GDB remote protocol's commands (GDB manual, "Remote Protocol",
// "Packets", "Stop Reply Packets", "General Query Packets") over one connection, against a stopped
// guest (a DebugTarget). `serve` answers packets until the debugger resumes, detaches or kills the
// guest. One thread (1), one process: all-stop mode, no non-stop, no vCont (gdb falls back to `s`
// and `c`). Everything a packet names — addresses, lengths, register numbers — is checked before it
// reaches the target; a packet the stub does not know gets the empty reply, as the protocol asks.
import { MAX_PACKET, PacketReader, encodePacket, fromHex, hexNumber, toHex, type Incoming } from "./protocol.ts";

/** A stopped guest, as the session sees it. */
export interface DebugTarget {
  /** every register of the target description, in its order (the `g` reply) */
  registers(): Uint8Array;
  /** one register's bytes, or undefined for a number the description does not have */
  register(n: number): Uint8Array | undefined;
  /** sets one register; false if it is read-only here (or the value has the wrong size) */
  setRegister(n: number, value: Uint8Array): boolean;
  /** up to `len` bytes from guest-virtual `addr`: fewer if the range stops being mapped */
  readMemory(addr: bigint, len: number): Uint8Array;
  /** writes bytes at guest-virtual `addr`; false (nothing written) where the guest's own pages are not */
  writeMemory(addr: bigint, data: Uint8Array): boolean;
  insertBreakpoint(addr: bigint): boolean;
  removeBreakpoint(addr: bigint): boolean;
  /** a write watchpoint on `len` bytes at `addr` (false: not readable there) */
  insertWatchpoint(addr: bigint, len: number): boolean;
  removeWatchpoint(addr: bigint, len: number): boolean;
}

/** The byte stream to the debugger. */
export interface Connection {
  /** blocks until bytes arrive; empty when the debugger has gone */
  read(): Uint8Array;
  /** false when the debugger has gone */
  write(bytes: Uint8Array): boolean;
  /** whether bytes wait to be read (without blocking) */
  readable(): boolean;
  close(): void;
}

/** Why the guest stopped, as a stop reply says it. */
export interface Stop {
  /** the POSIX signal number gdb shows: 5 SIGTRAP (a breakpoint, a step, the start), 2 SIGINT, 11 SIGSEGV... */
  signal: number;
  /** stopped at a breakpoint gdb inserted (`swbreak`: the PC is the breakpoint's address) */
  swbreak?: boolean;
  /** stopped after a write to the watchpoint at this address */
  watch?: bigint;
}

/** What the debugger asked for when it let the guest go. */
export type Resume = "continue" | "step" | "detach" | "kill";

/** The target description: x86-64's registers as gdb's amd64 code names them (the order is the `g` packet's). */
export const TARGET_XML = `<?xml version="1.0"?>
<!DOCTYPE target SYSTEM "gdb-target.dtd">
<target version="1.0">
<architecture>i386:x86-64</architecture>
<feature name="org.gnu.gdb.i386.core">
<flags id="wasp_eflags" size="4">
<field name="CF" start="0" end="0"/><field name="PF" start="2" end="2"/><field name="AF" start="4" end="4"/>
<field name="ZF" start="6" end="6"/><field name="SF" start="7" end="7"/><field name="TF" start="8" end="8"/>
<field name="IF" start="9" end="9"/><field name="DF" start="10" end="10"/><field name="OF" start="11" end="11"/>
<field name="AC" start="18" end="18"/><field name="ID" start="21" end="21"/>
</flags>
${["rax", "rbx", "rcx", "rdx", "rsi", "rdi"].map((r) => `<reg name="${r}" bitsize="64" type="int64"/>`).join("\n")}
<reg name="rbp" bitsize="64" type="data_ptr"/>
<reg name="rsp" bitsize="64" type="data_ptr"/>
${[8, 9, 10, 11, 12, 13, 14, 15].map((n) => `<reg name="r${n}" bitsize="64" type="int64"/>`).join("\n")}
<reg name="rip" bitsize="64" type="code_ptr"/>
<reg name="eflags" bitsize="32" type="wasp_eflags"/>
${["cs", "ss", "ds", "es", "fs", "gs"].map((r) => `<reg name="${r}" bitsize="32" type="int32"/>`).join("\n")}
${[0, 1, 2, 3, 4, 5, 6, 7].map((n) => `<reg name="st${n}" bitsize="80" type="i387_ext"/>`).join("\n")}
${["fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop"].map((r) => `<reg name="${r}" bitsize="32" type="int" group="float"/>`).join("\n")}
</feature>
<feature name="org.gnu.gdb.i386.sse">
<vector id="wasp_v4f" type="ieee_single" count="4"/>
<vector id="wasp_v2d" type="ieee_double" count="2"/>
<vector id="wasp_v16i8" type="int8" count="16"/>
<vector id="wasp_v8i16" type="int16" count="8"/>
<vector id="wasp_v4i32" type="int32" count="4"/>
<vector id="wasp_v2i64" type="int64" count="2"/>
<union id="wasp_vec128">
<field name="v4_float" type="wasp_v4f"/><field name="v2_double" type="wasp_v2d"/>
<field name="v16_int8" type="wasp_v16i8"/><field name="v8_int16" type="wasp_v8i16"/>
<field name="v4_int32" type="wasp_v4i32"/><field name="v2_int64" type="wasp_v2i64"/>
<field name="uint128" type="uint128"/>
</union>
${Array.from({ length: 16 }, (_, n) => `<reg name="xmm${n}" bitsize="128" type="wasp_vec128"/>`).join("\n")}
<reg name="mxcsr" bitsize="32" type="int" group="vector"/>
</feature>
<feature name="org.gnu.gdb.i386.segments">
<reg name="fs_base" bitsize="64" type="int"/>
<reg name="gs_base" bitsize="64" type="int"/>
</feature>
</target>
`;

/** Sizes in bytes of the registers of TARGET_XML, by number. */
export const REGISTER_SIZES: readonly number[] = [
  ...Array(17).fill(8), // rax..r15, rip
  ...Array(7).fill(4), // eflags, cs, ss, ds, es, fs, gs
  ...Array(8).fill(10), // st0-st7
  ...Array(8).fill(4), // fctrl..fop
  ...Array(16).fill(16), // xmm0-15
  4, // mxcsr
  8, 8, // fs_base, gs_base
];
export const G_PACKET_BYTES = REGISTER_SIZES.reduce((a, b) => a + b, 0);

/** The most memory one `m` packet reads: its hex must fit a packet. */
const MAX_READ = (MAX_PACKET - 16) >> 1;

export class GdbSession {
  readonly #conn: Connection;
  readonly #reader = new PacketReader();
  readonly #queue: Incoming[] = [];
  #noAck = false;
  #last: Uint8Array | undefined;
  #gone = false;
  /** an interrupt (0x03) that came while the guest ran */
  #interrupt = false;

  constructor(conn: Connection) {
    this.#conn = conn;
  }

  /** Whether the debugger's connection has ended. */
  get gone(): boolean {
    return this.#gone;
  }

  /**
   * While the guest runs: reads what the debugger sent, without blocking; true if it asked to
   * interrupt (0x03). Packets sent meanwhile are kept for the next stop.
   */
  pollInterrupt(): boolean {
    while (!this.#gone && this.#conn.readable()) this.#fill();
    const hit = this.#interrupt;
    this.#interrupt = false;
    return hit;
  }

  /**
   * The guest is stopped: tells the debugger why (unless `announce` is false: at the start, gdb
   * asks with `?`), then answers its packets until it resumes the guest. A debugger that went
   * away detaches: the guest runs on.
   */
  serve(target: DebugTarget, stop: Stop, announce: boolean): Resume {
    if (announce) this.#send(stopReply(stop));
    for (;;) {
      const data = this.#nextPacket();
      if (data === undefined) return "detach";
      const r = this.#command(target, stop, data);
      if (typeof r === "string" && (r === "continue" || r === "step" || r === "detach" || r === "kill")) return r;
    }
  }

  /**
   * The guest has ended: exit status (`W`) or the signal that ended it (`X`), after `note` — a
   * line gdb prints as the target's output (`O`). The session is over.
   */
  ended(how: { status: number } | { signal: number }, note?: string): void {
    if (this.#gone) return;
    if (note) this.#send(`O${toHex(new TextEncoder().encode(note))}`);
    const reply = "status" in how ? `W${hex2(how.status & 0xff)}` : `X${hex2(how.signal & 0xff)}`;
    this.#send(reply);
  }

  close(): void {
    this.#gone = true;
    this.#conn.close();
  }

  /** The next packet (acknowledged), or undefined when the connection ended. */
  #nextPacket(): string | undefined {
    for (;;) {
      const msg = this.#queue.shift();
      if (msg === undefined) {
        if (this.#gone) return undefined;
        this.#fill();
        continue;
      }
      switch (msg.kind) {
        case "packet":
          if (!this.#noAck) this.#write(PLUS);
          return msg.data;
        case "bad":
          if (!this.#noAck) this.#write(MINUS);
          break;
        case "nack":
          if (this.#last && !this.#noAck) this.#write(this.#last);
          break;
        // an ack, or an interrupt while stopped: nothing to do
      }
    }
  }

  #fill(): void {
    const bytes = this.#conn.read();
    if (bytes.length === 0) {
      this.#gone = true;
      return;
    }
    for (const m of this.#reader.feed(bytes)) {
      if (m.kind === "interrupt") this.#interrupt = true;
      else this.#queue.push(m);
    }
  }

  #write(bytes: Uint8Array): void {
    if (!this.#gone && !this.#conn.write(bytes)) this.#gone = true;
  }

  #send(data: string): void {
    const p = encodePacket(data);
    this.#last = p;
    this.#write(p);
  }

  /** Answers one packet; a Resume when it lets the guest go. */
  #command(t: DebugTarget, stop: Stop, p: string): Resume | undefined {
    const reply = (s: string): undefined => void this.#send(s);
    const c = p[0];
    switch (c) {
      case "?":
        return reply(stopReply(stop));
      case "g":
        return reply(toHex(t.registers()));
      case "G": {
        const bytes = fromHex(p.slice(1));
        if (!bytes || bytes.length > G_PACKET_BYTES) return reply("E01");
        let at = 0;
        let ok = true;
        const current = t.registers();
        for (let n = 0; n < REGISTER_SIZES.length && at + REGISTER_SIZES[n] <= bytes.length; at += REGISTER_SIZES[n++]) {
          const v = bytes.subarray(at, at + REGISTER_SIZES[n]);
          // read-only registers may come back unchanged: only a change is refused
          if (!equal(v, current.subarray(at, at + REGISTER_SIZES[n])) && !t.setRegister(n, v)) ok = false;
        }
        return reply(ok ? "OK" : "E01");
      }
      case "p": {
        const n = hexNumber(p.slice(1));
        const v = n === undefined || n > 1000n ? undefined : t.register(Number(n));
        return reply(v ? toHex(v) : "E01");
      }
      case "P": {
        const m = /^P([0-9a-fA-F]{1,4})=([0-9a-fA-F]*)$/.exec(p);
        const v = m && fromHex(m[2]);
        return reply(m && v && t.setRegister(Number(`0x${m[1]}`), v) ? "OK" : "E01");
      }
      case "m": {
        const m = /^m([0-9a-fA-F]{1,16}),([0-9a-fA-F]{1,8})$/.exec(p);
        if (!m) return reply("E01");
        const len = Math.min(Number(`0x${m[2]}`), MAX_READ);
        const data = t.readMemory(BigInt(`0x${m[1]}`), len);
        return reply(data.length === 0 && len > 0 ? "E14" : toHex(data));
      }
      case "M": {
        const m = /^M([0-9a-fA-F]{1,16}),([0-9a-fA-F]{1,8}):([0-9a-fA-F]*)$/.exec(p);
        const data = m && fromHex(m[3]);
        if (!m || !data || data.length !== Number(`0x${m[2]}`)) return reply("E01");
        return reply(t.writeMemory(BigInt(`0x${m[1]}`), data) ? "OK" : "E14");
      }
      case "Z":
      case "z": {
        const m = /^[Zz]([0-4]),([0-9a-fA-F]{1,16}),([0-9a-fA-F]{1,2})$/.exec(p);
        if (!m) return reply("E01");
        const addr = BigInt(`0x${m[2]}`);
        if (m[1] === "0") return reply((c === "Z" ? t.insertBreakpoint(addr) : t.removeBreakpoint(addr)) ? "OK" : "E01");
        // write watchpoints, by the stub's own single steps; KVM's debug registers and guest debugging
        // do nothing on this machine (docs/determinism.md): no hardware breakpoints, no read or
        // access watchpoints
        if (m[1] !== "2") return reply("");
        const len = Number(`0x${m[3]}`);
        if (len < 1 || len > 8) return reply("E01");
        return reply((c === "Z" ? t.insertWatchpoint(addr, len) : t.removeWatchpoint(addr, len)) ? "OK" : "E01");
      }
      case "c":
      case "C":
        return "continue";
      case "s":
      case "S":
        return "step";
      case "D":
        reply("OK");
        return "detach";
      case "k":
        return "kill";
      case "H":
        return reply("OK");
      case "T":
        return reply(/^T(1|-1|0)?$/.test(p) ? "OK" : "E01");
      case "q":
      case "Q":
      case "v":
        return this.#query(p);
      default:
        return reply("");
    }
  }

  #query(p: string): Resume | undefined {
    const reply = (s: string): undefined => void this.#send(s);
    if (p.startsWith("qSupported")) return reply(`PacketSize=${MAX_PACKET.toString(16)};QStartNoAckMode+;swbreak+;qXfer:features:read+`);
    if (p === "QStartNoAckMode") {
      reply("OK");
      this.#noAck = true;
      return;
    }
    if (p === "qAttached") return reply("1");
    if (p === "qC") return reply("QC1");
    if (p === "qfThreadInfo") return reply("m1");
    if (p === "qsThreadInfo") return reply("l");
    if (p.startsWith("qXfer:features:read:")) {
      const m = /^qXfer:features:read:([^:]*):([0-9a-fA-F]{1,8}),([0-9a-fA-F]{1,8})$/.exec(p);
      if (!m) return reply("E01");
      if (m[1] !== "target.xml") return reply("E00");
      const at = Number(`0x${m[2]}`);
      const len = Math.min(Number(`0x${m[3]}`), MAX_PACKET >> 1);
      const part = TARGET_XML.slice(at, at + len);
      return reply((at + len >= TARGET_XML.length ? "l" : "m") + part);
    }
    if (p.startsWith("vKill")) {
      reply("OK");
      return "kill";
    }
    if (p.startsWith("vCont?")) return reply("");
    return reply("");
  }
}

const PLUS = new Uint8Array([0x2b]);
const MINUS = new Uint8Array([0x2d]);

function hex2(n: number): string {
  return n.toString(16).padStart(2, "0");
}

function stopReply(stop: Stop): string {
  return `T${hex2(stop.signal)}${stop.swbreak ? "swbreak:;" : ""}${stop.watch !== undefined ? `watch:${stop.watch.toString(16)};` : ""}thread:1;`;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
