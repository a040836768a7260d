// A served program's connection (`wasp serve --program`): the real socket wasp accepted, as the
// connection a virtine resumed at the program's listener serves (src/linux/net.ts). It counts the
// connection's requests — a request is the bytes that come after the program has answered — and
// ends the connection for the program (its next read sees the end) past the request cap. It knows
// whether the program has answered the request in progress, so that a failure before any byte of
// the answer can still be answered with an HTTP status (502, 504) by the server.
import { closeFd, recvNow, shutdownFd, waitFor, writeAll } from "../../ffi/net.ts";
import type { Connection } from "../linux/net.ts";

const RECEIVE_BUFFER = new Uint8Array(64 * 1024);

export interface ConnectionStats {
  requests: number;
  bytesIn: number;
  bytesOut: number;
}

export class SocketConnection implements Connection {
  readonly peer: { address: string; port: number };
  readonly #fd: number;
  readonly #maxRequests: number;
  /** the thread's receive buffer (one connection at a time per thread; what is received is copied out) */
  readonly #buf = RECEIVE_BUFFER;
  /** the program closed it (its last fd) */
  #closed = false;
  /** the socket is closed */
  #released = false;
  /** the program has sent bytes since it last received some */
  #answered = false;
  /** the program has sent bytes of the answer to the request in progress */
  #sentThisRequest = false;
  readonly stats: ConnectionStats = { requests: 0, bytesIn: 0, bytesOut: 0 };
  /** the connection's first bytes (up to 16), to tell whether it speaks HTTP */
  #head = "";

  constructor(fd: number, peer: { address: string; port: number }, maxRequests: number) {
    this.#fd = fd;
    this.peer = peer;
    this.#maxRequests = maxRequests;
  }

  /** The program had sent nothing of its answer to the request in progress (a failure can still be a status). */
  get unanswered(): boolean {
    return !this.#sentThisRequest && !this.#released;
  }

  /** Its first bytes are an HTTP/1 request line's start: a failure can be answered with a status. */
  get speaksHttp(): boolean {
    return /^[A-Z]{3,7} [^ \r\n]/.test(this.#head);
  }

  get closed(): boolean {
    return this.#closed;
  }

  receive(max: number, ms: number, peek: boolean): Uint8Array | "end" | "wait" {
    if (this.#closed) return "end";
    // past the request cap, the program sees the end of the connection where the next request would start
    if (this.#answered && this.stats.requests >= this.#maxRequests) return "end";
    if (ms !== 0 && !waitFor(this.#fd, ms < 0 ? -1 : ms)) return "wait";
    const got = recvNow(this.#fd, this.#buf.length > max ? this.#buf.subarray(0, max) : this.#buf, peek);
    if (typeof got === "string" || peek) return typeof got === "string" ? got : got.slice();
    if (this.#answered || this.stats.requests === 0) {
      this.stats.requests++;
      this.#answered = false;
      this.#sentThisRequest = false;
    }
    if (this.#head.length < 16) this.#head += String.fromCharCode(...got.subarray(0, 16 - this.#head.length));
    this.stats.bytesIn += got.length;
    return got.slice();
  }

  readable(ms: number): boolean {
    if (this.#closed) return true;
    if (this.#answered && this.stats.requests >= this.#maxRequests) return true;
    return waitFor(this.#fd, ms);
  }

  send(bytes: Uint8Array): boolean {
    if (this.#closed) return false;
    this.#answered = true;
    this.#sentThisRequest = true;
    let ok = false;
    try {
      ok = writeAll(this.#fd, bytes);
    } catch {
      ok = false; // the send timed out (a peer that does not read): the connection is over for the program
    }
    if (ok) this.stats.bytesOut += bytes.length;
    return ok;
  }

  shutdown(how: number): void {
    if (!this.#closed) shutdownFd(this.#fd, how);
    if (how !== 0) this.#sentThisRequest = true; // the program has said its last: nothing is left to answer for it
  }

  /**
   * The program closed its last fd of the connection: it reads and writes no more. If it answered,
   * the peer sees the end now (its write side shut); the socket itself closes when the call ends
   * (`release`), so that a failure before any answer can still be answered with a status.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#sentThisRequest && !this.#released) shutdownFd(this.#fd, 1);
  }

  /**
   * Closes the socket, once (the server, when the call has ended). What the peer sent that nobody
   * read is read first: a close with unread bytes is a reset, which could destroy the answer
   * before the peer has read it.
   */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#closed = true;
    for (let i = 0; i < 16 && recvNow(this.#fd, this.#buf, false) instanceof Uint8Array; i++);
    closeFd(this.#fd);
  }

  /** Writes a whole answer of the server's (a 502 or 504 before the program answered), then closes. */
  failWith(bytes: Uint8Array): void {
    if (this.#released) return;
    try {
      writeAll(this.#fd, bytes);
    } catch {
      // the peer does not read: closing is all that is left
    }
    this.release();
  }
}

/**
 * A connection of wasp's own, in memory: the request it sends, then its end; what the program
 * answers is kept (`answer`). A served program's warm-up connections are these (their sites trained
 * into the snapshot, src/serve/program-worker.ts).
 */
export class MemoryConnection implements Connection {
  readonly peer = { address: "127.0.0.1", port: 0 };
  #request: Uint8Array | undefined;
  readonly #answer: Uint8Array[] = [];

  constructor(request: Uint8Array) {
    this.#request = request;
  }

  get answer(): Uint8Array {
    return Buffer.concat(this.#answer);
  }

  receive(max: number, _ms: number, peek: boolean): Uint8Array | "end" | "wait" {
    const r = this.#request;
    if (r === undefined || r.length === 0) return "end";
    const got = r.subarray(0, max);
    if (!peek) this.#request = r.subarray(got.length);
    return got.slice();
  }

  readable(): boolean {
    return true;
  }

  send(bytes: Uint8Array): boolean {
    this.#answer.push(bytes.slice());
    return true;
  }

  shutdown(): void {}

  close(): void {
    this.#request = undefined;
  }
}
