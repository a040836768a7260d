// What a sandboxed `wasp serve` may open (docs/security.md, "The server"): the files its
// configuration names — the configuration file (SIGHUP reads it again), each function's image, the
// files granted to it, a dynamically linked program's interpreter and libraries as its loader finds
// them — its recordings folder, /dev/kvm, and Bun's own (src/host/landlock.ts, RUNTIME). Under
// `bun run` also wasp's source tree, which its worker threads import. A reload may name only files
// the sandbox already allows: Landlock cannot be widened, so `reloadable` says which are new.
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { BadArgsError } from "../errors.ts";
import { HOST_FILES, resolveDynamic } from "../linux/dynamic.ts";
import { isElf, parseElf } from "../linux/elf.ts";
import { MAX_MEMORY } from "../image/image.ts";
import type { SandboxPaths } from "../host/harden.ts";
import type { FunctionConfig, ServeConfig } from "./config.ts";

/** The host files one function reads when it is loaded: its image, its granted files, a dynamic program's loader and libraries. */
export function functionFiles(f: FunctionConfig): string[] {
  const image = resolve(f.image);
  const files = [image, ...Object.values(f.files)];
  let bytes: Uint8Array | undefined;
  try {
    bytes = new Uint8Array(readFileSync(image));
  } catch {
    return files; // loading it fails anyway, with its own message
  }
  if (!isElf(bytes)) return files;
  try {
    const elf = parseElf(bytes, image.split("/").pop() ?? image, MAX_MEMORY);
    if (elf.interp === undefined) return files;
    // what the loader reads, exactly: the files it found (not the folders it searched)
    resolveDynamic(elf, image, {
      read(path) {
        const found = HOST_FILES.read(path);
        if (found) files.push(path);
        return found;
      },
    });
  } catch {
    // a program that does not load says why when it is loaded
  }
  return files;
}

/** Everything a server of `config` opens after it sandboxes itself. */
export function servePaths(config: ServeConfig, device: string): SandboxPaths & { read: string[] } {
  const read = [...(config.file ? [resolve(config.file)] : []), ...config.functions.flatMap(functionFiles)];
  const p = config.program;
  // a served program: its executable (with a dynamic one's loader and libraries), its files, its directories
  if (p) read.push(...functionFiles({ image: p.path, files: p.files } as FunctionConfig), ...Object.values(p.dirs).map((d) => resolve(d)));
  // under `bun run` the worker threads import wasp's modules from its source tree (and its
  // node_modules); the standalone binary carries them
  if (!Bun.main.startsWith("/$bunfs")) read.push(resolve(join(import.meta.dir, "../..")));
  return { read: [...new Set(read)], write: [], devices: [device], folders: config.recordFailures ? [config.recordFailures.dir] : [] };
}

/**
 * A reload's configuration, checked against what the sandbox allows: every file its functions read
 * must be one the server was started with (or inside a folder it was given).
 */
export function checkReloadable(next: ServeConfig, allowed: SandboxPaths & { read: string[] }): void {
  const ok = (path: string) => allowed.read.some((a) => path === a || path.startsWith(`${a}/`));
  const fresh = [...new Set(next.functions.flatMap(functionFiles))].filter((p) => !ok(p));
  if (fresh.length > 0) {
    throw new BadArgsError(`the sandbox lets this server read only the files its configuration named when it started, and ${fresh.slice(0, 3).join(", ")}${fresh.length > 3 ? ` (and ${fresh.length - 3} more)` : ""} ${fresh.length === 1 ? "is" : "are"} new: restart wasp serve to serve them (or run it with --no-sandbox)`);
  }
  const dir = next.recordFailures?.dir;
  if (dir !== undefined && !(allowed.folders ?? []).includes(dir)) {
    throw new BadArgsError(`the sandbox lets this server write recordings only in the folder it started with, and ${dir} is new: restart wasp serve`);
  }
}
