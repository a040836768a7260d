// `wasp serve`'s configuration: from the command line (`--route PREFIX=IMAGE ...`) or a TOML file
// (`--config wasp.toml`, parsed by Bun), checked whole before anything is loaded — every mistake a
// BadArgsError naming the key. Paths in a file are relative to the file.
import { accessSync, constants, mkdirSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { BadArgsError } from "../errors.ts";

export interface FunctionConfig {
  /** a name for logs and metrics (default: the image's file name) */
  name: string;
  /** the path prefix it serves: "/" or "/a/b" (no trailing slash) */
  route: string;
  /** the image: a wasp image, a static Linux executable, a JavaScript module, or a snapshot file of any */
  image: string;
  /** methods it accepts (default: all); others get 405 */
  methods?: string[];
  timeoutMs: number;
  /** guest memory in bytes (default: the kind's) */
  memory?: number;
  maxBody: number;
  /** calls in flight at most (default 256); past it 503 */
  concurrency: number;
  allow: string[];
  /** a Linux program's environment besides the CGI variables */
  env: Record<string, string>;
  /** files a Linux program may open, or a wasp image read (virtine.readFile): guest path to host path */
  files: Record<string, string>;
  /** a JavaScript handler's warm-up inputs (before its snapshot) */
  warmup?: unknown[];
  /** honour the guest's snapshot point (default true; false: every request starts at its entry) */
  snapshot: boolean;
}

/**
 * An unmodified server run a connection per virtine (`wasp serve --program`, `[program]`): wasp
 * listens on `listen`, snapshots the program where it waits for its first connection, and gives each
 * connection to a virtine resumed there (src/serve/program.ts).
 */
export interface ProgramConfig {
  /** for logs and metrics (default: the program's file name) */
  name: string;
  /** the executable (absolute) and its arguments */
  path: string;
  args: string[];
  /** where wasp accepts the program's connections (IPv4) */
  listen: { host: string; port: number };
  /** each request's deadline (the program's time from the request's first bytes to its answer) */
  timeoutMs: number;
  /** how long a connection may wait for its next request once the program has answered one */
  keepAliveMs: number;
  /** requests one connection may make; past it the program sees the connection end */
  maxRequests: number;
  memory?: number;
  allow: string[];
  env: Record<string, string>;
  files: Record<string, string>;
  /** read-only host directories, by guest path */
  dirs: Record<string, string>;
  /** what wasp's own warm-up connections send before the server is ready (their system-call sites trained into the snapshot) */
  warmRequests: string[];
}

export interface ServeConfig {
  host: string;
  port: number;
  functions: FunctionConfig[];
  /** a served program instead of functions */
  program?: ProgramConfig;
  /** worker threads (default: one per core) */
  workers?: number;
  /** calls waiting for a worker at most; past it 503 */
  maxQueue: number;
  /** after SIGTERM/SIGINT, how long requests in flight may take */
  graceMs: number;
  /** calls made to each function at start-up (and reload) before /readyz says ready */
  warmCalls: number;
  /** JSON access-log lines on stderr */
  accessLog: boolean;
  /** the file it came from, if any (SIGHUP reads it again) */
  file?: string;
  /** keep a recording of every request a wasp image failed with a 5xx (docs/recording-format.md) */
  recordFailures?: RecordFailures;
}

/** Where failed requests' recordings go, and how many and how much of them at most (the oldest go first). */
export interface RecordFailures {
  dir: string;
  maxFiles: number;
  maxBytes: number;
}

/** `record_failures`' bounds by default. */
export const RECORD_DEFAULTS = { maxFiles: 100, maxBytes: 64 << 20 } as const;

export const DEFAULTS = {
  keepAliveMs: 5000,
  maxRequests: 100,
  host: "127.0.0.1",
  port: 8080,
  timeoutMs: 10_000,
  maxBody: 1 << 20,
  concurrency: 256,
  maxQueue: 1024,
  graceMs: 10_000,
  warmCalls: 200,
} as const;

const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]);
const RESERVED = new Set(["/healthz", "/readyz", "/metrics"]);

/** A size: bytes, or with a suffix (K, M, G; KiB, MiB, GiB). */
export function parseSizeText(v: unknown, what: string): number {
  if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) return v;
  if (typeof v !== "string") throw new BadArgsError(`${what} is not a size (bytes, or like 64M)`);
  const m = /^(\d+)\s*([kmg]i?b?)?$/i.exec(v.trim());
  if (!m) throw new BadArgsError(`${what} ${JSON.stringify(v)} is not a size (bytes, or like 64M)`);
  const unit = (m[2] ?? "").toLowerCase()[0];
  const n = Number(m[1]) * (unit === "k" ? 1 << 10 : unit === "m" ? 1 << 20 : unit === "g" ? 1 << 30 : 1);
  if (!Number.isSafeInteger(n)) throw new BadArgsError(`${what} ${v} is too large`);
  return n;
}

