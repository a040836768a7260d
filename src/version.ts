// wasp's version, written into snapshot files and printed by `wasp --version`.
export const VERSION = "0.1.0";
