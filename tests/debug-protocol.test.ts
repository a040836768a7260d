// The GDB remote protocol's framing and the session's commands (src/debug/), without a VM: the
// packet reader takes any bytes from the network (fast-check) — never throws, never grows without
// bound, gives back every well-formed packet whatever the reads' boundaries — and the session
// checks every address, length and register number a packet names before the target sees it.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { MAX_PACKET, PacketReader, encodePacket, fromHex, hexNumber, toHex, type Incoming } from "../src/debug/protocol.ts";
import { G_PACKET_BYTES, GdbSession, REGISTER_SIZES, TARGET_XML, type Connection, type DebugTarget } from "../src/debug/session.ts";
import { fullTagWord } from "../src/debug/target.ts";
import { parseListenAddress } from "../src/debug/debugger.ts";
import { BadArgsError } from "../src/errors.ts";

const bytes = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const packet = (data: string) => {
  let sum = 0;
  for (const c of bytes(data)) sum = (sum + c) & 0xff;
  return `$${data}#${sum.toString(16).padStart(2, "0")}`;
};

function feedAll(chunks: Uint8Array[]): Incoming[] {
  const r = new PacketReader();
  return chunks.flatMap((c) => r.feed(c));
}

/** Cuts `b` at the given points (any order, any repeats). */
function cut(b: Uint8Array, points: number[]): Uint8Array[] {
  const at = [...new Set(points.map((p) => p % (b.length + 1)))].sort((x, y) => x - y);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const p of at) {
    out.push(b.subarray(from, p));
    from = p;
  }
  out.push(b.subarray(from));
  return out;
}

describe("packet framing", () => {
  test("a packet, an ack, a nack and an interrupt", () => {
    expect(feedAll([bytes(`+${packet("qSupported:swbreak+")}-\x03`)])).toEqual([
      { kind: "ack" },
      { kind: "packet", data: "qSupported:swbreak+" },
      { kind: "nack" },
      { kind: "interrupt" },
    ]);
  });

  test("a wrong checksum, a checksum that is not hexadecimal and a cut packet are refused, and the next packet is read", () => {
    const got = feedAll([bytes(`$g#00$m0,4#zz$qC$?#3f`)]);
    expect(got.map((m) => m.kind)).toEqual(["bad", "bad", "bad", "packet"]);
    expect(got[3]).toEqual({ kind: "packet", data: "?" });
  });

  test("a packet longer than the limit is refused whole and the reader goes on", () => {
    const long = "m".repeat(MAX_PACKET + 10);
    const got = feedAll([bytes(packet(long)), bytes(packet("g"))]);
    expect(got).toEqual([{ kind: "bad", why: `a packet longer than ${MAX_PACKET} bytes` }, { kind: "packet", data: "g" }]);
  });

  test("encodePacket escapes # $ } * and a reader gives the data back (any bytes, cut anywhere)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat(), { maxLength: 8 }), (data, points) => {
        const s = String.fromCharCode(...data);
        const wire = encodePacket(s);
        // nothing but the frame's own $ and # appear unescaped
        expect(wire.subarray(1, -3).some((b) => b === 0x24 || b === 0x23)).toBe(false);
        const got = feedAll(cut(wire, points));
        expect(got.length).toBe(1);
        expect(got[0].kind).toBe("packet");
        // the reader keeps escapes as sent (binary data is unescaped by the command that takes it)
        const data2 = (got[0] as { data: string }).data;
        let un = "";
        for (let i = 0; i < data2.length; i++) un += data2[i] === "}" ? String.fromCharCode(data2.charCodeAt(++i) ^ 0x20) : data2[i];
        expect(un).toBe(s);
      }),
      { numRuns: 1000 },
    );
  });

  test("any bytes: no throw, only the five kinds, and well-formed packets after them still arrive", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.array(fc.nat(), { maxLength: 6 }), (noise, points) => {
        const r = new PacketReader();
        const got = cut(noise, points).flatMap((c) => r.feed(c));
        for (const m of got) expect(["packet", "ack", "nack", "interrupt", "bad"]).toContain(m.kind);
        // whatever state the noise left, a `#` and two bytes end any open packet; then a packet arrives
        const after = r.feed(bytes(`#00${packet("?")}`));
        expect(after.at(-1)).toEqual({ kind: "packet", data: "?" });
      }),
      { numRuns: 2000 },
    );
  });

  test("hex helpers", () => {
    expect(toHex(Uint8Array.from([0, 0xab, 0x10]))).toBe("00ab10");
    expect(fromHex("00AB10")).toEqual(Uint8Array.from([0, 0xab, 0x10]));
    expect(fromHex("abc")).toBeUndefined();
    expect(fromHex("zz")).toBeUndefined();
    expect(hexNumber("ffffffffffffffff")).toBe(0xffffffffffffffffn);
    expect(hexNumber("1ffffffffffffffff")).toBeUndefined();
    expect(hexNumber("")).toBeUndefined();
    expect(hexNumber("-1")).toBeUndefined();
  });
});

