// docs/architecture.md's table of layers is the rule: a file may import files of its own layer and
// of the layers listed above it, never below. This test reads the table and every import of ffi/
// and src/ and fails on an import that goes down the table — or on a file no row claims. No VM
// needed.
import { expect, test } from "bun:test";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { ROOT } from "./support.ts";

interface Layer {
  name: string;
  /** paths relative to the repository: a file, or a folder ending in "/" */
  paths: string[];
}

/** The rows of the "Layers" table, top (lowest layer) first, with the paths in their folder column. */
function layers(): Layer[] {
  const doc = readFileSync(join(ROOT, "docs/architecture.md"), "utf8");
  const section = doc.slice(doc.indexOf("## Layers"), doc.indexOf("\n## ", doc.indexOf("## Layers") + 1));
  const rows = section.split("\n").filter((l) => l.startsWith("| ") && !l.startsWith("| layer") && !l.startsWith("| ---"));
  return rows.map((row) => {
    const [, name, folder] = row.split("|").map((c) => c.trim());
    return { name, paths: [...folder.matchAll(/`([^`]+)`/g)].map((m) => m[1]) };
  });
}

function layerOf(file: string, table: Layer[]): number {
  // the most specific path wins (a file named in one row, inside a folder named in another)
  let best = -1;
  let bestLength = -1;
  table.forEach((layer, i) => {
    for (const p of layer.paths) {
      const hit = p.endsWith("/") ? file.startsWith(p) : file === p;
      if (hit && p.length > bestLength) {
        best = i;
        bestLength = p.length;
      }
    }
  });
  return best;
}

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(ROOT, dir))) {
    const rel = `${dir}/${entry}`;
    if (statSync(join(ROOT, rel)).isDirectory()) out.push(...sources(rel));
    else if (rel.endsWith(".ts") && !rel.endsWith(".d.ts")) out.push(rel);
  }
  return out;
}

/** The repository-relative files a source imports (relative imports only: packages are no layer). */
function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), "utf8");
  const specs = [...text.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s+"(\.[^"]+)"/gms)].map((m) => m[1]);
  specs.push(...[...text.matchAll(/^\s*import\s+"(\.[^"]+)"/gm)].map((m) => m[1]));
  return specs.map((s) => relative(ROOT, resolve(dirname(join(ROOT, file)), s)));
}

test("every source file belongs to a layer of docs/architecture.md", () => {
  const table = layers();
  expect(table.length).toBeGreaterThan(5);
  const unclaimed = [...sources("ffi"), ...sources("src")].filter((f) => layerOf(f, table) < 0);
  expect(unclaimed).toEqual([]);
});

test("no file imports a layer below its own (docs/architecture.md, Layers)", () => {
  const table = layers();
  const violations: string[] = [];
  for (const file of [...sources("ffi"), ...sources("src")]) {
    const mine = layerOf(file, table);
    for (const target of importsOf(file)) {
      // files outside the layered tree (dist/ guests embedded by the CLI) are data, not code
      if (!target.startsWith("src/") && !target.startsWith("ffi/")) continue;
      const theirs = layerOf(target, table);
      if (theirs > mine) violations.push(`${file} (${table[mine]?.name}) imports ${target} (${table[theirs]?.name})`);
    }
  }
  expect(violations).toEqual([]);
});
