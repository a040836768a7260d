// The console sink (src/hypercall/console.ts): what a guest's writes cost the host is bounded by
// the cap, never by the number of writes. No KVM needed.
import { describe, expect, test } from "bun:test";
import { ConsoleSink, DEFAULT_MAX_OUTPUT } from "../src/hypercall/console.ts";

describe("ConsoleSink", () => {
  test("a million one-byte writes keep one buffer of at most twice the cap, with every byte in order", () => {
    const sink = new ConsoleSink(DEFAULT_MAX_OUTPUT);
    const n = 1_000_000;
    const one = new Uint8Array(1);
    for (let i = 0; i < n; i++) {
      one[0] = i & 0xff; // the sink must copy: the caller reuses its buffer
      sink.append(one);
    }
    expect(sink.capacity).toBeLessThanOrEqual(2 * sink.cap);
    expect(sink.truncated).toBe(false);
    const out = sink.take();
    expect(out.length).toBe(n);
    let wrong = 0;
    for (let i = 0; i < n; i++) if (out[i] !== (i & 0xff)) wrong++;
    expect(wrong).toBe(0);
  });

  test("many more one-byte writes than the cap: the buffer stays within the cap, the rest is dropped", () => {
    const sink = new ConsoleSink(1000);
    for (let i = 0; i < 100_000; i++) sink.append(new Uint8Array([0x41]));
    expect(sink.capacity).toBeLessThanOrEqual(2 * sink.cap);
    expect(sink.truncated).toBe(true);
    expect(sink.take()).toEqual(new Uint8Array(1000).fill(0x41));
  });

  test("the cap truncates exactly, inside a write, and says so", () => {
    const sink = new ConsoleSink(10);
    sink.append(new TextEncoder().encode("hello "));
    expect(sink.truncated).toBe(false);
    sink.append(new TextEncoder().encode("world"));
    expect(sink.truncated).toBe(true);
    sink.append(new TextEncoder().encode("!"));
    expect(new TextDecoder().decode(sink.take())).toBe("hello worl");
  });

  test("output exactly at the cap is not truncated", () => {
    const sink = new ConsoleSink(4);
    sink.append(new Uint8Array([1, 2]));
    sink.append(new Uint8Array([3, 4]));
    sink.append(new Uint8Array(0));
    expect(sink.truncated).toBe(false);
    expect(sink.take()).toEqual(new Uint8Array([1, 2, 3, 4]));
  });

  test("take() resets the sink: bytes and the truncated flag", () => {
    const sink = new ConsoleSink(3);
    sink.append(new Uint8Array([1, 2, 3, 4]));
    expect(sink.truncated).toBe(true);
    expect(sink.take()).toEqual(new Uint8Array([1, 2, 3]));
    expect(sink.truncated).toBe(false);
    expect(sink.take()).toEqual(new Uint8Array(0));
    sink.append(new Uint8Array([9]));
    expect(sink.take()).toEqual(new Uint8Array([9]));
  });

  test("a result from take() is unchanged by the next call's writes", () => {
    const sink = new ConsoleSink(1024);
    sink.append(new TextEncoder().encode("first call"));
    const first = sink.take();
    sink.append(new TextEncoder().encode("SECOND CALL, longer"));
    const second = sink.take();
    expect(new TextDecoder().decode(first)).toBe("first call");
    expect(new TextDecoder().decode(second)).toBe("SECOND CALL, longer");
  });

  test("a large buffer is let go at take(); small ones are kept for the next call", () => {
    const sink = new ConsoleSink(DEFAULT_MAX_OUTPUT);
    sink.append(new Uint8Array(100));
    sink.take();
    expect(sink.capacity).toBeGreaterThan(0);
    sink.append(new Uint8Array(500_000));
    expect(sink.capacity).toBeGreaterThanOrEqual(500_000);
    sink.take();
    expect(sink.capacity).toBe(0);
  });

  test("a cap of zero keeps nothing and allocates nothing", () => {
    const sink = new ConsoleSink(0);
    sink.append(new Uint8Array([1]));
    expect(sink.truncated).toBe(true);
    expect(sink.capacity).toBe(0);
    expect(sink.take().length).toBe(0);
  });
});
