// Python with Replayable Execution: the host's unmodified python3 imports a handler and is warmed
// up once in a VM, its snapshot written to a file; then every call, in this process or any other,
// resumes that warm interpreter in a VM of its own, and an exception is a PyError with its traceback.
//   bun run examples/python.ts 'a rose is a rose' 'to be or not to be' ''
import { join } from "node:path";
import { tmpdir } from "node:os";
import { readFileSync, rmSync } from "node:fs";
import { PyError, Virtine } from "wasp";

const source = readFileSync(join(import.meta.dir, "python", "words.py"), "utf8");
const texts = process.argv.slice(2);
const file = join(tmpdir(), `words-${process.pid}.snap`);

// imported and warmed up once (what a cold start would pay), then snapshotted to a file
{
  await using warm = await Virtine.fromPython(source, { name: "words.py", warmup: [{ text: "warm up" }] });
  warm.writeSnapshot(file);
}

// every call from the file: the interpreter as the warm-up left it, nothing of another call
try {
  await using words = await Virtine.loadPython(file);
  for (const text of texts) {
    try {
      console.log(JSON.stringify(text), "->", JSON.stringify(await words.call({ text })));
    } catch (e) {
      if (!(e instanceof PyError)) throw e;
      console.log(JSON.stringify(text), "->", `${e.pyName}: ${e.pyMessage}`);
    }
  }
} finally {
  rmSync(file, { force: true });
}
