// src/cli/fast-args.ts reads `wasp invoke`'s command line without commander. Wherever it gives an
// answer it must be commander's own for the same command line (the same image, arguments and
// option values, commander raising nothing and printing nothing); where it gives up, commander
// decides. Generated command lines mix every option of the command in each of its spellings with
// operands, `--`, values that look like options, and what commander refuses or handles itself.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { buildProgram } from "../src/cli/cli.ts";
import { INVOKE_OPTION_FLAGS, INVOKE_REPEATABLE, fastInvokeArgs, type InvokeArgs } from "../src/cli/fast-args.ts";

/** What commander does with `wasp invoke ...argv`: the action's arguments, or what it printed or threw. */
async function commanderReads(argv: readonly string[]): Promise<InvokeArgs | { failed: string }> {
  let printed = "";
  const program = buildProgram("invoke", { out: (s) => (printed += s), err: (s) => (printed += s) });
  const invoke = program.commands.find((c) => c.name() === "invoke")!;
  let got: InvokeArgs | undefined;
  // the real action imports the command's module and runs the call: here it only reports what it was given
  invoke.action((image: string, args: string[], flags: Record<string, unknown>) => {
    got = { image, args, flags: { ...flags } };
  });
  try {
    await program.parseAsync(["bun", "wasp", "invoke", ...argv]);
  } catch (e) {
    return { failed: `${printed}${e instanceof Error ? e.message : String(e)}` };
  }
  if (printed !== "") return { failed: printed };
  return got ?? { failed: "no action" };
}

const valueOptions = INVOKE_OPTION_FLAGS.filter((f) => f.includes("<"));
const booleanOptions = INVOKE_OPTION_FLAGS.filter((f) => !f.includes("<"));
const spellings = (flags: string) => flags.replace(/ <.*$/, "").split(", ");

const word = fc.oneof(fc.constantFrom("noop", "fib", "30", "0x10", "a=b", "", "=", "-", "x y", "é"), fc.string({ maxLength: 6 }));
const dashy: fc.Arbitrary<string> = fc.constantFrom("-V", "--version", "-h", "--help", "-x", "--bogus", "-vi", "-ifile", "-5", "-0.5", "--json=1", "--mem=", "--", "---", "-", "--no-json", "--input=-V");
const value = fc.oneof(word, dashy);

/** One token or a few: an option with its value in each spelling, a boolean, an operand, something dash-led. */
const piece: fc.Arbitrary<string[]> = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom(...valueOptions), value).chain(([flags, v]) => fc.constantFrom(...spellings(flags)).map((s) => [s, v])) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...valueOptions.map((f) => f.replace(/ <.*$/, "").split(", ").pop()!)), value).map(([long, v]) => [`${long}=${v}`]) },
  { weight: 3, arbitrary: fc.constantFrom(...booleanOptions.flatMap(spellings)).map((s) => [s]) },
  { weight: 4, arbitrary: word.map((w) => [w]) },
  { weight: 1, arbitrary: dashy.map((d) => [d]) },
  { weight: 1, arbitrary: fc.constant(["--"]).map((t) => [...t]) },
);
const commandLine = fc.array(piece, { maxLength: 7 }).map((pieces) => pieces.flat());

describe("wasp invoke's command line without commander (src/cli/fast-args.ts)", () => {
  test("the table is the command's definition: the same options, spelled the same, the repeatable ones with []", () => {
    const invoke = buildProgram("invoke").commands.find((c) => c.name() === "invoke")!;
    expect(invoke.options.map((o) => o.flags)).toEqual([...INVOKE_OPTION_FLAGS]);
    const repeatable = invoke.options.filter((o) => Array.isArray(o.defaultValue)).map((o) => o.attributeName());
    expect(repeatable).toEqual([...INVOKE_REPEATABLE]);
  });

  test("every command line it reads, commander reads the same; where commander refuses or prints, it gives up", async () => {
    let read = 0;
    await fc.assert(
      fc.asyncProperty(commandLine, async (argv) => {
        const fast = fastInvokeArgs(argv);
        if (fast === undefined) return;
        read++;
        expect(await commanderReads(argv)).toEqual(fast);
      }),
      { numRuns: 3000 },
    );
    // the property is not vacuous: most generated lines are read
    expect(read).toBeGreaterThan(600);
  });

  test("the forms people type are read without commander, as commander reads them", async () => {
    const lines = [
      ["noop"],
      ["fib", "30"],
      ["fib.bin", "30", "--json"],
      ["prog", "--", "-x", "--json"],
      ["-v", "aes", "--input", "-", "-o", "out.bin", "--allow", "time,random"],
      ["--mem=64M", "--timeout", "0", "prog", "--env", "A=1", "--env", "B=2", "--dir", "/usr", "--no-sandbox", "--no-snapshot"],
      ["handler.js", "--input", "in.json", "--heap", "8M"],
      ["h.py", "--python", "/usr/bin/python3", "--record", "r.rec", "--trace", "--raw", "--data-size", "2M", "--stack", "1M", "--file", "/a=/b", "--gdb", "127.0.0.1:0"],
    ];
    for (const argv of lines) {
      const fast = fastInvokeArgs(argv);
      expect(fast).toBeDefined();
      expect(await commanderReads(argv)).toEqual(fast!);
    }
    expect(fastInvokeArgs(["prog", "--env", "A=1", "--env", "B=2"])?.flags.env).toEqual(["A=1", "B=2"]);
  });

  test("it gives commander what it does not follow: help, version, unknown or combined options, a missing image or value", () => {
    for (const argv of [[], ["-h"], ["noop", "--help"], ["noop", "-V"], ["noop", "--bogus"], ["noop", "-vi", "f"], ["noop", "--json=1"], ["noop", "--mem"], ["noop", "--input", "-V"], ["fib", "-5"], ["--json"], ["--"]]) {
      expect(fastInvokeArgs(argv)).toBeUndefined();
    }
  });
});
