// The wasp command line through commander: every command, its usage text, its help and its errors.
// Every failure is one line on stderr starting "wasp: ", with an exit status per error class
// (src/errors.ts, EXIT_STATUS; docs/errors.md) and no stack trace.
//
// Start-up is lazy (main.ts is the entry: the common forms of `wasp invoke` never load this module
// or commander, src/cli/fast-args.ts): this module imports only what the usage text and error
// reporting need, and each command's module — which brings in the rest of the project — is imported
// by its action (the standalone binary is split into chunks, scripts/build-cli.ts, so a command
// parses and evaluates only its own code: `wasp invoke` never loads the server, the bench or
// prom-client), and only the command named is defined. docs/benchmarks.md, "Start and creation (issue 23)".
import { Command, CommanderError } from "commander";
import { BadArgsError } from "../errors.ts";
import { VERSION } from "../version.ts";
import { DEFAULT_GRANTS } from "../hypercall/policy.ts";
import { DEFAULTS } from "../serve/config.ts";
import { hardenProcess } from "../host/harden.ts";
import { err, exitStatus, out } from "./output.ts";
import { report } from "./report.ts";

/**
 * Each command's definition, in the order of the usage text. Only the command named is defined when
 * the first argument names one (`main`).
 */
const COMMANDS: Record<string, (program: Command) => void> = {
  invoke: (program) =>
    program
      .command("invoke")
      .description("run an image once with integer arguments and print its result (RAX)")
      .argument("<image>", "image file, snapshot file (wasp snapshot -o), static Linux executable, JavaScript module (*.js, *.mjs), or the name of a built-in guest (fib, noop, hello, raw_fib64, inittable, aes)")
      .argument("[args...]", "up to six integer arguments (decimal or 0x-hex), in RDI, RSI, RDX, RCX, R8, R9; a Linux program's arguments are strings (after --, those starting with -); a JavaScript handler's are JSON values (after --input's)")
      .option("--mem <size>", "guest memory (e.g. 16M, 64MiB; default 16 MiB or what the image asks, at most 1 GiB)")
      .option("--allow <names>", `hypercalls to grant beyond ${DEFAULT_GRANTS.join(", ")} (comma-separated: time,random)`)
      .option("--timeout <ms>", "deadline in milliseconds (default 10000; 0: none)")
      .option("--no-snapshot", "ignore the guest's snapshot hypercall: every call starts at the entry")
      .option("-i, --input <file>", "the call's input data, from a file or - for standard input (guests taking main(input))")
      .option("-o, --output <file>", "write the guest's output data to a file; - for standard output, instead of the result")
      .option("--data-size <size>", "the data window for input and output (default 1M, or what fits in a smaller --mem; fixed in a snapshot file)")
      .option("--stack <size>", "the guest's stack, guard pages under it (default 1M, or what fits in a smaller --mem; fixed in a snapshot file)")
      .option("-v, --verbose", "report exits and time on stderr, and the registers of a faulting guest")
      .option("--json", "print one JSON object: value (decimal string), exits, console, output (base64), microseconds")
      .option("--no-sandbox", "run without the seccomp filter and Landlock (docs/security.md, \"The host process\")")
      .option("--raw", "take the file as a raw real-mode image whatever it looks like (text files are refused otherwise; ELF files run as Linux programs)")
      .option("--env <KEY=VALUE>", "Linux programs: an environment variable (repeatable; default: none)", collect, [])
      .option("--file <GUEST=HOST>", "grant the host file HOST read-only at the absolute path GUEST (repeatable): a Linux program opens it, a native guest reads it (virtine.readFile)", collect, [])
      .option("--dir <HOST[=GUEST]>", "Linux programs: grant the host directory HOST read-only at GUEST (default: HOST's absolute path; repeatable); its files are read when the program opens them, links out of it are not followed", collect, [])
      .option("--trace", "Linux programs: print each system call on stderr, as strace does")
      .option("--heap <size>", "JavaScript (*.js, *.mjs): the engine's heap limit (default: half of --mem)")
      .option("--python <path>", "Python (*.py and their snapshot files): the python3 to run (default: python3 on PATH; an ELF executable, not a script)")
      .option("--record <file>", "record the call — its start, arguments, input, every hypercall's and system call's answer and its outcome — for wasp replay (native images, Linux programs, JavaScript handlers — the engine's run — and their snapshot files)")
      .option("--gdb <host:port>", "wait for gdb on HOST:PORT (127.0.0.1 unless named; port 0 picks one) and run the call under it, stopped at its start: gdb FILE -ex 'target remote HOST:PORT' (docs/debugging.md)")
      .action(async (image: string, args: string[], flags) => (await import("./invoke.ts")).invokeCommand(image, args, flags)),
  replay: (program) =>
    program
      .command("replay")
      .description("run a recorded call again (wasp invoke --record), answering it from the recording and checking every step; exit 0 when it does what was recorded")
      .argument("<recording>", "the recording file")
      .option("--image <path>", "the image, executable or snapshot file to start from (default: the path recorded, or the built-in guest)")
      .option("--timeout <ms>", "deadline in milliseconds (default: the recorded one for a call that timed out, else the recorded one but at least 60000)")
      .option("--gdb <host:port>", "wait for gdb on HOST:PORT and replay the call under it, stopped at its start (docs/debugging.md)")
      .action(async (file: string, flags) => (await import("./replay.ts")).replayCommand(file, flags)),
  snapshot: (program) =>
    program
      .command("snapshot")
      .description("run an image to its snapshot hypercall and write that state to a file; or --verify a file")
      .argument("<image>", "image file, static Linux executable (it calls wasp_snapshot()), JavaScript module (*.js, *.mjs) or built-in guest name (with --verify: the snapshot file)")
      .argument("[args...]", "the first call's arguments (its initialization's): integers, or a Linux program's strings")
      .option("-o, --output <file>", "where to write the snapshot file (atomically, read-only)")
      .option("--verify", "check a snapshot file: header, and the memory part against its checksum")
      .option("--mem <size>", "guest memory (default: what the image asks, else 16 MiB)")
      .option("--allow <names>", `hypercalls to grant beyond ${DEFAULT_GRANTS.join(", ")}`)
      .option("--timeout <ms>", "deadline of the initializing call in milliseconds (default 60000)")
      .option("--data-size <size>", "the data window the file fixes for every call (default 1M)")
      .option("--stack <size>", "the stack the file fixes for every call (default 1M)")
      .option("--raw", "take the file as a raw real-mode image whatever it looks like (text and ELF files are refused otherwise)")
      .option("--env <KEY=VALUE>", "Linux programs: an environment variable (repeatable; default: none)", collect, [])
      .option("--file <GUEST=HOST>", "a host file the first call may open or read, read-only at GUEST (repeatable; grant it again to every call of the file)", collect, [])
      .option("--dir <HOST[=GUEST]>", "Linux programs: grant the host directory HOST read-only at GUEST (repeatable); the file names GUEST, never HOST: grant the same GUEST paths again to every call of it (wasp invoke FILE --dir)", collect, [])
      .option("-i, --input <file>", "the first call's input (a file, or - for standard input): a Linux program's standard input, a native image's input data")
      .option("--heap <size>", "JavaScript (*.js, *.mjs): the engine's heap limit (default: half of --mem)")
      .option("--warmup <file>", "JavaScript and Python: a JSON array of inputs handed to the handler before the snapshot")
      .option("--python <path>", "Python (*.py): the python3 to run (default: python3 on PATH; an ELF executable, not a script)")
      .action(async (image: string, args: string[], flags) => (await import("./snapshot.ts")).snapshotCommand(image, args, flags)),
  build: (program) =>
    program
      .command("build")
      .description("build a guest with the bundled zig: a Zig file into a native image, a C file into a static Linux executable; a Rust file with the rustc on PATH")
      .argument("<source>", "a .zig guest (pub fn main(...) u64, docs/guests.md), a .c program (int main(int argc, char **argv), docs/linux-guests.md) or a .rs program (fn main() with std; --native: a #![no_std] pub extern \"C\" fn main(...) -> u64)")
      .option("-o, --output <file>", "the file to write (default beside the source: NAME.bin for a native image, NAME for a Linux program)")
      .option("--name <name>", "the image's name (default: the file's name without .zig, .c or .rs)")
      .option("--optimize <mode>", "safe (default: Zig's safety checks on; C's checkable undefined behaviour traps; Rust's overflow checks on), fast or small (checks off), or debug (unoptimized, checks on: for gdb)")
      .option("--zig <path>", "another zig compiler (default: the one npm install brought)")
      .option("--linux", "a .zig file is a Linux program using Zig's standard library (pub fn main() !void), built as a static executable")
      .option("--native", "a .rs file is a #![no_std] guest (pub extern \"C\" fn main(n: u64) -> u64, the SDK as wasp::), built into a native image like a Zig guest")
      .option("--rustc <path>", "another rustc (default: the one on PATH)")
      .action(async (source: string, flags) => (await import("./build.ts")).buildCommand(source, flags)),
  inspect: (program) =>
    program
      .command("inspect")
      .description("print what an image declares")
      .argument("<image>", "image file or built-in guest name")
      .option("--raw", "take the file as a raw real-mode image whatever it looks like (text and ELF files are refused otherwise)")
      .option("--json", "one JSON object instead of the table (64-bit values as decimal strings)")
      .action(async (image: string, flags: { raw?: boolean; json?: boolean }) => (await import("./invoke.ts")).inspectCommand(image, flags)),
  bench: (program) =>
    program
      .command("bench")
      .description("run wasp's microbenchmarks: a table, or JSON lines with --json")
      .option("--json", "one JSON object per line: {name, unit, n, median, p99}")
      .option("--list", "print the names of the series (those --filter selects) and run nothing")
      .option("--runs <n>", "iterations per series (default: per series)")
      .option("--filter <regex>", "only the series whose name matches (as the table shows it; --list prints them)")
      .option("--floor [path]", "also run wasp's C yardstick of raw KVM costs (or the kvm-floor binary at path) and set each series beside it")
      .option("--rounds <n>", "repeat floor + suite this many times and report the median round (default 1; 3 with --baseline)")
      .option("--svg <file>", "also write a chart of the run beside the Wasp paper's figs. 8 and 11 (SVG)")
      .option("--baseline <file>", "compare with an earlier --json output; exit 11 if a series regressed")
      .option("--threshold <pct>", "with --baseline: how much worse (percent) counts as a regression (default 20)")
      .action(async (flags) => (await import("./bench.ts")).benchCommand(flags)),
  serve: (program) =>
    program
      .command("serve")
      .description("serve HTTP: every request runs in a virtine of the function its route names (docs/serve.md)")
      .option("--route <PREFIX=IMAGE>", "a function: requests under PREFIX run IMAGE (a Linux program as CGI, a JavaScript module, a wasp image, or a snapshot file); repeatable", collect, [])
      .option("--config <file>", "a TOML file of functions and options (SIGHUP reloads it)")
      .option("--port <n>", `the port (default ${DEFAULTS.port}; 0: any free one)`)
      .option("--host <address>", `the address to listen on (default ${DEFAULTS.host})`)
      .option("--timeout <ms>", `each request's deadline (default ${DEFAULTS.timeoutMs})`)
      .option("--max-body <size>", "the largest request body (default 1M)")
      .option("--workers <n>", "worker threads (default: one per core)")
      .option("--warm-calls <n>", `calls made to each function before /readyz says ready (default ${DEFAULTS.warmCalls})`)
      .option("--no-access-log", "no JSON access-log line per request on stderr")
      .option("--record-failures <dir>", "keep a recording of every request a wasp image failed with a 5xx, as DIR/REQUEST_ID.rec (wasp replay runs it again)")
      .option("--record-max-files <n>", "at most this many recordings (default 100; the oldest go first)")
      .option("--record-max-bytes <size>", "at most this many bytes of them (default 64M)")
      .option("--no-sandbox", "serve without Landlock and the seccomp filter (docs/security.md, \"The server\")")
      .option("--program <command...>", "serve an unmodified Linux server a connection per virtine: its path and arguments (docs/serve.md, \"Programs\")")
      .option("--listen <host:port>", "with --program: where wasp accepts the program's connections (--port is then wasp's own health and metrics)")
      .option("--keep-alive <ms>", `with --program: how long a connection may wait for its next request (default ${DEFAULTS.keepAliveMs})`)
      .option("--max-requests <n>", `with --program: requests per connection (default ${DEFAULTS.maxRequests})`)
      .option("--mem <size>", "with --program: guest memory (default 64M; 256M for a dynamically linked one)")
      .option("--allow <grants>", "with --program: grants, comma-separated (time, random)")
      .option("--env <KEY=VALUE>", "with --program: its environment (repeatable)", collect, [])
      .option("--file <GUEST=HOST>", "with --program: a read-only file it may open (repeatable)", collect, [])
      .option("--dir <HOST[=GUEST]>", "with --program: a read-only directory it may open files in (repeatable)", collect, [])
      .argument("[args...]", "with --program: more of the program's arguments, after -- (those that start with -)")
      .action(async (args: string[], flags) => (await import("./serve.ts")).serveCommand({ ...flags, programArgs: args })),
};

