// Host directories granted to a Linux program, read-only (`--dir HOST[=GUEST]`, `dirs`): unlike a
// granted file, which is placed in guest memory whole when the virtine is made, a directory's
// files are read from the host when the program first opens them — a Python standard library is
// thousands of files of which a program opens a few dozen. A path under a grant is resolved on the
// host and must stay inside the grant's real directory after every symbolic link is followed;
// only regular files and directories are served (a FIFO or a device would block or reach the
// host's hardware); everything else is ENOENT, never the host's file. A file's bytes are read
// once, at its first open, and kept for the program's life (every later call sees the same bytes,
// and its offset within a snapshot stays true). The table of what was opened is the program's:
// the fds in the process block name its entries by index (after the placed files), so a
// snapshot's open fds stay valid, and a snapshot file lists its paths with their SHA-256.
import { closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readSync, realpathSync, statSync, type Stats } from "node:fs";
import { isAbsolute, resolve as resolveHost } from "node:path";
import { BadArgsError, BadSnapshotError } from "../errors.ts";
import { sha256Hex } from "./process-file.ts";

/** A directory granted: its path in the guest (normalized, absolute) and on the host (real, absolute). */
export interface DirGrant {
  guest: string;
  host: string;
}

/** What a path under a grant is, as stat(2) shows it. */
export interface DirStat {
  kind: "file" | "dir";
  size: number;
  /** st_mtime, ns since the epoch (Python checks its cached bytecode against it) */
  mtimeNs: bigint;
  /** the executable bits the host's file has (0o555 or 0o444 for a file) */
  mode: number;
  ino: bigint;
}

/** An entry of the table of opened files and directories. */
export interface OpenedEntry {
  path: string;
  stat: DirStat;
  /** a file's bytes */
  data?: Uint8Array;
  /** a directory's linux_dirent64 records, "." and ".." first */
  listing?: Uint8Array;
}

/** The largest file a granted directory serves (a loader maps libraries whole). */
export const MAX_DIR_FILE = 256 << 20;
/** What one program may read from its granted directories over its life. */
export const MAX_DIR_BYTES = 1 << 30;
/** Entries one directory lists. */
const MAX_LISTING = 65536;
/** Files and directories one program may open (distinct paths). */
export const MAX_OPENED = 65536;

/** `--dir` values and `dirs` options made grants: guest path → host directory (resolved, real). */
export function grantedDirs(dirs: Readonly<Record<string, string>>): DirGrant[] {
  const out: DirGrant[] = [];
  for (const [guest, host] of Object.entries(dirs)) {
    if (typeof host !== "string") throw new BadArgsError(`granted directory ${guest}: the host path is not a string`);
    if (!guest.startsWith("/") || guest.includes("\0") || guest.split("/").some((p) => p === "." || p === "..")) throw new BadArgsError(`granted directory ${JSON.stringify(guest)} is not an absolute guest path without . or ..`);
    let real: string;
    try {
      real = realpathSync(isAbsolute(host) ? host : resolveHost(host));
      if (!statSync(real).isDirectory()) throw new Error("not a directory");
    } catch (e) {
      throw new BadArgsError(`granted directory ${guest}: ${host} is not a directory wasp can read (${e instanceof Error ? e.message.replace(/^[A-Z]+: /, "") : String(e)})`);
    }
    const g = normalizeGuest(guest);
    if (out.some((d) => d.guest === g)) throw new BadArgsError(`granted directory ${g} is granted twice`);
    out.push({ guest: g, host: real });
  }
  return out;
}

/** The inode of a file under a granted directory: its guest path's FNV-1a hash above 2^33 (placed files' are 16 + i, directories' above 2^32). */
export function servedIno(path: string): bigint {
  return (2n << 32n) | fnv(path);
}

/** A directory's inode, as the layer gives it (its path's FNV-1a hash above 2^32). */
export function dirIno(path: string): bigint {
  return (1n << 32n) | fnv(path);
}

function fnv(path: string): bigint {
  let h = 0x811c9dc5;
  for (const c of new TextEncoder().encode(path)) h = Math.imul(h ^ c, 0x01000193) >>> 0;
  return BigInt(h);
}

