// What an image argument names — a built-in guest, a snapshot file (a native image's, a Linux
// program's, a JavaScript virtine's), a static Linux executable, a JavaScript module, else an
// image file — told from its name and its first bytes. Its imports are light on purpose: every
// `wasp invoke` asks these first, and only then loads the engine the image needs (a native call
// never loads the Linux layer, its x86 decoder or the JavaScript engine's protocol).
import { existsSync } from "node:fs";
import { BadImageError } from "../errors.ts";
import { isElf } from "../linux/elf.ts";
import { readImageFile } from "../image/file.ts";
import type { Image } from "../image/image.ts";
import { isLinuxSnapshotFile, isSnapshotFile, linuxSnapshotImageName } from "../snapshot/file.ts";
import { JS_PROGRAM } from "../js/engine.ts";
import { PY_PROGRAM } from "../python/runtime.ts";
import { embeddedGuest, EMBEDDED_NAMES } from "./embedded.ts";
import { fileHead } from "./parse.ts";

/**
 * The built-in guest an image argument names, or undefined for a file. A bare name of a built-in
 * (`fib`) is the built-in even where a file of that name exists (`./fib` runs the file): a stray
 * file must not silently shadow it. Any other argument is a file; one that does not exist but
 * names a built-in with `.bin` (`fib.bin`) is the built-in.
 */
export function resolveImage(arg: string): string | undefined {
  const embedded = embeddedGuest(arg);
  if (!embedded) return undefined;
  if (!arg.includes("/") && !arg.endsWith(".bin")) return embedded;
  if (existsSync(arg)) return undefined;
  return embedded;
}

/** Resolves an image argument: a file path, else the name of an embedded example guest. */
export function loadImage(arg: string, opts: { memory?: number; raw?: boolean } = {}): Image {
  const builtIn = resolveImage(arg);
  // embedded files have hashed names in the binary: name the image as asked
  if (builtIn) return readImageFile(builtIn, { ...opts, name: `${arg.replace(/\.bin$/, "")}.bin` });
  if (!existsSync(arg)) throw new BadImageError(`${arg}: no such file (and not one of the built-in guests: ${EMBEDDED_NAMES.join(", ")})`);
  return readImageFile(arg, opts);
}

/** True if `path` is an existing file that starts with the snapshot file magic. */
export function isSnapshotPath(path: string): boolean {
  const head = fileHead(path, 8);
  return head !== undefined && isSnapshotFile(head);
}

/** True if `path` is a readable snapshot file of a Linux program. */
export function isLinuxSnapshotPath(path: string): boolean {
  const head = fileHead(path, 24);
  return head !== undefined && isLinuxSnapshotFile(head);
}

/** True if `path` is a readable file that starts with ELF's magic. */
export function isElfPath(path: string): boolean {
  const head = fileHead(path, 4);
  return head !== undefined && isElf(head);
}

/** A JavaScript module on the command line: a file named *.js or *.mjs. */
export function isJsPath(path: string): boolean {
  return /\.m?js$/i.test(path);
}

/** True if `path` is a snapshot file of a JavaScript virtine. */
export function isJsSnapshotPath(path: string): boolean {
  const head = fileHead(path, 96);
  return head !== undefined && linuxSnapshotImageName(head) === JS_PROGRAM;
}

/** A Python module on the command line: a file named *.py. */
export function isPyPath(path: string): boolean {
  return /\.py$/i.test(path);
}

/** True if `path` is a snapshot file of a Python virtine. */
export function isPySnapshotPath(path: string): boolean {
  const head = fileHead(path, 96);
  return head !== undefined && linuxSnapshotImageName(head) === PY_PROGRAM;
}
