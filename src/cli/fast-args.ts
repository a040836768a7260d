// `wasp invoke`'s command line read without commander, for the forms people type: loading commander
// and building its program cost ~3-5 ms of every `wasp invoke` here (docs/benchmarks.md, "Start and
// creation"), more than the call of a small image. The reader takes only what it can read exactly
// as commander would — the options of INVOKE_OPTION_FLAGS spelled out (`--mem 16M`, `--mem=16M`,
// `-i FILE`), operands, `--` — and gives up (undefined) on anything else: an option it does not
// know (`-h`, `-V`, `--bogus`, `-vi`, `-5`), a boolean with a value, a missing value, a value
// starting with `-` but `-` itself (commander's program would take `-V` or `-h` there as its own),
// no image. Then main.ts hands the command line to commander, which parses it, prints help or
// says what is wrong, as for every other command. tests/cli-fast-args.test.ts holds the reader to
// commander's answers on generated command lines, and the table to the command's definition.
// Imports nothing: it runs before anything else is loaded.

/** `wasp invoke`'s options, as its commander definition spells them (src/cli/cli.ts; the test compares them). */
export const INVOKE_OPTION_FLAGS: readonly string[] = [
  "--mem <size>",
  "--allow <names>",
  "--timeout <ms>",
  "--no-snapshot",
  "-i, --input <file>",
  "-o, --output <file>",
  "--data-size <size>",
  "--stack <size>",
  "-v, --verbose",
  "--json",
  "--no-sandbox",
  "--raw",
  "--env <KEY=VALUE>",
  "--file <GUEST=HOST>",
  "--dir <HOST[=GUEST]>",
  "--trace",
  "--heap <size>",
  "--python <path>",
  "--record <file>",
  "--gdb <host:port>",
];

/** The options given more than once that add up (commander's `collect`, default []). */
export const INVOKE_REPEATABLE: readonly string[] = ["env", "file", "dir"];

interface FastOption {
  /** commander's attribute name: the long flag in camelCase, without `no-` */
  key: string;
  takesValue: boolean;
  negated: boolean;
  repeatable: boolean;
}

const OPTIONS = new Map<string, FastOption>();
const DEFAULTS: [string, () => unknown][] = [];
// read with string operations: a regular expression compiled at every start cost more than the rest
for (const flags of INVOKE_OPTION_FLAGS) {
  const space = flags.indexOf(" <");
  const names = (space < 0 ? flags : flags.slice(0, space)).split(", ");
  const long = names[names.length - 1];
  if (!long.startsWith("--") || names.length > 2 || (names.length === 2 && !(names[0].length === 2 && names[0][0] === "-"))) throw new Error(`fast-args: cannot read the option flags ${flags}`);
  const negated = long.startsWith("--no-");
  const key = camel(negated ? long.slice(5) : long.slice(2));
  const option: FastOption = { key, takesValue: space >= 0, negated, repeatable: INVOKE_REPEATABLE.includes(key) };
  for (const name of names) OPTIONS.set(name, option);
  if (negated) DEFAULTS.push([key, () => true]);
  if (option.repeatable) DEFAULTS.push([key, () => []]);
}

/** commander's attribute name of a long option: `data-size` is `dataSize`. */
function camel(name: string): string {
  return name
    .split("-")
    .map((w, i) => (i === 0 || w === "" ? w : w[0].toUpperCase() + w.slice(1)))
    .join("");
}

/** What commander's `invoke` action is called with. */
export interface InvokeArgs {
  image: string;
  args: string[];
  flags: Record<string, unknown>;
}

/** `wasp invoke`'s arguments (those after `invoke`) read as commander reads them, or undefined where this reader does not follow it. */
export function fastInvokeArgs(argv: readonly string[]): InvokeArgs | undefined {
  const flags: Record<string, unknown> = {};
  for (const [key, value] of DEFAULTS) flags[key] = value();
  const operands: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") {
      for (let j = i + 1; j < argv.length; j++) operands.push(argv[j]);
      break;
    }
    if (arg.length < 2 || arg[0] !== "-") {
      operands.push(arg);
      continue;
    }
    let name = arg;
    let value: string | undefined;
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    if (eq > 2) {
      name = arg.slice(0, eq);
      value = arg.slice(eq + 1);
    }
    const option = OPTIONS.get(name);
    if (!option) return undefined;
    if (!option.takesValue) {
      if (value !== undefined) return undefined;
      flags[option.key] = !option.negated;
      continue;
    }
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined || (value.length > 1 && value[0] === "-")) return undefined;
    }
    flags[option.key] = option.repeatable ? [...(flags[option.key] as string[]), value] : value;
  }
  if (operands.length === 0) return undefined;
  return { image: operands[0], args: operands.slice(1), flags };
}
