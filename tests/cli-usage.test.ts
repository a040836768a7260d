// Usage errors that need no VM: each one line naming what is wrong, with its status.
import { expect, test } from "bun:test";
import { EXIT_STATUS } from "../src/errors.ts";
import { wasp } from "./support.ts";

test("wasp help of an unknown command says it is unknown, and lists the commands", () => {
  const r = wasp(["help", "nosuch"]);
  expect(r.status).toBe(EXIT_STATUS.WASP_BAD_ARGS);
  expect(r.stderr).toBe("wasp: unknown command 'nosuch' (the commands: invoke, snapshot, inspect, bench)\n");
  expect(r.stdout).toBe("");
  const known = wasp(["help", "inspect"]);
  expect(known.status).toBe(0);
  expect(known.stdout).toMatch(/^Usage: wasp inspect \[options\] <image>/);
});

test("wasp snapshot -o into a folder that does not exist is refused before anything runs, naming the file asked for", () => {
  const r = wasp(["snapshot", "fib", "-o", "/nonexistent/x.snap"]);
  expect(r.status).toBe(EXIT_STATUS.WASP_BAD_ARGS);
  expect(r.stderr).toBe("wasp: -o /nonexistent/x.snap: its folder /nonexistent does not exist or is not writable\n");
});
