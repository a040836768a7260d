// Files the embedder grants a virtine, read-only: a Linux program opens them by path (open/read), a
// native guest reads them with the `file` hypercall. Host paths are read once, when the virtine is
// made, so every call (on every thread) sees the same bytes and no call touches the host's files.
import { readFileSync } from "node:fs";
import { BadArgsError } from "../errors.ts";
import { MIB } from "../image/image.ts";

/** The largest file a virtine may be granted. */
const MAX_FILE_BYTES = 64 * MIB;

/**
 * Granted files by their normalized absolute guest path: bytes as given, host paths read now. A
 * path that is not absolute or holds `.` or `..`, an unreadable host file, or one past 64 MiB is a
 * BadArgsError.
 */
export function grantedFiles(files: Readonly<Record<string, Uint8Array | string>>): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const [path, given] of Object.entries(files)) {
    if (!path.startsWith("/") || path.includes("\0") || path.split("/").some((p) => p === "." || p === "..")) throw new BadArgsError(`granted file ${JSON.stringify(path)} is not an absolute path without . or ..`);
    let data: Uint8Array;
    if (typeof given === "string") {
      try {
        data = new Uint8Array(readFileSync(given));
      } catch (e) {
        throw new BadArgsError(`granted file ${path}: cannot read ${given} (${e instanceof Error ? e.message : String(e)})`);
      }
    } else if (given instanceof Uint8Array) data = given;
    else throw new BadArgsError(`granted file ${path} is neither bytes nor a host path`);
    if (data.length > MAX_FILE_BYTES) throw new BadArgsError(`granted file ${path} is ${data.length} bytes, more than ${MAX_FILE_BYTES / MIB} MiB`);
    out.set(path.replace(/\/+/g, "/").replace(/(.)\/$/, "$1"), data);
  }
  return out;
}
