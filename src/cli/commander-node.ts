// The two Node built-ins commander imports for what `wasp invoke` never does — node:util for
// stripVTControlCharacters (help and colours), node:child_process for spawn (executable
// subcommands, which wasp has none of) — as commander sees them in the standalone binary:
// scripts/build-cli.ts points commander's two imports here. Each loads its module on its first call;
// importing them at start cost every command ~3 ms (node:util ~2.4, node:child_process ~0.4-1.3,
// docs/benchmarks.md, "Start and creation"). Under `bun run` commander imports them itself.
import type { spawn as Spawn } from "node:child_process";

export function stripVTControlCharacters(text: string): string {
  return (require("node:util") as typeof import("node:util")).stripVTControlCharacters(text);
}

/** node:child_process as commander uses it: its default export's `spawn`. */
const childProcess = {
  spawn: (...args: Parameters<typeof Spawn>): ReturnType<typeof Spawn> => (require("node:child_process") as typeof import("node:child_process")).spawn(...args),
};
export default childProcess;
