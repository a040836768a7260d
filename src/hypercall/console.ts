// The guest's console output of one invocation, capped: bytes beyond the cap are dropped and the
// result says so.
export const DEFAULT_MAX_OUTPUT = 1024 * 1024;

export class ConsoleSink {
  #chunks: Uint8Array[] = [];
  #length = 0;
  #truncated = false;

  constructor(readonly cap: number) {}

  append(bytes: Uint8Array): void {
    const room = this.cap - this.#length;
    if (bytes.length > room) {
      this.#truncated = true;
      bytes = bytes.subarray(0, Math.max(0, room));
    }
    if (bytes.length === 0) return;
    this.#chunks.push(bytes);
    this.#length += bytes.length;
  }

  get truncated(): boolean {
    return this.#truncated;
  }

  /** The collected bytes; clears the sink for the next invocation. */
  take(): Uint8Array {
    const out = this.#chunks.length === 1 ? this.#chunks[0] : Buffer.concat(this.#chunks);
    this.#chunks = [];
    this.#length = 0;
    this.#truncated = false;
    return out ?? new Uint8Array(0);
  }
}