/** Where commander prints: standard output and error (a test passes its own). */
export interface ProgramOutput {
  out(s: string): void;
  err(s: string): void;
}

/**
 * wasp's commander program: the command `named` alone (with `help`) when it names one, else all of
 * them (the usage text and the suggestions list them).
 */
export function buildProgram(named: string | undefined, output: ProgramOutput = { out, err }): Command {
  const program = new Command()
    .name("wasp")
    .description("Run each call of a function in its own KVM virtual machine (a virtine).")
    .version(VERSION)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => output.out(s),
      writeErr: (s) => output.err(s.replace(/^error: /, "wasp: ")),
    })
    .showSuggestionAfterError();

  // Only the command named is defined when the first argument names one: commander parses a
  // command's options and arguments, and prints its errors and help, from that command alone, and
  // defining the other six cost ~2.5 ms of every start (docs/benchmarks.md, "Start and creation").
  // Anything else — no command, an option, `help`, a name mistyped — defines them all: the usage
  // text and the suggestions list them.
  for (const [name, define] of Object.entries(COMMANDS)) if (named === undefined || name === named) define(program);

  // `wasp help COMMAND`: commander's own prints the general help for a command it does not know,
  // and says nothing about it
  program.helpCommand(false);
  program
    .command("help")
    .description("display help for a command")
    .argument("[command]", "the command")
    .action((name: string | undefined) => {
      if (name === undefined) program.help();
      const command = program.commands.find((c) => c.name() === name);
      if (!command || command.name() === "help") {
        throw new BadArgsError(`unknown command '${name}' (the commands: ${program.commands.map((c) => c.name()).filter((n) => n !== "help").join(", ")})`);
      }
      command.help();
    });
  return program;
}

/** Runs the command line through commander (main.ts: whatever fast-args.ts does not read); the exit status. */
export async function commanderMain(argv: string[]): Promise<number> {
  const named = Object.hasOwn(COMMANDS, argv[2] ?? "") ? argv[2] : undefined;
  // `wasp invoke`'s JIT policy (main.ts)
  if (named === "invoke") Bun.unsafe.setJITPolicy(10);
  const program = buildProgram(named);
  try {
    // every command: no_new_privs, not dumpable, no core dumps (guest memory stays off the disk)
    hardenProcess();
    await program.parseAsync(argv);
    return exitStatus();
  } catch (e) {
    // commander has already printed its message (help, version, usage errors)
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    return report(e);
  }
}

/** Commander's accumulator for repeatable options. */
function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
