// Record and replay of a Linux program's call (docs/recording-format.md, format version 2) on the
// real /dev/kvm: a C program that reads the clock, getrandom, its AT_RANDOM bytes and stdin,
// recorded with time and random granted, replays to identical stdout and stderr; another
// executable diverges at -1; a forged system call — result, arguments, a write where the guest
// could not write — diverges at its index; a segfault replays to the same failure; a snapshot
// file's call and a call through the TypeScript API replay too. The CLI runs from source (bun
// src/cli/main.ts). The decoder takes any bytes (fast-check).
import { afterAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EXIT_STATUS, ReplayDivergedError, WaspError } from "../src/errors.ts";
import { compileC } from "../src/linux/c.ts";
import { NR } from "../src/linux/process.ts";
import { LinuxProgram } from "../src/virtine/linux.ts";
import { RECORDING_HEADER, decodeRecording, encodeRecording } from "../src/virtine/record.ts";
import { checkLinuxStart, decodeAnyRecording, decodeLinuxRecording, encodeLinuxRecording, replayLinuxCall, type LinuxRecording } from "../src/virtine/record-linux.ts";
import { ROOT, recordingBytes, recordingServer, slow, thrown } from "./support.ts";

const dir = mkdtempSync(join(tmpdir(), "wasp-record-linux-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const at = (name: string) => join(dir, name);

/** The CLI from source: what this checkout does, whatever dist/wasp was built from. */
function cli(args: string[]) {
  const p = Bun.spawnSync([process.execPath, join(ROOT, "src/cli/main.ts"), ...args], { env: { ...process.env } });
  return { status: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

const CLOCK = `
#include <stdio.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <sys/random.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct timeval tv;
  gettimeofday(&tv, 0);
  unsigned char r[16];
  long n = getrandom(r, sizeof r, 0);
  const unsigned char *at_random = (const unsigned char *)getauxval(AT_RANDOM);
  char in[64];
  ssize_t k = read(0, in, sizeof in - 1);
  if (k < 0) k = 0;
  in[k] = 0;
  printf("t=%lld.%09ld tv=%ld n=%ld r=", (long long)ts.tv_sec, ts.tv_nsec, (long)tv.tv_usec, n);
  for (int i = 0; i < 16; i++) printf("%02x", r[i]);
  printf(" auxv=");
  for (int i = 0; i < 16; i++) printf("%02x", at_random[i]);
  printf(" argc=%d in=%s env=%s\\n", argc, in, getenv("GREETING") ? getenv("GREETING") : "-");
  fprintf(stderr, "stderr %s\\n", argc > 1 ? argv[1] : "-");
  return 3;
}`;

const SEGV = `
#include <stdio.h>
int main(int argc, char **argv) {
  printf("before\\n");
  fflush(stdout);
  volatile int *p = (volatile int *)(long)(argc * 8);
  return *p;
}`;

const SNAP = `
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include "wasp.h"
int main(void) {
  static char table[256];
  for (int i = 0; i < 256; i++) table[i] = (char)('a' + i % 26);
  wasp_snapshot();
  char in[32];
  ssize_t k = read(0, in, sizeof in);
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  printf("%.*s t=%lld.%09ld\\n", (int)(k < 0 ? 0 : k), in, (long long)ts.tv_sec, ts.tv_nsec);
  return 0;
}`;

const built = new Map<string, string>();
async function program(name: string, source: string): Promise<string> {
  if (!built.has(name)) {
    // the cache names files by hash: a copy under the program's name
    copyFileSync((await compileC(source, { cacheDir: at("cache"), name })).path, at(name));
    chmodSync(at(name), 0o755);
    built.set(name, at(name));
  }
  return built.get(name)!;
}

const read = (path: string) => new Uint8Array(readFileSync(path));

describe("wasp invoke --record, wasp replay: a Linux program", () => {
  test("the clock, getrandom, AT_RANDOM, stdin, arguments and environment: replayed to the same stdout, stderr and status", async () => {
    const prog = await program("clock", CLOCK);
    writeFileSync(at("in.txt"), "hello");
    const args = ["invoke", prog, "one", "two", "-i", at("in.txt"), "--allow", "time,random", "--env", "GREETING=hi"];
    const first = cli([...args, "--record", at("clock.rec")]);
    expect(first.stderr).toBe("stderr one\n");
    expect(first.status).toBe(3);
    expect(first.stdout).toMatch(/^t=\d+\.\d{9} tv=\d+ n=16 r=[0-9a-f]{32} auxv=[0-9a-f]{32} argc=3 in=hello env=hi\n$/);
    const again = cli(args);
    expect(again.stdout).not.toBe(first.stdout); // another clock, other random bytes
    const p = cli(["replay", at("clock.rec")]);
    expect(p.stdout).toBe(first.stdout);
    const rec = decodeLinuxRecording(read(at("clock.rec")), "clock.rec");
    expect(p.stderr).toBe(`stderr one\nwasp: replayed ${rec.events.length} system call(s) and hypercall(s) as recorded; the program's exit status was 3\n`);
    expect(p.status).toBe(0);
    // what the recording holds
    expect(rec.call.args).toEqual(["one", "two"]);
    expect(rec.call.env).toEqual(["GREETING=hi"]);
    expect(new TextDecoder().decode(rec.call.input)).toBe("hello");
    expect(rec.call.random!.length).toBe(16);
    expect(first.stdout).toContain(`auxv=${Buffer.from(rec.call.random!).toString("hex")}`);
    expect(rec.start).toEqual({ kind: "executable", name: "clock", path: prog, sha256: new Bun.CryptoHasher("sha256").update(read(prog)).digest("hex") });
    const random = rec.events.find((e) => e.type === "syscall" && e.nr === NR.getrandom)!;
    expect(random.writes.length).toBe(1);
    expect(first.stdout).toContain(`r=${Buffer.from(random.writes[0].data).toString("hex")}`);
    const clock = rec.events.filter((e) => e.type === "syscall" && e.nr === NR.clock_gettime);
    expect(clock.length).toBeGreaterThanOrEqual(1);
    for (const e of clock) expect(e.writes[0].data.length).toBe(16);
    // deterministic system calls carry no writes: the replay makes them
    expect(rec.events.find((e) => e.type === "syscall" && e.nr === NR.read)!.writes).toEqual([]);
    expect(rec.outcome).toMatchObject({ status: 3, stdoutTruncated: false, stderrTruncated: false });
    expect(rec.events.at(-1)).toMatchObject({ type: "syscall", nr: NR.exit_group, result: null });
  }, slow(120_000));

  test("another executable, or the same one with a byte changed, diverges at event -1", async () => {
    const prog = await program("clock", CLOCK);
    const other = await program("segv", SEGV);
    writeFileSync(at("in2.txt"), "x");
    expect(cli(["invoke", prog, "-i", at("in2.txt"), "--allow", "time,random", "--record", at("c2.rec")]).status).toBe(3);
    let p = cli(["replay", at("c2.rec"), "--image", other]);
    expect(p.status).toBe(EXIT_STATUS.WASP_REPLAY_DIVERGED!);
    expect(p.stderr).toMatch(/^wasp: the replay diverged at event -1: recorded the executable clock, sha256 [0-9a-f]{64}; happened .*segv, sha256 [0-9a-f]{64}\n$/);
    // a byte changed: not the same executable
    const changed = read(prog);
    changed[changed.length - 1] ^= 1;
    writeFileSync(at("changed"), changed);
    p = cli(["replay", at("c2.rec"), "--image", at("changed")]);
    expect(p.status).toBe(EXIT_STATUS.WASP_REPLAY_DIVERGED!);
    expect(p.stderr).toMatch(/diverged at event -1: recorded the executable clock, sha256 [0-9a-f]{64}; happened .*changed, sha256/);
  }, slow(120_000));

  test("a forged result, forged arguments, a forged write where the guest cannot write: each diverges at its index", async () => {
    const prog = await program("clock", CLOCK);
    writeFileSync(at("in3.txt"), "abc");
    expect(cli(["invoke", prog, "-i", at("in3.txt"), "--allow", "time,random", "--record", at("c3.rec")]).status).toBe(3);
    const rec = decodeLinuxRecording(read(at("c3.rec")), "c3.rec");
    const readAt = rec.events.findIndex((e) => e.type === "syscall" && e.nr === NR.read);
    const randomAt = rec.events.findIndex((e) => e.type === "syscall" && e.nr === NR.getrandom);
    const forge = (name: string, f: (e: LinuxRecording["events"][number], i: number) => LinuxRecording["events"][number]) => {
      writeFileSync(at(name), encodeLinuxRecording({ ...rec, events: rec.events.map(f) }));
      return cli(["replay", at(name)]);
    };
    // read ran for real and gave 3 bytes; the recording says 2
    let p = forge("result.rec", (e, i) => (i === readAt ? { ...e, result: 2n } : e));
    expect(p.status).toBe(EXIT_STATUS.WASP_REPLAY_DIVERGED!);
    expect(p.stderr).toMatch(new RegExp(`^wasp: the replay diverged at event ${readAt}: recorded system call read\\(0x0, 0x[0-9a-f]+, 0x3f, .*\\) = 2; happened system call read\\(0x0, .*\\) = 3\\n$`));
    // the program asked getrandom for 16 bytes; the recording says 8
    p = forge("args.rec", (e, i) => (i === randomAt && e.type === "syscall" ? { ...e, args: e.args.map((a, k) => (k === 1 ? 8n : a)) } : e));
    expect(p.status).toBe(EXIT_STATUS.WASP_REPLAY_DIVERGED!);
    expect(p.stderr).toMatch(new RegExp(`^wasp: the replay diverged at event ${randomAt}: recorded system call getrandom\\(0x[0-9a-f]+, 0x8, 0x0, 0x0, 0x0, 0x0\\); happened system call getrandom\\(0x[0-9a-f]+, 0x10, 0x0, 0x0, 0x0, 0x0\\)\\n$`));
    // getrandom's answer written into the host's page tables: GuestAccess refuses it
    p = forge("write.rec", (e, i) => (i === randomAt ? { ...e, writes: [{ addr: 0x1000n, data: new Uint8Array(16) }] } : e));
    expect(p.status).toBe(EXIT_STATUS.WASP_REPLAY_DIVERGED!);
    expect(p.stderr).toMatch(new RegExp(`^wasp: the replay diverged at event ${randomAt}: recorded system call getrandom\\(.*\\) writing 16 bytes at 0x1000; happened a replayed write \\[0x1000, \\+0x10\\) `));
    // the clock answered otherwise: the program prints another time, and the outcome differs
    const clockAt = rec.events.findIndex((e) => e.type === "syscall" && e.nr === NR.clock_gettime);
    const later = (d: Uint8Array) => {
      // another nanosecond count (printed as nine digits: the output keeps its length)
      const out = d.slice();
      const dv = new DataView(out.buffer);
      dv.setBigInt64(8, (dv.getBigInt64(8, true) + 1n) % 1_000_000_000n, true);
      return out;
    };
    p = forge("clock.rec", (e, i) => (i === clockAt ? { ...e, writes: e.writes.map((w) => ({ ...w, data: later(w.data) })) } : e));
    expect(p.status).toBe(EXIT_STATUS.WASP_REPLAY_DIVERGED!);
    expect(p.stderr).toMatch(new RegExp(`^wasp: the replay diverged at event ${rec.events.length}: recorded the outcome exit status 3, .*stdout sha256 [0-9a-f]{16}…, .*; happened the outcome exit status 3, .*stdout sha256 [0-9a-f]{16}…`));
    // one event fewer
    writeFileSync(at("short.rec"), encodeLinuxRecording({ ...rec, events: rec.events.slice(0, 1) }));
    p = cli(["replay", at("short.rec")]);
    expect(p.stderr).toMatch(/^wasp: the replay diverged at event 1: recorded the call's end after 1 events; happened system call /);
  }, slow(120_000));

  test("a segfault replays to the same failure, and exits 0", async () => {
    const prog = await program("segv", SEGV);
    const r = cli(["invoke", prog, "--record", at("segv.rec")]);
    expect(r.status).toBe(EXIT_STATUS.WASP_GUEST_FAULT!);
    const rec = decodeLinuxRecording(read(at("segv.rec")), "segv.rec");
    expect("error" in rec.outcome && rec.outcome.error.code).toBe("WASP_GUEST_FAULT");
    const p = cli(["replay", at("segv.rec")]);
    expect(p.status).toBe(0);
    expect(p.stderr).toMatch(/^wasp: replayed as recorded: .+ \(WASP_GUEST_FAULT\)\n$/);
    // the same program with another argument count faults elsewhere: not the recorded failure
    const other = encodeLinuxRecording({ ...rec, call: { ...rec.call, args: ["x"] } });
    writeFileSync(at("segv2.rec"), other);
    const q = cli(["replay", at("segv2.rec")]);
    expect(q.status).toBe(EXIT_STATUS.WASP_REPLAY_DIVERGED!);
  }, slow(120_000));

  test("a call of a Linux program's snapshot file replays from the same file; another snapshot diverges at -1", async () => {
    const prog = await program("snap", SNAP);
    expect(cli(["snapshot", prog, "-o", at("snap.snap")]).status).toBe(0);
    writeFileSync(at("req.txt"), "req");
    const first = cli(["invoke", at("snap.snap"), "-i", at("req.txt"), "--allow", "time", "--record", at("snap.rec")]);
    expect(first.status).toBe(0);
    expect(first.stdout).toMatch(/^req t=\d+\.\d{9}\n$/);
    const rec = decodeLinuxRecording(read(at("snap.rec")), "snap.rec");
    expect(rec.start.kind).toBe("snapshot");
    expect(rec.call.random).toBeUndefined(); // resumed: no initial stack
    const p = cli(["replay", at("snap.rec")]);
    expect(p.status).toBe(0);
    expect(p.stdout).toBe(first.stdout);
    // the executable itself, run from its entry: wasp_snapshot() is a wasp.h hypercall, recorded and checked
    const exe = cli(["invoke", prog, "-i", at("req.txt"), "--allow", "time", "--record", at("snapexe.rec")]);
    expect(exe.status).toBe(0);
    const exeRec = decodeLinuxRecording(read(at("snapexe.rec")), "snapexe.rec");
    expect(exeRec.events.filter((e) => e.type === "hypercall").map((e) => e.nr)).toEqual([5]); // snapshot
    expect(cli(["replay", at("snapexe.rec")]).stdout).toBe(exe.stdout);
    writeFileSync(at("snapexe2.rec"), encodeLinuxRecording({ ...exeRec, events: exeRec.events.map((e) => (e.type === "hypercall" ? { ...e, result: 1n } : e)) }));
    const h = cli(["replay", at("snapexe2.rec")]);
    expect(h.status).toBe(EXIT_STATUS.WASP_REPLAY_DIVERGED!);
    expect(h.stderr).toMatch(/^wasp: the replay diverged at event \d+: recorded hypercall snapshot\(0x0, 0x0\) = 1; happened hypercall snapshot\(0x0, 0x0\) = 0\n$/);
    // the executable itself is not the recorded start
    let q = cli(["replay", at("snap.rec"), "--image", prog]);
    expect(q.status).toBe(EXIT_STATUS.WASP_REPLAY_DIVERGED!);
    expect(q.stderr).toMatch(/diverged at event -1: recorded the snapshot file snap\.snap; happened .*snap, not a snapshot file\n$/);
    // a snapshot of the same executable taken with other arguments: another process section
    expect(cli(["snapshot", prog, "other", "-o", at("snap2.snap")]).status).toBe(0);
    q = cli(["replay", at("snap.rec"), "--image", at("snap2.snap")]);
    expect(q.status).toBe(EXIT_STATUS.WASP_REPLAY_DIVERGED!);
    expect(q.stderr).toMatch(/diverged at event -1: recorded the snapshot file snap\.snap \(executable sha256 [0-9a-f]{64}, memory sha256 [0-9a-f]{64}, process sha256 [0-9a-f]{64}\); happened .*snap2\.snap/);
  }, slow(120_000));
});

describe("the TypeScript API's record option for a Linux program", () => {
  test("runSync({ record: true }) gives the recording wasp replay runs; a failed call's error carries one; on a worker too", async () => {
    const { Virtine } = await import("../src/index.ts");
    const prog = await program("clock", CLOCK);
    await using v = await Virtine.load(prog, { allow: ["time", "random"], env: { GREETING: "api" } });
    const r = v.runSync({ args: ["a"], input: "in", record: true });
    expect(r.status).toBe(3);
    const rec = decodeLinuxRecording(r.recording!, "api.rec");
    expect(rec.call).toMatchObject({ args: ["a"], env: ["GREETING=api"] });
    writeFileSync(at("api.rec"), r.recording!);
    const p = cli(["replay", at("api.rec")]); // the path the virtine was loaded from
    expect(p.status).toBe(0);
    expect(p.stdout).toBe(new TextDecoder().decode(r.output));
    // replayed in this process, through the library
    using program2 = LinuxProgram.fromFile(prog, { oneShot: true, allow: rec.options.allow, env: rec.call.env, maxOutput: rec.options.maxOutput });
    checkLinuxStart(rec, program2, prog);
    const again = replayLinuxCall(rec, program2);
    expect(again.result!.stdout).toEqual(r.output);
    expect(v.runSync({ args: ["b"] }).recording).toBeUndefined();
    // on a worker the same: the recording comes back with the result, and replays
    const w = await v.run({ args: ["w"], input: "on a worker", record: true });
    const wrec = decodeLinuxRecording(w.recording!, "worker.rec");
    expect(wrec.call).toMatchObject({ args: ["w"], env: ["GREETING=api"] });
    writeFileSync(at("worker.rec"), w.recording!);
    const pw = cli(["replay", at("worker.rec")]);
    expect(pw.status).toBe(0);
    expect(pw.stdout).toBe(new TextDecoder().decode(w.output));

    await using segv = await Virtine.load(await program("segv", SEGV));
    const e = thrown(() => segv.runSync({ record: true })) as WaspError;
    expect(e.code).toBe("WASP_GUEST_FAULT");
    writeFileSync(at("api-segv.rec"), e.recording!);
    expect(cli(["replay", at("api-segv.rec")]).status).toBe(0);
  }, slow(120_000));

  test("a program whose calls resume from a state one of its calls captured is refused, and a replay of the wrong program is a divergence", async () => {
    const { Virtine } = await import("../src/index.ts");
    await using v = await Virtine.load(await program("snap", SNAP), { allow: ["time"] });
    v.runSync({ input: "first" }); // captures at wasp_snapshot()
    const e = thrown(() => v.runSync({ input: "x", record: true })) as WaspError;
    expect(e.code).toBe("WASP_BAD_ARGS");
    expect(e.message).toStartWith("record: snap's calls resume from the state its first call captured at wasp_snapshot(), which no file holds");
    const rec = decodeLinuxRecording(read(at("api.rec")), "api.rec");
    using wrong = LinuxProgram.fromFile(await program("segv", SEGV), { oneShot: true });
    const d = thrown(() => checkLinuxStart(rec, wrong, "segv")) as ReplayDivergedError;
    expect(d.code).toBe("WASP_REPLAY_DIVERGED");
    expect(d.index).toBe(-1);
  }, slow(120_000));
});

describe("a Linux recording's decoder", () => {
  const sample: LinuxRecording = {
    kind: "linux",
    wasp: "wasp 0.1.0",
    start: { kind: "executable", name: "clock", path: "/x/clock", sha256: "a".repeat(64) },
    options: { memory: 64 << 20, stackSize: 1 << 20, snapshot: true, maxOutput: 1 << 20, allow: ["exit", "write", "panic", "snapshot", "time"], files: [["/etc/config", new Uint8Array([1, 2])]] },
    call: { args: ["a", "b"], env: ["K=v"], input: new Uint8Array([7]), random: new Uint8Array(16).fill(5) },
    events: [
      { type: "syscall", nr: NR.clock_gettime, args: [0n, 4096n, 0n, 0n, 0n, 0n], result: 0n, writes: [{ addr: 4096n, data: new Uint8Array(16) }] },
      { type: "hypercall", nr: 3, a: 0n, b: 0n, result: 42n, writes: [] },
      { type: "syscall", nr: NR.exit_group, args: [3n, 0n, 0n, 0n, 0n, 0n], result: null, writes: [] },
    ],
    outcome: { status: 3, exits: 4, syscalls: 2, stdout: "b".repeat(64), stderr: "c".repeat(64), stdoutTruncated: false, stderrTruncated: true },
  };
  const valid = () => encodeLinuxRecording(sample);

  test("reads back what it wrote; each decoder refuses the other's kind in one line", () => {
    const r = decodeLinuxRecording(valid(), "v.rec");
    expect(r).toEqual(sample);
    expect(encodeLinuxRecording(r)).toEqual(valid());
    expect(decodeAnyRecording(valid(), "v.rec")).toEqual(sample);
    expect((thrown(() => decodeRecording(valid(), "v.rec")) as WaspError).message).toBe("v.rec: a Linux program's recording (format version 2), not a native call's");
    const native = encodeRecording({ wasp: "w", start: { kind: "image", name: "x.bin", sha256: "a".repeat(64) }, options: { memory: 1, dataSize: 1, stackSize: 1, snapshot: true, allow: [] }, call: { args: [], input: new Uint8Array() }, events: [], outcome: { value: 1n, exits: 1, output: "b".repeat(64), console: "c".repeat(64) } });
    expect((thrown(() => decodeLinuxRecording(native, "n.rec")) as WaspError).message).toBe("n.rec: a native call's recording (format version 1), not a Linux program's");
    expect("kind" in decodeAnyRecording(native, "n.rec")).toBe(false);
  });

  test("any bytes, any edit of a valid file, any JSON body with a good checksum: a recording or one WASP_BAD_RECORDING line", () => {
    const check = (b: Uint8Array) => {
      let e: unknown;
      try {
        decodeAnyRecording(b, "f.rec");
        decodeLinuxRecording(b, "f.rec");
      } catch (x) {
        e = x;
      }
      if (e !== undefined) {
        expect(e).toBeInstanceOf(WaspError);
        expect((e as WaspError).code).toBe("WASP_BAD_RECORDING");
        expect((e as WaspError).message).toStartWith("f.rec: ");
        expect((e as WaspError).message).not.toContain("\n");
      }
    };
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), check), { numRuns: 1000 });
    const base = valid();
    fc.assert(
      fc.property(fc.nat(base.length - 1), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const b = base.slice();
        b[i] ^= x;
        check(b);
      }),
      { numRuns: 2000 },
    );
    const body = JSON.parse(new TextDecoder().decode(base.subarray(RECORDING_HEADER)));
    const reencode = (j: unknown) => recordingBytes(2, j);
    expect(decodeLinuxRecording(reencode(body), "f.rec")).toEqual(sample);
    const ev = body.events;
    const forged = [
      { ...body, kind: "native" },
      { ...body, start: { ...body.start, kind: "image" } },
      { ...body, start: { ...body.start, kind: "snapshot" } }, // no memory or process hash
      { ...body, options: { ...body.options, allow: ["format-disk"] } },
      { ...body, options: { ...body.options, files: [["relative", "AA=="]] } },
      { ...body, options: { ...body.options, files: [["/a", "AA=="], ["/a", "AA=="]] } },
      { ...body, options: { ...body.options, maxOutput: -1 } },
      { ...body, call: { ...body.call, args: ["a\u0000b"] } },
      { ...body, call: { ...body.call, env: ["novalue"] } },
      { ...body, call: { ...body.call, random: "AAAA" } },
      { ...body, events: [["sys", 0x10000, ["0", "0", "0", "0", "0", "0"], "0"]] },
      { ...body, events: [["sys", 1, ["0", "0", "0", "0", "0"], "0"]] },
      { ...body, events: [["sys", 1, ["0", "0", "0", "0", "0", "-1"], "0"]] },
      { ...body, events: [["hyp", 99, "0", "0", "0"]] },
      { ...body, events: [["sys", 228, ...ev[0].slice(2, 4), [["4096"]]]] },
      { ...body, events: [["xyz", 1]] },
      { ...body, outcome: { ...body.outcome, status: 256 } },
      { ...body, outcome: { ...body.outcome, stdoutTruncated: "no" } },
      { ...body, outcome: { status: 1 } },
      [],
      null,
    ];
    for (const [i, f] of forged.entries()) {
      const e = thrown(() => decodeLinuxRecording(reencode(f), "f.rec")) as WaspError;
      expect([i, e.code]).toEqual([i, "WASP_BAD_RECORDING"]);
    }
    fc.assert(fc.property(fc.jsonValue(), (j) => check(reencode(j))), { numRuns: 500 });
    // any value in any field of a valid body
    const paths = ["wasp", "kind", "start", "options", "call", "events", "outcome"];
    fc.assert(
      fc.property(fc.constantFrom(...paths), fc.jsonValue(), (k, v) => check(reencode({ ...body, [k]: v }))),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.constantFrom("start", "options", "call", "outcome"), fc.string({ maxLength: 16 }), fc.jsonValue(), (k, f, v) => check(reencode({ ...body, [k]: { ...body[k], [f]: v } }))),
      { numRuns: 500 },
    );
    fc.assert(fc.property(fc.nat(2), fc.nat(5), fc.jsonValue(), (i, k, v) => {
      const events = structuredClone(body.events);
      events[i][k] = v;
      check(reencode({ ...body, events }));
    }), { numRuns: 500 });
  });
});