function int(v: unknown, what: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) throw new BadArgsError(`${what} is not an integer from ${min} to ${max}`);
  return v;
}

/** A route prefix: "/" or "/a/b" without a trailing slash, no "." or ".." segment, no reserved path. */
export function checkRoute(route: unknown, what: string): string {
  if (typeof route !== "string" || !route.startsWith("/")) throw new BadArgsError(`${what}: the route ${JSON.stringify(route)} does not start with /`);
  const r = route.length > 1 ? route.replace(/\/+$/, "") : route;
  if (!/^[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$/.test(r) || r.includes("//") || r.split("/").some((s) => s === "." || s === "..")) {
    throw new BadArgsError(`${what}: the route ${JSON.stringify(route)} is not a plain path`);
  }
  if (RESERVED.has(r)) throw new BadArgsError(`${what}: ${r} is the server's own (health, readiness, metrics)`);
  return r;
}

function strings(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) throw new BadArgsError(`${what} is not a list of strings`);
  return v as string[];
}

function table(v: unknown, what: string): Record<string, string> {
  if (typeof v !== "object" || v === null || Array.isArray(v) || Object.values(v).some((x) => typeof x !== "string")) throw new BadArgsError(`${what} is not a table of strings`);
  return v as Record<string, string>;
}

const FUNCTION_KEYS = new Set(["name", "route", "image", "methods", "timeout_ms", "memory", "max_body", "concurrency", "allow", "env", "files", "warmup", "snapshot"]);
const TOP_KEYS = new Set(["host", "port", "workers", "max_queue", "grace_ms", "warm_calls", "access_log", "timeout_ms", "max_body", "record_failures", "record_max_files", "record_max_bytes", "function", "program"]);
const PROGRAM_KEYS = new Set(["name", "path", "args", "listen", "timeout_ms", "keep_alive_ms", "max_requests", "memory", "allow", "env", "files", "dirs", "warm_requests"]);

/** A served program's warm-up by default: one HTTP request for / that closes its connection. */
export const WARM_REQUEST = "GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: wasp-warmup\r\nConnection: close\r\n\r\n";

/** HOST:PORT with an IPv4 address (or localhost), or a bare port on 127.0.0.1. */
export function parseListen(v: unknown, what: string): { host: string; port: number } {
  if (typeof v !== "string") throw new BadArgsError(`${what} is not HOST:PORT`);
  const m = /^(?:(localhost|\d{1,3}(?:\.\d{1,3}){3}):)?(\d{1,5})$/.exec(v.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535 || (m[1] !== undefined && m[1] !== "localhost" && m[1].split(".").some((x) => Number(x) > 255))) {
    throw new BadArgsError(`${what} ${JSON.stringify(v)} is not HOST:PORT with an IPv4 address (e.g. 127.0.0.1:8080)`);
  }
  return { host: m[1] === undefined || m[1] === "localhost" ? "127.0.0.1" : m[1], port };
}

/** A served program of `--program` or of a `[program]` table, its paths resolved from `base`. */
export function programConfig(raw: Record<string, unknown>, at: string, base: string, defaults: { timeoutMs: number }, flags = false): ProgramConfig {
  for (const k of Object.keys(raw)) if (!PROGRAM_KEYS.has(k)) throw new BadArgsError(`${at}: unknown key ${k} (known: ${[...PROGRAM_KEYS].join(", ")})`);
  if (typeof raw.path !== "string" || raw.path === "") throw new BadArgsError(`${at}: path is missing (the program's executable)`);
  const path = resolve(base, raw.path);
  const name = raw.name === undefined ? path.split("/").pop()!.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 64) || "program" : raw.name;
  if (typeof name !== "string" || !/^[A-Za-z0-9_.-]{1,64}$/.test(name)) throw new BadArgsError(`${at}: name ${JSON.stringify(name)} is not 1-64 letters, digits, _ . -`);
  if (raw.listen === undefined) throw new BadArgsError(`${at}: listen is missing (HOST:PORT where wasp accepts the program's connections)`);
  const files = raw.files === undefined ? {} : table(raw.files, `${at}.files`);
  for (const [g, h] of Object.entries(files)) {
    if (!g.startsWith("/")) throw new BadArgsError(`${at}.files: the guest path ${g} is not absolute`);
    files[g] = resolve(base, h);
  }
  const dirs = raw.dirs === undefined ? {} : table(raw.dirs, `${at}.dirs`);
  for (const [g, h] of Object.entries(dirs)) {
    if (!g.startsWith("/")) throw new BadArgsError(`${at}.dirs: the guest path ${g} is not absolute`);
    dirs[g] = resolve(base, h);
  }
  return {
    name,
    path,
    args: raw.args === undefined ? [] : strings(raw.args, `${at}.args`),
    listen: parseListen(raw.listen, flags ? "--listen" : `${at}.listen`),
    timeoutMs: raw.timeout_ms === undefined ? defaults.timeoutMs : int(raw.timeout_ms, `${at}.timeout_ms`, 1, 3_600_000),
    keepAliveMs: raw.keep_alive_ms === undefined ? DEFAULTS.keepAliveMs : int(raw.keep_alive_ms, `${at}.keep_alive_ms`, 0, 3_600_000),
    maxRequests: raw.max_requests === undefined ? DEFAULTS.maxRequests : int(raw.max_requests, `${at}.max_requests`, 1, 1_000_000),
    memory: raw.memory === undefined ? undefined : parseSizeText(raw.memory, `${at}.memory`),
    allow: raw.allow === undefined ? [] : strings(raw.allow, `${at}.allow`),
    env: raw.env === undefined ? {} : table(raw.env, `${at}.env`),
    files,
    dirs,
    warmRequests: raw.warm_requests === undefined ? [WARM_REQUEST] : strings(raw.warm_requests, `${at}.warm_requests`),
  };
}

