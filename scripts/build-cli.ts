// Builds the standalone binary dist/wasp (`npm run build:cli`): the CLI with the entry files of the
// worker threads (src/api/worker.ts, src/bench/loop-worker.ts; `root: "src"` puts src/X.ts at
// /$bunfs/root/X.js, src/api/workers.ts threadEntry), split into chunks so that a command parses
// only its own code, and compiled to bytecode (docs/architecture.md, "Start-up loads what the
// command needs").
//
// One change to a dependency's code, made here: commander's imports of node:util and
// node:child_process go to src/cli/commander-node.ts, which loads each on first use — commander
// needs them only for help, colours and executable subcommands, and importing them cost every
// `wasp invoke` ~3 ms. A commander whose import lines differ fails the build: look at what it
// imports, and update REWRITES.
import { readFileSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "..");
const SHIM = join(ROOT, "src/cli/commander-node.ts");

/** commander's files, and each import line replaced in it. */
const REWRITES: Record<string, readonly string[]> = {
  "command.js": ["import childProcess from 'node:child_process';", "import { stripVTControlCharacters } from 'node:util';"],
  "help.js": ["import { stripVTControlCharacters } from 'node:util';"],
};

const lazyCommanderBuiltins: Bun.BunPlugin = {
  name: "commander's node:util and node:child_process on first use",
  setup(build) {
    build.onLoad({ filter: /[\\/]node_modules[\\/]commander[\\/]lib[\\/](command|help)\.js$/ }, (args) => {
      const file = args.path.slice(args.path.lastIndexOf("/") + 1);
      let text = readFileSync(args.path, "utf8");
      for (const line of REWRITES[file] ?? []) {
        if (!text.includes(line)) throw new Error(`${args.path} no longer has the line \`${line}\`: update scripts/build-cli.ts`);
        text = text.replace(line, line.replace(/'node:[a-z_]+'/, JSON.stringify(SHIM)));
      }
      return { contents: text, loader: "js" };
    });
  },
};

const result = await Bun.build({
  entrypoints: ["src/cli/main.ts", "src/api/worker.ts", "src/bench/loop-worker.ts", "src/serve/program-worker.ts"].map((f) => join(ROOT, f)),
  root: join(ROOT, "src"),
  splitting: true,
  bytecode: true,
  format: "esm",
  minify: { whitespace: true, syntax: true, identifiers: true, keepNames: true },
  compile: {
    outfile: join(ROOT, "dist/wasp"),
    // The binary reads no bunfig.toml and no .env from the directory it runs in: by default a
    // standalone Bun executable does both, so a bunfig.toml's `preload` ran its code in wasp before
    // wasp's first line (and a .env set WASP_* variables), wherever wasp was started; not looking
    // for them also saves ~0.5 ms of every start.
    autoloadBunfig: false,
    autoloadDotenv: false,
  },
  plugins: [lazyCommanderBuiltins],
});
for (const log of result.logs) console.error(log);
if (!result.success) process.exit(1);
console.log(`dist/wasp: ${result.outputs.length} outputs`);
