// Linux programs in `wasp bench` (issue 13): a static C program's cold call in a new VM, one system
// call round trip, and the baseline a virtine must beat — the same static executable started
// natively per call (fork/exec/wait) — beside a call of the same program from its snapshot, taken
// after libc's start-up (`wasp_snapshot()`), on a warm shell. The programs are compiled once with
// the bundled zig cc (cached).
import { compileC } from "../linux/c.ts";
import { LinuxProgram, type LinuxRunResult } from "../virtine/linux.ts";
import { linuxStartOf, runRecordedLinux } from "../virtine/record-linux.ts";
import { WARM_CALLS, summarize, timeSync, withPerCall } from "./stats.ts";
import type { Series } from "./suite.ts";

/** Reads a small input, writes a reply: the shape of a request handled by one call. */
const ECHO = `#include <stdio.h>
#include <ctype.h>
int main(void) { char buf[256]; size_t n = fread(buf, 1, sizeof buf, stdin); for (size_t i = 0; i < n; i++) buf[i] = (char)toupper((unsigned char)buf[i]); fwrite(buf, 1, n, stdout); return 0; }`;

/** ECHO with its snapshot after libc's start-up: later calls only read, convert and write. */
const ECHO_SNAPSHOT = `#include <stdio.h>
#include <ctype.h>
#include <wasp.h>
int main(void) { wasp_snapshot(); char buf[256]; size_t n = fread(buf, 1, sizeof buf, stdin); for (size_t i = 0; i < n; i++) buf[i] = (char)toupper((unsigned char)buf[i]); fwrite(buf, 1, n, stdout); return 0; }`;

/** argv[1] getpid system calls through the raw instruction, then exit. */
const GETPID = `#include <stdlib.h>
int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 0;
  for (long i = 0; i < n; i++) { long r; __asm__ volatile("syscall" : "=a"(r) : "a"(39L) : "rcx", "r11", "memory"); }
  return 0;
}`;

const SYSCALLS_PER_RUN = 200;
const INPUT = "hello, virtine\n";

async function program(source: string, name: string) {
  return compileC(source, { name, optimize: "fast" });
}

export const LINUX_SERIES: Series[] = [
  {
    // the same executable started natively per call: fork, exec, its start-up, wait
    name: "linux_spawn_native",
    defaultRuns: 100,
    async run(runs) {
      const { path } = await program(ECHO, "echo");
      const stdin = Buffer.from(INPUT);
      return summarize("linux_spawn_native", "us", timeSync(runs, 3, () => {
        const r = Bun.spawnSync([path], { stdin, env: {} });
        if (r.exitCode !== 0 || r.stdout.length !== INPUT.length) throw new Error("linux_spawn_native: the program failed");
      }));
    },
  },
  {
    // the same request served by a virtine: a warm shell of the program's pool, resumed from its
    // snapshot (taken by the first call, after libc's start-up), reset after the call off its path
    name: "linux_call_snapshot",
    defaultRuns: 1000,
    async run(runs) {
      const { elf } = await program(ECHO_SNAPSHOT, "echo-snapshot");
      using p = new LinuxProgram(elf);
      const call = () => {
        const r = p.run([], { input: INPUT });
        if (r.status !== 0 || r.stdout.length !== INPUT.length) throw new Error(`linux_call_snapshot: the program returned ${r.status}`);
        p.cleanIdle(); // the reset a pool does in idle time, outside the timed call
      };
      call();
      if (!p.snapshotTaken) throw new Error("linux_call_snapshot: the program took no snapshot");
      const times: number[] = [];
      // as a server's: the host's code compiled by the JIT (the first few hundred calls run slower)
      for (let i = 0; i < WARM_CALLS; i++) call();
      let last: LinuxRunResult | undefined;
      for (let i = 0; i < runs; i++) {
        const t = Bun.nanoseconds();
        const r = p.run([], { input: INPUT });
        times.push((Bun.nanoseconds() - t) / 1000);
        if (r.status !== 0 || r.stdout.length !== INPUT.length) throw new Error(`linux_call_snapshot: the program returned ${r.status}`);
        p.cleanIdle();
        last = r;
      }
      const result = summarize("linux_call_snapshot", "us", times);
      return last ? withPerCall(result, last) : result;
    },
  },
  {
    // a static C program that reads a small input and writes a reply, from a cold start: a new VM,
    // libc's start-up, the program, its exit
    name: "linux_boot",
    defaultRuns: 100,
    async run(runs) {
      const { elf } = await program(ECHO, "echo");
      using p = new LinuxProgram(elf, { oneShot: true });
      let last: LinuxRunResult | undefined;
      const result = summarize("linux_boot", "us", timeSync(runs, 3, () => {
        const r = p.run([], { input: INPUT });
        if (r.status !== 0 || r.stdout.length !== INPUT.length) throw new Error(`linux_boot: the program returned ${r.status}`);
        last = r;
      }));
      return last ? withPerCall(result, last) : result;
    },
  },
  {
    // one getpid round trip (SYSCALL, the CPL0 entry, the exit to the host, IRETQ): a run making
    // SYSCALLS_PER_RUN of them less a run making none, per call
    name: "linux_syscall",
    defaultRuns: 100,
    async run(runs) {
      const { elf } = await program(GETPID, "getpid");
      using p = new LinuxProgram(elf);
      const per: number[] = [];
      const time = (n: number) => {
        const t = Bun.nanoseconds();
        const r = p.run([String(n)]);
        const us = (Bun.nanoseconds() - t) / 1000;
        p.cleanIdle();
        if (r.status !== 0 || r.syscalls < n) throw new Error(`linux_syscall: ${r.syscalls} system calls for ${n}`);
        return us;
      };
      for (let i = 0; i < 3; i++) time(SYSCALLS_PER_RUN);
      for (let i = 0; i < runs; i++) per.push(Math.max(0, (time(SYSCALLS_PER_RUN) - time(0)) / SYSCALLS_PER_RUN));
      return summarize("linux_syscall", "us", per);
    },
  },
  {
    // a Linux program's call (the echo request, from its entry on a warm shell: libc's start-up
    // and ~15 system calls) and the same call recorded (issue 16): the recorder's hook on every
    // system call, the outcome's hashes and the recording's encoding inside the timing
    name: "linux_call_record",
    reports: ["linux_call", "linux_call_record"],
    defaultRuns: 200,
    async run(runs) {
      const { elf } = await program(ECHO, "echo");
      using p = new LinuxProgram(elf);
      const start = linuxStartOf(p);
      const check = (r: { status: number; stdout: Uint8Array }) => {
        if (r.status !== 0 || r.stdout.length !== INPUT.length) throw new Error(`linux_call_record: the program returned ${r.status}`);
      };
      const plain = () => {
        check(p.run({ input: INPUT }));
        p.cleanIdle();
      };
      const recorded = () => {
        const r = runRecordedLinux(p, start, { input: INPUT });
        if (r.recording.length === 0) throw new Error("linux_call_record: no recording");
        check(r);
        p.cleanIdle();
      };
      for (let i = 0; i < 5; i++) {
        plain();
        recorded();
      }
      // alternating batches: both see the same moments of a noisy machine (the reset stays in the timing of both)
      const a: number[] = [];
      const b: number[] = [];
      for (let i = 0; i < runs; i += 20) {
        a.push(...timeSync(Math.min(20, runs - i), 0, plain));
        b.push(...timeSync(Math.min(20, runs - i), 0, recorded));
      }
      return [summarize("linux_call", "us", a), summarize("linux_call_record", "us", b)];
    },
  },
];