const CGI = `
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
int main(void) {
  const char *path = getenv("PATH_INFO");
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  if (path && strcmp(path, "/crash") == 0) { volatile int *p = (int *)16; *p = (int)ts.tv_nsec; }
  if (path && strcmp(path, "/err") == 0) { printf("Status: 503 Busy\\r\\nContent-Type: text/plain\\r\\n\\r\\nbusy at %ld\\n", (long)ts.tv_nsec); return 0; }
  printf("Content-Type: text/plain\\r\\n\\r\\nfine\\n");
  return 0;
}
`;

describe("wasp serve --record-failures with a Linux program (CGI)", () => {
  test("a crash (502) and a 5xx the program answered itself are kept, each replays as it happened; a success is not kept", async () => {
    const { readdirSync } = await import("node:fs");
    const prog = await program("cgi", CGI);
    const rdir = at("cgi-failures");
    const server = await recordingServer("/c", prog, rdir, { allow: ["time"] });
    const ids: Record<string, string> = {};
    let busy = "";
    try {
      const base = `http://127.0.0.1:${server.port}/c`;
      expect(await (await fetch(`${base}/fine`)).text()).toBe("fine\n");
      expect(readdirSync(rdir)).toEqual([]);
      const crash = await fetch(`${base}/crash`);
      expect(crash.status).toBe(502);
      ids.crash = crash.headers.get("x-request-id")!;
      const err = await fetch(`${base}/err`);
      expect(err.status).toBe(503);
      busy = await err.text();
      ids.err = err.headers.get("x-request-id")!;
    } finally {
      await server.stop();
    }
    expect(readdirSync(rdir).sort()).toEqual([`${ids.crash}.rec`, `${ids.err}.rec`].sort());
    const c = cli(["replay", join(rdir, `${ids.crash}.rec`)]);
    expect(c.stderr).toMatch(/^wasp: replayed as recorded: the guest took an exception: page fault .*\(WASP_GUEST_FAULT\)\n$/);
    expect(c.status).toBe(0);
    const e = cli(["replay", join(rdir, `${ids.err}.rec`)]);
    expect(e.status).toBe(0);
    // the same answer, the clock's value included: it came from the recording
    expect(e.stdout).toBe(`Status: 503 Busy\r\nContent-Type: text/plain\r\n\r\n${busy}`);
  }, slow(120_000));
});

