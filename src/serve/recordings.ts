// `wasp serve --record-failures DIR`: the recording of every request a wasp image failed with a
// 5xx, in DIR as REQUEST_ID.rec (docs/recording-format.md; `wasp replay DIR/ID.rec` runs it again).
// Bounded by count and bytes: the oldest of this server's recordings go first. A recording that
// cannot be written is logged and dropped; the request's answer never waits on it.
import { renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RecordFailures } from "./config.ts";

export class FailureRecordings {
  readonly #kept: { path: string; bytes: number }[] = [];
  #bytes = 0;

  constructor(
    readonly bounds: RecordFailures,
    readonly log: (line: string) => void,
  ) {}

  /** Keeps `recording` as the failure of request `id` (a server-made id: hex, a dash, base 36). */
  keep(id: string, recording: Uint8Array | undefined): void {
    if (!recording || !/^[0-9a-f]{8}-[0-9a-z]+$/.test(id)) return;
    if (recording.length > this.bounds.maxBytes) {
      this.log(JSON.stringify({ level: "warn", msg: "recording dropped: larger than record_max_bytes", request_id: id, bytes: recording.length }));
      return;
    }
    while (this.#kept.length >= this.bounds.maxFiles || this.#bytes + recording.length > this.bounds.maxBytes) {
      const old = this.#kept.shift()!;
      this.#bytes -= old.bytes;
      rmSync(old.path, { force: true });
    }
    const path = join(this.bounds.dir, `${id}.rec`);
    try {
      // whole or not at all: a reader never sees half a recording
      const tmp = `${path}.tmp`;
      writeFileSync(tmp, recording, { mode: 0o600 });
      renameSync(tmp, path);
    } catch (e) {
      this.log(JSON.stringify({ level: "error", msg: "recording not written", request_id: id, error: e instanceof Error ? e.message : String(e) }));
      return;
    }
    this.#kept.push({ path, bytes: recording.length });
    this.#bytes += recording.length;
    this.log(JSON.stringify({ level: "info", msg: "recorded", request_id: id, file: path }));
  }

  /** Recordings this server keeps now, and their bytes. */
  get stats(): { files: number; bytes: number } {
    return { files: this.#kept.length, bytes: this.#bytes };
  }
}
