// A command's failure as the one line it prints on stderr and its exit status (src/errors.ts,
// EXIT_STATUS; docs/errors.md), shared by the two ways a command line runs (main.ts).
import { EXIT_STATUS, WaspError } from "../errors.ts";
import { EXIT_PIPE_CLOSED, PipeClosed, err } from "./output.ts";

/** Prints an error as one line and returns the exit status for its class. */
export function report(e: unknown): number {
  // the reader of standard output went away: stop quietly, as a tool SIGPIPE kills does
  if (e instanceof PipeClosed) return EXIT_PIPE_CLOSED;
  if (e instanceof WaspError) {
    err(`wasp: ${e.message}\n`);
    return EXIT_STATUS[e.code] ?? 1;
  }
  const message = e instanceof Error ? e.message : String(e);
  err(`wasp: internal error: ${message}\n`);
  return 1;
}
