// The hardened host process (src/host/): the seccomp filter's encoding and decisions, the tables
// checked against the kernel headers, and what a sandboxed process can and cannot do. seccomp and
// Landlock are irreversible, so they are only ever applied in child processes
// (tests/harden-child.ts, and dist/wasp itself), never in the test runner. Needs no /dev/kvm.
import { describe, expect, test, beforeAll, afterAll } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as libc from "../ffi/libc.ts";
import * as lock from "../ffi/landlock.ts";
import * as sc from "../ffi/seccomp.ts";
import { Errno } from "../ffi/errno.ts";
import { fieldSize, type Struct } from "../ffi/struct.ts";
import { KVMIO, REFUSED, SERVE_SYSCALLS, SYSCALLS, TTY_IOCTLS, buildFilter } from "../src/host/syscalls.ts";
import { RUNTIME } from "../src/host/landlock.ts";
import { filterProgram } from "../src/host/harden.ts";
import { EXIT_STATUS } from "../src/errors.ts";
import { slow, ROOT, WASP, cLayouts, guest, wasp } from "./support.ts";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "wasp-harden-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// ---- the filter, run on a classic BPF interpreter written for this test ----

const PID = 4242;
const program = buildFilter(PID).assemble();
const invokeProgram = program;

const serveProgram = buildFilter(PID, "serve").assemble();

/** Runs the filter (`wasp invoke`'s unless another is given) on one system call as the kernel would; returns the action (SECCOMP_RET_*|data). */
function decide(nr: number, args: number[] = [], arch = sc.AUDIT_ARCH_X86_64, program = invokeProgram): number {
  const data = new DataView(new ArrayBuffer(sc.seccomp_data.size));
  data.setUint32(sc.seccomp_data.off("nr"), nr, true);
  data.setUint32(sc.seccomp_data.off("arch"), arch, true);
  args.forEach((a, i) => data.setBigUint64(sc.argLow(i), BigInt(a), true));
  const code = new DataView(program.buffer);
  const count = program.length / sc.sock_filter.size;
  let a = 0;
  for (let pc = 0; pc < count;) {
    const at = pc * sc.sock_filter.size;
    const op = code.getUint16(at, true);
    const jt = code.getUint8(at + 2);
    const jf = code.getUint8(at + 3);
    const k = code.getUint32(at + 4, true);
    pc++;
    switch (op) {
      case sc.BPF.LD | sc.BPF.W | sc.BPF.ABS: a = data.getUint32(k, true); break;
      case sc.BPF.ALU | sc.BPF.AND | sc.BPF.K: a = (a & k) >>> 0; break;
      case sc.BPF.JMP | sc.BPF.JEQ | sc.BPF.K: pc += a === k ? jt : jf; break;
      case sc.BPF.JMP | sc.BPF.JGE | sc.BPF.K: pc += a >= k ? jt : jf; break;
      case sc.BPF.JMP | sc.BPF.JSET | sc.BPF.K: pc += (a & k) !== 0 ? jt : jf; break;
      case sc.BPF.RET | sc.BPF.K: return k;
      default: throw new Error(`unexpected BPF opcode 0x${op.toString(16)} at ${pc - 1}`);
    }
  }
  throw new Error("the filter ran off its end");
}

const ALLOW = sc.SECCOMP_RET_ALLOW;
const EPERM = sc.SECCOMP_RET_ERRNO | Errno.EPERM;
const KILL = sc.SECCOMP_RET_KILL_PROCESS;
const byName = new Map(SYSCALLS.map((r) => [r.name, r]));
function nr(name: string): number {
  const r = byName.get(name) ?? REFUSED.find((x) => x.name === name);
  if (!r) throw new Error(`${name} is in neither table`);
  return r.nr;
}

