// A Linux program's process section (src/linux/process-file.ts) is read from snapshot files: untrusted
// bytes. Property-based, without a VM: what is written reads back the same; any bytes, and any
// change to a valid section, give a decoded section or one RangeError line, never another
// exception; and a decoded state is held to the executable's layout and the granted files.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { runs } from "./fuzz.ts";
import { checkProcessState, decodeProcessFile, encodeProcessFile, processStateOf, type ProcessFile } from "../src/linux/process-file.ts";
import { MAX_FDS, type ProcessState } from "../src/linux/process.ts";
import type { LinuxLayout } from "../src/linux/address-space.ts";

const enc = new TextEncoder();
const granted = new Map([["/etc/data", enc.encode("abcdef")], ["/a/b", enc.encode("x")]]);

const stateArb = fc
  .record({
    elf: fc.uint8Array({ maxLength: 300 }),
    brk: fc.nat({ max: 2 ** 30 }),
    brkUp: fc.nat({ max: 2 ** 20 }),
    pages: fc.array(fc.constantFrom([0, 0], [0, 1], [1, 1]), { maxLength: 200 }),
    fsBase: fc.bigInt({ min: 0n, max: (1n << 47n) - 1n }),
    gsBase: fc.bigInt({ min: 0n, max: (1n << 47n) - 1n }),
    fds: fc.uniqueArray(fc.tuple(fc.integer({ min: 0, max: MAX_FDS - 1 }), fc.constantFrom("stdin", "stdout", "stderr", "/etc/data", "/a/b"), fc.nat({ max: 2 ** 40 })), { selector: (f) => f[0], maxLength: 10 }),
    args: fc.array(fc.string({ unit: "grapheme" }).filter((s) => !s.includes("\0")), { maxLength: 5 }),
    env: fc.array(fc.string().filter((s) => !s.includes("\0")), { maxLength: 5 }),
  })
  .map((r) => {
    const process: ProcessState = {
      memory: { brk: r.brk, brkHigh: r.brk + r.brkUp, mapped: Uint8Array.from(r.pages.map((p) => p[0])), used: Uint8Array.from(r.pages.map((p) => p[1])) },
      fds: r.fds.map(([fd, what, pos]): ProcessState["fds"][number] => (what.startsWith("/") ? [fd, { path: what, data: granted.get(what) as Uint8Array, pos }] : [fd, what as "stdin"])),
      fsBase: r.fsBase,
      gsBase: r.gsBase,
    };
    return { elf: r.elf, process, args: r.args, env: r.env };
  });

/** The decoded section as plain data (fds' file data left out: processStateOf adds it). */
function plain(f: { elf: Uint8Array; process: ProcessState | ProcessFile["process"]; args: readonly string[]; env: readonly string[] }) {
  return {
    elf: [...f.elf],
    memory: { ...f.process.memory, mapped: [...f.process.memory.mapped], used: [...f.process.memory.used] },
    fds: f.process.fds.map(([fd, x]) => [fd, typeof x === "string" ? x : { path: x.path, pos: x.pos }]),
    fsBase: f.process.fsBase,
    gsBase: f.process.gsBase,
    args: [...f.args],
    env: [...f.env],
  };
}

function decodeOrLine(bytes: Uint8Array): ProcessFile | string {
  try {
    return decodeProcessFile(bytes);
  } catch (e) {
    if (e instanceof RangeError && !e.message.includes("\n")) return e.message;
    throw e;
  }
}