/** A target that records what reached it, with 64 KiB of "memory" at 0x1000. */
class FakeTarget implements DebugTarget {
  calls: string[] = [];
  mem = new Uint8Array(0x10000);
  regs = new Uint8Array(G_PACKET_BYTES);
  registers() {
    return this.regs.slice();
  }
  register(n: number) {
    if (n < 0 || n >= REGISTER_SIZES.length) return undefined;
    const at = REGISTER_SIZES.slice(0, n).reduce((a, b) => a + b, 0);
    return this.regs.slice(at, at + REGISTER_SIZES[n]);
  }
  setRegister(n: number, v: Uint8Array) {
    this.calls.push(`P${n}`);
    if (n > 17 || v.length !== REGISTER_SIZES[n]) return false;
    this.regs.set(v, REGISTER_SIZES.slice(0, n).reduce((a, b) => a + b, 0));
    return true;
  }
  readMemory(addr: bigint, len: number) {
    this.calls.push(`m${addr.toString(16)},${len}`);
    if (addr < 0x1000n || addr >= 0x11000n) return new Uint8Array(0);
    const from = Number(addr - 0x1000n);
    return this.mem.slice(from, Math.min(from + len, this.mem.length));
  }
  writeMemory(addr: bigint, data: Uint8Array) {
    this.calls.push(`M${addr.toString(16)},${data.length}`);
    if (addr < 0x1000n || addr + BigInt(data.length) > 0x11000n) return false;
    this.mem.set(data, Number(addr - 0x1000n));
    return true;
  }
  insertBreakpoint(addr: bigint) {
    this.calls.push(`Z${addr.toString(16)}`);
    return addr >= 0x1000n;
  }
  removeBreakpoint(addr: bigint) {
    this.calls.push(`z${addr.toString(16)}`);
    return true;
  }
  insertWatchpoint(addr: bigint, len: number) {
    this.calls.push(`W${addr.toString(16)},${len}`);
    return addr >= 0x1000n;
  }
  removeWatchpoint(addr: bigint, len: number) {
    this.calls.push(`w${addr.toString(16)},${len}`);
    return true;
  }
}

/** A connection that plays `script` (packets), then ends; what the session wrote, decoded. */
function session(script: string[], opts: { raw?: string } = {}) {
  const input = [bytes(opts.raw ?? script.map(packet).join(""))];
  const written: string[] = [];
  const conn: Connection = {
    read: () => input.shift() ?? new Uint8Array(0),
    write: (b) => {
      written.push(String.fromCharCode(...b));
      return true;
    },
    readable: () => input.length > 0,
    close: () => {},
  };
  const s = new GdbSession(conn);
  const replies = () => {
    const r = new PacketReader();
    return written.flatMap((w) => r.feed(bytes(w))).filter((m) => m.kind === "packet").map((m) => (m as { data: string }).data);
  };
  return { s, replies, written };
}

