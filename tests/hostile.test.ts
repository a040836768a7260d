// A hostile guest can end only its own virtine, with a result or a typed error, quickly; the host
// goes on serving the next call with nothing leaked.
import { describe, expect, test } from "bun:test";
import { Runner } from "../src/virtine/runner.ts";
import { parseImage } from "../src/image/image.ts";
import { Hypercalls } from "../src/abi/guest-abi.ts";
import { MAX_WRITE } from "../src/hypercall/handlers.ts";
import { WaspError, TimeoutError } from "../src/errors.ts";
import { slow, X86, guest, nativeImage, openFds } from "./support.ts";

const load = (name: string, opts = {}) => Runner.fromFile(guest(name), opts);
const native = (code: number[], opts = {}) => new Runner(parseImage(nativeImage(code), "test"), opts);

/** Runs f, which must throw a WaspError; returns it. */
function caught(f: () => unknown): WaspError {
  try {
    f();
  } catch (e) {
    if (e instanceof WaspError) return e;
    throw e;
  }
  throw new Error("expected a WaspError, nothing was thrown");
}

const WRITE = 1n;
const RANDOM = 4n;

describe("deadlines", () => {
  test("a guest that spins (jmp $, interrupts off) is stopped at its deadline; the next call works", () => {
    using v = native(X86.spin, { timeoutMs: 50 });
    const t = performance.now();
    const e = caught(() => v.run());
    const elapsed = performance.now() - t;
    expect(e).toBeInstanceOf(TimeoutError);
    expect(e.code).toBe("WASP_TIMEOUT");
    expect(e.message).toBe("the guest ran past its deadline of 50 ms and was stopped");
    expect(elapsed).toBeGreaterThanOrEqual(49); // it did run until the deadline, not fail early
    using fib = load("fib");
    expect(fib.run([20]).value).toBe(6765n);
  });

  test("the Zig spin guest is stopped too, and the same virtine runs again afterwards", () => {
    using v = load("spin", { timeoutMs: 30 });
    expect(caught(() => v.run()).code).toBe("WASP_TIMEOUT");
    expect(caught(() => v.run()).code).toBe("WASP_TIMEOUT");
  });

  test("a long computation finishes under a generous deadline and fails under a short one", () => {
    using ok = load("fib", { timeoutMs: 5000 });
    expect(ok.run([25]).value).toBe(75025n);
    // fib(40) takes seconds; fib(5) must fit the deadline after the timeout (20 ms, scaled where slow)
    using short = load("fib", { timeoutMs: slow(20) });
    expect(caught(() => short.run([40])).code).toBe("WASP_TIMEOUT");
    expect(short.run([5]).value).toBe(5n);
  });

  test("a timer that fires just after a normal exit never reaches the next invocation", () => {
    // Deadlines of a few microseconds fire around the guest's exit: before it (a timeout), or after
    // it, between the exit and the disarm. Calls without a deadline in between must never see it.
    using tight = load("noop", { timeoutMs: 0.03 });
    using free = load("noop", { timeoutMs: 0 });
    let timeouts = 0;
    let successes = 0;
    for (let i = 0; i < 400; i++) {
      try {
        tight.run();
        successes++;
      } catch (e) {
        expect(e).toBeInstanceOf(TimeoutError);
        timeouts++;
      }
      expect(free.run().value).toBe(0n);
    }
    expect(timeouts + successes).toBe(400);
  });

  test("a call's timer firing after the call, while the event loop sleeps, harms nothing", async () => {
    // the timer is left armed after a call that ends in time; Bun's event loop waits with signals
    // unblocked, so the late signal is delivered then: it must not end the process
    using v = load("noop", { timeoutMs: 20 });
    expect(v.run().value).toBe(0n);
    await Bun.sleep(60);
    expect(v.run().value).toBe(0n);
    using spin = native(X86.spin, { timeoutMs: 30 });
    expect(caught(() => spin.run()).code).toBe("WASP_TIMEOUT");
  });

  test("a deadline out of range is refused", () => {
    expect(() => load("noop", { timeoutMs: -1 })).toThrow(/not between 0 \(none\) and/);
    expect(() => load("noop", { timeoutMs: Number.NaN })).toThrow(/timeout/);
  });
});

