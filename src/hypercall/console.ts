// The guest's console output of one invocation, capped: bytes beyond the cap are dropped and the
// result says so. The bytes are kept in one buffer that grows by doubling up to the cap, so what
// a call costs the host is bounded by the cap, never by the number of writes (a chunk per write
// cost ~140 host bytes per console byte for a million one-byte writes).
export const DEFAULT_MAX_OUTPUT = 1024 * 1024;

/** The first allocation: most calls print a line or nothing. */
const INITIAL_CAPACITY = 256;
/**
 * A buffer up to this size is kept for the next call; a larger one (a call that printed a lot) is
 * let go at take(), so an idle runner does not hold up to `cap` bytes.
 */
const KEPT_CAPACITY = 64 * 1024;

const EMPTY = new Uint8Array(0);

export class ConsoleSink {
  #buffer: Uint8Array = EMPTY;
  #length = 0;
  #truncated = false;

  constructor(readonly cap: number) {}

  /** Copies `bytes` in (the caller may reuse them); what passes the cap is dropped. */
  append(bytes: Uint8Array): void {
    const room = this.cap - this.#length;
    if (bytes.length > room) {
      this.#truncated = true;
      bytes = bytes.subarray(0, Math.max(0, room));
    }
    if (bytes.length === 0) return;
    const end = this.#length + bytes.length;
    if (end > this.#buffer.length) this.#grow(end);
    this.#buffer.set(bytes, this.#length);
    this.#length = end;
  }

  /** Doubles the buffer until `needed` fits, never past the cap (needed <= cap here). */
  #grow(needed: number): void {
    let capacity = Math.max(this.#buffer.length, INITIAL_CAPACITY);
    while (capacity < needed) capacity *= 2;
    const next = new Uint8Array(Math.min(capacity, this.cap));
    next.set(this.#buffer.subarray(0, this.#length));
    this.#buffer = next;
  }

  get truncated(): boolean {
    return this.#truncated;
  }

  /** Bytes the sink holds now (its buffer's size, not the output's): at most the cap. */
  get capacity(): number {
    return this.#buffer.length;
  }

  /**
   * The collected bytes, which belong to the caller: a copy, so the next call's writes into the
   * kept buffer cannot change them. Clears the sink for the next invocation.
   */
  take(): Uint8Array {
    const out = this.#length === 0 ? EMPTY : this.#buffer.slice(0, this.#length);
    if (this.#buffer.length > KEPT_CAPACITY) this.#buffer = EMPTY;
    this.#length = 0;
    this.#truncated = false;
    return out;
  }
}