describe("the seccomp filter", () => {
  test("checks the ABI first: a 32-bit or x32 system call kills the process", () => {
    const first = new DataView(program.buffer);
    expect(first.getUint16(0, true)).toBe(sc.BPF.LD | sc.BPF.W | sc.BPF.ABS);
    expect(first.getUint32(4, true)).toBe(sc.seccomp_data.off("arch"));
    expect(first.getUint32(12, true)).toBe(sc.AUDIT_ARCH_X86_64);
    expect(decide(nr("read"), [], 0x40000003)).toBe(KILL); // AUDIT_ARCH_I386: int 0x80
    expect(decide(sc.X32_SYSCALL_BIT | nr("read"))).toBe(KILL);
  });

  test("every table entry is allowed (with the arguments its check wants), the rest is EPERM", () => {
    for (const r of SYSCALLS) {
      if (r.refuse !== undefined || r.only !== undefined) continue;
      expect({ name: r.name, action: decide(r.nr) }).toEqual({ name: r.name, action: ALLOW });
    }
    for (const r of REFUSED) expect({ name: r.name, action: decide(r.nr) }).toEqual({ name: r.name, action: EPERM });
    expect(decide(999)).toBe(EPERM);
  });

  test("clone makes threads only; clone3 is ENOSYS so that glibc falls back to clone", () => {
    const CLONE_THREAD = 0x10000;
    const threadFlags = 0x3d0f00; // glibc's pthread_create: VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID
    expect(threadFlags & CLONE_THREAD).not.toBe(0);
    expect(decide(nr("clone"), [threadFlags])).toBe(ALLOW);
    expect(decide(nr("clone"), [0x11])).toBe(EPERM); // fork(): SIGCHLD
    expect(decide(nr("clone"), [0x4111])).toBe(EPERM); // posix_spawn: CLONE_VM|CLONE_VFORK|SIGCHLD
    expect(decide(nr("clone3"))).toBe(sc.SECCOMP_RET_ERRNO | Errno.ENOSYS);
  });

  test("ioctl: every KVM request and the terminal queries Bun makes; not TIOCSTI", () => {
    for (const request of [0xae00, 0xae80, 0xc008ae05, 0x4040ae77, 0x8090ae81]) expect(decide(nr("ioctl"), [3, request])).toBe(ALLOW);
    for (const request of Object.values(TTY_IOCTLS)) expect(decide(nr("ioctl"), [1, request])).toBe(ALLOW);
    expect(decide(nr("ioctl"), [0, 0x5412])).toBe(EPERM); // TIOCSTI: typing into the user's terminal
    expect(decide(nr("ioctl"), [3, 0xaf00])).toBe(EPERM);
    expect(KVMIO).toBe(0xae);
  });

  test("signals and limits reach this process only; prctl cannot make it dumpable again", () => {
    expect(decide(nr("tgkill"), [PID, 7, 34])).toBe(ALLOW);
    expect(decide(nr("tgkill"), [PID + 1, 7, 34])).toBe(EPERM);
    expect(decide(nr("kill"), [PID, 0])).toBe(ALLOW);
    expect(decide(nr("kill"), [1, 9])).toBe(EPERM);
    expect(decide(nr("kill"), [0, 9])).toBe(EPERM); // the process group
    expect(decide(nr("prlimit64"), [0, 3])).toBe(ALLOW);
    expect(decide(nr("prlimit64"), [1, 4])).toBe(EPERM);
    for (const option of [15, 0x53564d41, libc.PR_GET_DUMPABLE, libc.PR_GET_NO_NEW_PRIVS]) expect(decide(nr("prctl"), [option])).toBe(ALLOW);
    expect(decide(nr("prctl"), [libc.PR_SET_DUMPABLE, 1])).toBe(EPERM);
    expect(decide(nr("prctl"), [0x59616d61])).toBe(EPERM); // PR_SET_PTRACER
  });

  test("sendto only without an address: the standard streams Bun's spawn makes sockets, never a new peer", () => {
    expect(decide(nr("sendto"), [1, 0x1000, 10, 0x40, 0, 0])).toBe(ALLOW);
    expect(decide(nr("sendto"), [1, 0x1000, 10, 0x40, 0x7fff0000, 16])).toBe(EPERM);
    expect(decide(nr("sendto"), [1, 0x1000, 10, 0x40, 0x7f0000000000, 16])).toBe(EPERM); // low half zero
    expect(decide(nr("sendmsg"))).toBe(EPERM); // it could pass file descriptors away
  });

  test("every system call wasp's own code makes on the KVM path is in the table", () => {
    // ffi/libc.ts's symbols and SYS numbers as the kernel sees them (glibc's open is openat, getrlimit is prlimit64)
    const used = ["ioctl", "mmap", "munmap", "madvise", "memfd_create", "ftruncate", "pwrite64", "lseek", "openat", "close",
      "fcntl", "prlimit64", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait", "timer_create", "timer_settime",
      "timer_delete", "tgkill", "gettid", "sched_yield", "getrandom", "fstat", "newfstatat", "statx", "pread64", "read", "write", "exit_group"];
    for (const name of used) expect({ name, listed: byName.has(name) }).toEqual({ name, listed: true });
    for (const [name, n] of Object.entries(libc.SYS)) {
      if (name === "seccomp" || name.startsWith("landlock_")) continue; // the sandbox's own, made before the filter
      expect({ name, nr: byName.get(name)?.nr }).toEqual({ name, nr: n });
    }
  });

  test("the table: unique names and numbers, each with a reason; the program fits and jumps only forward", () => {
    expect(new Set(SYSCALLS.map((r) => r.name)).size).toBe(SYSCALLS.length);
    expect(new Set([...SYSCALLS, ...REFUSED].map((r) => r.nr)).size).toBe(SYSCALLS.length + REFUSED.length);
    // serve's additions: new to the allowlist, each with a reason
    expect(new Set([...SYSCALLS, ...SERVE_SYSCALLS].map((r) => r.nr)).size).toBe(SYSCALLS.length + SERVE_SYSCALLS.length);
    for (const r of SERVE_SYSCALLS) expect(r.why.length).toBeGreaterThan(3);
    expect(serveProgram.length / sc.sock_filter.size).toBeLessThan(sc.BPF_MAXINSNS);
    for (const r of SYSCALLS) expect(r.why.length).toBeGreaterThan(3);
    const count = program.length / sc.sock_filter.size;
    expect(count).toBe(buildFilter(PID).length);
    expect(count).toBeLessThan(sc.BPF_MAXINSNS);
    expect(new DataView(program.buffer).getUint32(program.length - 4, true)).toBe(EPERM); // the default
  });

  test("the filter a sandbox installs, assembled at build time with its pid written in, is the assembler's for that pid, byte for byte", () => {
    for (const pid of [1, PID, process.pid, 0x7fffffff, 4194304]) {
      expect(Buffer.from(filterProgram(pid)).equals(Buffer.from(buildFilter(pid).assemble()))).toBe(true);
      expect(Buffer.from(filterProgram(pid, "serve")).equals(Buffer.from(buildFilter(pid, "serve").assemble()))).toBe(true);
    }
    // kill, tgkill and prlimit64 compare with the pid: three words take it
    const slots = buildFilter().slotOffsets("pid");
    expect(slots.length).toBe(3);
    expect(Buffer.from(buildFilter().assemble({ pid: PID })).equals(Buffer.from(program))).toBe(true);
  });

  test("the assembler refuses a slot without a value", () => {
    expect(() => new sc.BpfProgram().jeqSlot("pid", 0).ret(0).assemble()).toThrow(/slot pid has no value/);
    expect(() => buildFilter().assemble()).toThrow(/slot pid has no value/);
  });

  test("the assembler refuses a backward, long or dangling jump", () => {
    expect(() => new sc.BpfProgram().label("x").jeq(1, "x").ret(0).assemble()).toThrow(/not 0..255 forward/);
    expect(() => new sc.BpfProgram().jeq(1, "nowhere").ret(0).assemble()).toThrow(/never defined/);
    const far = new sc.BpfProgram().jeq(1, "end");
    for (let i = 0; i < 300; i++) far.ret(0);
    expect(() => far.label("end").ret(0).assemble()).toThrow(/not 0..255 forward/);
  });

  test("docs/security.md names every allowed system call", () => {
    const doc = readFileSync(join(ROOT, "docs", "security.md"), "utf8");
    const section = doc.slice(doc.indexOf("## The host process"));
    expect(section.length).toBeGreaterThan(100);
    for (const r of SYSCALLS) expect({ name: r.name, documented: section.includes(`\`${r.name}\``) }).toEqual({ name: r.name, documented: true });
    const serve = doc.slice(doc.indexOf("## The server"));
    expect(serve.length).toBeGreaterThan(100);
    for (const r of SERVE_SYSCALLS) expect({ name: r.name, documented: serve.includes(`\`${r.name}\``) }).toEqual({ name: r.name, documented: true });
  });

  test("wasp serve's filter: invoke's allowlist and the connections' and recordings' calls; still no socket, connect, bind, listen, program or process", () => {
    const serve = (nr: number, args: number[] = []) => decide(nr, args, sc.AUDIT_ARCH_X86_64, serveProgram);
    for (const r of [...SYSCALLS, ...SERVE_SYSCALLS]) {
      if (r.only !== undefined) continue;
      expect({ name: r.name, action: serve(r.nr) }).toEqual({ name: r.name, action: r.refuse === undefined ? ALLOW : sc.SECCOMP_RET_ERRNO | r.refuse });
    }
    // what invoke refuses and serve allows is exactly SERVE_SYSCALLS
    const added = new Set(SERVE_SYSCALLS.map((r) => r.nr));
    for (const r of REFUSED) expect({ name: r.name, action: serve(r.nr) }).toEqual({ name: r.name, action: added.has(r.nr) ? ALLOW : EPERM });
    for (const name of ["socket", "connect", "bind", "listen", "execve", "fork", "ptrace", "socketpair", "accept"]) expect({ name, action: serve(nr(name)) }).toEqual({ name, action: EPERM });
    // the argument checks hold as in invoke's
    expect(serve(nr("clone"), [0x11])).toBe(EPERM);
    expect(serve(nr("kill"), [1])).toBe(EPERM);
    expect(serve(nr("kill"), [PID])).toBe(ALLOW);
    expect(serve(nr("sendto"), [3, 0, 0, 0, 0x1000])).toBe(EPERM);
    expect(decide(59, [], sc.AUDIT_ARCH_X86_64 + 1, serveProgram)).toBe(KILL);
  });
});