describe("ports and the hypercall policy", () => {
  test("OUT to a port that is neither the exit nor the hypercall port is a policy violation naming it", () => {
    using v = native([...X86.outPort(0x80), ...X86.exit]);
    const e = caught(() => v.run());
    expect(e.code).toBe("WASP_POLICY");
    expect(e.message).toContain("I/O port 0x80 (out)");
  });

  test("IN from the exit port is a policy violation too", () => {
    using v = native([0xe4, 0xfa, ...X86.exit]); // in al, 0xfa
    expect(caught(() => v.run()).message).toContain("I/O port 0xfa (in)");
  });

  test("an unknown hypercall number ends the virtine with WASP_POLICY", () => {
    using v = load("hypercall");
    for (const nr of [999n, 1n << 63n, 2n ** 64n - 1n]) {
      const e = caught(() => v.run([nr, 0, 0, 0]));
      expect(e.code).toBe("WASP_POLICY");
      expect(e.message).toBe(`the guest made unknown hypercall ${nr}`);
    }
  });

  test("a hypercall not granted is refused and not carried out; granting it makes it work", () => {
    using denied = load("time");
    const e = caught(() => denied.run());
    expect(e.code).toBe("WASP_POLICY");
    expect(e.message).toBe('the guest made hypercall "time", which this virtine is not granted (grant it with --allow)');
    using granted = load("time", { allow: ["time"] });
    const now = BigInt(Date.now()) * 1_000_000n;
    const got = granted.run().value;
    expect(got > now - 60_000_000_000n && got < now + 60_000_000_000n).toBe(true);
  });

  test("random is denied by default and fills guest memory when granted", () => {
    using v = load("hypercall");
    expect(caught(() => v.run([RANDOM, 0x200000, 64, 0])).code).toBe("WASP_POLICY");
    using g = load("hypercall", { allow: ["random"] });
    expect(g.run([RANDOM, 0x200000, 64, 0]).value).toBe(0n);
  });

  test("an unknown name in the allow list is refused", () => {
    expect(() => load("noop", { allow: ["reboot"] })).toThrow(/unknown hypercall "reboot"/);
  });

  test("every hypercall in the ABI has a host handler", () => {
    using v = load("hypercall", { allow: Hypercalls.map((h) => h.name) });
    for (const h of Hypercalls) {
      try {
        v.run([BigInt(h.nr), 0, 0, 0]);
      } catch (e) {
        expect(e).toBeInstanceOf(WaspError);
        expect((e as WaspError).message).not.toMatch(/unknown hypercall/);
      }
    }
  });
});

