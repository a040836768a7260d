// The docs say what the code does: each default has one source in the code, and every place the
// docs or the help state it is checked against that source. The README's TypeScript block runs as
// pasted (that one needs KVM).
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Hypercalls } from "../src/abi/guest-abi.ts";
import { DEFAULT_GRANTS } from "../src/hypercall/policy.ts";
import { EXIT_STATUS } from "../src/errors.ts";
import { EMBEDDED_NAMES } from "../src/cli/embedded.ts";
import { DEFAULT_TIMEOUT_MS, planMemory } from "../src/virtine/runner.ts";
import { DEFAULT_MEMORY, MIB, MIN_MEMORY, buildNativeImage, parseImage } from "../src/image/image.ts";
import { slow, ROOT, wasp } from "./support.ts";

const read = (p: string) => readFileSync(join(ROOT, p), "utf8");
const docs = () => ["README.md", ...readdirSync(join(ROOT, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];
const NAMES = Hypercalls.map((h) => h.name) as readonly string[];

describe("one source for each default", () => {
  test("every list of the default grants (README, docs, --help) is DEFAULT_GRANTS", () => {
    const texts = docs().map((p) => [p, read(p)] as const);
    texts.push(["wasp invoke --help", wasp(["invoke", "--help"]).stdout.replace(/\s+/g, " ")], ["wasp snapshot --help", wasp(["snapshot", "--help"]).stdout.replace(/\s+/g, " ")]);
    let lists = 0;
    for (const [where, text] of texts) {
      // "beyond exit/write/panic/snapshot", "beyond `exit`, `write`, ...", "the default is exit, write, ..."
      for (const m of text.matchAll(/(?:beyond|the default is)\s+((?:`?[a-z]+`?(?:\s*(?:,|\/|and)\s*)?){2,})/g)) {
        const named = [...m[1].matchAll(/[a-z]+/g)].map((x) => x[0]).filter((w) => NAMES.includes(w));
        if (named.length < 2) continue; // prose that only starts like a list
        lists++;
        expect({ where, named: [...named].sort() }).toEqual({ where, named: [...DEFAULT_GRANTS].sort() });
      }
    }
    expect(lists).toBeGreaterThanOrEqual(5);
  });

  test("docs/abi.md's hypercall table says which are granted by default", () => {
    const rows = [...read("docs/abi.md").matchAll(/^\| (\d+) \| `([a-z]+)` \| (yes|no) \|/gm)];
    expect(rows.map((r) => [Number(r[1]), r[2], r[3] === "yes"])).toEqual(Hypercalls.map((h) => [h.nr, h.name, h.defaultGranted]));
  });

  test("every error code the code raises, and its exit status, is in docs/errors.md", () => {
    const errors = read("docs/errors.md");
    const raised = new Set<string>();
    const walk = (dir: string) => {
      for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
        if (e.isDirectory()) walk(`${dir}/${e.name}`);
        else if (e.name.endsWith(".ts")) for (const m of read(`${dir}/${e.name}`).matchAll(/"(WASP_[A-Z_]+)"/g)) raised.add(m[1]);
      }
    };
    walk("src");
    walk("ffi");
    for (const code of raised) {
      const row = new RegExp(`^\\| \`${code}\` \\| [^|]+ \\| (\\d+) \\|`, "m").exec(errors);
      expect({ code, documented: row !== null }).toEqual({ code, documented: true });
      if (row && EXIT_STATUS[code] !== undefined) expect({ code, status: Number(row[1]) }).toEqual({ code, status: EXIT_STATUS[code] });
    }
  });

  test("the built-in guests are listed wherever they are named (README, --help)", () => {
    const readme = /built-in guests run by name: ([a-z0-9_, ]+)/.exec(read("README.md"));
    expect(readme?.[1].split(/,\s*/).sort()).toEqual([...EMBEDDED_NAMES].sort());
    const help = /name of a built-in guest \(([a-z0-9_, ]+)\)/.exec(wasp(["invoke", "--help"]).stdout.replace(/\s+/g, " "));
    expect(help?.[1].split(/,\s*/).sort()).toEqual([...EMBEDDED_NAMES].sort());
  });

  test("the README's defaults for --mem and --timeout are the code's", () => {
    const readme = read("README.md");
    expect(readme).toContain(`\`--mem SIZE\` (default ${DEFAULT_MEMORY / MIB} MiB`);
    expect(readme).toContain(`\`--timeout MS\` (default ${DEFAULT_TIMEOUT_MS};`);
  });

  test("the documented minimum memory runs a guest that takes no data (the data window shrinks to fit)", () => {
    const image = parseImage(buildNativeImage([0xe6, 0xfa]), "tiny");
    const small = planMemory(image, MIN_MEMORY);
    expect(small.memory).toBe(MIN_MEMORY);
    expect(small.dataSize).toBeGreaterThan(0);
    expect(small.dataSize).toBeLessThan(MIB);
    expect(planMemory(image).dataSize).toBe(MIB);
    expect(() => planMemory(image, MIN_MEMORY, MIB)).toThrow(/a stack of \d+ bytes and a data window of 1048576 bytes do not fit the 2 MiB of guest memory above the image/);
  });
});

test("the README's TypeScript block runs as pasted", () => {
  const block = /```ts\n([\s\S]*?)```/.exec(read("README.md"));
  expect(block).not.toBeNull();
  const dir = mkdtempSync(join(ROOT, ".readme-"));
  try {
    const script = join(dir, "readme.ts");
    writeFileSync(script, block?.[1] ?? "");
    const p = Bun.spawnSync([process.execPath, script], { cwd: ROOT, stderr: "pipe" });
    expect(p.stderr.toString()).toBe("");
    expect(p.exitCode).toBe(0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, slow(120_000));
