// Record and replay of native virtines (issue 16, parts 1-2 for native images and their snapshot
// files): `wasp invoke --record FILE` and `wasp replay FILE` on the real /dev/kvm — a call that
// reads the clock and the host's randomness replays to the same result, a failed call to the same
// failure; a recording of a fib call is under 1 KiB; another image, a damaged or foreign file, a
// forged event each give one clear line. The file's decoder takes any bytes (fast-check).
import { afterAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EXIT_STATUS, WaspError } from "../src/errors.ts";
import { RECORDING_HEADER, decodeRecording, encodeRecording, type Recording } from "../src/virtine/record.ts";
import { guest, recordingBytes, recordingServer, slow, thrown, wasp } from "./support.ts";

const dir = mkdtempSync(join(tmpdir(), "wasp-record-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const at = (name: string) => join(dir, name);

// a guest whose result depends on the host's randomness and clock (written once, built by wasp build)
const RND = `const virtine = @import("virtine");
pub fn main(input: []const u8) !u64 {
    var b: [16]u8 = undefined;
    _ = virtine.random(&b);
    const t = virtine.time();
    virtine.print("t={d} in={d}\\n", .{ t, input.len });
    try virtine.writeOutput(&b);
    return @as(u64, @truncate(t)) ^ @as(u64, @bitCast(b[0..8].*));
}`;

let rnd = "";
function rndImage(): string {
  if (rnd) return rnd;
  writeFileSync(at("rnd.zig"), RND);
  const r = wasp(["build", at("rnd.zig"), "-o", at("rnd.bin")]);
  expect(r.status).toBe(0);
  rnd = at("rnd.bin");
  return rnd;
}

describe("wasp invoke --record, wasp replay", () => {
  test("a fib call: under 1 KiB, replayed to the same result", () => {
    const r = wasp(["invoke", "fib", "20", "--record", at("fib.rec")]);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe("6765\n");
    expect(statSync(at("fib.rec")).size).toBeLessThan(1024);
    const p = wasp(["replay", at("fib.rec")]);
    expect(p.status).toBe(0);
    expect(p.stdout).toBe("6765\n");
    expect(p.stderr).toBe("wasp: replayed 0 hypercall(s) as recorded\n");
  });

  test("the clock and the host's randomness come from the recording: the same result, console and output", () => {
    const img = rndImage();
    const input = at("in.bin");
    writeFileSync(input, "abc");
    const first = wasp(["invoke", img, "-i", input, "--allow", "random,time", "--record", at("rnd.rec")]);
    expect(first.status).toBe(0);
    const again = wasp(["invoke", img, "-i", input, "--allow", "random,time"]);
    expect(again.stdout).not.toBe(first.stdout); // a fresh call reads another clock and other random bytes
    const p = wasp(["replay", at("rnd.rec")]);
    expect(p.status).toBe(0);
    expect(p.stdout).toBe(first.stdout);
    expect(p.stderr).toBe("wasp: replayed 2 hypercall(s) as recorded\n");
    const rec = decodeRecording(new Uint8Array(readFileSync(at("rnd.rec"))), "rnd.rec");
    expect(rec.events.map((e) => e.nr)).toEqual([4, 3]); // random, time
    expect(rec.events[0].writes[0].data.length).toBe(16);
    expect(new TextDecoder().decode(rec.call.input)).toBe("abc");
  }, slow(120_000));

  test("a snapshot file's call (the sealing service, its IV from the host) replays byte for byte", () => {
    writeFileSync(at("key.hex"), "000102030405060708090a0b0c0d0e0f\n");
    expect(wasp(["snapshot", "aes", "-i", at("key.hex"), "--allow", "random", "-o", at("aes.snap")]).status).toBe(0);
    writeFileSync(at("req.http"), "POST /seal/encrypt HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello");
    const first = wasp(["invoke", at("aes.snap"), "-i", at("req.http"), "--allow", "random", "--record", at("aes.rec")]);
    expect(first.status).toBe(0);
    const p = wasp(["replay", at("aes.rec")]);
    expect(p.status).toBe(0);
    expect(p.stdout).toBe(first.stdout);
    // another snapshot file of the same image, with another key: not the recorded start
    writeFileSync(at("key2.hex"), "ff0102030405060708090a0b0c0d0e0f\n");
    expect(wasp(["snapshot", "aes", "-i", at("key2.hex"), "--allow", "random", "-o", at("aes2.snap")]).status).toBe(0);
    const other = wasp(["replay", at("aes.rec"), "--image", at("aes2.snap")]);
    expect(other.status).toBe(EXIT_STATUS.WASP_REPLAY_DIVERGED!);
    expect(other.stderr).toMatch(/^wasp: the replay diverged at event -1: recorded the snapshot file aes\.snap .*memory sha256 [0-9a-f]{64}\); happened .*aes2\.snap/);
  }, slow(60_000));

  test("a failed call replays to the same failure, and exits 0", () => {
    const r = wasp(["invoke", guest("panicker"), "--record", at("panic.rec")]);
    expect(r.status).toBe(EXIT_STATUS.WASP_GUEST_PANIC!);
    const p = wasp(["replay", at("panic.rec")]);
    expect(p.status).toBe(0);
    expect(p.stderr).toBe("wasp: replayed as recorded: the guest panicked: guest gave up (WASP_GUEST_PANIC)\n");
  });

  test("a call that timed out replays to the same timeout at its own deadline, not the replay's default minute", () => {
    const r = wasp(["invoke", guest("spin"), "--timeout", "300", "--record", at("spin.rec")]);
    expect(r.status).toBe(EXIT_STATUS.WASP_TIMEOUT!);
    expect(decodeRecording(readFileSync(at("spin.rec")), "spin.rec").options.timeoutMs).toBe(300);
    // the replay ran under the recorded deadline: its error names it (under the default minute the
    // message would say 60000 ms, and the outcome would diverge)
    const p = wasp(["replay", at("spin.rec")]);
    expect(p.stderr).toBe("wasp: replayed as recorded: the guest ran past its deadline of 300 ms and was stopped (WASP_TIMEOUT)\n");
    expect(p.status).toBe(0);
    // another deadline given to the replay is another outcome
    const q = wasp(["replay", at("spin.rec"), "--timeout", "200"]);
    expect(q.status).toBe(EXIT_STATUS.WASP_REPLAY_DIVERGED!);
  }, slow(60_000));

  test("another image, a forged event, a damaged or foreign file: one line each", () => {
    const img = rndImage();
    expect(wasp(["invoke", img, "--allow", "random,time", "--record", at("r2.rec")]).status).toBe(0);
    let p = wasp(["replay", at("r2.rec"), "--image", guest("fib")]);
    expect(p.status).toBe(EXIT_STATUS.WASP_REPLAY_DIVERGED!);
    expect(p.stderr).toMatch(/^wasp: the replay diverged at event -1: recorded the image rnd\.bin, sha256 [0-9a-f]{64}; happened .*fib\.bin, sha256 [0-9a-f]{64}\n$/);

    const rec = decodeRecording(new Uint8Array(readFileSync(at("r2.rec"))), "r2.rec");
    // the clock answered otherwise: the guest's result differs from the recorded outcome
    const clock: Recording = { ...rec, events: rec.events.map((e) => (e.nr === 3 ? { ...e, result: (e.result ?? 0n) + 1n } : e)) };
    writeFileSync(at("clock.rec"), encodeRecording(clock));
    p = wasp(["replay", at("clock.rec")]);
    expect(p.status).toBe(EXIT_STATUS.WASP_REPLAY_DIVERGED!);
    expect(p.stderr).toMatch(/^wasp: the replay diverged at event 2: recorded the outcome result \d+.*; happened the outcome result \d+/);
    // the guest asked for 16 random bytes; the recording says it asked for 8
    const args: Recording = { ...rec, events: rec.events.map((e, i) => (i === 0 ? { ...e, b: 8n } : e)) };
    writeFileSync(at("args.rec"), encodeRecording(args));
    p = wasp(["replay", at("args.rec")]);
    expect(p.status).toBe(EXIT_STATUS.WASP_REPLAY_DIVERGED!);
    expect(p.stderr).toMatch(/^wasp: the replay diverged at event 0: recorded hypercall random\(0x[0-9a-f]+, 0x8\); happened hypercall random\(0x[0-9a-f]+, 0x10\)\n$/);
    // a hypercall fewer in the recording
    writeFileSync(at("short.rec"), encodeRecording({ ...rec, events: rec.events.slice(0, 1) }));
    p = wasp(["replay", at("short.rec")]);
    expect(p.stderr).toMatch(/^wasp: the replay diverged at event 1: recorded the call's end after 1 hypercalls; happened hypercall time/);

    const bytes = new Uint8Array(readFileSync(at("r2.rec")));
    const damaged = bytes.slice();
    damaged[RECORDING_HEADER + 10] ^= 1;
    writeFileSync(at("damaged.rec"), damaged);
    p = wasp(["replay", at("damaged.rec")]);
    expect(p.status).toBe(EXIT_STATUS.WASP_BAD_RECORDING!);
    expect(p.stderr).toBe(`wasp: ${at("damaged.rec")}: the body's checksum does not match: the file is damaged\n`);
    writeFileSync(at("cut.rec"), bytes.subarray(0, bytes.length - 3));
    expect(wasp(["replay", at("cut.rec")]).stderr).toMatch(/the file is cut or padded\n$/);
    p = wasp(["replay", guest("fib")]);
    expect(p.status).toBe(EXIT_STATUS.WASP_BAD_RECORDING!);
    expect(p.stderr).toMatch(/not a wasp recording \(no WASPREC1 magic\)\n$/);
  }, slow(120_000));

  test("a JavaScript handler's call — from its module or its snapshot file — is the engine's run, recorded and replayed", () => {
    writeFileSync(at("h.js"), "export default (x) => { if (x.fail) throw new Error('failed on ' + x.n); return x.n * 2; };");
    writeFileSync(at("in.json"), '{"n":21}');
    const r = wasp(["invoke", at("h.js"), "--input", at("in.json"), "--record", at("js.rec")]);
    expect(r.stdout).toBe("42\n");
    expect(r.status).toBe(0);
    const p = wasp(["replay", at("js.rec")]);
    expect(p.status).toBe(0);
    expect(p.stdout).toBe("42\n"); // the handler's result, shown as invoke showed it
    expect(wasp(["snapshot", at("h.js"), "-o", at("h.snap")]).status).toBe(0);
    writeFileSync(at("bad.json"), '{"n":5,"fail":true}');
    const f = wasp(["invoke", at("h.snap"), "--input", at("bad.json"), "--record", at("js-fail.rec")]);
    expect(f.stderr).toContain("failed on 5");
    expect(f.status).not.toBe(0);
    const q = wasp(["replay", at("js-fail.rec")]);
    expect(q.status).toBe(0);
    expect(q.stderr).toMatch(/^wasp: replayed as recorded: .*failed on 5.*\(WASP_JS_ERROR\)\n$/); // the handler's error, as recorded
    // another snapshot file is another start
    writeFileSync(at("h2.js"), "export default (x) => x;");
    expect(wasp(["snapshot", at("h2.js"), "-o", at("h2.snap")]).status).toBe(0);
    const d = wasp(["replay", at("js-fail.rec"), "--image", at("h2.snap")]);
    expect(d.status).toBe(EXIT_STATUS.WASP_REPLAY_DIVERGED!);
    expect(d.stderr).toMatch(/^wasp: the replay diverged at event -1/);
  }, slow(120_000));
});

describe("the recording's decoder", () => {
  const valid = (): Uint8Array =>
    encodeRecording({
      wasp: "wasp 0.1.0",
      start: { kind: "image", name: "x.bin", sha256: "a".repeat(64) },
      options: { memory: 16 << 20, dataSize: 1 << 20, stackSize: 1 << 20, snapshot: true, allow: ["time"] },
      call: { args: [1n, 2n ** 64n - 1n], input: new Uint8Array([1, 2, 3]) },
      events: [{ nr: 3, a: 0n, b: 0n, result: 42n, writes: [] }, { nr: 4, a: 4096n, b: 2n, result: 0n, writes: [{ addr: 4096n, data: new Uint8Array([9, 9]) }] }, { nr: 0, a: 7n, b: 0n, result: null, writes: [] }],
      outcome: { value: 7n, exits: 4, output: "b".repeat(64), console: "c".repeat(64) },
    });

  test("reads back what it wrote", () => {
    const r = decodeRecording(valid(), "v.rec");
    expect(r.call.args).toEqual([1n, 2n ** 64n - 1n]);
    expect(r.events[1].writes[0].data).toEqual(new Uint8Array([9, 9]));
    expect(r.events[2].result).toBeNull();
    expect(encodeRecording(r)).toEqual(valid());
  });

  test("any bytes, and any edit of a valid file, give a recording or a BadRecordingError, never another error", () => {
    const check = (b: Uint8Array) => {
      const e = thrown(() => decodeRecording(b, "f.rec"));
      if (e !== undefined) {
        expect(e).toBeInstanceOf(WaspError);
        expect((e as WaspError).code).toBe("WASP_BAD_RECORDING");
        expect((e as WaspError).message).toStartWith("f.rec: ");
        expect((e as WaspError).message).not.toContain("\n");
      }
    };
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), check), { numRuns: 2000 });
    const base = valid();
    fc.assert(fc.property(fc.nat(base.length - 1), fc.integer({ min: 1, max: 255 }), (i, x) => {
      const b = base.slice();
      b[i] ^= x;
      check(b);
    }), { numRuns: 2000 });
    // edits of the body with a correct checksum: the fields themselves are checked
    const body = JSON.parse(new TextDecoder().decode(base.subarray(RECORDING_HEADER)));
    const reencode = (j: unknown) => recordingBytes(1, j);
    const forged = [
      { ...body, events: [[99, "0", "0", "0"]] },
      { ...body, events: [[3, "-1", "0", "0"]] },
      { ...body, events: [[3, "18446744073709551616", "0", "0"]] },
      { ...body, call: { ...body.call, args: ["1", "2", "3", "4", "5", "6", "7"] } },
      { ...body, call: { ...body.call, input: "not base64!" } },
      { ...body, start: { ...body.start, sha256: "x" } },
      { ...body, start: { ...body.start, kind: "linux" } },
      { ...body, options: { ...body.options, allow: ["format-disk"] } },
      { ...body, outcome: { value: "1" } },
      [],
      null,
    ];
    for (const f of forged) expect((thrown(() => decodeRecording(reencode(f), "f.rec")) as WaspError).code).toBe("WASP_BAD_RECORDING");
    fc.assert(fc.property(fc.jsonValue(), (j) => check(reencode(j))), { numRuns: 500 });
  });
});

