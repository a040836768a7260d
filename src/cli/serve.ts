// `wasp serve`: every HTTP request in its own virtine (src/serve/). From `--route PREFIX=IMAGE`
// flags or `--config wasp.toml`; runs until SIGTERM or SIGINT (drains, exits 0); SIGHUP reloads
// the configuration file without dropping a request.
import { BadArgsError } from "../errors.ts";
import { resolve } from "node:path";
import { checkUnique, DEFAULTS, functionConfig, parseSizeText, programConfig, readConfigFile, recordFailures, type ServeConfig } from "../serve/config.ts";
import { ProgramServer } from "../serve/program.ts";
import { WaspServer } from "../serve/server.ts";
import { checkReloadable, servePaths } from "../serve/sandbox.ts";
import { describeSandbox, sandboxFiles, sandboxSyscalls } from "../host/harden.ts";
import { kvmDevicePath } from "../kvm/system.ts";
import { parseCount, parseDirs, parseList } from "./parse.ts";

export interface ServeFlags {
  route: string[];
  config?: string;
  port?: string;
  host?: string;
  timeout?: string;
  maxBody?: string;
  workers?: string;
  warmCalls?: string;
  accessLog?: boolean;
  recordFailures?: string;
  recordMaxFiles?: string;
  recordMaxBytes?: string;
  /** false with --no-sandbox: no Landlock, no seccomp filter */
  sandbox?: boolean;
  /** a served program: its path and arguments, and its options */
  program?: string[];
  /** the operands after --: more of the program's arguments */
  programArgs?: string[];
  listen?: string;
  keepAlive?: string;
  maxRequests?: string;
  mem?: string;
  allow?: string;
  env?: string[];
  file?: string[];
  dir?: string[];
}

const PROGRAM_FLAGS = [["listen", "--listen"], ["keepAlive", "--keep-alive"], ["maxRequests", "--max-requests"], ["mem", "--mem"], ["allow", "--allow"]] as const;

/** `--program PATH ARGS... --listen HOST:PORT` and its options, as a [program] table would give them. */
function programFlags(flags: ServeFlags): Record<string, unknown> {
  const [path, ...args] = [...(flags.program ?? []), ...(flags.programArgs ?? [])];
  const env: Record<string, string> = {};
  for (const e of flags.env ?? []) {
    const eq = e.indexOf("=");
    if (eq <= 0) throw new BadArgsError(`--env ${e}: not KEY=VALUE`);
    env[e.slice(0, eq)] = e.slice(eq + 1);
  }
  const files: Record<string, string> = {};
  for (const f of flags.file ?? []) {
    const eq = f.indexOf("=");
    if (eq <= 0 || eq === f.length - 1) throw new BadArgsError(`--file ${f}: not GUEST=HOST (e.g. --file /etc/app.conf=./app.conf)`);
    files[f.slice(0, eq)] = f.slice(eq + 1);
  }
  const raw: Record<string, unknown> = { path, args, env, files, dirs: parseDirs(flags.dir ?? []).dirs };
  if (flags.listen !== undefined) raw.listen = flags.listen;
  if (flags.timeout !== undefined) raw.timeout_ms = parseCount(flags.timeout, "--timeout");
  if (flags.keepAlive !== undefined) raw.keep_alive_ms = parseCount(flags.keepAlive, "--keep-alive");
  if (flags.maxRequests !== undefined) raw.max_requests = parseCount(flags.maxRequests, "--max-requests");
  if (flags.mem !== undefined) raw.memory = flags.mem;
  if (flags.allow !== undefined) raw.allow = parseList(flags.allow);
  return raw;
}

