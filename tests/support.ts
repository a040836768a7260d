// Shared by the test files: paths to the built artifacts and the bundled toolchain.
import { existsSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dir, "..");
export const DIST = join(ROOT, "dist");

export function zigPath(): string {
  return join(ROOT, "node_modules", ".bin", "zig");
}

/** Path of a built example guest; fails loudly if `npm install` has not built it. */
export function guest(name: string): string {
  const p = join(DIST, "guests", `${name}.bin`);
  if (!existsSync(p)) throw new Error(`${p} is missing: run \`npm install\` (or \`npm run build\`) first`);
  return p;
}

/** Number of open file descriptors of this process. */
export function openFds(): number {
  return readdirSync("/proc/self/fd").length;
}
