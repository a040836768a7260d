// Parsing of command-line values: integers for guest arguments, sizes for --mem, lists for --allow,
// the host files --file grants; and the check that a file an option names can be written.
import { resolve as resolvePath } from "node:path";
import { accessSync, closeSync, constants, openSync, readFileSync, readSync, statSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { BadArgsError, BadImageError } from "../errors.ts";

/** A guest argument: decimal (optionally negative) or 0x-hex, fitting in 64 bits. */
export function parseIntArg(text: string, position: number): bigint {
  if (!/^-?\d+$/.test(text) && !/^0x[0-9a-f]+$/i.test(text)) {
    throw new BadArgsError(`argument ${position} ("${text}") is not an integer`);
  }
  const v = BigInt(text);
  if (v < -(1n << 63n) || v >= 1n << 64n) throw new BadArgsError(`argument ${position} (${text}) does not fit in 64 bits`);
  return v;
}

const UNITS: Record<string, number> = { "": 1, k: 1024, kib: 1024, m: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gib: 1024 ** 3 };

/** A size: bytes, or with a unit (`64K`, `16M`, `16MiB`, `1G`). */
export function parseSize(text: string, what: string): number {
  const m = /^(\d+)\s*([a-z]*)$/i.exec(text.trim());
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new BadArgsError(`${what} "${text}" is not a size (e.g. 16M, 64MiB, 1G, 2097152)`);
  const bytes = Number(m[1]) * unit;
  if (!Number.isSafeInteger(bytes)) throw new BadArgsError(`${what} "${text}" is too large`);
  return bytes;
}

/** A non-negative integer option. */
export function parseCount(text: string, what: string): number {
  if (!/^\d+$/.test(text)) throw new BadArgsError(`${what} "${text}" is not a non-negative integer`);
  return Number(text);
}

export function parseList(text: string): string[] {
  return text.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
}

/** Fails at once, before a long run, if `path` (given to `option`) cannot be created. */
export function checkWritable(path: string, option: string): void {
  try {
    accessSync(dirname(path), constants.W_OK);
  } catch {
    throw new BadArgsError(`${option} ${path}: its folder ${dirname(path)} does not exist or is not writable`);
  }
}

/** The first `n` bytes of the file at `path`, or undefined when it is not a readable file that long. */
export function fileHead(path: string, n: number): Uint8Array | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    const head = new Uint8Array(n);
    return readSync(fd, head, 0, n, 0) === n ? head : undefined;
  } catch {
    return undefined; // not readable as a file: the command's loader says why
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Writes a file the command was asked to write (`option` names the flag in the error). */
export function writeOutput(path: string, data: Uint8Array, option = "--output"): void {
  try {
    writeFileSync(path, data);
  } catch (e) {
    throw new BadArgsError(`${option} ${path}: cannot write it (${e instanceof Error ? e.message : String(e)})`);
  }
}

/** --file GUEST=HOST pairs: the guest path, and the host file read now (before the sandbox closes the rest). */
export function parseFiles(specs: readonly string[]): { files: Record<string, Uint8Array>; hostPaths: string[] } {
  const files: Record<string, Uint8Array> = {};
  const hostPaths: string[] = [];
  for (const spec of specs) {
    const eq = spec.indexOf("=");
    if (eq <= 0 || eq === spec.length - 1) throw new BadArgsError(`--file ${spec}: not GUEST=HOST (e.g. --file /etc/config=./config)`);
    const guestPath = spec.slice(0, eq);
    const hostPath = spec.slice(eq + 1);
    if (!guestPath.startsWith("/")) throw new BadArgsError(`--file ${spec}: the guest path ${guestPath} is not absolute`);
    try {
      if (statSync(hostPath).isDirectory()) throw new Error("it is a directory");
      files[guestPath] = new Uint8Array(readFileSync(hostPath));
    } catch (e) {
      throw new BadArgsError(`--file ${spec}: cannot read ${hostPath} (${e instanceof Error ? e.message : String(e)})`);
    }
    hostPaths.push(hostPath);
  }
  return { files, hostPaths };
}

/**
 * --dir HOST[=GUEST] values: host directories a Linux program may read, at GUEST (HOST's own
 * absolute path when left out). Each must be a directory now; its files are read when opened.
 */
export function parseDirs(specs: readonly string[]): { dirs: Record<string, string>; hostPaths: string[] } {
  const dirs: Record<string, string> = {};
  const hostPaths: string[] = [];
  for (const spec of specs) {
    const eq = spec.indexOf("=");
    const hostPath = eq < 0 ? spec : spec.slice(0, eq);
    if (hostPath === "" || eq === spec.length - 1) throw new BadArgsError(`--dir ${spec}: not HOST or HOST=GUEST (e.g. --dir ./data=/data)`);
    const guestPath = eq < 0 ? resolvePath(hostPath) : spec.slice(eq + 1);
    if (!guestPath.startsWith("/")) throw new BadArgsError(`--dir ${spec}: the guest path ${guestPath} is not absolute`);
    let ok = false;
    try {
      ok = statSync(hostPath).isDirectory();
    } catch (e) {
      throw new BadArgsError(`--dir ${spec}: cannot read ${hostPath} (${e instanceof Error ? e.message : String(e)})`);
    }
    if (!ok) throw new BadArgsError(`--dir ${spec}: ${hostPath} is not a directory (grant a file with --file GUEST=HOST)`);
    if (dirs[guestPath] !== undefined) throw new BadArgsError(`--dir ${spec}: ${guestPath} is granted twice`);
    dirs[guestPath] = hostPath;
    hostPaths.push(hostPath);
  }
  return { dirs, hostPaths };
}

/** A module or JSON file a handler command names, whole (`-` is standard input): a BadImageError for the module (`what` ""), a BadArgsError for an option's file. */
export function readText(path: string, what: string): Uint8Array {
  try {
    if (path !== "-" && statSync(path).isDirectory()) throw new Error("it is a directory");
    return new Uint8Array(readFileSync(path === "-" ? 0 : path));
  } catch (e) {
    const why = `${what === "" ? "" : `${what} `}${path}: cannot read it (${e instanceof Error ? e.message : String(e)})`;
    throw what === "" ? new BadImageError(why) : new BadArgsError(why);
  }
}

/** A JSON file's value (the user's own file, parsed here so that a mistake is said plainly). */
export function readJson(path: string, what: string): unknown {
  const text = new TextDecoder().decode(readText(path, what));
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new BadArgsError(`${what} ${path} is not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
}

/** Positional arguments: each a JSON value, or a string when it does not parse as one. */
export function jsonArgs(raw: readonly string[]): unknown[] {
  return raw.map((a) => {
    try {
      return JSON.parse(a);
    } catch {
      return a;
    }
  });
}
