// Landlock for a sandboxed wasp: after `restrictFiles`, the file system holds only what the command
// named (read: the image, snapshot and input files; write: the --output file; read-write: the KVM
// device) and what Bun reads while it runs (RUNTIME below, found by tracing dist/wasp with strace).
// Every other open fails with EACCES. Without Landlock in the kernel nothing is restricted, and the
// caller says so.
import { ptr } from "bun:ffi";
import { statSync } from "node:fs";
import { dirname } from "node:path";
import * as libc from "../../ffi/libc.ts";
import { Errno, errnoName } from "../../ffi/errno.ts";
import {
  ACCESS_FS, FILE_ACCESS, LANDLOCK_CREATE_RULESET_VERSION, LANDLOCK_RESTRICT_SELF_TSYNC, LANDLOCK_RULE_PATH_BENEATH,
  handledAccessFs, landlock_path_beneath_attr, landlock_ruleset_attr,
} from "../../ffi/landlock.ts";
import { SandboxError } from "../errors.ts";

/**
 * What a path is opened for: `write` may create the file (then its folder gets the rule); a
 * `folder`'s files are read, written, made and removed (not its subfolders' making or removing).
 */
export type Access = "read" | "write" | "device" | "folder";

export interface Grant {
  path: string;
  access: Access;
}

/** What Bun itself reads (or writes) after start-up, each with why. */
export const RUNTIME: readonly (Grant & { why: string })[] = [
  { path: "/proc/self", access: "read", why: "statm (the GC's memory use), maps, cgroup, fd; resolved to this process's own /proc/<pid>" },
  { path: "/sys/devices/system/cpu", access: "read", why: "the number of CPUs online" },
  { path: "/sys/fs/cgroup", access: "read", why: "the memory and CPU limits of the process's cgroup" },
  { path: "/etc/localtime", access: "read", why: "the time zone of Date" },
  { path: "/usr/share/zoneinfo", access: "read", why: "the time zone of Date" },
  { path: "/etc/ld.so.cache", access: "read", why: "glibc loading a library late (libgcc_s when a thread unwinds)" },
  { path: "/lib", access: "read", why: "shared libraries (public code, nothing secret)" },
  { path: "/lib64", access: "read", why: "shared libraries" },
  { path: "/usr/lib", access: "read", why: "shared libraries" },
  { path: "/dev/urandom", access: "read", why: "entropy where getrandom is not used" },
  { path: "/dev/null", access: "device", why: "Bun redirects to it" },
];

export interface LandlockResult {
  /** the kernel's Landlock ABI version; 0 if it has none */
  abi: number;
  /** why there is no Landlock (errno name), when abi is 0 */
  missing?: string;
  /** true if every thread was restricted (ABI 8); otherwise the calling thread and the threads it starts */
  allThreads: boolean;
}

/** The kernel's Landlock ABI version, or 0 with the errno that said no (ENOSYS: not built; EOPNOTSUPP: disabled at boot). */
export function landlockAbi(): { abi: number; missing?: string } {
  const r = libc.raw.syscall(libc.SYS.landlock_create_ruleset, 0, 0, LANDLOCK_CREATE_RULESET_VERSION, 0) as number;
  if (r > 0) return { abi: r };
  return { abi: 0, missing: errnoName(libc.errno()) };
}

/** Restricts the calling thread (every thread with ABI 8) to `grants` plus RUNTIME. Needs no_new_privs. */
export function restrictFiles(grants: readonly Grant[]): LandlockResult {
  const { abi, missing } = landlockAbi();
  if (abi === 0) return { abi, missing, allThreads: false };
  const handled = handledAccessFs(abi);
  const attr = new Uint8Array(landlock_ruleset_attr.size);
  landlock_ruleset_attr.write(new DataView(attr.buffer), 0, { handled_access_fs: handled });
  const ruleset = libc.raw.syscall(libc.SYS.landlock_create_ruleset, ptr(attr), attr.length, 0, 0) as number;
  if (ruleset < 0) throw failure("landlock_create_ruleset");
  try {
    for (const g of [...grants, ...RUNTIME]) addRule(ruleset, g, handled);
    const flags = abi >= 8 ? LANDLOCK_RESTRICT_SELF_TSYNC : 0;
    if ((libc.raw.syscall(libc.SYS.landlock_restrict_self, ruleset, flags, 0, 0) as number) < 0) throw failure("landlock_restrict_self");
  } finally {
    libc.raw.close(ruleset);
  }
  return { abi, allThreads: abi >= 8 };
}

/** Adds one rule; a path that does not exist (or cannot be reached) gets none: opening it fails anyway. */
function addRule(ruleset: number, grant: Grant, handled: number): void {
  const target = ruleTarget(grant);
  if (target === undefined) return;
  const rights = target.rights & handled & (target.isDir ? ~0 : FILE_ACCESS);
  const fd = libc.raw.open(libc.cstr(target.path), libc.O_PATH | libc.O_CLOEXEC, 0);
  if (fd < 0) return;
  try {
    const rule = new Uint8Array(landlock_path_beneath_attr.size);
    landlock_path_beneath_attr.write(new DataView(rule.buffer), 0, { allowed_access: rights, parent_fd: fd });
    if ((libc.raw.syscall(libc.SYS.landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, ptr(rule), 0) as number) < 0) {
      // EBADFD: not a file Landlock restricts (a pipe or socket named as /dev/stdin): it needs no rule
      if (libc.errno() === Errno.EBADFD) return;
      throw failure(`landlock_add_rule(${target.path})`);
    }
  } finally {
    libc.raw.close(fd);
  }
}

const READ = ACCESS_FS.READ_FILE;
const WRITE = ACCESS_FS.WRITE_FILE | ACCESS_FS.TRUNCATE;

/** The path a grant's rule goes on, with its rights; undefined if there is nothing to grant. */
function ruleTarget(grant: Grant): { path: string; isDir: boolean; rights: number } | undefined {
  const kind = fileKind(grant.path);
  switch (grant.access) {
    case "read":
      if (kind === undefined) return undefined;
      return { path: grant.path, isDir: kind === "dir", rights: kind === "dir" ? READ | ACCESS_FS.READ_DIR : READ };
    case "device":
      if (kind === undefined) return undefined;
      return { path: grant.path, isDir: kind === "dir", rights: READ | ACCESS_FS.WRITE_FILE | ACCESS_FS.IOCTL_DEV };
    case "folder":
      if (kind !== "dir") return undefined;
      return { path: grant.path, isDir: true, rights: READ | ACCESS_FS.READ_DIR | WRITE | ACCESS_FS.MAKE_REG | ACCESS_FS.REMOVE_FILE };
    case "write":
      // an existing file: that file only; a new one: its folder, which must let it be created
      if (kind === "file") return { path: grant.path, isDir: false, rights: WRITE };
      if (kind === "dir") return undefined; // writing fails with EISDIR anyway
      if (fileKind(dirname(grant.path)) !== "dir") return undefined;
      return { path: dirname(grant.path), isDir: true, rights: WRITE | ACCESS_FS.MAKE_REG };
  }
}

function fileKind(path: string): "file" | "dir" | undefined {
  try {
    return statSync(path).isDirectory() ? "dir" : "file";
  } catch {
    return undefined; // missing or unreachable: no rule, and opening it fails as it would have
  }
}

function failure(call: string): SandboxError {
  const e = libc.errno();
  return new SandboxError(`${call} failed: ${errnoName(e)} (${e})${e === Errno.EPERM ? " (no_new_privs is not set)" : ""}`);
}
