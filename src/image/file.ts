// Image files: what a file is, told from its first bytes, and its bytes read only once it is known
// to fit the guest memory it would get (a file too big is refused before it is read). Clear
// BadImageErrors for a missing file, a directory, anything not a regular file.
import { closeSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { basename } from "node:path";
import { Header } from "../abi/guest-abi.ts";
import { BadImageError } from "../errors.ts";
import { MIB, maxImageBytes, parseImage, type Image } from "./image.ts";

/**
 * Reads and parses an image file, with clear errors for a missing file, a directory, a file too big
 * to run in `memory` bytes of RAM (refused before it is read). `name` is the image's name in
 * messages (default: the file's name); `raw` takes any bytes as a raw image (parseImage).
 */
export function readImageFile(path: string, opts: { name?: string; memory?: number; raw?: boolean } = {}): Image {
  return parseImage(imageBytes(readHead(path), opts.memory), opts.name ?? basename(path), { raw: opts.raw });
}

/** A file's first bytes (a native image header's worth: enough to tell what it is), and its size. */
export interface FileHead {
  path: string;
  size: number;
  head: Uint8Array;
  /** a small file's bytes, read whole at once */
  whole: Uint8Array | undefined;
}

/** Files up to this size are read whole to look at their first bytes. */
const SMALL_FILE = 1024 * 1024;

/** Reads the first bytes of `path`, with the same clear errors as readImageFile. */
export function readHead(path: string): FileHead {
  const size = checkRegularFile(path);
  // A small file is read whole: the guests embedded in the standalone binary live in Bun's
  // in-memory filesystem, which readFileSync reads but open(2) cannot reach.
  if (size <= SMALL_FILE) {
    const whole = readWhole(path);
    return { path, size: whole.length, head: whole.subarray(0, Header.SIZE), whole };
  }
  let fd: number | undefined;
  try {
    fd = openSync(path, "r");
    const head = new Uint8Array(Header.SIZE);
    return { path, size, head: head.subarray(0, readSync(fd, head, 0, head.length, 0)), whole: undefined };
  } catch (e) {
    throw new BadImageError(`${path}: cannot read the image (${e instanceof Error ? e.message : String(e)})`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * The bytes of an image file whose head was read; a file bigger than what fits in `memory` bytes of
 * guest RAM (by default what its header asks for, else the default) is refused before it is read.
 */
export function imageBytes(file: FileHead, memory?: number): Uint8Array {
  const limit = maxImageBytes(file.head, memory);
  if (file.size > limit) {
    throw new BadImageError(`${file.path}: the image is ${file.size} bytes, more than the ${limit} bytes that fit in its guest memory (${memory === undefined ? "the default; raise it with --mem or the memory option" : `${memory / MIB} MiB`})`);
  }
  return file.whole ?? readWhole(file.path);
}

function readWhole(path: string): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new BadImageError(`${path}: cannot read the image (${e instanceof Error ? e.message : String(e)})`);
  }
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The size of a regular file, or a clear BadImageError for anything else. */
function checkRegularFile(path: string): number {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new BadImageError(`${path}: no such file`);
  }
  if (st.isDirectory()) throw new BadImageError(`${path}: is a directory, not an image`);
  if (!st.isFile()) throw new BadImageError(`${path}: not a regular file`);
  return st.size;
}