/** One function of a config file or of `--route`, its paths resolved from `base`. */
export function functionConfig(raw: Record<string, unknown>, at: string, base: string, defaults: { timeoutMs: number; maxBody: number }): FunctionConfig {
  for (const k of Object.keys(raw)) if (!FUNCTION_KEYS.has(k)) throw new BadArgsError(`${at}: unknown key ${k} (known: ${[...FUNCTION_KEYS].join(", ")})`);
  if (typeof raw.image !== "string" || raw.image === "") throw new BadArgsError(`${at}: image is missing (a path)`);
  const image = resolve(base, raw.image);
  const route = checkRoute(raw.route, at);
  // by default the image's file name, made a label (at most 64 letters, digits, _ . -)
  const name = raw.name === undefined ? image.split("/").pop()!.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 64) || "function" : raw.name;
  if (typeof name !== "string" || !/^[A-Za-z0-9_.-]{1,64}$/.test(name)) throw new BadArgsError(`${at}: name ${JSON.stringify(name)} is not 1-64 letters, digits, _ . -`);
  let methods: string[] | undefined;
  if (raw.methods !== undefined) {
    methods = strings(raw.methods, `${at}.methods`).map((m) => m.toUpperCase());
    for (const m of methods) if (!METHODS.has(m)) throw new BadArgsError(`${at}.methods: ${m} is not one of ${[...METHODS].join(", ")}`);
  }
  const files = raw.files === undefined ? {} : table(raw.files, `${at}.files`);
  for (const [g, h] of Object.entries(files)) {
    if (!g.startsWith("/")) throw new BadArgsError(`${at}.files: the guest path ${g} is not absolute`);
    files[g] = resolve(base, h);
  }
  if (raw.warmup !== undefined && !Array.isArray(raw.warmup)) throw new BadArgsError(`${at}.warmup is not a list of inputs`);
  if (raw.snapshot !== undefined && typeof raw.snapshot !== "boolean") throw new BadArgsError(`${at}.snapshot is not true or false`);
  return {
    name,
    route,
    image,
    methods,
    timeoutMs: raw.timeout_ms === undefined ? defaults.timeoutMs : int(raw.timeout_ms, `${at}.timeout_ms`, 1, 3_600_000),
    memory: raw.memory === undefined ? undefined : parseSizeText(raw.memory, `${at}.memory`),
    maxBody: raw.max_body === undefined ? defaults.maxBody : parseSizeText(raw.max_body, `${at}.max_body`),
    concurrency: raw.concurrency === undefined ? DEFAULTS.concurrency : int(raw.concurrency, `${at}.concurrency`, 1, 100_000),
    allow: raw.allow === undefined ? [] : strings(raw.allow, `${at}.allow`),
    env: raw.env === undefined ? {} : table(raw.env, `${at}.env`),
    files,
    warmup: raw.warmup as unknown[] | undefined,
    snapshot: (raw.snapshot as boolean | undefined) ?? true,
  };
}

