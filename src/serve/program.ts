// `wasp serve --program ./server [args] --listen HOST:PORT` (issue 25): an unmodified Linux server
// served a connection per virtine. wasp makes the listening socket itself (non-blocking, shared by
// its worker threads); each worker loads the program and runs it until it waits for a connection on
// its own listener — accept, epoll_wait or poll — where the virtine is snapshotted
// (src/linux/net.ts); then each worker accepts connections and serves each in a virtine resumed
// there: the program's accept returns it, its reads and writes are the connection's, and when it
// waits for another connection the virtine ends and its shell is reset. Nothing of one connection
// reaches the next. wasp's own HTTP server (--port) answers /healthz, /readyz (200 once every
// worker has its snapshot) and /metrics. SIGTERM: stop accepting, finish the connections in
// progress (at most grace_ms), exit.
import { closeFd, listenShared } from "../../ffi/net.ts";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { BadArgsError, WaspError } from "../errors.ts";
import { threadEntry } from "../api/workers.ts";
import type { ServeConfig } from "./config.ts";
import type { ConnectionReport, ProgramWorkerInit } from "./program-worker.ts";

type WorkerMessage = ConnectionReport[] | { type: "ready"; listening: string; warmed: number; output?: Uint8Array } | { type: "error"; code: string; message: string } | { type: "stopped" };


/** An error a worker reported while it loaded the program, with its code. */
class ProgramStartError extends WaspError {
  constructor(code: string, message: string) {
    super(code, message);
  }
}

export interface ProgramServerOptions {
  log: (line: string) => void;
  /** after the workers have their snapshots, before "ready": the seccomp filter */
  beforeReady?: () => void;
}

export class ProgramServer {
  readonly #config: ServeConfig;
  readonly #o: ProgramServerOptions;
  readonly registry = new Registry();
  #listenFd = -1;
  #workers: Worker[] = [];
  #control = new SharedArrayBuffer(4 * 258);
  #admin: ReturnType<typeof Bun.serve> | undefined;
  #ready = false;
  #stopped = 0;
  #onStopped: (() => void) | undefined;
  readonly #connections: Counter;
  readonly #requests: Counter;
  readonly #duration: Histogram;
  readonly #bytes: Counter;
  /** the program's address: where it is served */
  listen: { address: string; port: number } = { address: "", port: 0 };
  /** wasp's own HTTP server's port (health, readiness, metrics) */
  adminPort = 0;

