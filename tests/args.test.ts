// Arguments checked at run time: Bun does not check TypeScript's types, so a script can pass a
// string, a float or anything else where an integer belongs. No VM needed.
import { expect, test } from "bun:test";
import { checkArgs, describeValue } from "../src/virtine/runner.ts";
import { BadArgsError } from "../src/errors.ts";

test("integers become u64 (negatives as two's complement); anything else is one clear BadArgsError", () => {
  expect(checkArgs([1, -1, 2n ** 64n - 1n])).toEqual([1n, 2n ** 64n - 1n, 2n ** 64n - 1n]);
  expect(() => checkArgs(["12" as unknown as number])).toThrow(new BadArgsError('argument 1 ("12") is not an integer'));
  expect(() => checkArgs([1, 2.5])).toThrow("argument 2 (2.5) is not an integer");
  expect(() => checkArgs([2n ** 64n])).toThrow("argument 1 (18446744073709551616) does not fit in 64 bits");
  expect(() => checkArgs("12" as unknown as number[])).toThrow('the arguments are "12", not a list of integers');
  expect(() => checkArgs([1, 2, 3, 4, 5, 6, 7])).toThrow("7 arguments given, a virtine takes at most 6");
});

test("a value in a message: strings quoted and cut, objects by kind", () => {
  expect(describeValue("x".repeat(50))).toBe(`"${"x".repeat(40)}…"`);
  expect(describeValue({})).toBe("an object");
  expect(describeValue(() => 1)).toBe("a function");
  expect(describeValue(new Map())).toBe("a Map");
  expect(describeValue([1])).toBe("a list");
  expect(describeValue(null)).toBe("null");
});