describe("the session's commands", () => {
  test("the handshake, registers, memory, breakpoints and a resume", () => {
    const t = new FakeTarget();
    t.mem.set([1, 2, 3, 4], 0);
    const { s, replies } = session(["qSupported:multiprocess+;swbreak+", "?", "qAttached", "qfThreadInfo", "qsThreadInfo", "qC", "g", "p10", "p3b", "m1000,4", "m0,4", "M1000,2:abcd", "M0,1:00", "Z0,1004,1", "z0,1004,1", "Z1,1004,1", "Z2,1008,4", "z2,1008,4", "Z3,1008,4", "Z2,1008,0", "Z2,0,8", "qXfer:features:read:target.xml:0,ffff", "vMustReplyEmpty", "c"]);
    expect(s.serve(t, { signal: 5 }, false)).toBe("continue");
    const r = replies();
    expect(r[0]).toContain("swbreak+");
    expect(r[0]).toContain("qXfer:features:read+");
    expect(r.slice(1, 6)).toEqual(["T05thread:1;", "1", "m1", "l", "QC1"]);
    expect(r[6]).toBe("00".repeat(G_PACKET_BYTES));
    expect(r[7]).toBe("00".repeat(8)); // rip
    expect(r[8]).toBe("E01"); // no register 0x3b
    expect(r.slice(9, 13)).toEqual(["01020304", "E14", "OK", "E14"]);
    expect(t.mem.subarray(0, 2)).toEqual(Uint8Array.from([0xab, 0xcd]));
    // hardware breakpoints and read watchpoints: not supported; write watchpoints of 1-8 bytes where memory is
    expect(r.slice(13, 21)).toEqual(["OK", "OK", "", "OK", "OK", "", "E01", "E01"]);
    expect(r[21]).toBe(`l${TARGET_XML}`);
    expect(r[22]).toBe("");
    expect(t.calls).toContain("Z1004");
    expect(t.calls).toContain("z1004");
    expect(t.calls).toContain("W1008,4");
    expect(t.calls).toContain("w1008,4");
  });

  test("G writes the writable registers and refuses a change to a read-only one", () => {
    const t = new FakeTarget();
    const regs = new Uint8Array(G_PACKET_BYTES);
    regs[0] = 7; // rax
    const { s, replies } = session([`G${toHex(regs)}`, "s"]);
    expect(s.serve(t, { signal: 5 }, true)).toBe("step");
    expect(replies()).toEqual(["T05thread:1;", "OK"]);
    expect(t.regs[0]).toBe(7);
    const cs = REGISTER_SIZES.slice(0, 18).reduce((a, b) => a + b, 0);
    regs[cs] = 0x33;
    const s2 = session([`G${toHex(regs)}`, "D"]);
    expect(s2.s.serve(t, { signal: 5 }, false)).toBe("detach");
    expect(s2.replies()).toEqual(["E01", "OK"]);
  });

  test("malformed packets get an error, unknown ones the empty reply, and nothing reaches the target", () => {
    const t = new FakeTarget();
    const bad = ["m", "mzz,4", "m1000", "m1000,", "m10000000000000000,4", "M1000,2:abc", "M1000,3:abcd", "Z0,1004", "Z9,1,1", "P", "P1=zz", "Gabc", "pzz", "qXfer:features:read:other.xml:0,10", "qXfer:features:read:target.xml:x,10", "Tzz", "X1000,1:a", "vFile:open:a", "qRcmd,6869"];
    const { s, replies } = session([...bad, "k"]);
    expect(s.serve(t, { signal: 5 }, false)).toBe("kill");
    const r = replies();
    expect(r.length).toBe(bad.length);
    for (const reply of r) expect(["E01", "E00", ""]).toContain(reply);
    expect(t.calls).toEqual([]); // none reached the target
  });

  test("a large read is capped to what a packet holds", () => {
    const t = new FakeTarget();
    const { s, replies } = session(["m1000,ffffffff", "c"]);
    s.serve(t, { signal: 5 }, false);
    expect(replies()[0].length).toBeLessThanOrEqual(MAX_PACKET);
  });

  test("acks: each packet acknowledged until QStartNoAckMode; a bad one asks again with -", () => {
    const t = new FakeTarget();
    const { s, written } = session([], { raw: `$g#00${packet("?")}${packet("QStartNoAckMode")}${packet("?")}${packet("c")}` });
    s.serve(t, { signal: 2 }, false);
    const acks = written.filter((w) => w === "+" || w === "-");
    expect(acks).toEqual(["-", "+", "+"]);
  });

  test("a debugger that goes away detaches; an interrupt while running is seen once", () => {
    const t = new FakeTarget();
    const { s } = session([]);
    expect(s.serve(t, { signal: 5 }, false)).toBe("detach");
    expect(s.gone).toBe(true);
    const { s: s2 } = session([], { raw: "\x03" });
    expect(s2.pollInterrupt()).toBe(true);
    expect(s2.pollInterrupt()).toBe(false);
  });

  test("the end: W with the exit status, X with the signal", () => {
    const a = session([]);
    a.s.ended({ status: 0x12 });
    expect(a.replies()).toEqual(["W12"]);
    const b = session([]);
    b.s.ended({ signal: 11 });
    expect(b.replies()).toEqual(["X0b"]);
  });
});

test("the x87 tag word from FXSAVE's abridged one", () => {
  const fx = new Uint8Array(512);
  expect(fullTagWord(fx)).toBe(0xffff); // all empty
  fx[4] = 0x01; // physical register 0 in use, TOP 0: ST(0) — zero
  expect(fullTagWord(fx)).toBe(0xfffd);
  fx[32 + 7] = 0x80; // ST(0) = 1.0: integer bit set, exponent 0x3fff
  fx[32 + 8] = 0xff;
  fx[32 + 9] = 0x3f;
  expect(fullTagWord(fx)).toBe(0xfffc); // valid
  fx[32 + 8] = 0xff;
  fx[32 + 9] = 0x7f; // exponent all ones: special
  expect(fullTagWord(fx)).toBe(0xfffe);
});

test("--gdb's address: HOST:PORT, :PORT or PORT; anything else one BadArgsError", () => {
  expect(parseListenAddress("1234", "--gdb")).toEqual({ host: "127.0.0.1", port: 1234 });
  expect(parseListenAddress(":0", "--gdb")).toEqual({ host: "127.0.0.1", port: 0 });
  expect(parseListenAddress("localhost:9", "--gdb")).toEqual({ host: "127.0.0.1", port: 9 });
  expect(parseListenAddress("0.0.0.0:65535", "--gdb")).toEqual({ host: "0.0.0.0", port: 65535 });
  fc.assert(
    fc.property(fc.string({ maxLength: 30 }), (s) => {
      try {
        const { host, port } = parseListenAddress(s, "--gdb");
        expect(Number.isInteger(port) && port >= 0 && port <= 65535).toBe(true);
        expect(host.split(".").every((p) => Number(p) >= 0 && Number(p) <= 255)).toBe(true);
      } catch (e) {
        expect(e).toBeInstanceOf(BadArgsError);
        expect((e as Error).message).not.toContain("\n");
      }
    }),
    { numRuns: 2000 },
  );
});
