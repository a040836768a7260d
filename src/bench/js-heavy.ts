// Replayable Execution's experiment (Wang, Ho, Wu, EuroSys'19) in `wasp bench`: a handler whose
// initialization is heavy — a real library bundled into the module, markdown-it and highlight.js's
// common languages (guests/js/markdown.js, ~500 KB of JavaScript once bundled into
// dist/guests/markdown.js) — started natively, booted in a virtine, and called from its snapshot
// file (compiled and warmed up). The paper reports a start over 10x faster from the snapshot;
// docs/benchmarks.md, "A heavy handler", has the figures.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import markdownModule from "../../dist/guests/markdown.js" with { type: "file" };
import { LinuxProgram } from "../virtine/linux.ts";
import { SnapshotFile } from "../snapshot/file.ts";
import { systemKvm } from "../kvm/system.ts";
import { encodeJsCall, JS_LOAD_ONLY } from "../js/engine.ts";
import { jsProgram, nativeEngine, workDir, type BenchModule } from "./js.ts";
import { startSeries } from "./density.ts";
import { summarize, timeSync } from "./stats.ts";
import type { Series } from "./suite.ts";

/**
 * What every call renders: a comment on an issue, with a link, a list and a few lines of Python —
 * a light call beside the module's start. (The call's own work is what a snapshot cannot save: a
 * README with a page of highlighted JavaScript renders in ~20 ms even warm, and the ratio falls
 * with it; docs/benchmarks.md.)
 */
export const HEAVY_DOC = `Thanks for the report! I could reproduce it on **v0.1.0** -- the snapshot file was written
before the warm-up, so every call compiled the grammar again. See https://example.com/issues/23
and the [docs](docs/js.md#limits).

Steps:

1. \`wasp snapshot handler.js -o h.snap --warmup warm.json\`
2. \`wasp invoke h.snap --input order.json\`

\`\`\`python
def total(order):
    return sum(item["price"] for item in order["items"])
\`\`\`

> Fixed in the "next" release; ~~0.1.1~~ 0.2.0.
`;

/** The handler's bundle (in the standalone binary, its embedded copy), read when a series first needs it. */
let moduleBytes: Uint8Array | undefined;
function source(): Uint8Array {
  moduleBytes ??= new Uint8Array(readFileSync(markdownModule));
  return moduleBytes;
}

function markdown(): BenchModule {
  return { source: source(), name: "markdown.js", warmup: (n) => Array(n).fill(HEAVY_DOC) };
}
/** Warm-up calls before the snapshot: the first compiles the grammars of the document's languages. */
const WARMUP_CALLS = 3;
const CALL = encodeJsCall([HEAVY_DOC]);

/** The bundle as a file of the run's folder, for the native engine. */
function moduleFile(): string {
  const path = join(workDir(), "markdown.js");
  writeFileSync(path, source());
  return path;
}

/** The HTML the engine renders natively (`js.elf --run`): what every virtine must return too. */
let expected: string | undefined;
function nativeHtml(): string {
  if (expected === undefined) {
    const p = Bun.spawnSync([nativeEngine(), "--run", moduleFile()], { stdin: CALL, env: {} });
    const text = p.stdout.toString();
    if (p.exitCode !== 0 || !text.startsWith('"<p>Thanks for the report!')) throw new Error(`the markdown handler failed natively with status ${p.exitCode}: ${text.slice(0, 120)} ${p.stderr.toString().slice(0, 200)}`);
    expected = text;
  }
  return expected;
}

function check(name: string, r: { status: number; stdout: Uint8Array }): void {
  const text = new TextDecoder().decode(r.stdout);
  if (r.status !== 0 || text !== nativeHtml()) throw new Error(`${name}: the engine returned status ${r.status} and not the native engine's HTML: ${text.slice(0, 120)}`);
}

