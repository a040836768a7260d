// bun tools/warm-zig-cache.ts: fills zig's global cache (~/.cache/zig, or $ZIG_GLOBAL_CACHE_DIR)
// with what every compile of wasp builds once — compiler_rt for guests in each optimize mode, musl
// and compiler_rt for Linux programs — by compiling a small program of each kind into a throwaway
// folder. Needs no /dev/kvm. tools/kvm-vm.sh's emulated machine shares the cache: there a cold
// compile costs minutes (.ci/run warms it first).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bundledZig, compileZig } from "../src/image/zig.ts";
import { compileC, compileZigLinux } from "../src/linux/c.ts";

const cacheDir = mkdtempSync(join(tmpdir(), "wasp-warm-"));
const t0 = performance.now();
try {
  for (const optimize of ["safe", "fast", "small"] as const) {
    await compileZig(`pub fn main(x: u64) u64 { return x +% ${optimize.length}; }`, { cacheDir, optimize });
    await compileC(`#include <stdio.h>\nint main(int c, char **v) { printf("%d %s\\n", c, v[0]); return 0; }\n`, { cacheDir, optimize });
    await compileZigLinux(`pub fn main() void { @import("std").debug.print("${optimize}\\n", .{}); }`, { cacheDir, optimize });
  }
  // what the tests compile with zig cc directly: plain static and static-pie musl programs
  writeFileSync(join(cacheDir, "p.c"), "int main(int argc, char **argv) { return argc; }\n");
  for (const extra of [[], ["-fPIE", "-static-pie"]]) {
    const cc = Bun.spawnSync([bundledZig(), "cc", "-target", "x86_64-linux-musl", "-static", "-O2", ...extra, "-o", join(cacheDir, "p"), join(cacheDir, "p.c")]);
    if (cc.exitCode !== 0) throw new Error(`zig cc failed: ${cc.stderr.toString()}`);
  }
  console.log(`warm-zig-cache: zig's global cache is warm (${Math.round(performance.now() - t0)} ms)`);
} finally {
  rmSync(cacheDir, { recursive: true, force: true });
}
