// The image kinds wasp runs, by name: what a snapshot, a shell and the runner ask of an image.
import type { Image } from "../image/image.ts";
import type { ImageKind } from "./kind.ts";
import { NATIVE } from "./native.ts";
import { RAW } from "./raw.ts";
import { LINUX } from "./linux.ts";

const KINDS: Record<Image["kind"], ImageKind> = { native: NATIVE, raw: RAW, linux: LINUX };

export function kindOf(name: Image["kind"]): ImageKind {
  return KINDS[name];
}

/** The kind of a snapshot's image (snapshot files keep it in their flags). */
export function kindOfMeta(meta: { kind: Image["kind"] }): ImageKind {
  return KINDS[meta.kind];
}