/** A whole configuration from a parsed TOML document. */
export function serveConfig(doc: unknown, file: string | undefined): ServeConfig {
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw new BadArgsError("the configuration is not a table");
  const d = doc as Record<string, unknown>;
  for (const k of Object.keys(d)) if (!TOP_KEYS.has(k)) throw new BadArgsError(`unknown key ${k} (known: ${[...TOP_KEYS].join(", ")})`);
  const base = file ? dirname(resolve(file)) : process.cwd();
  const defaults = {
    timeoutMs: d.timeout_ms === undefined ? DEFAULTS.timeoutMs : int(d.timeout_ms, "timeout_ms", 1, 3_600_000),
    maxBody: d.max_body === undefined ? DEFAULTS.maxBody : parseSizeText(d.max_body, "max_body"),
  };
  const list = d.function ?? [];
  let program: ProgramConfig | undefined;
  if (d.program !== undefined) {
    if (typeof d.program !== "object" || d.program === null || Array.isArray(d.program)) throw new BadArgsError("program is not a table ([program]: path, args, listen)");
    if (Array.isArray(list) && list.length > 0) throw new BadArgsError("[program] and [[function]]: a server serves one program or functions by route, not both");
    program = programConfig(d.program as Record<string, unknown>, "program", base, defaults);
  } else if (!Array.isArray(list) || list.length === 0) throw new BadArgsError("no function: add [[function]] tables (route, image), or a [program]");
  const functions = (list as unknown[]).map((f, i) => {
    if (typeof f !== "object" || f === null || Array.isArray(f)) throw new BadArgsError(`function ${i + 1} is not a table`);
    return functionConfig(f as Record<string, unknown>, `function ${i + 1}`, base, defaults);
  });
  checkUnique(functions);
  if (d.host !== undefined && (typeof d.host !== "string" || d.host === "")) throw new BadArgsError("host is not a host name or address");
  if (d.access_log !== undefined && typeof d.access_log !== "boolean") throw new BadArgsError("access_log is not true or false");
  let failures: RecordFailures | undefined;
  if (d.record_failures !== undefined) {
    if (typeof d.record_failures !== "string" || d.record_failures === "") throw new BadArgsError("record_failures is not a folder's path");
    const files = d.record_max_files === undefined ? undefined : int(d.record_max_files, "record_max_files", 1, 1_000_000);
    const bytes = d.record_max_bytes === undefined ? undefined : parseSizeText(d.record_max_bytes, "record_max_bytes");
    failures = recordFailures(resolve(base, d.record_failures), files, bytes);
  } else if (d.record_max_files !== undefined || d.record_max_bytes !== undefined) throw new BadArgsError("record_max_files and record_max_bytes go with record_failures");
  return {
    host: (d.host as string | undefined) ?? DEFAULTS.host,
    port: d.port === undefined ? DEFAULTS.port : int(d.port, "port", 0, 65535),
    functions,
    workers: d.workers === undefined ? undefined : int(d.workers, "workers", 1, 256),
    maxQueue: d.max_queue === undefined ? DEFAULTS.maxQueue : int(d.max_queue, "max_queue", 1, 1_000_000),
    graceMs: d.grace_ms === undefined ? DEFAULTS.graceMs : int(d.grace_ms, "grace_ms", 0, 3_600_000),
    warmCalls: d.warm_calls === undefined ? DEFAULTS.warmCalls : int(d.warm_calls, "warm_calls", 0, 1_000_000),
    accessLog: (d.access_log as boolean | undefined) ?? true,
    file,
    ...(failures && { recordFailures: failures }),
    ...(program && { program }),
  };
}

/** The failures' recordings' folder (made if missing; it must be a writable folder) and bounds. */
export function recordFailures(dir: string, maxFiles?: number, maxBytes?: number): RecordFailures {
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
    if (!statSync(dir).isDirectory()) throw new Error("not a folder");
  } catch (e) {
    throw new BadArgsError(`record_failures ${dir}: cannot write recordings there (${e instanceof Error ? e.message : String(e)})`);
  }
  return { dir, maxFiles: maxFiles ?? RECORD_DEFAULTS.maxFiles, maxBytes: maxBytes ?? RECORD_DEFAULTS.maxBytes };
}

/** Two functions on one route, or two of one name, cannot be told apart. */
export function checkUnique(functions: readonly FunctionConfig[]): void {
  const routes = new Set<string>();
  const names = new Set<string>();
  for (const f of functions) {
    if (routes.has(f.route)) throw new BadArgsError(`two functions on the route ${f.route}`);
    if (names.has(f.name)) throw new BadArgsError(`two functions named ${f.name}: give each a name`);
    routes.add(f.route);
    names.add(f.name);
  }
}

/** Reads and checks a TOML configuration file. */
export async function readConfigFile(path: string): Promise<ServeConfig> {
  let text: string;
  try {
    text = await Bun.file(path).text();
  } catch (e) {
    throw new BadArgsError(`--config ${path}: cannot read it (${e instanceof Error ? e.message : String(e)})`);
  }
  let doc: unknown;
  try {
    doc = Bun.TOML.parse(text);
  } catch (e) {
    throw new BadArgsError(`--config ${path}: not TOML (${e instanceof Error ? e.message : String(e)})`);
  }
  return serveConfig(doc, path);
}
