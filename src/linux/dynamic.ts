// A dynamically linked program's other files, found on the host as its interpreter would find
// them, so that `wasp invoke /usr/bin/sqlite3` needs no flag: the interpreter it names
// (PT_INTERP), and every library it needs (DT_NEEDED, then theirs), each searched in the object's
// DT_RUNPATH (else DT_RPATH), then the system's directories in glibc's order on Debian. Each is
// read once, checked as an x86-64 shared object, and granted read-only at the guest path the
// interpreter will open it by (the first directory of its search that holds it); nothing else of
// the host's file system becomes visible. A library found nowhere is a BadImageError naming it and
// where it was looked for.
import { readFileSync, statSync } from "node:fs";
import { dirname, join, posix } from "node:path";
import { BadImageError } from "../errors.ts";
import { MAX_MEMORY } from "../image/image.ts";
import { parseElf, type ElfExecutable } from "./elf.ts";

/** The directories glibc's loader searches after an object's own paths (Debian's multiarch, then the classic ones). */
export const SYSTEM_LIBRARY_DIRS: readonly string[] = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib"];
/** Most libraries one program may bring (a bound on the work and memory a hostile set of files can ask for). */
const MAX_LIBRARIES = 256;
/** Most bytes of all its libraries and interpreter together. */
const MAX_TOTAL = MAX_MEMORY;

export interface DynamicFiles {
  /** the interpreter: its path (as the program names it), bytes and parsed object */
  interp: { path: string; bytes: Uint8Array; elf: ElfExecutable };
  /** each library at the guest path its interpreter opens it by, with its bytes, in the order found */
  libraries: Map<string, Uint8Array>;
}

/** How the host's files are read (replaceable in tests): a file's bytes, or undefined where there is none. */
export interface HostFiles {
  read(path: string): Uint8Array | undefined;
}

/** The host's own file system: a regular file's bytes (symbolic links followed), else undefined. */
export const HOST_FILES: HostFiles = {
  read(path) {
    try {
      if (!statSync(path).isFile()) return undefined;
      return new Uint8Array(readFileSync(path));
    } catch {
      return undefined;
    }
  },
};

/**
 * The interpreter and libraries of `elf` (which names an interpreter), found through `host`.
 * `hostPath` is where the program itself is on the host ($ORIGIN for its search paths; the
 * program runs as "/NAME" in the guest, so there $ORIGIN is "/").
 */
export function resolveDynamic(elf: ElfExecutable, hostPath: string | undefined, host: HostFiles = HOST_FILES): DynamicFiles {
  const bad = (why: string): never => {
    throw new BadImageError(`${elf.name}: ${why}`);
  };
  if (elf.interp === undefined) throw new RangeError(`${elf.name} names no interpreter`);
  const interpBytes = host.read(elf.interp) ?? bad(`its interpreter ${elf.interp} is not on this machine`);
  let interpElf: ElfExecutable;
  try {
    interpElf = parseElf(interpBytes, posix.basename(elf.interp), MAX_MEMORY);
  } catch (e) {
    return bad(`its interpreter ${elf.interp}: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!interpElf.pie || interpElf.interp !== undefined) bad(`its interpreter ${elf.interp} is not a position-independent object without an interpreter of its own`);
  let total = interpBytes.length;
  const libraries = new Map<string, Uint8Array>();
  // by name: each library once, the interpreter (which libc names too) never
  const seen = new Set<string>([posix.basename(elf.interp)]);
  const queue: { name: string; by: ElfExecutable; origin: { host: string | undefined; guest: string } }[] = [];
  const want = (o: ElfExecutable, origin: { host: string | undefined; guest: string }) => {
    for (const name of o.needed) if (!seen.has(name)) {
      seen.add(name);
      queue.push({ name, by: o, origin });
    }
  };
  want(elf, { host: hostPath === undefined ? undefined : dirname(hostPath), guest: "/" });
  while (queue.length > 0) {
    const { name, by, origin } = queue.shift()!;
    if (libraries.size >= MAX_LIBRARIES) bad(`it needs more than ${MAX_LIBRARIES} libraries`);
    const tried: string[] = [];
    let found: { guest: string; host: string; bytes: Uint8Array } | undefined;
    for (const dir of searchDirs(name, by, origin)) {
      const guest = name.includes("/") ? posix.normalize(name.startsWith("/") ? name : `/${name}`) : posix.join(dir.guest, name);
      const hostFile = name.includes("/") ? name : dir.host === undefined ? undefined : join(dir.host, name);
      if (hostFile === undefined) continue;
      tried.push(dir.shown);
      const bytes = host.read(hostFile);
      if (bytes) {
        found = { guest, host: hostFile, bytes };
        break;
      }
      if (name.includes("/")) break;
    }
    if (!found) return bad(`it needs the library ${name}${by === elf ? "" : ` (for ${by.name})`}, found in none of ${tried.join(", ") || "its search paths"}`);
    total += found.bytes.length;
    if (total > MAX_TOTAL) bad(`its libraries are more than ${MAX_TOTAL / (1024 * 1024)} MiB together`);
    let lib: ElfExecutable;
    try {
      lib = parseElf(found.bytes, name, MAX_MEMORY, { library: true });
    } catch (e) {
      return bad(`its library ${found.host}: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (!libraries.has(found.guest)) libraries.set(found.guest, found.bytes);
    want(lib, { host: dirname(found.host), guest: posix.dirname(found.guest) });
  }
  return { interp: { path: elf.interp, bytes: interpBytes, elf: interpElf }, libraries };
}

/** Where `name` (needed by `by`) is looked for: `by`'s own paths ($ORIGIN expanded on both sides), then the system's. */
function searchDirs(name: string, by: ElfExecutable, origin: { host: string | undefined; guest: string }): { guest: string; host: string | undefined; shown: string }[] {
  if (name.includes("/")) return [{ guest: "/", host: "/", shown: name }];
  const own = by.runpath.map((p) => {
    const expand = (o: string) => p.replaceAll("${ORIGIN}", o).replaceAll("$ORIGIN", o);
    const guest = posix.normalize(expand(origin.guest));
    return { guest: guest.startsWith("/") ? guest : `/${guest}`, host: origin.host === undefined && p.includes("ORIGIN") ? undefined : expand(origin.host ?? "/"), shown: p };
  });
  return [...own, ...SYSTEM_LIBRARY_DIRS.map((d) => ({ guest: d, host: d, shown: d }))];
}