// ---- the tables against the kernel headers (zig's copy, as tests/ffi-layout.test.ts does) ----

describe("seccomp, BPF and Landlock tables match the kernel headers", () => {
  const structs: Struct<string>[] = [sc.sock_filter, sc.sock_fprog, sc.seccomp_data, lock.landlock_ruleset_attr, lock.landlock_path_beneath_attr];
  const constants: [string, number][] = [
    ["SECCOMP_SET_MODE_FILTER", sc.SECCOMP_SET_MODE_FILTER], ["SECCOMP_FILTER_FLAG_TSYNC", sc.SECCOMP_FILTER_FLAG_TSYNC],
    ["SECCOMP_RET_KILL_PROCESS", sc.SECCOMP_RET_KILL_PROCESS], ["SECCOMP_RET_ERRNO", sc.SECCOMP_RET_ERRNO],
    ["SECCOMP_RET_ALLOW", sc.SECCOMP_RET_ALLOW], ["SECCOMP_RET_DATA", sc.SECCOMP_RET_DATA],
    ["AUDIT_ARCH_X86_64", sc.AUDIT_ARCH_X86_64], ["__X32_SYSCALL_BIT", sc.X32_SYSCALL_BIT], ["BPF_MAXINSNS", sc.BPF_MAXINSNS],
    ...Object.entries(sc.BPF).map(([k, v]): [string, number] => [`BPF_${k}`, v]),
    ["LANDLOCK_CREATE_RULESET_VERSION", lock.LANDLOCK_CREATE_RULESET_VERSION], ["LANDLOCK_RULE_PATH_BENEATH", lock.LANDLOCK_RULE_PATH_BENEATH],
    // IOCTL_DEV (ABI 5) is newer than zig's copy of the header
    ...Object.entries(lock.ACCESS_FS).filter(([k]) => k !== "IOCTL_DEV").map(([k, v]): [string, number] => [`LANDLOCK_ACCESS_FS_${k}`, v]),
    ["PR_GET_DUMPABLE", libc.PR_GET_DUMPABLE], ["PR_SET_DUMPABLE", libc.PR_SET_DUMPABLE], ["PR_GET_SECCOMP", libc.PR_GET_SECCOMP],
    ["PR_SET_NO_NEW_PRIVS", libc.PR_SET_NO_NEW_PRIVS], ["PR_GET_NO_NEW_PRIVS", libc.PR_GET_NO_NEW_PRIVS],
    ["PR_SET_NAME", 15], ["PR_GET_NAME", 16], ["PR_SET_PTRACER", 0x59616d61],
    ["RLIMIT_CORE", libc.RLIMIT_CORE], ["O_PATH", libc.O_PATH], ["CLONE_THREAD", 0x10000], ["KVMIO", KVMIO], ["TIOCSTI", 0x5412],
    ...Object.entries(TTY_IOCTLS).map(([k, v]): [string, number] => [k, v]),
    ...[...new Map([...SYSCALLS, ...REFUSED, ...SERVE_SYSCALLS].map((r) => [r.name, r.nr]))].map(([name, n]): [string, number] => [`SYS_${name}`, n]),
  ];
  const fromC = new Map<string, number>();

  beforeAll(() => {
    const headers = ["fcntl.h", "sched.h", "sys/ioctl.h", "sys/prctl.h", "sys/resource.h", "sys/syscall.h", "asm/unistd.h", "linux/audit.h", "linux/filter.h", "linux/seccomp.h", "linux/landlock.h", "linux/kvm.h"];
    for (const [k, v] of cLayouts(structs, constants.map(([key]) => [key, key] as const), headers)) fromC.set(k, v);
  }, slow(180_000));

  test("struct sizes and field offsets", () => {
    for (const s of structs) {
      expect({ key: `${s.c}.sizeof`, v: s.size }).toEqual({ key: `${s.c}.sizeof`, v: fromC.get(`${s.c}.sizeof`) ?? -1 });
      for (const name of s.fieldNames) {
        const [offset, type] = s.fields[name];
        expect({ field: `${s.c}.${name}`, offset }).toEqual({ field: `${s.c}.${name}`, offset: fromC.get(`${s.c}.${name}.offset`) ?? -1 });
        if (fieldSize(type) > 0) expect({ field: `${s.c}.${name}`, size: fieldSize(type) }).toEqual({ field: `${s.c}.${name}`, size: fromC.get(`${s.c}.${name}.size`) ?? -1 });
      }
    }
  });

  test("constants, ioctl requests and every system call number in the tables", () => {
    const mismatches = constants.filter(([key, value]) => fromC.get(key) !== value).map(([key, value]) => `${key}: wasp ${value}, header ${fromC.get(key)}`);
    expect(mismatches).toEqual([]);
  });
});