describe("guest pointers and lengths", () => {
  test("a pointer past RAM is a memory fault naming the range", () => {
    using v = load("hypercall");
    const unmapped = caught(() => v.run([WRITE, 0x7fff_0000, 16, 0]));
    expect(unmapped.code).toBe("WASP_MEMORY_FAULT");
    expect(unmapped.message).toBe("write buffer [0x7fff0000, +0x10) is not mapped (linear 0x7fff0000)");
    // mapped (the identity map reaches 1 GiB) but past the 16 MiB of RAM
    const past = caught(() => v.run([WRITE, 0x100_0000, 16, 0]));
    expect(past.message).toBe("write buffer [0x1000000, +0x10) maps to guest-physical 0x1000000, outside guest RAM (16777216 bytes)");
  });

  test("a range that wraps around 2^64 is a memory fault, not a small read", () => {
    using v = load("hypercall", { allow: ["random"] });
    const e = caught(() => v.run([RANDOM, 0xffff_ffff_ffff_f000n, 0x2000, 0]));
    expect(e.code).toBe("WASP_MEMORY_FAULT");
    expect(e.message).toBe("random buffer [0xfffffffffffff000, +0x2000) is not a canonical address range");
  });

  // The hostile review's escalation: random wrote wherever the guest pointed inside RAM, so the
  // guest had the host rewrite its own page tables (0x4020: the entry mapping the page tables),
  // its IDT (0x6000) and the read-only trampoline (0x1c800), and reached CPL0.
  test("random cannot write the page tables, the IDT, the GDT, the TSS or the trampoline, and the next call is clean", () => {
    using v = load("hypercall", { allow: ["random"], poolSize: 1 });
    for (const [addr, len, why] of [
      [0x4020, 1, "supervisor-only"],
      [0x1000, 8, "supervisor-only"],
      [0x5000, 56, "supervisor-only"],
      [0x6000, 512, "supervisor-only"],
      [0x18000, 104, "supervisor-only"],
      [0x1c800, 8, "read-only"],
    ] as const) {
      const e = caught(() => v.run([RANDOM, addr, len, 0]));
      expect(e.code).toBe("WASP_MEMORY_FAULT");
      expect(e.message).toBe(`random buffer [0x${addr.toString(16)}, +0x${len.toString(16)}) is not ${why === "read-only" ? "writable by the guest (the page at linear 0x1c800 is read-only)" : `accessible to the guest (the page at linear 0x${addr.toString(16)} is supervisor-only)`}`);
    }
    // a guest-writable page is still filled, and the virtine goes on
    expect(v.run([RANDOM, 0x200000, 64, 0]).value).toBe(0n);
    using fib = load("fib");
    expect(fib.run([20]).value).toBe(6765n);
  });

  test("a length of 2^64-1 is refused by the length cap before anything is read", () => {
    using v = load("hypercall");
    const e = caught(() => v.run([WRITE, 0x100000, 2n ** 64n - 1n, 0]));
    expect(e.code).toBe("WASP_POLICY");
    expect(e.message).toBe(`write of 18446744073709551615 bytes exceeds the limit of ${MAX_WRITE} bytes`);
  });

  test("a console length the guest corrupted is refused", () => {
    // mov qword [0x7058], 0x7fffffff (the info page's console_len) ; out 0xfa
    using v = native([0x48, 0xc7, 0x04, 0x25, 0x58, 0x70, 0x00, 0x00, 0xff, 0xff, 0xff, 0x7f, ...X86.exit]);
    const e = caught(() => v.run());
    expect(e.code).toBe("WASP_MEMORY_FAULT");
    expect(e.message).toContain("console length 2147483647 exceeds");
  });

  test("oversized output is capped, the excess dropped and said so", () => {
    using v = load("printer", { maxOutput: 1024 * 1024 });
    const r = v.run([200_000]); // ~2.3 MB of lines
    expect(r.console.length).toBe(1024 * 1024);
    expect(r.consoleTruncated).toBe(true);
  });
});

describe("fuzz: random images and random hypercall arguments", () => {
  // a small deterministic PRNG, so a failure can be replayed
  let seed = 0x9e3779b9;
  const rand = () => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 2 ** 32;
  };
  const bytes = (n: number) => Array.from({ length: n }, () => Math.floor(rand() * 256));

  function survives(make: () => Runner, args: (bigint | number)[] = []): "result" | string {
    using v = make();
    try {
      v.run(args);
      return "result";
    } catch (e) {
      if (!(e instanceof WaspError)) throw e;
      return e.code;
    }
  }

  test("1500 random native images each end in a result or a typed error", () => {
    const outcomes = new Map<string, number>();
    for (let i = 0; i < 1500; i++) {
      const code = bytes(1 + Math.floor(rand() * 64));
      const o = survives(() => native(code, { timeoutMs: 20 }));
      outcomes.set(o, (outcomes.get(o) ?? 0) + 1);
    }
    expect([...outcomes.values()].reduce((a, b) => a + b, 0)).toBe(1500);
    expect(outcomes.get("WASP_GUEST_FAULT") ?? 0).toBeGreaterThan(0);
  }, slow(120_000));

  test("1000 random raw real-mode images each end in a result or a typed error", () => {
    let n = 0;
    for (let i = 0; i < 1000; i++) {
      const code = new Uint8Array(bytes(1 + Math.floor(rand() * 32)));
      survives(() => new Runner(parseImage(code, "raw", { raw: true }), { timeoutMs: 20 }));
      n++;
    }
    expect(n).toBe(1000);
  }, slow(120_000));

  test("2000 hypercalls with random numbers and arguments each end in a result or a typed error", () => {
    const interesting = [0n, 1n, 0x7000n, 0x100000n, 0xfff_fff0n, 0x1000000n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 64n - 4096n];
    const pick = () => (rand() < 0.7 ? interesting[Math.floor(rand() * interesting.length)] : BigInt(Math.floor(rand() * 2 ** 32)));
    // snapshot off: a random call of the snapshot hypercall would otherwise make every later call
    // resume after it
    using v = load("hypercall", { allow: ["time", "random"], timeoutMs: 100, snapshot: false });
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const nr = rand() < 0.9 ? BigInt(Math.floor(rand() * 8)) : pick();
      try {
        v.run([nr, pick(), pick(), pick()]);
        seen.add("result");
      } catch (e) {
        if (!(e instanceof WaspError)) throw e;
        seen.add(e.code);
      }
    }
    expect(seen.has("result")).toBe(true);
    expect(seen.has("WASP_MEMORY_FAULT")).toBe(true);
    expect(seen.has("WASP_POLICY")).toBe(true);
  }, slow(120_000));
});