/** --record-failures and its bounds, over what the configuration file said. */
function withRecording(c: ServeConfig, flags: ServeFlags): ServeConfig {
  if (flags.recordFailures === undefined) {
    if (flags.recordMaxFiles !== undefined || flags.recordMaxBytes !== undefined) {
      if (!c.recordFailures) throw new BadArgsError("--record-max-files and --record-max-bytes go with --record-failures DIR");
      c.recordFailures = recordFailures(c.recordFailures.dir, flags.recordMaxFiles === undefined ? c.recordFailures.maxFiles : parseCount(flags.recordMaxFiles, "--record-max-files"), flags.recordMaxBytes === undefined ? c.recordFailures.maxBytes : parseSizeText(flags.recordMaxBytes, "--record-max-bytes"));
    }
    return c;
  }
  const files = flags.recordMaxFiles === undefined ? undefined : parseCount(flags.recordMaxFiles, "--record-max-files");
  if (files === 0) throw new BadArgsError("--record-max-files 0: keep at least one, or leave out --record-failures");
  c.recordFailures = recordFailures(resolve(flags.recordFailures), files, flags.recordMaxBytes === undefined ? undefined : parseSizeText(flags.recordMaxBytes, "--record-max-bytes"));
  return c;
}

async function configOf(flags: ServeFlags): Promise<ServeConfig> {
  if (flags.program === undefined && flags.programArgs && flags.programArgs.length > 0) throw new BadArgsError(`unexpected argument ${flags.programArgs[0]}: wasp serve takes arguments only for --program`);
  if (flags.program !== undefined) {
    if (flags.route.length > 0 || flags.config !== undefined) throw new BadArgsError("--program and --route/--config: a server serves one program or functions by route, not both (a [program] table in the file)");
    if (flags.listen === undefined) throw new BadArgsError("--program needs --listen HOST:PORT: where wasp accepts its connections");
    const program = programFlags(flags);
    const port = flags.port === undefined ? 0 : parseCount(flags.port, "--port");
    if (port > 65535) throw new BadArgsError(`--port ${port} is not a port`);
    return withRecording({
      host: flags.host ?? DEFAULTS.host,
      port,
      functions: [],
      program: programConfig(program, "--program", process.cwd(), { timeoutMs: DEFAULTS.timeoutMs }, true),
      workers: flags.workers === undefined ? undefined : parseCount(flags.workers, "--workers"),
      maxQueue: DEFAULTS.maxQueue,
      graceMs: DEFAULTS.graceMs,
      warmCalls: 0,
      accessLog: flags.accessLog !== false,
    }, flags);
  }
  for (const [key, name] of PROGRAM_FLAGS) if (flags[key] !== undefined) throw new BadArgsError(`${name} goes with --program (a served program's option)`);
  for (const [list, name] of [[flags.env, "--env"], [flags.file, "--file"], [flags.dir, "--dir"]] as const) if (list && list.length > 0) throw new BadArgsError(`${name} goes with --program (a served program's option; a function's are in its [[function]] table)`);
  if (flags.config !== undefined) {
    if (flags.route.length > 0) throw new BadArgsError("--config and --route: give the routes in one place");
    const c = await readConfigFile(flags.config);
    // the command line's own flags win over the file's
    if (flags.port !== undefined) c.port = parseCount(flags.port, "--port");
    if (flags.host !== undefined) c.host = flags.host;
    if (flags.workers !== undefined) c.workers = parseCount(flags.workers, "--workers");
    if (flags.warmCalls !== undefined) c.warmCalls = parseCount(flags.warmCalls, "--warm-calls");
    if (flags.accessLog === false) c.accessLog = false;
    return withRecording(c, flags);
  }
  if (flags.route.length === 0) throw new BadArgsError("nothing to serve: --route PREFIX=IMAGE (repeatable) or --config wasp.toml");
  const defaults = {
    timeoutMs: flags.timeout === undefined ? DEFAULTS.timeoutMs : parseCount(flags.timeout, "--timeout"),
    maxBody: flags.maxBody === undefined ? DEFAULTS.maxBody : parseSizeText(flags.maxBody, "--max-body"),
  };
  const functions = flags.route.map((spec) => {
    const eq = spec.indexOf("=");
    if (eq <= 0 || eq === spec.length - 1) throw new BadArgsError(`--route ${spec}: not PREFIX=IMAGE (e.g. --route /hello=./hello.js)`);
    return functionConfig({ route: spec.slice(0, eq), image: spec.slice(eq + 1) }, `--route ${spec}`, process.cwd(), defaults);
  });
  checkUnique(functions);
  const port = flags.port === undefined ? DEFAULTS.port : parseCount(flags.port, "--port");
  if (port > 65535) throw new BadArgsError(`--port ${port} is not a port`);
  return withRecording({
    host: flags.host ?? DEFAULTS.host,
    port,
    functions,
    workers: flags.workers === undefined ? undefined : parseCount(flags.workers, "--workers"),
    maxQueue: DEFAULTS.maxQueue,
    graceMs: DEFAULTS.graceMs,
    warmCalls: flags.warmCalls === undefined ? DEFAULTS.warmCalls : parseCount(flags.warmCalls, "--warm-calls"),
    accessLog: flags.accessLog !== false,
  }, flags);
}

