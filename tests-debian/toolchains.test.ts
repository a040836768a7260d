// Static programs from other toolchains run unchanged (issue 13.6): glibc (`gcc -static`), Debian's
// musl (`musl-gcc -static`) and busybox-static's multi-call binary, each beside the same program
// run natively. Needs Debian packages: gcc, musl-tools, busybox-static (`.ci/run` installs them).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LinuxProgram } from "../src/virtine/linux.ts";
import { Virtine } from "../src/index.ts";

const dir = mkdtempSync(join(tmpdir(), "wasp-debian-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function need(tool: string): string {
  for (const d of ["/usr/bin", "/bin", "/usr/local/bin"]) if (existsSync(join(d, tool))) return join(d, tool);
  throw new Error(`${tool} is missing: install the Debian packages gcc, musl-tools and busybox-static (apt install gcc musl-tools busybox-static)`);
}

const PROGRAM = `#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
int main(int argc, char **argv) {
  char line[256]; double sum = 0; int n = 0;
  while (fgets(line, sizeof line, stdin)) { sum += strtod(line, NULL); n++; }
  char *copy = malloc(1 << 20); memset(copy, 'a', 1 << 20);
  printf("%s: %d numbers, sum %.3f, sqrt %.5f, %zu\\n", argc > 1 ? argv[1] : "?", n, sum, sqrt(sum), strlen(copy + (1 << 20) - 1));
  free(copy);
  return n;
}`;

const built: Record<string, string> = {};
beforeAll(() => {
  writeFileSync(join(dir, "p.c"), PROGRAM);
  for (const [name, cc] of [["glibc", need("gcc")], ["musl", need("musl-gcc")]] as const) {
    const out = join(dir, name);
    const r = Bun.spawnSync([cc, "-static", "-O2", "-o", out, join(dir, "p.c"), "-lm"]);
    if (r.exitCode !== 0) throw new Error(`${cc} failed: ${r.stderr.toString()}`);
    built[name] = out;
  }
});

const input = "1.5\n2.5\n-1\n100\n";
function native(path: string, args: string[], stdin: string) {
  const r = Bun.spawnSync([path, ...args], { stdin: Buffer.from(stdin), env: {} });
  return { status: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
}

describe("programs other toolchains built run unchanged, as natively", () => {
  for (const name of ["glibc", "musl"]) {
    test(`${name}: stdin, stdout, malloc, libm, exit status`, () => {
      const want = native(built[name], ["x"], input);
      expect(want.out).toBe("x: 4 numbers, sum 103.000, sqrt 10.14889, 1\n");
      using p = LinuxProgram.fromFile(built[name]);
      // several calls on the program's warm VM: each from the entry, reset between them
      for (let i = 0; i < 3; i++) {
        const r = p.run(["x"], { input });
        expect({ status: r.status, out: new TextDecoder().decode(r.stdout) }).toEqual({ status: want.status, out: want.out });
      }
    });
  }

  test("busybox-static: applets on stdin and arguments, as natively", () => {
    const busybox = need("busybox");
    const bytes = new Uint8Array(readFileSync(busybox));
    using p = LinuxProgram.fromBytes(bytes, "busybox");
    const cases: [string[], string][] = [
      [["echo", "hello", "world"], ""],
      [["wc", "-l"], "a\nb\nc\n"],
      [["sort", "-n"], "10\n9\n100\n"],
      [["sha256sum"], "abc"],
      [["tr", "a-z", "A-Z"], "shout\n"],
      [["sh", "-c", "echo $((6 * 7)); exit 3"], ""],
    ];
    for (const [args, stdin] of cases) {
      const want = native(busybox, args, stdin);
      const r = p.run(args, { input: stdin });
      expect([args, r.status, new TextDecoder().decode(r.stdout)]).toEqual([args, want.status, want.out]);
    }
  });

  test("busybox-static as a Virtine: applets on worker threads", async () => {
    const busybox = need("busybox");
    await using v = await Virtine.load(busybox);
    expect(v.kind).toBe("linux");
    const words = ["pear", "apple", "fig"];
    const runs = await Promise.all(words.map((w) => v.run({ args: ["rev"], input: `${w}\n` })));
    expect(runs.map((r) => [r.status, new TextDecoder().decode(r.output)])).toEqual(words.map((w) => [0, `${[...w].reverse().join("")}\n`]));
    expect(new TextDecoder().decode(v.runSync({ args: ["tac"], input: "b\na\n" }).output)).toBe("a\nb\n");
  });
});
