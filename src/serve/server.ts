// `wasp serve`: an HTTP front door where every request runs in a virtine of the function its route
// names (functions.ts), on Bun.serve and the worker pool. Errors are statuses with a short JSON
// body, never internals (the detail goes to the log); /healthz, /readyz and /metrics are the
// server's; SIGTERM/SIGINT drain and exit, SIGHUP reloads the configuration without dropping a
// request. docs/serve.md is the reference.
import { randomBytes } from "node:crypto";
import type { Server } from "bun";
import { BadArgsError, BadOutputError, GuestFaultError, GuestPanicError, JsError, JsMemoryError, JsStackError, MemoryFaultError, PolicyViolationError, QueueFullError, StackOverflowError, TimeoutError, WaspError } from "../errors.ts";
import { WorkerPool } from "../api/workers.ts";
import { CgiError, type GuestResponse, type RequestInfo } from "./cgi.ts";
import { type FunctionConfig, type ServeConfig } from "./config.ts";
import { loadFunction, type ServedFunction } from "./functions.ts";
import { FailureRecordings } from "./recordings.ts";
import { ServeMetrics } from "./metrics.ts";

/** A route table: the functions, longest prefix first. */
interface Routes {
  functions: ServedFunction[];
  ready: boolean;
}

export interface ServeOptions {
  /** where log lines go (default: stderr) */
  log?: (line: string) => void;
  /** functions made by the embedder (a TypeScript handler beside the virtines: the benchmarks' native baseline), routed like the configured ones */
  extra?: readonly ServedFunction[];
  /** run once the server listens and its functions are warm, before it says it is ready (`wasp serve`'s seccomp filter) */
  beforeReady?: () => void;
}

let nextId = 0;
const idPrefix = randomBytes(4).toString("hex");

/** The error statuses, and the short code each body carries. */
const STATUS_CODES: Record<number, string> = {
  400: "bad_request",
  404: "not_found",
  405: "method_not_allowed",
  413: "payload_too_large",
  431: "headers_too_large",
  500: "internal",
  502: "bad_gateway",
  503: "overloaded",
  504: "timeout",
};

/** What an error thrown by a call becomes: a status, and what the log says. */
export function statusOf(e: unknown): number {
  if (e instanceof TimeoutError) return 504;
  if (e instanceof QueueFullError) return 503;
  if (e instanceof CgiError || e instanceof JsError || e instanceof JsMemoryError || e instanceof JsStackError) return 502;
  if (e instanceof GuestFaultError || e instanceof GuestPanicError || e instanceof MemoryFaultError || e instanceof StackOverflowError || e instanceof PolicyViolationError || e instanceof BadOutputError) return 502;
  if (e instanceof BadArgsError && /arguments and environment take/.test(e.message)) return 431;
  return 500;
}

export class WaspServer {
  readonly config: ServeConfig;
  readonly metrics = new ServeMetrics();
  readonly workers: WorkerPool;
  #routes: Routes = { functions: [], ready: false };
  #server: Server<undefined> | undefined;
  #draining = false;
  #inflight = 0;
  #drained: (() => void) | undefined;
  readonly #log: (line: string) => void;
  readonly #extra: readonly ServedFunction[];
  readonly #beforeReady: (() => void) | undefined;

  constructor(config: ServeConfig, opts: ServeOptions = {}) {
    this.config = config;
    this.#extra = opts.extra ?? [];
    this.#log = opts.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.#beforeReady = opts.beforeReady;
    this.workers = new WorkerPool({ size: config.workers, maxQueue: config.maxQueue });
    if (config.recordFailures) this.#recordings = new FailureRecordings(config.recordFailures, this.#log);
  }

  /** `--record-failures`: where failed requests' recordings go */
  readonly #recordings: FailureRecordings | undefined;