// ---- a sandboxed process (a child: the sandbox cannot be undone) ----

interface ChildReport {
  [key: string]: unknown;
}

function runChild(extra: string[] = []): { status: number; out: ChildReport; stderr: string; allowed: string; output: string } {
  const allowed = join(dir, "allowed.txt");
  const output = join(dir, `out-${extra.length}.txt`);
  const forbidden = join(dir, "forbidden.txt");
  writeFileSync(allowed, "hello");
  writeFileSync(forbidden, "secret");
  const p = Bun.spawnSync([process.execPath, join(ROOT, "tests", "harden-child.ts"), allowed, output, forbidden, ...extra], { cwd: ROOT });
  const stdout = p.stdout.toString();
  const stderr = p.stderr.toString();
  if (p.exitCode !== 0) throw new Error(`the child failed (${p.exitCode}):\n${stderr}`);
  return { status: p.exitCode, out: JSON.parse(stdout) as ChildReport, stderr, allowed, output };
}

describe("a sandboxed process", () => {
  test("is refused programs, sockets, other processes, files it was not given, and becoming dumpable", () => {
    const { out, stderr } = runChild();
    expect(stderr).toMatch(/^wasp: sandbox: seccomp allows \d+ system calls on every thread/);
    expect(out.socket).toBe("EPERM");
    expect(out.earlySocket).toBe("EPERM"); // a thread started before the filter (TSYNC)
    expect(out.execve).toEqual({ error: "EPERM" }); // Bun.spawnSync(["/bin/true"])
    expect(out.clone3).toBe("ENOSYS");
    expect(out.setDumpable).toBe("EPERM");
    expect(out.killParent).toBe("EPERM");
    expect(out.tiocsti).toBe("EPERM");
    // Landlock where the kernel has it (docs/security.md says what happens without)
    expect(out.forbiddenOpen).toEqual((out.landlockAbi as number) > 0 ? { error: "EACCES" } : { ok: true });
    // the hardening every wasp command gets
    expect(out.dumpable).toBe(0);
    expect(out.noNewPrivs).toBe(1);
    expect(out.seccompMode).toBe(2); // SECCOMP_MODE_FILTER
    expect(out.core).toEqual([0, 0]);
  });

  test("still reads and writes what it was given, maps memory, uses the device, starts workers and timers", () => {
    const { out, output } = runChild();
    expect(out.read).toEqual({ ok: "hello" });
    expect(out.bunFile).toBe("hello");
    expect(out.write).toEqual({ ok: true });
    expect(readFileSync(output, "utf8")).toBe("written");
    expect(out.mmap).toEqual({ ok: true });
    expect(out.memfd).toEqual({ ok: true });
    expect(out.deviceIoctl).toEqual({ ok: "ENOTTY" }); // reached /dev/zero's driver: no Landlock or seccomp refusal
    expect(out.kvmIoctlType).toBe("ENOTTY"); // a KVM request passes the filter (stdout is no KVM fd)
    expect(out.worker).toBe(42); // a thread made after the filter: clone3 refused, clone with CLONE_THREAD allowed
    expect(out.timer).toBe("fired");
  });

  test("without the sandbox the same child can do all of it (the refusals above are the sandbox's)", () => {
    const { out, stderr } = runChild(["--no-sandbox"]);
    expect(stderr).toBe("");
    expect(typeof out.socket).toBe("number");
    expect(typeof out.earlySocket).toBe("number");
    expect(out.execve).toEqual({ ok: 0 });
    expect(out.forbiddenOpen).toEqual({ ok: true });
    expect(out.setDumpable).toBe("allowed");
    expect(out.tiocsti).not.toBe("EPERM");
    expect(out.seccompMode).toBe(0);
  });
});