describe("the TypeScript API's record option", () => {
  test("run/runSync({ record: true }) give the recording wasp replay runs, on this thread and on a worker; a failed call's error carries one", async () => {
    const { Virtine } = await import("../src/index.ts");
    await using v = await Virtine.load(guest("calls"));
    const r = v.runSync({ args: [3], record: true });
    expect(r.value).toBe(3n);
    const rec = decodeRecording(r.recording!, "api.rec");
    expect(rec.events.map((e) => e.nr)).toEqual([1, 1, 1]); // three write hypercalls
    expect(rec.start.kind).toBe("image");
    writeFileSync(at("api.rec"), r.recording!);
    const p = wasp(["replay", at("api.rec"), "--image", guest("calls")]);
    expect(p.status).toBe(0);
    expect(p.stdout).toBe("3\n");
    expect(v.runSync({ args: [2] }).recording).toBeUndefined(); // off unless asked
    // on a worker the same: the recording comes back with the result, or with the error
    const w = await v.run({ args: [2], record: true });
    expect(decodeRecording(w.recording!, "w.rec").events.length).toBe(2);
    writeFileSync(at("w.rec"), w.recording!);
    expect(wasp(["replay", at("w.rec"), "--image", guest("calls")]).stdout).toBe("2\n");

    await using panics = await Virtine.load(guest("panicker"));
    const e = thrown(() => panics.runSync({ record: true })) as WaspError;
    expect(e.code).toBe("WASP_GUEST_PANIC");
    writeFileSync(at("api-panic.rec"), e.recording!);
    expect(wasp(["replay", at("api-panic.rec"), "--image", guest("panicker")]).status).toBe(0);
    const we = (await panics.run({ record: true }).catch((x) => x)) as WaspError;
    expect(we.code).toBe("WASP_GUEST_PANIC");
    expect(decodeRecording(we.recording!, "we.rec").outcome).toEqual({ error: { code: "WASP_GUEST_PANIC", message: "the guest panicked: guest gave up" } });
  });

  test("replay(recording) in a script: what the call gave again, its error as recorded, a divergence as an error", async () => {
    const { Virtine, replay, ReplayDivergedError, BadRecordingError } = await import("../src/index.ts");
    await using v = await Virtine.load(guest("calls"));
    const r = v.runSync({ args: [3], record: true });
    const again = replay(r.recording!, "api.rec");
    if (again.kind !== "native") throw new Error("a native recording replayed as another kind");
    expect(again.result?.value).toBe(3n);
    expect(again.result?.console).toEqual(new TextEncoder().encode(r.console));
    expect(again.error).toBeUndefined();
    await using panics = await Virtine.load(guest("panicker"));
    const e = thrown(() => panics.runSync({ record: true })) as WaspError;
    const failed = replay(e.recording!, "panic.rec");
    expect(failed.result).toBeUndefined();
    expect(failed.error).toEqual({ code: "WASP_GUEST_PANIC", message: "the guest panicked: guest gave up" });
    expect(thrown(() => replay(r.recording!, "api.rec", { image: guest("fib") }))).toBeInstanceOf(ReplayDivergedError);
    expect(thrown(() => replay(new Uint8Array(3), "junk.rec"))).toBeInstanceOf(BadRecordingError);
  });
});

