// The heavy JavaScript handler of `wasp bench`'s Replayable Execution experiment (js_start_heavy_*,
// js_call_heavy_*): markdown-it and highlight.js bundled into one ES module (dist/guests/markdown.js,
// ~500 KB, built by `npm install`). The same markdown renders to the same HTML natively (the
// engine built for the host), in a virtine from the source — booted every call, or resumed from
// the snapshot after warm-up — and from its snapshot file; and the HTML is the one Bun's own
// engine renders with the same libraries.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import markdownModule from "../dist/guests/markdown.js" with { type: "file" };
import { JsError, Virtine, WorkerPool } from "../src/index.ts";
import { enginePath } from "../src/js/engine.ts";
import { rejection, slow } from "./support.ts";

const tmp = mkdtempSync(join(tmpdir(), "wasp-js-heavy-"));
const workers = new WorkerPool({ size: 1 });
afterAll(async () => {
  await workers.close();
  rmSync(tmp, { recursive: true, force: true });
});

const SOURCE = readFileSync(markdownModule, "utf8");
const DOC = '# Orders\n\nA *total* of **3** items -- see https://example.com and "the docs".\n\n- one\n- two\n\n```python\ndef total(xs):\n    return sum(xs)  # all\n```\n\n| a | b |\n| - | - |\n| 1 | 2 |\n';
// typographer (the en dash, the curly quotes), linkify, a list, Python highlighted, a table
const HTML = `<h1>Orders</h1>
<p>A <em>total</em> of <strong>3</strong> items – see <a href="https://example.com">https://example.com</a> and “the docs”.</p>
<ul>
<li>one</li>
<li>two</li>
</ul>
<pre><code class="language-python"><span class="hljs-keyword">def</span> <span class="hljs-title function_">total</span>(<span class="hljs-params">xs</span>):
    <span class="hljs-keyword">return</span> <span class="hljs-built_in">sum</span>(xs)  <span class="hljs-comment"># all</span>
</code></pre>
<table>
<thead>
<tr>
<th>a</th>
<th>b</th>
</tr>
</thead>
<tbody>
<tr>
<td>1</td>
<td>2</td>
</tr>
</tbody>
</table>
`;
// another document, rendered by calls after the first: no state of one call reaches the next
const OTHER = "Plain *text*, and `code`.";
const OTHER_HTML = "<p>Plain <em>text</em>, and <code>code</code>.</p>\n";

describe("the markdown handler (markdown-it and highlight.js bundled)", () => {
  test("is a bundle of several hundred KiB that Bun's own engine renders the document with", async () => {
    expect(SOURCE.length).toBeGreaterThan(300 << 10);
    const { default: render } = (await import(join(import.meta.dir, "../guests/js/markdown.js"))) as { default: (text: string) => string };
    expect(render(DOC)).toBe(HTML);
    expect(render(OTHER)).toBe(OTHER_HTML);
  });

  test("natively (js.elf --run): the engine built for the host renders the same HTML", () => {
    const p = Bun.spawnSync([enginePath, "--run", markdownModule], { stdin: new TextEncoder().encode(`A${JSON.stringify([DOC])}`) });
    expect(p.exitCode).toBe(0);
    expect(JSON.parse(p.stdout.toString())).toBe(HTML);
  });

  test("in a virtine from the source: booted every call, and resumed from its snapshot after warm-up", async () => {
    {
      await using v = await Virtine.fromJs(SOURCE, { workers, name: "markdown.js", snapshot: false });
      expect(await v.call(DOC)).toBe(HTML);
      expect(v.callSync(OTHER)).toBe(OTHER_HTML);
    }
    await using v = await Virtine.fromJs(SOURCE, { workers, name: "markdown.js", warmup: [DOC, OTHER] });
    expect(await v.call(DOC)).toBe(HTML);
    expect(await v.call(OTHER)).toBe(OTHER_HTML);
    expect(v.callSync(DOC)).toBe(HTML);
    const e = await rejection(v.call(42));
    expect(e).toBeInstanceOf(JsError);
    expect((e as JsError).jsName).toBe("TypeError");
    expect(await v.call(DOC)).toBe(HTML);
  }, slow(180_000));

  test("from its snapshot file, compiled and warmed up", async () => {
    const file = join(tmp, "markdown.snap");
    {
      await using v = await Virtine.fromJs(SOURCE, { workers, name: "markdown.js", warmup: [DOC] });
      v.writeSnapshot(file);
    }
    await using loaded = await Virtine.loadJs(file, { workers });
    expect(loaded.name).toBe("markdown.js");
    expect(await loaded.call(DOC)).toBe(HTML);
    expect(await loaded.call(OTHER)).toBe(OTHER_HTML);
    expect(loaded.callSync(DOC)).toBe(HTML);
  }, slow(180_000));
});
