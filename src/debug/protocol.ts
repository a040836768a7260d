// The GDB remote serial protocol's framing (GDB manual, "Remote Protocol", "Overview"): packets
// `$data#cs` with a two-digit hexadecimal checksum (the sum of the data's bytes modulo 256),
// acknowledged by `+` or `-` until no-ack mode, and the single byte 0x03 that interrupts a running
// target. The bytes come from a network peer: the reader never grows without bound, never throws,
// and resynchronizes at the next `$` after anything it cannot take.
// Binary data in a packet escapes `#`, `$`, `}` and `*` as `}` followed by the byte XOR 0x20.

/** The longest packet taken or sent (qSupported announces it as PacketSize). */
export const MAX_PACKET = 0x4000;

export type Incoming =
  | { kind: "packet"; data: string }
  | { kind: "ack" }
  | { kind: "nack" }
  | { kind: "interrupt" }
  /** a packet whose checksum did not match, or that was too long: answer `-` (the sender repeats it) */
  | { kind: "bad"; why: string };

const DOLLAR = 0x24;
const HASH = 0x23;
const HEX = "0123456789abcdef";

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

/** Splits a byte stream into packets, acknowledgements and interrupts, across reads of any size. */
export class PacketReader {
  /** the packet being read: its bytes so far (data, then `#` and up to two checksum digits) */
  #packet: number[] | undefined;
  #hashAt = -1;
  #skipping = false;

  /** Takes bytes as they came; what they complete, in order. */
  feed(bytes: Uint8Array): Incoming[] {
    const out: Incoming[] = [];
    for (const b of bytes) {
      const p = this.#packet;
      if (p === undefined) {
        if (b === DOLLAR) {
          this.#packet = [];
          this.#hashAt = -1;
          this.#skipping = false;
        } else if (b === 0x2b) out.push({ kind: "ack" });
        else if (b === 0x2d) out.push({ kind: "nack" });
        else if (b === 0x03) out.push({ kind: "interrupt" });
        // anything else between packets is noise: dropped
        continue;
      }
      if (this.#hashAt < 0) {
        if (b === DOLLAR) {
          // a new packet began before this one ended: the first is lost
          out.push({ kind: "bad", why: "a packet was cut by another" });
          this.#packet = [];
          this.#skipping = false;
          continue;
        }
        if (b === HASH) {
          this.#hashAt = p.length;
          continue;
        }
        if (p.length >= MAX_PACKET) {
          this.#skipping = true; // keep reading to its end, then refuse it
          continue;
        }
        p.push(b);
        continue;
      }
      p.push(b);
      if (p.length - this.#hashAt < 2) continue;
      this.#packet = undefined;
      const hi = hexValue(p[this.#hashAt]);
      const lo = hexValue(p[this.#hashAt + 1]);
      const data = p.slice(0, this.#hashAt);
      if (this.#skipping) {
        out.push({ kind: "bad", why: `a packet longer than ${MAX_PACKET} bytes` });
        continue;
      }
      if (hi < 0 || lo < 0) {
        out.push({ kind: "bad", why: "a checksum that is not hexadecimal" });
        continue;
      }
      let sum = 0;
      for (const c of data) sum = (sum + c) & 0xff;
      if (sum !== ((hi << 4) | lo)) {
        out.push({ kind: "bad", why: "a wrong checksum" });
        continue;
      }
      out.push({ kind: "packet", data: latin1(data) });
    }
    return out;
  }
}

function latin1(bytes: number[]): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 4096) s += String.fromCharCode(...bytes.slice(i, i + 4096));
  return s;
}

/** A packet on the wire: `$`, the data with `#$}*` escaped, `#`, the checksum. `data` is bytes as a latin1 string. */
export function encodePacket(data: string): Uint8Array {
  const out: number[] = [DOLLAR];
  let sum = 0;
  const put = (c: number) => {
    out.push(c);
    sum = (sum + c) & 0xff;
  };
  for (let i = 0; i < data.length; i++) {
    const c = data.charCodeAt(i) & 0xff;
    if (c === DOLLAR || c === HASH || c === 0x7d || c === 0x2a) {
      put(0x7d);
      put(c ^ 0x20);
    } else put(c);
  }
  out.push(HASH, HEX.charCodeAt(sum >> 4), HEX.charCodeAt(sum & 15));
  return Uint8Array.from(out);
}

/** Bytes as lower-case hexadecimal. */
export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += HEX[b >> 4] + HEX[b & 15];
  return s;
}

/** Hexadecimal digits (an even number of them) as bytes; undefined if they are not. */
export function fromHex(s: string): Uint8Array | undefined {
  if (s.length % 2 !== 0) return undefined;
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) {
    const hi = hexValue(s.charCodeAt(2 * i));
    const lo = hexValue(s.charCodeAt(2 * i + 1));
    if (hi < 0 || lo < 0) return undefined;
    out[i] = (hi << 4) | lo;
  }
  return out;
}

/** A hexadecimal number of at most 16 digits (an address, a length, a register number); undefined otherwise. */
export function hexNumber(s: string): bigint | undefined {
  if (!/^[0-9a-fA-F]{1,16}$/.test(s)) return undefined;
  return BigInt(`0x${s}`);
}

/** A little-endian value of `bytes` bytes, as a register travels. */
export function leBytes(v: bigint, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  let x = BigInt.asUintN(bytes * 8, v);
  for (let i = 0; i < bytes; i++) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

export function fromLe(bytes: Uint8Array): bigint {
  let v = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[i]);
  return v;
}