describe("wasp serve --record-failures", () => {
  test("every 5xx of a wasp image is kept as REQUEST_ID.rec, which wasp replay runs to the same failure; bounded, oldest first", async () => {
    const rdir = at("failures");
    const logs: string[] = [];
    const server = await recordingServer("/h", guest("httphello"), rdir, { timeoutMs: slow(2000), workers: 2, warmCalls: 2, maxFiles: 2, log: (l) => logs.push(l) });
    try {
      const base = `http://127.0.0.1:${server.port}/h`;
      expect((await fetch(`${base}/fine`)).status).toBe(200);
      const { readdirSync } = await import("node:fs");
      expect(readdirSync(rdir)).toEqual([]); // a success is not kept
      const ids: string[] = [];
      for (const path of ["/panic", "/bad", "/panic", "/panic"]) {
        const r = await fetch(`${base}${path}`);
        expect(r.status).toBe(502);
        ids.push(r.headers.get("x-request-id")!);
      }
      // two at most: the last two failures
      expect(readdirSync(rdir).sort()).toEqual(ids.slice(2).map((id) => `${id}.rec`).sort());
      expect(logs.filter((l) => l.includes('"msg":"recorded"')).length).toBe(4);
      const p = wasp(["replay", join(rdir, `${ids[3]}.rec`)]);
      expect(p.stderr).toBe("wasp: replayed as recorded: the guest panicked: asked to panic (WASP_GUEST_PANIC)\n");
      expect(p.status).toBe(0);
    } finally {
      await server.stop();
    }
  }, slow(60_000));

  test("bad bounds and folders are refused before anything is served", () => {
    writeFileSync(at("afile"), "x");
    let r = wasp(["serve", "--route", `/h=${guest("httphello")}`, "--record-failures", at("afile")]);
    expect(r.status).toBe(EXIT_STATUS.WASP_BAD_ARGS!);
    expect(r.stderr).toMatch(/^wasp: record_failures .*afile: cannot write recordings there/);
    r = wasp(["serve", "--route", `/h=${guest("httphello")}`, "--record-max-files", "3"]);
    expect(r.stderr).toBe("wasp: --record-max-files and --record-max-bytes go with --record-failures DIR\n");
  });
});

describe("what cannot be recorded or replayed says so", () => {
  test("a missing recording, --record-max-files 0", async () => {
    const p = wasp(["replay", at("nowhere.rec")]);
    expect(p.status).toBe(EXIT_STATUS.WASP_BAD_ARGS!);
    expect(p.stderr).toMatch(/^wasp: .*nowhere\.rec: cannot read it \(ENOENT/);
    const r = wasp(["serve", "--route", `/h=${guest("httphello")}`, "--record-failures", at("rf"), "--record-max-files", "0"]);
    expect(r.status).toBe(EXIT_STATUS.WASP_BAD_ARGS!);
    expect(r.stderr).toBe("wasp: --record-max-files 0: keep at least one, or leave out --record-failures\n");
  });
});