/** The handler's snapshot file: the module compiled and WARMUP_CALLS documents rendered (one per run). */
let file: string | undefined;
function snapshotFile(): string {
  if (!file) {
    const path = join(workDir(), "markdown-warm.snap");
    const { program, args } = jsProgram({ poolSize: 1, timeoutMs: 120_000, warmup: WARMUP_CALLS }, markdown());
    using _ = program;
    const r = program.run(args, { input: JS_LOAD_ONLY });
    if (r.status !== 0 || !program.snapshotTaken) throw new Error(`the markdown handler's snapshot failed with status ${r.status}: ${new TextDecoder().decode(r.stdout).slice(0, 120)}`);
    program.writeSnapshot(path);
    file = path;
  }
  return file;
}

export const JS_HEAVY_SERIES: Series[] = [
  {
    // natively, a fresh start that serves one call: a new process of the engine built for the host
    // (`js.elf --run markdown.js`, the call on stdin), which reads the module, compiles and
    // evaluates it, renders the document, writes the HTML and exits — timed from the spawn to the
    // exit. The engine's own `--bench cold` (js_native's mode: the same start repeated inside one
    // process, everything freed after each call) measured slower, ~100 ms against ~80 ms here: the
    // fresh process is the lower baseline, and what a native cold start is.
    name: "js_start_heavy_native",
    defaultRuns: 30,
    async run(runs) {
      const engine = nativeEngine();
      const path = moduleFile();
      const want = nativeHtml();
      return summarize("js_start_heavy_native", "us", timeSync(runs, 2, () => {
        const p = Bun.spawnSync([engine, "--run", path], { stdin: CALL, env: {} });
        if (p.exitCode !== 0 || p.stdout.toString() !== want) throw new Error(`js_start_heavy_native: the engine exited with ${p.exitCode}`);
      }));
    },
  },
  {
    // in a virtine, the same start: a fresh VM per call (one-shot, as `wasp invoke markdown.js`
    // runs) from the engine's entry — libc's start, the module read, compiled and evaluated, the
    // document rendered — and torn down
    name: "js_start_heavy_boot",
    defaultRuns: 30,
    async run(runs) {
      const { program, args } = jsProgram({ oneShot: true }, markdown());
      using _ = program;
      return summarize("js_start_heavy_boot", "us", timeSync(runs, 2, () => check("js_start_heavy_boot", program.run(args, { input: CALL }))));
    },
  },
  {
    // a warm pool: a call resumed from the snapshot file (module compiled, WARMUP_CALLS documents
    // rendered) in a process that has the file loaded, on a pooled shell reset in idle time
    name: "js_call_heavy_snapshot_file",
    defaultRuns: 200,
    async run(runs) {
      using loaded = new SnapshotFile(snapshotFile(), systemKvm());
      using p = LinuxProgram.fromSnapshotFile(loaded.loaded, { poolSize: 1 });
      const times: number[] = [];
      for (let i = 0; i < runs + 5; i++) {
        const t = Bun.nanoseconds();
        const r = p.run([], { input: CALL });
        const us = (Bun.nanoseconds() - t) / 1000;
        check("js_call_heavy_snapshot_file", r);
        p.cleanIdle();
        if (i >= 5) times.push(us);
      }
      return summarize("js_call_heavy_snapshot_file", "us", times);
    },
  },
  {
    // a fresh `wasp invoke markdown-warm.snap --input doc.json` process: wasp's start-up, the file
    // loaded, one call from it, exit
    name: "js_start_heavy_snapshot_file",
    defaultRuns: 10,
    async run(runs) {
      const path = snapshotFile();
      const input = join(workDir(), "doc.json");
      writeFileSync(input, JSON.stringify(HEAVY_DOC));
      return startSeries("js_start_heavy_snapshot_file", () => ["invoke", path, "--input", input], runs);
    },
  },
];

/** Where the heavy series' targets are ratios: beside the native start. */
export const JS_HEAVY_BESIDE: Readonly<Record<string, string>> = {
  js_start_heavy_boot: "js_start_heavy_native",
  js_call_heavy_snapshot_file: "js_start_heavy_native",
  js_start_heavy_snapshot_file: "js_start_heavy_native",
};