/**
 * The granted directories of one program and the table of what it opened in them. `saved` seeds
 * the table from a snapshot file (the paths its fds may name, each read again at first use and
 * checked against the SHA-256 the file gives).
 */
export class GrantedDirs {
  readonly grants: readonly DirGrant[];
  readonly #table: (OpenedEntry | { path: string; sha256: string })[] = [];
  readonly #byPath = new Map<string, number>();
  #bytes = 0;

  constructor(grants: readonly DirGrant[], saved: readonly { path: string; sha256: string }[] = []) {
    // the longest guest prefix first: /usr/lib/python3 inside /usr is the narrower grant's
    this.grants = [...grants].sort((a, b) => b.guest.length - a.guest.length);
    for (const s of saved) {
      this.#byPath.set(s.path, this.#table.length);
      this.#table.push(s);
    }
  }

  get size(): number {
    return this.#table.length;
  }

  /** The first `count` opened paths (all by default) in table order with their contents' SHA-256 (a directory's is its listing's): what a snapshot file keeps. */
  saved(count = this.#table.length): { path: string; sha256: string }[] {
    return this.#table.slice(0, count).map((e) => ("sha256" in e ? e : { path: e.path, sha256: sha256Hex(e.data ?? e.listing ?? new Uint8Array(0)) }));
  }