export async function serveCommand(flags: ServeFlags): Promise<void> {
  const config = await configOf(flags);
  // every line through one writer, whole and in order (the server's own lines and this command's:
  // "stopping", SIGHUP's), as a log reader needs them: the asynchronous one, which never holds the
  // server up when the reader is slow (a synchronous write waits for a full pipe to drain)
  const log = (line: string) => void process.stderr.write(`${line}\n`);
  // The sandbox (docs/security.md, "The server"), in two steps. Landlock before any thread is
  // started — below ABI 8 it restricts the calling thread and the threads it starts, not those
  // already running — so the worker threads, where the guests run, are inside it from their first
  // instruction: the files the configuration names, the recordings folder, /dev/kvm.
  const sandboxed = flags.sandbox !== false;
  const paths = sandboxed ? servePaths(config, kvmDevicePath()) : undefined;
  const landlock = paths ? sandboxFiles(paths) : undefined;
  // The seccomp allowlist once it listens (its socket made, its functions loaded and warm) and
  // before it says it is ready, on every thread (TSYNC): from then on no new socket, no program, no
  // other process.
  const beforeReady = () => {
    if (!landlock) {
      log(JSON.stringify({ level: "warn", msg: "sandbox off (--no-sandbox): no Landlock, no seccomp filter" }));
      return;
    }
    const filter = sandboxSyscalls("serve");
    log(JSON.stringify({ level: "info", msg: "sandbox", detail: describeSandbox({ landlock, ...filter }), syscalls: filter.syscalls, landlockAbi: landlock.abi }));
  };
  const server = config.program ? new ProgramServer(config, { log, beforeReady }) : new WaspServer(config, { log, beforeReady });
  // The signals are taken before the server starts: one that comes while it starts (or just after
  // it said ready) is acted on once it has started, never left to end the process unhandled.
  let started: () => void = () => {};
  const running = new Promise<void>((resolve) => (started = resolve));
  const done = new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log(JSON.stringify({ level: "info", msg: "stopping", signal }));
      void running.then(async () => void (await server.stop())).then(() => resolve());
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
    process.on("SIGHUP", () => {
      if (server instanceof ProgramServer) {
        log(JSON.stringify({ level: "warn", msg: "SIGHUP: a served program is not reloaded (restart wasp serve to serve a new one)" }));
        return;
      }
      if (!config.file) {
        log(JSON.stringify({ level: "warn", msg: "SIGHUP: no configuration file to reload (--route flags)" }));
        return;
      }
      const file = config.file;
      running
        .then(() => readConfigFile(file))
        .then((next) => {
          // a sandbox cannot be widened: a reload names only what it allows, or says why not
          if (paths) checkReloadable(next, paths);
          return server.reload(next.functions);
        })
        .catch((e) => log(JSON.stringify({ level: "error", msg: "reload failed; the previous configuration keeps serving", error: e instanceof Error ? e.message : String(e) })));
    });
  });
  await server.start();
  started();
  await done;
}