  /** Loads every function (a bad one rejects: nothing is served), listens, warms them up. */
  async start(): Promise<void> {
    const functions = [...(await this.#load(this.config.functions)), ...this.#extra].sort((a, b) => b.config.route.length - a.config.route.length);
    this.#routes = { functions, ready: false };
    this.#server = Bun.serve({
      hostname: this.config.host,
      port: this.config.port,
      // the per-function limits answer 413 as JSON; this one only bounds what Bun buffers
      maxRequestBodySize: Math.max(...functions.map((f) => f.config.maxBody), 1) + (1 << 20),
      // a connection waiting for its response is not idle: past the longest deadline (Bun's most is 255 s)
      idleTimeout: Math.min(255, Math.max(30, Math.ceil(Math.max(...functions.map((f) => f.config.timeoutMs)) / 1000) + 10)),
      fetch: (req, server) => this.#fetch(req, server),
      error: (e) => {
        this.#log(JSON.stringify({ level: "error", msg: "request failed in the server", error: String(e) }));
        return errorResponse(500, newId());
      },
    });
    this.#log(JSON.stringify({ level: "info", msg: "listening", url: `http://${this.config.host}:${this.#server.port}/`, functions: functions.map((f) => ({ name: f.config.name, route: f.config.route, kind: f.kind })) }));
    await this.#warm(functions);
    this.#beforeReady?.();
    this.#routes.ready = true;
    this.#log(JSON.stringify({ level: "info", msg: "ready" }));
  }

  get port(): number {
    return this.#server?.port ?? 0;
  }

  get ready(): boolean {
    return this.#routes.ready && !this.#draining;
  }