// ---- dist/wasp ----

describe("wasp's own process", () => {
  test("--help works, and invoke documents --no-sandbox", () => {
    const help = wasp(["--help"]);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/invoke/);
    expect(wasp(["invoke", "--help"]).stdout).toMatch(/--no-sandbox/);
  });

  test("wasp runs no bunfig.toml preload and reads no .env of the directory it is started in", () => {
    const cwd = mkdtempSync(join(dir, "cwd-"));
    const ran = join(cwd, "preload-ran");
    writeFileSync(join(cwd, "bunfig.toml"), 'preload = ["./preload.js"]\n');
    writeFileSync(join(cwd, "preload.js"), `require("node:fs").writeFileSync(${JSON.stringify(ran)}, "ran");\n`);
    writeFileSync(join(cwd, ".env"), "WASP_KVM_DEVICE=/nonexistent/from-dotenv\n");
    const p = Bun.spawnSync([WASP, "invoke", "--no-sandbox", guest("noop")], { cwd });
    expect(p.stderr.toString()).not.toMatch(/from-dotenv/);
    expect(existsSync(ran)).toBe(false);
  });

  test("a missing image gives the same one-line error with and without the sandbox", () => {
    const missing = join(dir, "nonexistent.bin");
    const on = wasp(["invoke", missing]);
    const off = wasp(["invoke", "--no-sandbox", missing]);
    expect(on).toEqual(off);
    expect(on.status).toBe(EXIT_STATUS.WASP_BAD_IMAGE);
    expect(on.stderr.trimEnd().split("\n")).toHaveLength(1);
  });

  test("a KVM device that cannot be opened gives the same error inside the sandbox", () => {
    const env = { WASP_KVM_DEVICE: "/nonexistent/kvm" };
    const on = wasp(["invoke", guest("noop")], env);
    expect(on).toEqual(wasp(["invoke", "--no-sandbox", guest("noop")], env));
    expect(on.status).toBe(EXIT_STATUS.WASP_KVM_UNAVAILABLE);
    expect(on.stderr).toMatch(/cannot open \/nonexistent\/kvm \(ENOENT\)/);
  });

  // With KVM these run the guest in the sandbox; without, both stop at the same KVM error.
  test("input from standard input and a file, output to a new file: the same with and without the sandbox", () => {
    const stdin = Buffer.from('{"values":[3,1,4]}');
    const run = (extra: string[]) => {
      const p = Bun.spawnSync([WASP, "invoke", guest("jsonstats"), "-i", "-", ...extra], { stdin });
      return { status: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
    };
    const fromStdin = run([]);
    expect(fromStdin).toEqual(run(["--no-sandbox"]));
    expect(fromStdin.status).not.toBe(EXIT_STATUS.WASP_BAD_ARGS); // the input was read

    const input = join(dir, "input.json");
    writeFileSync(input, stdin);
    const out = (name: string) => join(dir, name);
    const on = wasp(["invoke", guest("jsonstats"), "-i", input, "-o", out("on.json")]);
    const off = wasp(["invoke", "--no-sandbox", guest("jsonstats"), "-i", input, "-o", out("off.json")]);
    expect(on).toEqual(off);
    const written = (name: string) => (on.status === 0 ? readFileSync(out(name), "utf8") : "");
    expect(written("on.json")).toBe(written("off.json"));
  });

  test("wasp invoke runs filtered, with no_new_privs and no core dumps, from before it reads its input", async () => {
    // `--input -` makes it wait for standard input inside the sandbox: look at it from outside then
    const p = Bun.spawn([WASP, "invoke", guest("noop"), "--input", "-", "--verbose"], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    const reader = p.stderr.getReader();
    let said = "";
    while (!said.includes("\n")) {
      const chunk = await reader.read();
      if (chunk.done) break;
      said += new TextDecoder().decode(chunk.value);
    }
    expect(said).toMatch(/^wasp: sandbox: /);
    const status = readFileSync(`/proc/${p.pid}/status`, "utf8");
    const limits = readFileSync(`/proc/${p.pid}/limits`, "utf8");
    p.stdin.end();
    await p.exited;
    reader.releaseLock();
    expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
    expect(status).toMatch(/^Seccomp:\s+2$/m);
    expect(status).toMatch(/^Seccomp_filters:\s+1$/m);
    expect(limits).toMatch(/^Max core file size\s+0\s+0\s/m);
  });
});

// The runtime paths Landlock grants are Bun's, each with its reason (the rest are the command's).
test("Landlock's runtime grants each say why", () => {
  for (const g of RUNTIME) expect(g.why.length).toBeGreaterThan(3);
  expect(RUNTIME.some((g) => g.access === "write")).toBe(false);
});