  constructor(config: ServeConfig, opts: ProgramServerOptions) {
    if (!config.program) throw new BadArgsError("a program server needs a program");
    this.#config = config;
    this.#o = opts;
    const name = config.program.name;
    const labels = ["program", "outcome"];
    this.#connections = new Counter({ name: "wasp_program_connections_total", help: "Connections served, by program and outcome (ok, timeout, crash, refused, error)", labelNames: labels, registers: [this.registry] });
    this.#requests = new Counter({ name: "wasp_program_requests_total", help: "Requests the connections made (bytes after an answer begin one)", labelNames: ["program"], registers: [this.registry] });
    this.#duration = new Histogram({ name: "wasp_program_connection_seconds", help: "Time from a connection's accept to its end, by program", labelNames: ["program"], buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [this.registry] });
    this.#bytes = new Counter({ name: "wasp_program_bytes_total", help: "Bytes of the connections, by program and direction (in, out)", labelNames: ["program", "direction"], registers: [this.registry] });
    const control = new Int32Array(this.#control);
    const workers = () => this.#workers.length;
    new Gauge({
      name: "wasp_program_connections_in_flight",
      help: "Connections being served (one per busy worker thread)",
      labelNames: ["program"],
      registers: [this.registry],
      collect() {
        let n = 0;
        for (let i = 0; i < workers(); i++) n += Atomics.load(control, 1 + i);
        this.set({ program: name }, n);
      },
    });
  }

  get ready(): boolean {
    return this.#ready;
  }

  /** Listens, starts the workers (each snapshots the program at its listener), then wasp's own HTTP server; resolves once ready. */
  async start(): Promise<void> {
    const c = this.#config;
    const p = c.program!;
    const log = this.#o.log;
    const l = listenShared(p.listen.host, p.listen.port, 1024, p.timeoutMs);
    this.#listenFd = l.fd;
    this.listen = { address: p.listen.host, port: l.port };
    const size = Math.max(1, Math.min(256, c.workers ?? navigator.hardwareConcurrency ?? 1));
    let firstOutput = true;
    try {
      await new Promise<void>((resolve, reject) => {
        let ready = 0;
        for (let index = 0; index < size; index++) {
          const w = new Worker(threadEntry(new URL("./program-worker.ts", import.meta.url), "serve/program-worker.js"));
          this.#workers.push(w);
          w.onmessage = (e: MessageEvent<WorkerMessage>) => {
            const m = e.data;
            if (Array.isArray(m)) for (const r of m) this.#report(r);
            else if (m.type === "ready") {
              // the program's own start-up lines, once (every worker's start is the same)
              if (firstOutput && m.output) process.stderr.write(m.output);
              if (firstOutput) log(JSON.stringify({ level: "info", msg: "snapshot", program: p.name, at: m.listening, warmed: m.warmed }));
              firstOutput = false;
              if (++ready === size) resolve();
            } else if (m.type === "error") reject(new ProgramStartError(m.code, m.message));
          };
          // a worker that has finished its last connection ends (its "stopped" message may not outlive it)
          let ended = false;
          w.addEventListener("close", () => {
            if (ended) return;
            ended = true;
            this.#stopped++;
            if (this.#stopped === this.#workers.length) this.#onStopped?.();
          });
          w.onerror = (e) => {
            // before ready the start fails; after it the server goes on with the workers it has, and says so
            if (!this.#ready) reject(new ProgramStartError("WASP_INTERNAL", `a worker thread failed: ${e.message}`));
            else log(JSON.stringify({ level: "error", msg: "a worker thread failed; the others go on serving", worker: index, error: e.message }));
          };
          const init: ProgramWorkerInit = { program: p, listenFd: l.fd, listen: this.listen, control: this.#control, index };
          w.postMessage(init);
        }
      });
    } catch (e) {
      for (const w of this.#workers) w.terminate();
      this.#workers = [];
      closeFd(this.#listenFd);
      this.#listenFd = -1;
      throw e;
    }
    this.#admin = Bun.serve({
      hostname: c.host,
      port: c.port,
      fetch: async (req) => {
        const path = new URL(req.url).pathname;
        if (path === "/healthz") return new Response("ok\n");
        if (path === "/readyz") return this.#ready ? new Response("ready\n") : new Response("not ready\n", { status: 503 });
        if (path === "/metrics") return new Response(await this.registry.metrics(), { headers: { "content-type": this.registry.contentType } });
        return new Response(JSON.stringify({ error: "not_found" }), { status: 404, headers: { "content-type": "application/json" } });
      },
    });
    this.adminPort = this.#admin.port ?? 0;
    log(JSON.stringify({ level: "info", msg: "listening", url: `http://${c.host}:${this.adminPort}`, program: p.name, serves: `${this.listen.address}:${this.listen.port}`, workers: size }));
    this.#o.beforeReady?.();
    this.#ready = true;
    log(JSON.stringify({ level: "info", msg: "ready" }));
  }

  #report(m: ConnectionReport): void {
    const name = this.#config.program!.name;
    if (m.output) process.stderr.write(m.output);
    this.#connections.inc({ program: name, outcome: m.outcome });
    if (m.requests > 0) this.#requests.inc({ program: name }, m.requests);
    this.#duration.observe({ program: name }, m.ms / 1000);
    if (m.bytesIn > 0) this.#bytes.inc({ program: name, direction: "in" }, m.bytesIn);
    if (m.bytesOut > 0) this.#bytes.inc({ program: name, direction: "out" }, m.bytesOut);
    if (!this.#config.accessLog && m.outcome === "ok") return;
    const line: Record<string, unknown> = { time: new Date().toISOString(), connection_id: m.id, peer: m.peer, program: name, outcome: m.outcome, requests: m.requests, ms: Math.round(m.ms * 1000) / 1000, bytes_in: m.bytesIn, bytes_out: m.bytesOut };
    if (m.status !== undefined) line.status = m.status;
    if (m.code !== undefined) line.detail = `${m.code}: ${m.detail}`;
    this.#o.log(JSON.stringify(line));
  }

  /** Stops accepting, lets the connections in progress finish (at most grace_ms), closes everything. */
  async stop(): Promise<void> {
    this.#ready = false;
    Atomics.store(new Int32Array(this.#control), 0, 1);
    if (this.#workers.length > 0 && this.#stopped < this.#workers.length) {
      let grace: Timer | undefined;
      await Promise.race([new Promise<void>((r) => (this.#onStopped = r)), new Promise<void>((r) => (grace = setTimeout(r, this.#config.graceMs + 200)))]);
      clearTimeout(grace); // a pending timer would keep the process alive
    }
    for (const w of this.#workers) w.terminate();
    this.#workers = [];
    if (this.#listenFd >= 0) closeFd(this.#listenFd);
    this.#listenFd = -1;
    await this.#admin?.stop(true);
    this.#admin = undefined;
    this.#o.log(JSON.stringify({ level: "info", msg: "stopped" }));
  }
}