  /**
   * Loads `configs` and swaps them in once warm; the functions they replace close when their
   * requests in flight are done. A configuration that does not load leaves the old one serving.
   */
  async reload(configs: readonly FunctionConfig[]): Promise<void> {
    const loaded = await this.#load(configs);
    await this.#warm(loaded);
    const old = this.#routes.functions.filter((f) => !this.#extra.includes(f));
    const functions = [...loaded, ...this.#extra].sort((a, b) => b.config.route.length - a.config.route.length);
    this.#routes = { functions, ready: true };
    this.#log(JSON.stringify({ level: "info", msg: "reloaded", functions: functions.map((f) => ({ name: f.config.name, route: f.config.route, kind: f.kind })) }));
    await Promise.all(old.map((f) => closeWhenIdle(f)));
  }

  /** Stops accepting, lets requests in flight finish (at most graceMs), closes everything. */
  async stop(): Promise<{ drained: boolean }> {
    if (this.#draining) return { drained: false };
    this.#draining = true;
    this.#server?.stop(false);
    let drained = true;
    if (this.#inflight > 0) {
      drained = await Promise.race([
        new Promise<boolean>((resolve) => (this.#drained = () => resolve(true))),
        Bun.sleep(this.config.graceMs).then(() => false),
      ]);
    }
    this.#server?.stop(true);
    await Promise.allSettled(this.#routes.functions.map((f) => f.close()));
    await this.workers.close();
    this.#log(JSON.stringify({ level: "info", msg: "stopped", drained, inflight: this.#inflight }));
    return { drained };
  }

  async #load(configs: readonly FunctionConfig[]): Promise<ServedFunction[]> {
    const loaded: ServedFunction[] = [];
    try {
      for (const c of configs) {
        try {
          loaded.push(await loadFunction(c, this.workers, this.#recordings?.bounds.dir));
        } catch (e) {
          if (e instanceof WaspError) throw new (e.constructor as new (m: string) => WaspError)(`function ${c.name} (${c.image}): ${e.message}`);
          throw e;
        }
      }
    } catch (e) {
      await Promise.allSettled(loaded.map((f) => f.close()));
      throw e;
    }
    return loaded.sort((a, b) => b.config.route.length - a.config.route.length);
  }

  /** warmCalls requests to each function, spread over the workers, before it is ready. */
  async #warm(functions: readonly ServedFunction[]): Promise<void> {
    const n = this.config.warmCalls;
    if (n === 0) return;
    for (const f of functions) {
      const req: RequestInfo = { method: "GET", path: f.config.route, query: "", scriptName: f.config.route === "/" ? "" : f.config.route, pathInfo: "", headers: [["host", "localhost"]], body: new Uint8Array(0), remoteAddr: "127.0.0.1", serverName: "localhost", serverPort: this.port };
      const batch = Math.max(1, this.workers.stats.workers * 2);
      for (let done = 0; done < n; ) {
        const k = Math.min(batch, n - done);
        // a warm-up request may fail (a function that wants a body): warmth is what counts
        await Promise.allSettled(Array.from({ length: k }, () => f.handle(req, AbortSignal.timeout(f.config.timeoutMs))));
        done += k;
      }
    }
  }

  async #fetch(req: Request, server: Server<undefined>): Promise<Response> {
    const id = newId();
    const started = performance.now();
    // a request without a Host header (HTTP/1.0, a load balancer's health check) has a bare path
    const url = new URL(req.url, `http://${this.config.host}:${this.port}`);
    const method = req.method.toUpperCase();
    // the server's own endpoints
    if (url.pathname === "/healthz") return text(200, "ok\n", id);
    if (url.pathname === "/readyz") return this.ready ? text(200, "ready\n", id) : text(503, "not ready\n", id);
    if (url.pathname === "/metrics") {
      this.metrics.setQueue(this.workers.stats.queued);
      return new Response(await this.metrics.text(), { headers: { "Content-Type": this.metrics.contentType, "X-Request-Id": id } });
    }
    let path: string;
    try {
      path = decodeURIComponent(url.pathname);
      if (path.includes("\0")) throw new Error("NUL");
    } catch {
      return this.#finish(errorResponse(400, id), id, started, method, url.pathname, undefined, "the path is not valid percent-encoding");
    }
    const f = route(this.#routes.functions, path);
    if (!f) return this.#finish(errorResponse(404, id), id, started, method, path, undefined);
    if (f.config.methods && !f.config.methods.includes(method) && !(method === "HEAD" && f.config.methods.includes("GET"))) {
      const r = errorResponse(405, id);
      r.headers.set("Allow", f.config.methods.join(", "));
      return this.#finish(r, id, started, method, path, f);
    }
    if (f.inflight >= f.config.concurrency) {
      const r = errorResponse(503, id);
      r.headers.set("Retry-After", "1");
      return this.#finish(r, id, started, method, path, f, "the function's concurrency limit");
    }
    const declared = Number(req.headers.get("content-length") ?? "0");
    if (declared > f.config.maxBody) return this.#finish(errorResponse(413, id), id, started, method, path, f);
    f.inflight++;
    this.#inflight++;
    this.metrics.inflight(f.config.name, 1);
    if (!this.#routes.ready) this.metrics.coldStart(f.config.name);
    try {
      const bodyStarted = performance.now();
      const body = await readBody(req, f.config.maxBody);
      const bodyRead = performance.now();
      if (body === undefined) return this.#finish(errorResponse(413, id), id, started, method, path, f);
      const scriptName = f.config.route === "/" ? "" : f.config.route;
      const info: RequestInfo = {
        method,
        path,
        query: url.search.slice(1),
        scriptName,
        pathInfo: path.slice(scriptName.length),
        headers: headerList(req.headers),
        body,
        remoteAddr: server.requestIP(req)?.address ?? "",
        serverName: url.hostname,
        serverPort: Number(url.port) || this.port,
      };
      let res: GuestResponse;
      let callStarted = 0;
      try {
        callStarted = performance.now();
        res = await f.handle(info, req.signal);
      } catch (e) {
        const status = statusOf(e);
        if (status >= 500) this.#recordings?.keep(id, (e as { recording?: Uint8Array } | undefined)?.recording);
        const r = errorResponse(status, id);
        if (status === 503) r.headers.set("Retry-After", "1");
        // an error's stable code (the standalone binary's class names are minified), else its name
        const detail = e instanceof WaspError ? `${e.code}: ${e.message}` : e instanceof Error ? `${e.name}: ${e.message}` : String(e);
        return this.#finish(r, id, started, method, path, f, detail);
      }
      // a 5xx the guest answered itself is a failure to keep too
      if (res.status >= 500 && res.recording) this.#recordings?.keep(id, res.recording);
      const called = performance.now();
      const headers = new Headers();
      for (const [k, v] of res.headers) headers.append(k, v);
      headers.set("X-Request-Id", id);
      // where the request's time went (ms): routing and checks, reading the body, preparing the
      // request's description; then the call outside its VM (the guest's request encoded, the wait
      // for a worker, the hand-off both ways, the answer parsed: "dispatch") and in it ("vm": the
      // guest's code, its exits and the host's handling of them, as the worker timed it)
      const vm = Math.min(called - callStarted, (res.runMicros ?? 0) / 1000);
      const stages = { route: bodyStarted - started, body: bodyRead - bodyStarted, prepare: callStarted - bodyRead, dispatch: called - callStarted - vm, vm };
      headers.set("Server-Timing", Object.entries(stages).map(([k, v]) => `${k};dur=${v.toFixed(3)}`).join(", "));
      this.metrics.stages(f.config.name, stages);
      return this.#finish(new Response(method === "HEAD" ? null : res.body, { status: res.status, headers }), id, started, method, path, f);
    } finally {
      f.inflight--;
      this.#inflight--;
      this.metrics.inflight(f.config.name, -1);
      if (this.#inflight === 0) this.#drained?.();
    }
  }

  #finish(res: Response, id: string, started: number, method: string, path: string, f: ServedFunction | undefined, detail?: string): Response {
    const ms = performance.now() - started;
    const fn = f?.config.name ?? "-";
    this.metrics.request(fn, res.status, ms / 1000);
    if (this.config.accessLog || detail) {
      this.#log(JSON.stringify({ time: new Date().toISOString(), request_id: id, method, path, function: fn, status: res.status, ms: Math.round(ms * 1000) / 1000, ...(detail && { detail }) }));
    }
    return res;
  }
}

function newId(): string {
  return `${idPrefix}-${(nextId++).toString(36)}`;
}

/** The function whose route is the longest prefix of `path` on a segment boundary. */
export function route(functions: readonly ServedFunction[], path: string): ServedFunction | undefined {
  for (const f of functions) {
    const r = f.config.route;
    if (r === "/" || path === r || path.startsWith(`${r}/`)) return f;
  }
  return undefined;
}

/** Header names lower-case; repeated ones joined with ", " (Headers does so). */
function headerList(h: Headers): [string, string][] {
  return [...h.entries()];
}

/** The body, or undefined when it passes `max` bytes (read no further). */
async function readBody(req: Request, max: number): Promise<Uint8Array | undefined> {
  if (!req.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let n = 0;
  for await (const chunk of req.body) {
    n += chunk.length;
    if (n > max) return undefined;
    chunks.push(chunk);
  }
  const out = new Uint8Array(n);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

function text(status: number, body: string, id: string): Response {
  return new Response(body, { status, headers: { "Content-Type": "text/plain; charset=utf-8", "X-Request-Id": id } });
}

/** A short JSON body: the error's code and the request's id; the detail only in the log. */
export function errorResponse(status: number, id: string): Response {
  return new Response(`${JSON.stringify({ error: STATUS_CODES[status] ?? "error", request_id: id })}\n`, { status, headers: { "Content-Type": "application/json", "X-Request-Id": id } });
}

/** Closes a function once its requests in flight are done. */
async function closeWhenIdle(f: ServedFunction): Promise<void> {
  while (f.inflight > 0) await Bun.sleep(10);
  await f.close();
}
