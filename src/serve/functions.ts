// The functions `wasp serve` runs, one per route, each a virtine of its kind on the worker pool,
// and what a request is to each kind:
//   Linux programs  CGI/1.1: the meta-variables as the environment, the body on stdin, a CGI
//                   response on stdout (cgi.ts);
//   JavaScript      the handler gets { method, url, path, query, headers, body } and returns
//                   { status, headers, body } or any value, sent as JSON;
//   wasp images     (Zig SDK, raw, their snapshot files) the request as an HTTP/1.1 message in
//                   their input, a CGI response in their output (`virtine.http` in the SDK); an
//                   image that writes nothing answers its result as text.
import { createHash } from "node:crypto";
import { existsSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { BadImageError } from "../errors.ts";
import { isElf } from "../linux/elf.ts";
import { isSnapshotFile, linuxSnapshotImageName } from "../snapshot/file.ts";
import { JS_PROGRAM } from "../js/engine.ts";
import { readHead } from "../image/file.ts";
import { Virtine } from "../api/virtine.ts";
import type { JsVirtine } from "../api/js.ts";
import type { WorkerPool } from "../api/workers.ts";
import { CgiError, cgiEnvironment, parseCgiResponse, type GuestResponse, type RequestInfo } from "./cgi.ts";
import type { FunctionConfig } from "./config.ts";

export type FunctionKind = "linux" | "js" | "image";

export interface ServedFunction {
  readonly config: FunctionConfig;
  readonly kind: FunctionKind;
  /** calls in flight now */
  inflight: number;
  handle(req: RequestInfo, signal: AbortSignal): Promise<GuestResponse>;
  close(): Promise<void>;
}

/** What kind of function an image file is, from its name and first bytes. */
export function kindOf(path: string): FunctionKind {
  if (/\.m?js$/i.test(path)) return "js";
  let head: Uint8Array;
  try {
    head = readHead(path).head;
  } catch (e) {
    throw new BadImageError(`${path}: cannot read it (${e instanceof Error ? e.message : String(e)})`);
  }
  if (isElf(head)) return "linux";
  if (isSnapshotFile(head)) {
    const linuxName = linuxSnapshotImageName(head);
    if (linuxName === JS_PROGRAM) return "js";
    if (linuxName !== undefined) {
      throw new BadImageError(`${path}: a Linux program's snapshot file cannot serve CGI (its environment, where CGI puts a request, is fixed in the snapshot): serve the executable`);
    }
  }
  return "image";
}

/** Loads a function: its virtine made and checked (a bad image or option rejects here). */
/**
 * The function of `config` on `workers`. `recordDir` (`--record-failures`): every call is recorded;
 * a JavaScript module served from source then starts from a snapshot file of its warm engine
 * written there (the state its recordings start from, which replays need on disk).
 */
export async function loadFunction(config: FunctionConfig, workers: WorkerPool, recordDir?: string): Promise<ServedFunction> {
  const record = recordDir !== undefined;
  const kind = kindOf(config.image);
  const common = { workers, timeoutMs: config.timeoutMs, allow: config.allow, snapshot: config.snapshot, ...(config.memory !== undefined && { memory: config.memory }) };
  if (kind === "js") {
    let js: JsVirtine;
    if (/\.m?js$/i.test(config.image)) {
      js = await Virtine.fromJs(readFileSync(config.image), { ...common, name: config.image.split("/").pop(), warmup: config.warmup });
      if (recordDir !== undefined && config.snapshot !== false) {
        const snap = warmSnapshot(js, recordDir, config.name);
        await js.closeAsync();
        js = await Virtine.loadJs(snap, common);
      }
    } else js = await Virtine.loadJs(config.image, common);
    const f = new JsFunction(config, js);
    f.record = record;
    return f;
  }
  if (kind === "linux") {
    // CGI: every request's environment is its own, so calls start at the program's entry (no
    // snapshot: a resumed call could not take another environment)
    const v = await Virtine.load(config.image, { ...common, snapshot: false, env: config.env, files: config.files });
    const f = new LinuxFunction(config, v);
    f.record = record;
    return f;
  }
  // a wasp image reads granted files with the `file` hypercall (virtine.readFile)
  const files = Object.keys(config.files).length > 0 ? { files: config.files } : {};
  const v = await Virtine.load(config.image, { ...common, ...files });
  const f = new ImageFunction(config, v);
  f.record = record;
  return f;
}

/**
 * Writes the warm engine of `js` to `DIR/js-NAME-HASH.snap` (named by its contents: a reload with
 * nothing changed finds it there) and gives its path.
 */
function warmSnapshot(js: JsVirtine, dir: string, name: string): string {
  const tmp = join(dir, `.js-${process.pid}-${Math.random().toString(36).slice(2)}.snap.tmp`);
  try {
    js.writeSnapshot(tmp);
    const hash = createHash("sha256").update(readFileSync(tmp)).digest("hex").slice(0, 16);
    const path = join(dir, `js-${name.replace(/[^A-Za-z0-9_.-]/g, "_")}-${hash}.snap`);
    if (existsSync(path)) rmSync(tmp);
    else renameSync(tmp, path);
    return path;
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** A function on a virtine of some kind: the kinds differ only in how a request reaches it. */
abstract class Base<V extends { closeAsync(): Promise<void> }> implements ServedFunction {
  inflight = 0;
  abstract readonly kind: FunctionKind;
  constructor(
    readonly config: FunctionConfig,
    readonly v: V,
  ) {}
  abstract handle(req: RequestInfo, signal: AbortSignal): Promise<GuestResponse>;
  close(): Promise<void> {
    return this.v.closeAsync();
  }
}

class LinuxFunction extends Base<Virtine> {
  readonly kind = "linux" as const;
  /** record every call (`--record-failures`): a failed one's recording travels on its error or its answer */
  record = false;
  async handle(req: RequestInfo, signal: AbortSignal): Promise<GuestResponse> {
    const env = { ...this.config.env, ...cgiEnvironment(req) };
    const r = await this.v.run({ input: req.body, env, signal, record: this.record });
    return withRecording(r.recording, () => {
      if (r.outputTruncated) throw new CgiError("the response went past the output cap");
      if (r.output.length === 0) throw new CgiError(`the program exited with status ${r.status} without a response`);
      return { ...parseCgiResponse(r.output), runMicros: r.runMicros };
    });
  }
}

/**
 * The answer `parse` makes of a recorded call, with its recording on it — or on the error when
 * the answer is no HTTP response (a 502: the call that gave it is what to replay).
 */
function withRecording(recording: Uint8Array | undefined, parse: () => GuestResponse): GuestResponse {
  try {
    const res = parse();
    return recording ? { ...res, recording } : res;
  } catch (e) {
    if (recording && e instanceof Error) (e as Error & { recording?: Uint8Array }).recording = recording;
    throw e;
  }
}

class ImageFunction extends Base<Virtine> {
  readonly kind = "image" as const;
  /** record every call (`--record-failures`): a failed one's recording travels on its error */
  record = false;
  async handle(req: RequestInfo, signal: AbortSignal): Promise<GuestResponse> {
    const r = await this.v.run({ input: encodeHttpRequest(req), signal, record: this.record });
    if (r.output.length === 0) return { status: 200, headers: [["Content-Type", "text/plain; charset=utf-8"]], body: new TextEncoder().encode(`${r.value}\n`), runMicros: r.runMicros };
    return withRecording(r.recording, () => ({ ...parseCgiResponse(r.output), runMicros: r.runMicros }));
  }
}

class JsFunction extends Base<JsVirtine> {
  readonly kind = "js" as const;
  /** record every call (`--record-failures`): the engine's run, replayed as a Linux program's */
  record = false;
  async handle(req: RequestInfo, signal: AbortSignal): Promise<GuestResponse> {
    const r = await this.v.run({ args: [jsRequest(req)], signal, record: this.record });
    return withRecording(r.recording, () => ({ ...jsResponse(r.value), runMicros: r.runMicros }));
  }
}

/** The request a JavaScript handler gets. */
export function jsRequest(req: RequestInfo): Record<string, unknown> {
  return {
    method: req.method,
    url: `${req.scriptName}${req.pathInfo}${req.query ? `?${req.query}` : ""}`,
    path: req.pathInfo,
    query: req.query,
    headers: Object.fromEntries(req.headers),
    body: new TextDecoder().decode(req.body),
  };
}

const RESPONSE_KEYS = new Set(["status", "headers", "body"]);

/**
 * A handler's result as a response: a Response-like object — an integer `status` from 200 to 599,
 * and only `headers` (a table of strings) and `body` (a string, sent as it is; anything else sent
 * as JSON) beside it — or any other value, sent as JSON with status 200.
 */
export function jsResponse(value: unknown): GuestResponse {
  const json = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v) ?? "null");
  if (typeof value === "object" && value !== null && !Array.isArray(value) && "status" in value && Object.keys(value).every((k) => RESPONSE_KEYS.has(k))) {
    const r = value as { status: unknown; headers?: unknown; body?: unknown };
    if (typeof r.status !== "number" || !Number.isInteger(r.status) || r.status < 200 || r.status > 599) throw new CgiError(`the handler's status ${JSON.stringify(r.status)} is not an integer from 200 to 599`);
    const headers: [string, string][] = [];
    if (r.headers !== undefined) {
      if (typeof r.headers !== "object" || r.headers === null || Array.isArray(r.headers)) throw new CgiError("the handler's headers are not a table of strings");
      for (const [k, v] of Object.entries(r.headers)) {
        if (typeof v !== "string") throw new CgiError(`the handler's header ${k} is not a string`);
        headers.push([k, v]);
      }
    }
    // the same checks as a CGI program's headers: through the CGI parser
    const head = headers.map(([k, v]) => `${k}: ${v}\n`).join("");
    const isText = typeof r.body === "string";
    const body = r.body === undefined ? new Uint8Array(0) : isText ? new TextEncoder().encode(r.body as string) : json(r.body);
    const hasType = headers.some(([k]) => k.toLowerCase() === "content-type");
    const type = hasType || body.length === 0 ? "" : `Content-Type: ${isText ? "text/plain; charset=utf-8" : "application/json"}\n`;
    const parsed = parseCgiResponse(concat(new TextEncoder().encode(`Status: ${r.status}\n${type}${head}\n`), body));
    return parsed;
  }
  return { status: 200, headers: [["Content-Type", "application/json"]], body: json(value) };
}

/** A request as an HTTP/1.1 message: what a wasp image reads (`virtine.http.Request` in the SDK). */
export function encodeHttpRequest(req: RequestInfo): Uint8Array {
  // the path as it was decoded, encoded again; the query as the client sent it
  const target = `${encodeURI(`${req.scriptName}${req.pathInfo}` || "/")}${req.query ? `?${req.query}` : ""}`;
  const lines = [`${req.method} ${target} HTTP/1.1`];
  for (const [k, v] of req.headers) if (k !== "content-length" && k !== "transfer-encoding") lines.push(`${k}: ${v}`);
  lines.push(`content-length: ${req.body.length}`);
  return concat(new TextEncoder().encode(`${lines.join("\r\n")}\r\n\r\n`), req.body);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