  /** The bytes of the files read so far (not directories, not saved entries not read yet). */
  *files(): Iterable<Uint8Array> {
    for (const e of this.#table) if ("stat" in e && e.data !== undefined) yield e.data;
  }

  /** The host path a guest path stands for, followed through its links and still inside its grant, or undefined. */
  hostPath(path: string): string | undefined {
    for (const g of this.grants) {
      if (path !== g.guest && !path.startsWith(g.guest === "/" ? "/" : `${g.guest}/`)) continue;
      const rest = path.slice(g.guest.length).replace(/^\//, "");
      let real: string;
      try {
        real = realpathSync(rest === "" ? g.host : `${g.host}/${rest}`);
      } catch {
        return undefined;
      }
      return real === g.host || real.startsWith(g.host === "/" ? "/" : `${g.host}/`) ? real : undefined;
    }
    return undefined;
  }

  /** Whether `path` is a granted directory or lies under one (it is the host's to answer, not the placed files'). */
  covers(path: string): boolean {
    return this.grants.some((g) => path === g.guest || path.startsWith(g.guest === "/" ? "/" : `${g.guest}/`));
  }

  /** stat(2) of a guest path under a grant: a regular file or a directory, else undefined (ENOENT). */
  stat(path: string): DirStat | undefined {
    const at = this.#byPath.get(path);
    const known = at === undefined ? undefined : this.#table[at];
    if (known && "stat" in known) return known.stat;
    const host = this.hostPath(path);
    if (host === undefined) return undefined;
    let st: Stats;
    try {
      st = statSync(host);
    } catch {
      return undefined;
    }
    return statOf(path, st);
  }

  /** Opens a guest path under a grant: its table index, or a Linux errno (ENOENT, EFBIG, ENOMEM, ENFILE). */
  open(path: string): number | { errno: "ENOENT" | "EFBIG" | "ENOMEM" | "ENFILE" } {
    const at = this.#byPath.get(path);
    if (at !== undefined) {
      this.entry(at);
      return at;
    }
    if (this.#table.length >= MAX_OPENED) return { errno: "ENFILE" };
    const read = this.#read(path);
    if ("errno" in read) return read;
    this.#byPath.set(path, this.#table.length);
    this.#table.push(read);
    return this.#table.length - 1;
  }

  /** Entry `index` of the table (a saved one read now and checked), or undefined. */
  entry(index: number): OpenedEntry | undefined {
    const e = this.#table[index];
    if (e === undefined || "stat" in e) return e;
    const read = this.#read(e.path);
    const got = "errno" in read ? undefined : sha256Hex(read.data ?? read.listing ?? new Uint8Array(0));
    if (got !== e.sha256) throw new BadSnapshotError(`the snapshot's program had ${e.path} open, and the granted directory no longer holds the same ${"errno" in read ? "file (it is gone)" : "bytes"}`);
    this.#table[index] = read as OpenedEntry;
    return read as OpenedEntry;
  }

  #read(path: string): OpenedEntry | { errno: "ENOENT" | "EFBIG" | "ENOMEM" } {
    const host = this.hostPath(path);
    if (host === undefined) return { errno: "ENOENT" };
    let fd: number;
    try {
      // not following a link swapped in after hostPath resolved it, never blocking on a FIFO
      fd = openSync(host, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch {
      return { errno: "ENOENT" };
    }
    try {
      const st = fstatSync(fd);
      const stat = statOf(path, st);
      if (stat === undefined) return { errno: "ENOENT" };
      if (stat.kind === "dir") {
        closeSync(fd);
        fd = -1;
        return { path, stat, listing: this.#listing(path, host) };
      }
      if (st.size > MAX_DIR_FILE) return { errno: "EFBIG" };
      if (this.#bytes + st.size > MAX_DIR_BYTES) return { errno: "ENOMEM" };
      const data = new Uint8Array(st.size);
      let got = 0;
      while (got < data.length) {
        const n = readSync(fd, data, got, data.length - got, got);
        if (n === 0) break;
        got += n;
      }
      this.#bytes += got;
      return { path, stat: { ...stat, size: got }, data: got === data.length ? data : data.slice(0, got) };
    } catch {
      return { errno: "ENOENT" };
    } finally {
      if (fd >= 0) closeSync(fd);
    }
  }

  /** A directory's linux_dirent64 records: ".", "..", then the regular files and directories inside the grant. */
  #listing(path: string, host: string): Uint8Array {
    const records: Uint8Array[] = [];
    const enc = new TextEncoder();
    const parent = path === "/" ? "/" : path.slice(0, path.lastIndexOf("/")) || "/";
    const add = (name: string, ino: bigint, type: number) => {
      const n = enc.encode(name);
      const len = (19 + n.length + 1 + 7) & ~7;
      const r = new Uint8Array(len);
      const dv = new DataView(r.buffer);
      dv.setBigUint64(0, ino, true); // d_ino
      dv.setBigUint64(8, 0n, true); // d_off, set below
      dv.setUint16(16, len, true); // d_reclen
      r[18] = type; // d_type
      r.set(n, 19);
      records.push(r);
    };
    add(".", dirIno(path), 4);
    add("..", dirIno(parent), 4);
    let names: string[] = [];
    try {
      names = readdirSync(host).sort();
    } catch {
      names = [];
    }
    for (const name of names.slice(0, MAX_LISTING)) {
      const child = path === "/" ? `/${name}` : `${path}/${name}`;
      let st: Stats;
      try {
        const l = lstatSync(`${host}/${name}`);
        // a link is listed as what it names when that stays inside the grant
        if (l.isSymbolicLink() && this.hostPath(child) === undefined) continue;
        st = statSync(`${host}/${name}`);
      } catch {
        continue;
      }
      const s = statOf(child, st);
      if (s) add(name, s.ino, s.kind === "dir" ? 4 : 8);
    }
    const out = new Uint8Array(records.reduce((n, r) => n + r.length, 0));
    let off = 0;
    for (const r of records) {
      out.set(r, off);
      off += r.length;
      new DataView(out.buffer).setBigUint64(off - r.length + 8, BigInt(off), true); // d_off: the next record's
    }
    return out;
  }
}

function statOf(path: string, st: Stats): DirStat | undefined {
  const mtimeNs = BigInt(Math.trunc(st.mtimeMs)) * 1_000_000n;
  if (st.isDirectory()) return { kind: "dir", size: 4096, mtimeNs, mode: 0o040555, ino: dirIno(path) };
  if (!st.isFile()) return undefined;
  return { kind: "file", size: st.size, mtimeNs, mode: 0o100000 | ((st.mode & 0o111) !== 0 ? 0o555 : 0o444), ino: servedIno(path) };
}

/** "/a/./b/../c" -> "/a/c"; never above "/"; no trailing slash. */
export function normalizeGuest(path: string): string {
  const parts: string[] = [];
  for (const p of path.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") parts.pop();
    else parts.push(p);
  }
  return `/${parts.join("/")}`;
}
