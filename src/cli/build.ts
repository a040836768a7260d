// `wasp build GUEST.zig [-o GUEST.bin]`: a guest built anywhere, with the zig and the guest SDK that
// came with wasp — the same compile and cache as `Virtine.fromZig` (src/image/zig.ts).
import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { BadArgsError } from "../errors.ts";
import { compileZig, type ZigOptimize } from "../image/zig.ts";
import { checkWritable } from "./parse.ts";
import { out } from "./output.ts";

export interface BuildFlags {
  output?: string;
  name?: string;
  optimize?: string;
  zig?: string;
}

const OPTIMIZE: readonly ZigOptimize[] = ["safe", "fast", "small"];

export async function buildCommand(sourcePath: string, flags: BuildFlags): Promise<void> {
  if (!sourcePath.endsWith(".zig")) throw new BadArgsError(`${sourcePath}: a guest's source is a .zig file`);
  let source: string;
  try {
    source = readFileSync(sourcePath, "utf8");
  } catch (e) {
    throw new BadArgsError(`${sourcePath}: cannot read it (${e instanceof Error ? e.message : String(e)})`);
  }
  const stem = basename(sourcePath, ".zig");
  const name = flags.name ?? stem;
  const optimize = (flags.optimize ?? "safe") as ZigOptimize;
  if (!OPTIMIZE.includes(optimize)) throw new BadArgsError(`--optimize ${flags.optimize} is none of ${OPTIMIZE.join(", ")}`);
  const output = flags.output ?? join(dirname(sourcePath), `${stem}.bin`);
  checkWritable(output, "-o");
  const { image } = await compileZig(source, { name, optimize, zig: flags.zig, fileName: sourcePath });
  // atomic, like snapshot files: a reader sees the old image or the whole new one
  const tmp = join(dirname(output), `.${basename(output)}.${process.pid}.tmp`);
  try {
    writeFileSync(tmp, image.bytes);
    renameSync(tmp, output);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new BadArgsError(`-o ${output}: cannot write it (${e instanceof Error ? e.message : String(e)})`);
  }
  out(`wrote ${output}: native image ${name}, ${image.bytes.length} bytes (${optimize}: ${optimize === "safe" ? "safety checks on" : "safety checks off"})\n`);
}