describe("the process section", () => {
  test("what is written reads back the same, and binds to the granted files", () => {
    fc.assert(
      fc.property(stateArb, (s) => {
        const back = decodeProcessFile(encodeProcessFile(s));
        expect(plain(back)).toEqual(plain(s));
        const bound = processStateOf(back, granted);
        for (const [, f] of bound.fds) if (typeof f !== "string") expect(f.data).toBe(granted.get(f.path) as Uint8Array);
      }),
      { numRuns: runs(500) },
    );
  });

  test("any bytes, and any change to a valid section, decode or are one RangeError line", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        decodeOrLine(bytes);
      }),
      { numRuns: runs(2000) },
    );
    fc.assert(
      fc.property(stateArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), fc.nat(), (s, edits, cut) => {
        const bytes = encodeProcessFile(s);
        for (const [at, v] of edits) bytes[at % bytes.length] = v;
        const got = decodeOrLine(bytes.subarray(0, bytes.length - (cut % 3 === 0 ? cut % bytes.length : 0)));
        if (typeof got === "string") return;
        // what decodes holds the invariants the restore relies on
        expect(got.process.fds.length).toBeLessThanOrEqual(MAX_FDS);
        for (const [fd, f] of got.process.fds) {
          expect(fd >= 0 && fd < MAX_FDS).toBe(true);
          if (typeof f !== "string") expect(f.path.startsWith("/") && Number.isSafeInteger(f.pos)).toBe(true);
        }
        expect(got.process.fsBase < 1n << 47n && got.process.gsBase < 1n << 47n).toBe(true);
        expect(got.process.memory.mapped.length).toBe(got.process.memory.used.length);
        expect(got.process.memory.mapped.every((m, i) => m <= got.process.memory.used[i] && got.process.memory.used[i] <= 1)).toBe(true);
      }),
      { numRuns: runs(2000) },
    );
  });

  test("each refusal names what is wrong", () => {
    const base = { elf: new Uint8Array(4), process: { memory: { brk: 0x300000, brkHigh: 0x300000, mapped: new Uint8Array(2), used: new Uint8Array(2) }, fds: [] as ProcessState["fds"], fsBase: 0n, gsBase: 0n }, args: [], env: [] };
    const bytes = encodeProcessFile(base);
    expect(() => decodeProcessFile(bytes.subarray(0, bytes.length - 1))).toThrow(/ends inside/);
    expect(() => decodeProcessFile(new Uint8Array([...bytes, 0]))).toThrow(/1 bytes follow/);
    const v2 = bytes.slice();
    v2[0] = 2;
    expect(() => decodeProcessFile(v2)).toThrow(/version 2/);
    const tls = encodeProcessFile({ ...base, process: { ...base.process, fsBase: 1n << 47n } });
    expect(() => decodeProcessFile(tls)).toThrow(/TLS base/);
    const twice = encodeProcessFile({ ...base, process: { ...base.process, fds: [[1, "stdout"], [1, "stderr"]] } });
    expect(() => decodeProcessFile(twice)).toThrow(/fd 1 .*twice/);
    const file = decodeProcessFile(encodeProcessFile({ ...base, process: { ...base.process, fds: [[3, { path: "/secret", data: new Uint8Array(1), pos: 0 }]] } }));
    expect(() => processStateOf(file, granted)).toThrow(/holds "\/secret" open \(fd 3\): grant that file/);
  });

  test("a state is held to the executable's layout", () => {
    const layout = { regions: { brkStart: 0x300000, brkEnd: 0x400000, mmapStart: 0x400000, mmapEnd: 0x402000 } } as LinuxLayout;
    const state = (brk: number, brkHigh: number, pages: number) => ({ memory: { brk, brkHigh, mapped: new Uint8Array(pages), used: new Uint8Array(pages) }, fds: [], fsBase: 0n, gsBase: 0n });
    expect(checkProcessState(state(0x300000, 0x380000, 2), layout)).toBeUndefined();
    expect(checkProcessState(state(0x200000, 0x300000, 2), layout)).toMatch(/the break 0x200000 is outside/);
    expect(checkProcessState(state(0x300000, 0x500000, 2), layout)).toMatch(/high mark/);
    expect(checkProcessState(state(0x300000, 0x300000, 3), layout)).toMatch(/3 pages recorded, the layout 2/);
  });
});
