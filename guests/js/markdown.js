// A handler with a heavy initialization, for the Replayable Execution experiment (Wang, Ho, Wu,
// EuroSys'19) in `wasp bench` (js_start_heavy_*, js_call_heavy_*: src/bench/js-heavy.ts) and its
// test (tests/js-heavy.test.ts): markdown to HTML with markdown-it, fenced code highlighted by
// highlight.js's common languages. `npm install` bundles it with its dependencies into one ES
// module, dist/guests/markdown.js (package.json, build:bench-js), which the standalone binary
// embeds. Loading it parses and compiles the whole bundle and builds the renderer; the first
// document of each language compiles that grammar's regular expressions: all of it is what a
// snapshot taken after warm-up calls keeps.
import MarkdownIt from "markdown-it";
import hljs from "highlight.js/lib/common";

function highlight(code, lang) {
  // an unknown language: markdown-it escapes the code itself
  if (!lang || !hljs.getLanguage(lang)) return "";
  return hljs.highlight(code, { language: lang, ignoreIllegals: true }).value;
}

const md = new MarkdownIt({ linkify: true, typographer: true, highlight });

export default (text) => {
  if (typeof text !== "string") throw new TypeError("the input is a markdown document, as a string");
  return md.render(text);
};
