// Granted host directories (issue 24, part 1: `--dir HOST[=GUEST]`, `dirs`): Debian's cat, ls and
// python3 read a directory granted read-only, beside the same programs run natively on the host's
// files; a link out of the grant, a path outside it and writing are refused as Linux would refuse
// them; the grant reaches a pool's workers. Needs python3 (`.ci/run` installs it).
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Virtine } from "../src/index.ts";
import { LinuxProgram } from "../src/virtine/linux.ts";

const root = mkdtempSync(join(tmpdir(), "wasp-dirs-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const data = join(root, "data");
mkdirSync(join(data, "sub/deeper"), { recursive: true });
writeFileSync(join(data, "a.txt"), "alpha\n");
writeFileSync(join(data, "sub/b.txt"), "beta\n");
writeFileSync(join(data, "sub/deeper/c.txt"), "gamma\n");
writeFileSync(join(root, "secret.txt"), "not granted\n");
symlinkSync("../secret.txt", join(data, "escape"));
symlinkSync("/etc/hostname", join(data, "absolute-escape"));
symlinkSync("sub/b.txt", join(data, "inside"));
const WASP = join(import.meta.dir, "../dist/wasp");

function wasp(args: string[]) {
  const r = Bun.spawnSync([WASP, "invoke", ...args], { env: {} });
  return { status: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
}

describe("--dir", () => {
  test("cat reads files of the granted directory at the guest path, as natively", () => {
    const r = wasp(["/bin/cat", "--dir", `${data}=/data`, "--", "/data/a.txt", "/data/sub/b.txt", "/data/sub/deeper/c.txt", "/data/inside"]);
    expect(r.err).toBe("");
    expect(r.status).toBe(0);
    const native = Bun.spawnSync(["/bin/cat", ...["a.txt", "sub/b.txt", "sub/deeper/c.txt", "inside"].map((f) => join(data, f))]).stdout.toString();
    expect(r.out).toBe(native);
    expect(r.out).toBe("alpha\nbeta\ngamma\nbeta\n");
  });

  test("without =GUEST the directory is at its own path", () => {
    const r = wasp(["/bin/cat", "--dir", data, "--", join(data, "a.txt")]);
    expect(r.out).toBe("alpha\n");
  });

  test("a link out of the grant, a path outside it, the host's own files: ENOENT", () => {
    for (const path of ["/data/escape", "/data/absolute-escape", "/data/../secret.txt", join(root, "secret.txt"), "/etc/passwd"]) {
      const r = wasp(["/bin/cat", "--dir", `${data}=/data`, "--", path]);
      expect(r.status).toBe(1);
      expect(r.out).toBe("");
      expect(r.err).toContain("No such file or directory");
    }
  });

  test("ls lists the directory as the host has it, less the links out of it", () => {
    const r = wasp(["/bin/ls", "--dir", `${data}=/data`, "--", "-a", "/data", "/data/sub"]);
    expect(r.status).toBe(0);
    const native = Bun.spawnSync(["/bin/ls", "-a", data, join(data, "sub")], { env: { LC_ALL: "C" } }).stdout.toString();
    expect(native).toContain("escape");
    expect(r.out).toBe(native.replaceAll(data, "/data").split("\n").filter((l) => l !== "escape" && l !== "absolute-escape").join("\n"));
  });

  test("writing, creating and removing are refused: the grant is read-only", () => {
    const r = wasp(["/bin/sh", "--dir", `${data}=/data`, "--", "-c", "echo x > /data/new.txt; echo x >> /data/a.txt; echo done"]);
    // /bin/sh is dash: each redirection fails, the script goes on; the host's files are as they were
    expect(r.out).toBe("done\n");
    expect(r.err.match(/Read-only file system/g)).toHaveLength(2);
    expect(Bun.spawnSync(["/bin/cat", join(data, "a.txt")]).stdout.toString()).toBe("alpha\n");
    expect(Bun.spawnSync(["/bin/ls", data]).stdout.toString()).not.toContain("new.txt");
  });

  test("bad --dir values are one-line errors", () => {
    for (const [spec, want] of [[join(data, "a.txt"), "is not a directory"], [join(root, "missing"), "cannot read"], [`${data}=relative`, "is not absolute"]] as const) {
      const r = wasp(["/bin/cat", "--dir", spec, "--", "/x"]);
      expect(r.status).not.toBe(0);
      expect(r.err).toStartWith("wasp: ");
      expect(r.err).toContain(want);
      expect(r.err.trim().split("\n")).toHaveLength(1);
    }
  });
});

describe("dirs from the API", () => {
  test("LinuxProgram: warm calls read the directory; files are read once, at their first open", () => {
    using p = LinuxProgram.fromFile("/bin/cat", { dirs: { "/data": data } });
    for (let i = 0; i < 3; i++) {
      const r = p.run(["/data/a.txt", "/data/sub/deeper/c.txt"]);
      expect(r.status).toBe(0);
      expect(new TextDecoder().decode(r.stdout)).toBe("alpha\ngamma\n");
    }
  });

  test("Virtine.load on a worker and on this thread", async () => {
    await using v = await Virtine.load("/bin/cat", { dirs: { "/data": data } });
    const a = await v.run({ args: ["/data/sub/b.txt"] });
    expect(new TextDecoder().decode(a.output)).toBe("beta\n");
    const b = v.runSync({ args: ["/data/a.txt"] });
    expect(new TextDecoder().decode(b.output)).toBe("alpha\n");
  });

  test("a grant that is not a directory is a BadArgsError", () => {
    expect(() => LinuxProgram.fromFile("/bin/cat", { dirs: { "/data": join(data, "a.txt") } })).toThrow(/is not a directory/);
    expect(() => LinuxProgram.fromFile("/bin/cat", { dirs: { "data": data } })).toThrow(/not an absolute guest path/);
  });
});

describe("python3 with its standard library granted", () => {
  test("the same output as natively", () => {
    const script = "import json, os, re, collections; c = collections.Counter(re.findall(r'[a-z]+', 'a b a c b a')); print(json.dumps(c.most_common(2)), sorted(os.listdir('/data')))";
    // the standard library of the python3 Debian installed (python3.11 on bookworm)
    const version = Bun.spawnSync(["/usr/bin/python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]).stdout.toString().trim();
    const r = wasp(["/usr/bin/python3", "--dir", `/usr/lib/python${version}`, "--dir", `${data}=/data`, "--env", "PYTHONHOME=/usr", "--env", "PYTHONHASHSEED=0", "--", "-c", script]);
    expect(r.err).toBe("");
    expect(r.status).toBe(0);
    expect(r.out).toBe(`[["a", 3], ["b", 2]] ['a.txt', 'inside', 'sub']\n`);
  });
});
