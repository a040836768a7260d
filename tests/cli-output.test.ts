// What the command line prints, when whoever reads it goes away (EPIPE) or the disk is full
// (ENOSPC): the first ends the command quietly, as a Unix tool that SIGPIPE kills (status 141);
// the second is one `wasp: ...` line and WASP_WRITE's status. Never a stack trace. Needs no KVM
// (inspect and --help print without a VM); the KVM case is in tests/cli.test.ts.
import { describe, expect, test } from "bun:test";
import { EXIT_STATUS } from "../src/errors.ts";
import { WASP, waspIntoClosedPipe } from "./support.ts";

describe("standard output that cannot be written", () => {
  test("a reader that went away ends the command quietly with status 141", () => {
    for (const args of [["inspect", "fib"], ["--help"], ["--version"]]) {
      expect(waspIntoClosedPipe(args)).toEqual({ status: 141, stderr: "" });
    }
  });

  test("a full disk is one line and WASP_WRITE's status", () => {
    for (const args of [["inspect", "fib"], ["--help"]]) {
      const p = Bun.spawnSync([WASP, ...args], { stdout: Bun.file("/dev/full"), stderr: "pipe" });
      expect(p.exitCode).toBe(EXIT_STATUS.WASP_WRITE);
      expect(p.stderr.toString()).toBe("wasp: cannot write to standard output (ENOSPC)\n");
    }
  });
});