describe("wasp serve --record-failures with a JavaScript handler", () => {
  test("a handler that throws (5xx) is kept as the engine's run, which replays as it happened", async () => {
    const { readdirSync } = await import("node:fs");
    writeFileSync(at("h.js"), `export default (req) => { if (req.path === "/boom") throw new Error("boom at " + req.query); return { status: 200, body: "ok " + req.path }; };`);
    const rdir = at("js-failures");
    const server = await recordingServer("/j", at("h.js"), rdir, { timeoutMs: slow(10_000) });
    let id = "";
    try {
      const base = `http://127.0.0.1:${server.port}/j`;
      expect(await (await fetch(`${base}/fine`)).text()).toBe("ok /fine");
      const boom = await fetch(`${base}/boom?42`);
      expect(boom.status).toBeGreaterThanOrEqual(500);
      id = boom.headers.get("x-request-id")!;
    } finally {
      await server.stop();
    }
    // the recording, and the warm engine it starts from (written there when the server loaded the module)
    const files = readdirSync(rdir).sort();
    expect(files.length).toBe(2);
    expect(files).toContain(`${id}.rec`);
    const snap = files.find((f) => f.endsWith(".snap"))!;
    expect(snap).toMatch(/^js-h\.js-[0-9a-f]{16}\.snap$/); // the function's name, the state's hash
    const rec = decodeLinuxRecording(readFileSync(join(rdir, `${id}.rec`)), "js.rec");
    expect(rec.start).toMatchObject({ kind: "snapshot", path: join(rdir, snap) });
    const p = cli(["replay", join(rdir, `${id}.rec`)]);
    expect(p.status).toBe(0);
    expect(p.stderr).toMatch(/^wasp: replayed as recorded: .*boom at 42.*\n$/); // the handler's error, as it was
  }, slow(120_000));
});
