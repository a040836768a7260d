// CGI/1.1 (RFC 3875) for `wasp serve`: a request's meta-variables as a Linux guest's environment,
// and the guest's answer on stdout — header lines, a blank line, the body — parsed into a response.
// The answer is the guest's: every byte of it is checked, and anything a well-behaved CGI program
// would not write is a CgiError (the server's 502), never a crash and never a header the guest
// should not set (hop-by-hop headers, its own Content-Length, a header split across lines).
import { VERSION } from "../version.ts";

/** A response as the server sends it. */
export interface GuestResponse {
  status: number;
  headers: [string, string][];
  body: Uint8Array;
  /** how long the guest's call ran in its VM, µs (the rest of the call was the worker pool's) */
  runMicros?: number;
  /** the call's recording (`--record-failures`): kept when the answer is a 5xx */
  recording?: Uint8Array;
}

/** The guest's answer is not a CGI response (the server answers 502 and logs `message`). */
export class CgiError extends Error {
  override readonly name = "CgiError";
}

/** What a request brings to its guest, whatever the guest's kind. */
export interface RequestInfo {
  method: string;
  /** the request's path, percent-decoded, as the client sent it */
  path: string;
  /** the query string without "?", as sent (not decoded) */
  query: string;
  /** the route's prefix ("" for "/") and the path after it ("/x", or "") */
  scriptName: string;
  pathInfo: string;
  /** header names lower-case, repeated headers joined with ", " */
  headers: [string, string][];
  body: Uint8Array;
  remoteAddr: string;
  serverName: string;
  serverPort: number;
}

/** The most header bytes a guest may write before its blank line, and the most header lines. */
export const MAX_CGI_HEADER_BYTES = 64 * 1024;
export const MAX_CGI_HEADERS = 100;

/** Headers a guest never sets: they describe the connection, which is the server's. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection", "content-length", "date", "server"]);

/** An HTTP token (RFC 9110, 5.6.2): a header name or a method. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A field value: visible ASCII, spaces, tabs and obs-text; no CR, LF or NUL. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * The meta-variables of RFC 3875, section 4.1, for a request: `REQUEST_METHOD`, `QUERY_STRING`,
 * `PATH_INFO`, `SCRIPT_NAME`, `CONTENT_TYPE`, `CONTENT_LENGTH`, `SERVER_*`, `REMOTE_ADDR`, `HTTP_*`
 * for the other headers. A header whose name cannot be a variable's is left out, and so is
 * `Proxy` (httpoxy: no request may set a program's `HTTP_PROXY`).
 */
export function cgiEnvironment(r: RequestInfo): Record<string, string> {
  const env: Record<string, string> = {
    GATEWAY_INTERFACE: "CGI/1.1",
    SERVER_PROTOCOL: "HTTP/1.1",
    SERVER_SOFTWARE: `wasp/${VERSION}`,
    SERVER_NAME: r.serverName,
    SERVER_PORT: String(r.serverPort),
    REQUEST_METHOD: r.method,
    SCRIPT_NAME: r.scriptName,
    PATH_INFO: r.pathInfo,
    QUERY_STRING: r.query,
    REMOTE_ADDR: r.remoteAddr,
    REMOTE_HOST: r.remoteAddr,
  };
  if (r.body.length > 0) env.CONTENT_LENGTH = String(r.body.length);
  for (const [name, value] of r.headers) {
    if (name === "content-type") {
      env.CONTENT_TYPE = value;
      continue;
    }
    if (name === "content-length" || name === "proxy") continue;
    if (!/^[a-z0-9-]+$/.test(name) || value.includes("\0")) continue;
    env[`HTTP_${name.toUpperCase().replaceAll("-", "_")}`] = value;
  }
  return env;
}

/**
 * The guest's stdout as a response (RFC 3875, section 6): header lines ending in LF or CRLF up to
 * an empty line, then the body. `Status: NNN reason` sets the status (default 200; 302 with a
 * `Location` and no `Status`); a non-empty body needs a `Content-Type`.
 */
export function parseCgiResponse(out: Uint8Array): GuestResponse {
  const end = headerEnd(out);
  if (end === undefined) {
    throw new CgiError(out.length > MAX_CGI_HEADER_BYTES ? `no blank line in the first ${MAX_CGI_HEADER_BYTES} bytes: not a CGI response` : "no blank line after the headers: not a CGI response");
  }
  const head = latin1(out.subarray(0, end.headEnd));
  const body = out.subarray(end.bodyStart);
  const lines = head.length === 0 ? [] : head.split(/\r?\n/);
  if (lines.length > MAX_CGI_HEADERS) throw new CgiError(`${lines.length} header lines, more than ${MAX_CGI_HEADERS}`);
  let status: number | undefined;
  let location = false;
  let contentType = false;
  const headers: [string, string][] = [];
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon <= 0) throw new CgiError(`a header line without a name and a colon: ${JSON.stringify(line.slice(0, 60))}`);
    const name = line.slice(0, colon);
    const value = line.slice(colon + 1).trim();
    if (!TOKEN.test(name)) throw new CgiError(`a header name that is not a token: ${JSON.stringify(name.slice(0, 60))}`);
    if (!FIELD_VALUE.test(value)) throw new CgiError(`header ${name} has a control character in its value`);
    const lower = name.toLowerCase();
    if (lower === "status") {
      if (status !== undefined) throw new CgiError("two Status headers");
      const m = /^([1-5][0-9][0-9])(?: .*)?$/.exec(value);
      if (!m) throw new CgiError(`Status ${JSON.stringify(value.slice(0, 40))} is not a 3-digit code from 100 to 599`);
      status = Number(m[1]);
      if (status < 200) throw new CgiError(`Status ${status}: informational responses are the server's`);
      continue;
    }
    if (HOP_BY_HOP.has(lower) || lower.startsWith("proxy-")) continue; // the server's to set
    if (lower === "location") location = true;
    if (lower === "content-type") contentType = true;
    headers.push([name, value]);
  }
  const code = status ?? (location ? 302 : 200);
  if (body.length > 0 && !contentType) throw new CgiError("a body without a Content-Type header");
  if ((code === 204 || code === 304) && body.length > 0) throw new CgiError(`status ${code} with a body`);
  return { status: code, headers, body };
}

/** Where the header section ends (before its blank line) and the body starts, or undefined. */
function headerEnd(out: Uint8Array): { headEnd: number; bodyStart: number } | undefined {
  const limit = Math.min(out.length, MAX_CGI_HEADER_BYTES + 4);
  // a response with no headers at all starts with its blank line
  if (out[0] === 0x0a) return { headEnd: 0, bodyStart: 1 };
  if (out[0] === 0x0d && out[1] === 0x0a) return { headEnd: 0, bodyStart: 2 };
  for (let i = 0; i < limit; i++) {
    if (out[i] !== 0x0a) continue;
    if (out[i + 1] === 0x0a) return { headEnd: i > 0 && out[i - 1] === 0x0d ? i - 1 : i, bodyStart: i + 2 };
    if (out[i + 1] === 0x0d && out[i + 2] === 0x0a) return { headEnd: i > 0 && out[i - 1] === 0x0d ? i - 1 : i, bodyStart: i + 3 };
  }
  return undefined;
}

/** Bytes as ISO-8859-1 text: one character per byte, whatever the byte. */
function latin1(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("latin1");
}
