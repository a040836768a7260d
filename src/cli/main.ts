#!/usr/bin/env bun
// The wasp command line's entry. A `wasp invoke` whose arguments src/cli/fast-args.ts reads as
// commander would is run at once, without loading commander or defining any command (~3-5 ms of
// every such start here); every other command line — other commands, help, `--version`, anything
// the reader gives up on, and so every usage error — goes to commander (src/cli/cli.ts). Both ways
// print a failure as one `wasp: ...` line with its class's exit status (src/cli/report.ts).
import { fastInvokeArgs } from "./fast-args.ts";

async function main(argv: string[]): Promise<number> {
  const fast = argv[2] === "invoke" ? fastInvokeArgs(argv.slice(3)) : undefined;
  if (!fast) return (await import("./cli.ts")).commanderMain(argv);
  // `wasp invoke` runs nearly all of its code once, and JavaScriptCore's JIT compiling what crosses
  // its tier-up thresholds meanwhile is work the process never gets back: ten times the thresholds
  // keep that code in the interpreter, ~3 ms of a `wasp invoke noop` here (median of 100
  // alternating runs; set back to normal before the call, half of it is lost). The call runs under
  // it too: the host's code for a long call's exits is compiled later. Every other command — the
  // server, the bench, worker threads — keeps JavaScriptCore's normal policy.
  Bun.unsafe.setJITPolicy(10);
  const [{ hardenProcess }, { invokeCommand }, { exitStatus }, { report }] = await Promise.all([import("../host/harden.ts"), import("./invoke.ts"), import("./output.ts"), import("./report.ts")]);
  try {
    // every command: no_new_privs, not dumpable, no core dumps (guest memory stays off the disk)
    hardenProcess();
    await invokeCommand(fast.image, fast.args, fast.flags as Parameters<typeof invokeCommand>[2]);
    return exitStatus();
  } catch (e) {
    return report(e);
  }
}

const status = await main(process.argv);
// with nobody reading, nothing left to do is worth finishing (a benchmark's threads, say); the
// module is loaded by now, either way
if (status === (await import("./output.ts")).EXIT_PIPE_CLOSED) process.exit(status);
process.exitCode = status;
