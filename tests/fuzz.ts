// How many cases the property tests run: a fixed seed and a few thousand cases in `npm test`
// (reproducible), many more with a fresh seed in `npm run fuzz` (WASP_FUZZ_RUNS, WASP_FUZZ_SEED;
// fast-check prints the seed and the shrunk case of a failure, to replay it with WASP_FUZZ_SEED).
import fc from "fast-check";

const seed = process.env.WASP_FUZZ_SEED === "random" ? Date.now() ^ (Math.random() * 2 ** 31) : Number(process.env.WASP_FUZZ_SEED ?? 0x5eed);
fc.configureGlobal({ seed });

/** The number of runs for a property: `n` in `npm test`, WASP_FUZZ_RUNS in `npm run fuzz`. */
export function runs(n: number): number {
  const forced = Number(process.env.WASP_FUZZ_RUNS);
  return Number.isSafeInteger(forced) && forced > 0 ? forced : n;
}
