// Linux programs in `wasp bench` (issue 13): a static C program's cold call in a new VM, one system
// call round trip, and the baseline a virtine must beat — the same static executable started
// natively per call (fork/exec/wait). The programs are compiled once with the bundled zig cc
// (cached). `linux_call_snapshot` (a call from the program's snapshot) comes with the Linux image
// kind; until then the cold call is what there is.
import { compileC } from "../linux/c.ts";
import { LinuxProgram } from "../virtine/linux.ts";
import { summarize, timeSync } from "./stats.ts";
import type { Series } from "./suite.ts";

/** Reads a small input, writes a reply: the shape of a request handled by one call. */
const ECHO = `#include <stdio.h>
#include <ctype.h>
int main(void) { char buf[256]; size_t n = fread(buf, 1, sizeof buf, stdin); for (size_t i = 0; i < n; i++) buf[i] = (char)toupper((unsigned char)buf[i]); fwrite(buf, 1, n, stdout); return 0; }`;

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
    // a static C program that reads a small input and writes a reply, from a cold start: a new VM,
    // libc's start-up, the program, its exit
    name: "linux_boot",
    defaultRuns: 100,
    async run(runs) {
      const { elf } = await program(ECHO, "echo");
      const p = new LinuxProgram(elf);
      return summarize("linux_boot", "us", timeSync(runs, 3, () => {
        const r = p.run([], { input: INPUT });
        if (r.status !== 0 || r.stdout.length !== INPUT.length) throw new Error(`linux_boot: the program returned ${r.status}`);
      }));
    },
  },
  {
    // one getpid round trip (SYSCALL, the CPL0 entry, the exit to the host, IRETQ): a run making
    // SYSCALLS_PER_RUN of them less a run making none, per call
    name: "linux_syscall",
    defaultRuns: 100,
    async run(runs) {
      const { elf } = await program(GETPID, "getpid");
      const p = new LinuxProgram(elf);
      const per: number[] = [];
      const time = (n: number) => {
        const t = Bun.nanoseconds();
        const r = p.run([String(n)]);
        const us = (Bun.nanoseconds() - t) / 1000;
        if (r.status !== 0 || r.syscalls < n) throw new Error(`linux_syscall: ${r.syscalls} system calls for ${n}`);
        return us;
      };
      for (let i = 0; i < 3; i++) time(SYSCALLS_PER_RUN);
      for (let i = 0; i < runs; i++) per.push(Math.max(0, (time(SYSCALLS_PER_RUN) - time(0)) / SYSCALLS_PER_RUN));
      return summarize("linux_syscall", "us", per);
    },
  },
];
