// Run by tests/harden.test.ts in a child process (seccomp and Landlock cannot be undone, so never in
// the test runner itself): sandboxes itself as `wasp invoke` does, then tries what the sandbox must
// refuse and what it must still allow, and prints one JSON object with what happened.
//   bun tests/harden-child.ts ALLOWED_FILE OUTPUT_FILE FORBIDDEN_FILE [--no-sandbox]
import { closeSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { ptr } from "bun:ffi";
import * as libc from "../ffi/libc.ts";
import { errnoName } from "../ffi/errno.ts";
import { describeSandbox, enterSandbox } from "../src/host/harden.ts";

const [allowed, output, forbidden] = process.argv.slice(2);
const sandbox = !process.argv.includes("--no-sandbox");
const out: Record<string, unknown> = {};

/** The outcome of a raw system call: its result, or the errno's name. */
function sys(nr: number, a = 0, b = 0, c = 0, d = 0): number | string {
  const r = libc.raw.syscall(nr, a, b, c, d) as number;
  return r === -1 ? errnoName(libc.errno()) : r;
}

function attempt(f: () => unknown): unknown {
  try {
    return { ok: f() };
  } catch (e) {
    return { error: (e as { code?: string }).code ?? String(e) };
  }
}

// A thread that exists before the filter: TSYNC must filter it too.
const early = new Worker(new URL("./harden-worker.ts", import.meta.url).href);
await new Promise<void>((resolve) => {
  early.onmessage = () => resolve();
});

if (sandbox) {
  const report = enterSandbox({ read: [allowed], write: [output], devices: ["/dev/zero"] });
  process.stderr.write(`wasp: sandbox: ${describeSandbox(report)}\n`);
  out.landlockAbi = report.landlock.abi;
  out.syscalls = report.syscalls;
} else out.landlockAbi = 0;

// refused
out.socket = sys(41, 2, 1, 0); // socket(AF_INET, SOCK_STREAM, 0)
out.clone3 = sys(435, 0, 0);
out.execve = attempt(() => Bun.spawnSync(["/bin/true"]).exitCode);
out.forbiddenOpen = attempt(() => {
  closeSync(openSync(forbidden, "r"));
  return true;
});
out.setDumpable = libc.raw.prctl(libc.PR_SET_DUMPABLE, 1, 0, 0, 0) === -1 ? errnoName(libc.errno()) : "allowed";
out.killParent = sys(62, process.ppid, 0); // signal 0: only asks whether it could
out.earlySocket = await new Promise((resolve) => {
  early.onmessage = (e) => resolve(e.data);
  early.postMessage("socket");
});
early.terminate();

// the hardening's state
out.dumpable = libc.prctl(libc.PR_GET_DUMPABLE);
out.noNewPrivs = libc.prctl(libc.PR_GET_NO_NEW_PRIVS);
out.seccompMode = libc.prctl(libc.PR_GET_SECCOMP);
const core = libc.getrlimit(libc.RLIMIT_CORE);
out.core = [Number(core.soft), Number(core.hard)];

// still allowed
out.read = attempt(() => readFileSync(allowed, "utf8"));
out.bunFile = await Bun.file(allowed).text();
out.write = attempt(() => {
  writeFileSync(output, "written");
  return true;
});
out.mmap = attempt(() => {
  const p = libc.mmap(1 << 20, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS);
  libc.madvise(p, 1 << 20, libc.MADV_DONTNEED);
  libc.munmap(p, 1 << 20);
  return true;
});
out.memfd = attempt(() => {
  const fd = libc.memfdCreate("harden");
  libc.ftruncate(fd, 4096);
  libc.pwrite(fd, new Uint8Array([1, 2, 3]), 0);
  libc.close(fd);
  return true;
});
// the device: opened read-write, and an ioctl reaches its driver (ENOTTY: /dev/zero is no terminal)
out.deviceIoctl = attempt(() => {
  const fd = libc.open("/dev/zero", libc.O_RDWR);
  const r = libc.raw.ioctl(fd, 0x5401, ptr(new Uint8Array(64))) as number; // TCGETS
  const e = r < 0 ? errnoName(libc.errno()) : r;
  libc.close(fd);
  return e;
});
out.kvmIoctlType = sys(16, 1, 0xae00, 0); // ioctl(stdout, KVM_GET_API_VERSION): allowed, stdout is not KVM
out.tiocsti = sys(16, 0, 0x5412, 0); // TIOCSTI: refused
out.worker = await new Promise((resolve) => {
  const w = new Worker(URL.createObjectURL(new Blob(["self.onmessage = (e) => postMessage(e.data * 2);"])));
  w.onmessage = (e) => {
    resolve(e.data);
    w.terminate();
  };
  w.postMessage(21);
});
out.timer = await new Promise((resolve) => setTimeout(() => resolve("fired"), 1));
process.stdout.write(`${JSON.stringify(out)}\n`);
