// Debian's dynamically linked programs run unmodified (issue 24, part 1): each beside the same
// program run natively — the same stdout and exit status — from the CLI, from a LinuxProgram's warm
// VM (several calls), and from Virtine.load on the calling thread and on a worker. Their
// interpreter and libraries are found and granted by wasp; a library that is not ELF is refused by
// name. Needs Debian packages: sqlite3, lua5.4, gawk, jq, gcc (`.ci/run` installs them).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LinuxProgram } from "../src/virtine/linux.ts";
import { Virtine } from "../src/index.ts";
import { BadImageError } from "../src/errors.ts";

const dir = mkdtempSync(join(tmpdir(), "wasp-dynamic-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const WASP = join(import.meta.dir, "../dist/wasp");

function need(tool: string): string {
  for (const d of ["/usr/bin", "/bin"]) if (existsSync(join(d, tool))) return join(d, tool);
  throw new Error(`${tool} is missing: install the Debian packages sqlite3, lua5.4, gawk, jq and gcc (apt install sqlite3 lua5.4 gawk jq gcc)`);
}

interface Case {
  tool: string;
  args: string[];
  input: string;
  /** what the native run prints, as a check that the case means something */
  want: RegExp;
  /** grants it needs: jq's libc asks for entropy (arc4random), and glibc aborts when getrandom fails */
  allow?: string[];
}

const CASES: Case[] = [
  { tool: "sqlite3", args: [":memory:", "create table t(x); insert into t values (1),(2),(40); select sum(x), count(*) from t; select upper('wasp');"], input: "", want: /^43\|3\nWASP\n$/ },
  { tool: "lua5.4", args: ["-e", "local t = {} for w in io.read('a'):gmatch('%a+') do t[#t+1] = w:upper() end print(table.concat(t, ','), 2^10, #t) os.exit(3)"], input: "virtines run lua", want: /^VIRTINES,RUN,LUA\t1024\.0\t3\n$/ },
  { tool: "gawk", args: ["{ s += $1; n++ } END { printf \"%d %.2f %s\\n\", n, s / n, toupper(\"done\") }"], input: "1\n2\n3.5\n", want: /^3 2\.17 DONE\n$/ },
  { tool: "jq", args: ["-c", "[.items[] | select(.n > 1) | .name] | {names: ., count: length}"], input: '{"items":[{"name":"a","n":1},{"name":"b","n":2},{"name":"c","n":3}]}', want: /^\{"names":\["b","c"\],"count":2\}\n$/, allow: ["random"] },
];

function native(path: string, args: string[], input: string) {
  const r = Bun.spawnSync([path, ...args], { stdin: Buffer.from(input), env: {} });
  return { status: r.exitCode, out: r.stdout.toString() };
}

describe("Debian's dynamically linked programs, unmodified, as natively", () => {
  for (const c of CASES) {
    test(`${c.tool}: the CLI, a warm VM's calls, Virtine.load on this thread and on a worker`, async () => {
      const path = need(c.tool);
      const want = native(path, c.args, c.input);
      expect(want.out).toMatch(c.want);
      // the CLI: its interpreter and libraries need no flag
      const cli = Bun.spawnSync([WASP, "invoke", path, ...(c.allow ? ["--allow", c.allow.join(",")] : []), "--input", "-", "--", ...c.args], { stdin: Buffer.from(c.input), env: {} });
      expect({ status: cli.exitCode, out: cli.stdout.toString() }).toEqual(want);
      // one program, several calls on its warm VM (each from the entry, reset between them)
      using p = LinuxProgram.fromFile(path, { allow: c.allow });
      expect(p.interp).toBeDefined();
      for (let i = 0; i < 3; i++) {
        const r = p.run(c.args, { input: c.input });
        expect({ status: r.status, out: new TextDecoder().decode(r.stdout) }).toEqual(want);
      }
      using v = await Virtine.load(path, { allow: c.allow });
      for (let i = 0; i < 2; i++) {
        const r = v.runSync({ args: c.args, input: c.input });
        expect({ status: r.status, out: new TextDecoder().decode(r.output) }).toEqual(want);
      }
      const w = await v.run({ args: c.args, input: c.input });
      expect({ status: w.status, out: new TextDecoder().decode(w.output) }).toEqual(want);
    }, 120_000);
  }
});

describe("a program's own libraries", () => {
  const app = join(dir, "app");
  beforeAll(() => {
    // a library beside the program, found through $ORIGIN (DT_RUNPATH)
    mkdirSync(join(dir, "lib"), { recursive: true });
    writeFileSync(join(dir, "greet.c"), `#include <stdio.h>\nint greet(const char *who) { return printf("hello, %s\\n", who); }\n`);
    writeFileSync(join(dir, "app.c"), `int greet(const char *who);\nint main(int argc, char **argv) { return greet(argc > 1 ? argv[1] : "nobody") == 13 ? 5 : 6; }\n`);
    const gcc = need("gcc");
    for (const cmd of [
      [gcc, "-shared", "-fPIC", "-o", join(dir, "lib/libgreet.so"), join(dir, "greet.c")],
      [gcc, "-o", app, join(dir, "app.c"), `-L${join(dir, "lib")}`, "-lgreet", "-Wl,-rpath,$ORIGIN/lib"],
    ]) {
      const r = Bun.spawnSync(cmd);
      if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr.toString()}`);
    }
  });

  test("found through $ORIGIN, as the host's loader finds it", () => {
    expect(native(app, ["wasp!"], "")).toEqual({ status: 5, out: "hello, wasp!\n" });
    using p = LinuxProgram.fromFile(app);
    expect([...p.files.keys()]).toContain("/lib/libgreet.so");
    const r = p.run(["wasp!"]);
    expect({ status: r.status, out: new TextDecoder().decode(r.stdout) }).toEqual({ status: 5, out: "hello, wasp!\n" });
  });

  test("a library that is not ELF, or one that is missing, is refused by name", () => {
    const other = join(dir, "broken");
    mkdirSync(join(other, "lib"), { recursive: true });
    copyFileSync(app, join(other, "app"));
    expect(() => LinuxProgram.fromFile(join(other, "app"))).toThrow(/app: it needs the library libgreet\.so, found in none of \$ORIGIN\/lib, \/lib\/x86_64-linux-gnu/);
    writeFileSync(join(other, "lib/libgreet.so"), "#!/bin/sh\necho not a library\n");
    let e: unknown;
    try {
      LinuxProgram.fromFile(join(other, "app"));
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(BadImageError);
    expect((e as Error).message).toMatch(/^app: its library .*broken\/lib\/libgreet\.so: libgreet\.so: not an ELF file$/);
  });
});
