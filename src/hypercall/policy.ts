// Which hypercalls an invocation may make: granted by the host (CLI --allow, library option
// `allow`), never by the image. The default grants only what pure computation needs.
import { Hypercalls, type HypercallName } from "../abi/guest-abi.ts";
import { BadArgsError } from "../errors.ts";

/** What every virtine may call without a grant: the one source of this default (docs are tested against it). */
export const DEFAULT_GRANTS: readonly HypercallName[] = Hypercalls.filter((h) => h.defaultGranted).map((h) => h.name);

export class Policy {
  /** bit `nr` set: hypercall `nr` is granted */
  readonly #granted: number;
  readonly names: readonly HypercallName[];

  private constructor(names: readonly HypercallName[]) {
    this.names = names;
    let mask = 0;
    for (const n of names) mask |= 1 << nrOf(n);
    this.#granted = mask;
  }

  /** The default grants plus `allow` (names of hypercalls). Unknown names are refused. */
  static grant(allow: readonly string[] = []): Policy {
    const names = new Set<HypercallName>(DEFAULT_GRANTS);
    for (const a of allow) {
      const h = Hypercalls.find((x) => x.name === a);
      if (!h) throw new BadArgsError(`unknown hypercall "${a}" in the allow list (known: ${Hypercalls.map((x) => x.name).join(", ")})`);
      names.add(h.name);
    }
    return new Policy([...names]);
  }

  allows(nr: number): boolean {
    return nr >= 0 && nr < 31 && (this.#granted & (1 << nr)) !== 0;
  }

  /** Whether the hypercall named `name` is granted (a Linux guest's clock and randomness follow these grants). */
  has(name: HypercallName): boolean {
    return this.names.includes(name);
  }
}

function nrOf(name: HypercallName): number {
  const h = Hypercalls.find((x) => x.name === name);
  if (!h) throw new BadArgsError(`unknown hypercall ${name}`);
  return h.nr;
}

export function hypercallName(nr: bigint): string {
  const h = Hypercalls.find((x) => BigInt(x.nr) === nr);
  return h ? h.name : `#${nr}`;
}