describe("resource hygiene", () => {
  function rssKiB(): number {
    const m = /VmRSS:\s+(\d+) kB/.exec(require("node:fs").readFileSync("/proc/self/status", "utf8"));
    return m ? Number(m[1]) : Number.NaN;
  }

  test("a call's reset work is bounded by the pages it touched, not by how many hypercalls it made", () => {
    // 20,000 random hypercalls into the same page, then exit: rcx counts down
    const imm32 = (v: number) => [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff];
    const loop = [
      0x48, 0xc7, 0xc0, 0x04, 0x00, 0x00, 0x00, // mov rax, 4 (random)
      0x48, 0xc7, 0xc7, ...imm32(0x200000), // mov rdi, 0x200000
      0x48, 0xc7, 0xc6, 0x08, 0x00, 0x00, 0x00, // mov rsi, 8
      0x51, // push rcx (the hypercall may clobber it)
      0xe6, 0xfb, // out 0xfb, al
      0x59, // pop rcx
      0x48, 0xff, 0xc9, // dec rcx
      0x75, 0xe2, // jnz loop (back 30 bytes)
    ];
    const code = [0x48, 0xc7, 0xc1, ...imm32(20_000), ...loop, ...X86.exit];
    using v = native(code, { allow: ["random"], poolSize: 1, timeoutMs: 60_000 });
    const r = v.run();
    // 20,000 hypercalls and the exit; a late timer of an earlier call may add an interruption or two
    expect(r.exits).toBeGreaterThanOrEqual(20_001);
    expect(r.exits).toBeLessThan(20_010);
    expect(v.cleanIdle()).toBe(1);
    // the info page, the random page, the stack page and a few more: not 20,000
    expect(v.poolStats.pagesRestored).toBeLessThan(16);
  });

  test("10,000 invocations mixing success, faults and timeouts leave fds unchanged and RSS bounded", () => {
    using fib = load("fib", { timeoutMs: 1000 });
    using faulty = native(X86.ud2);
    using spinner = native(X86.spin, { timeoutMs: 1 });
    using panicky = load("panicker");
    // warm up the allocator and caches, and give each virtine its pool and snapshot (one memfd
    // each, kept for the virtine's life), before the baseline
    for (let i = 0; i < 50; i++) fib.run([5]);
    for (const v of [faulty, spinner, panicky]) expect(() => v.run()).toThrow(WaspError);
    Bun.gc(true);
    const fds = openFds();
    const rss = rssKiB();
    const counts = { ok: 0, fault: 0, timeout: 0, panic: 0 };
    for (let i = 0; i < 10_000; i++) {
      const k = i % 20;
      try {
        if (k === 0) faulty.run();
        else if (k === 1) spinner.run();
        else if (k === 2) panicky.run();
        else if (fib.run([10]).value === 55n) counts.ok++;
      } catch (e) {
        const code = (e as WaspError).code;
        if (code === "WASP_GUEST_FAULT") counts.fault++;
        else if (code === "WASP_TIMEOUT") counts.timeout++;
        else if (code === "WASP_GUEST_PANIC") counts.panic++;
        else throw e;
      }
    }
    expect(counts).toEqual({ ok: 8500, fault: 500, timeout: 500, panic: 500 });
    Bun.gc(true);
    expect(openFds()).toBe(fds);
    // and closing them gives back everything they held
    for (const v of [fib, faulty, spinner, panicky]) v.close();
    expect(openFds()).toBe(fds - 4 - 2); // four snapshot memfds, fib's warm shell (VM + vCPU fds)
    expect(rssKiB() - rss).toBeLessThan(64 * 1024);
  }, slow(180_000));
});
