// A worker thread of `wasp serve --program` (src/serve/program.ts): it loads the program, runs it
// to its listener (its snapshot), says so, and then accepts connections on the server's shared
// listening socket, one at a time, each served by a virtine resumed from that snapshot — the
// thread waits in the kernel for the connection's bytes, as the program would. A failure before
// the program answered the request in progress is answered for it (504 at the deadline, 502 for
// a crash or a refused system call) when the connection speaks HTTP; the connection is closed.
// What each connection did goes to the main thread in one message (the access log, the metrics).
import { acceptWaiting } from "../../ffi/net.ts";
import { PolicyViolationError, TimeoutError, WaspError } from "../errors.ts";
import { LinuxProgram } from "../virtine/linux.ts";
import type { ProgramConfig } from "./config.ts";
import { MemoryConnection, SocketConnection } from "./connection.ts";

declare const self: Worker;

export interface ProgramWorkerInit {
  program: ProgramConfig;
  /** the shared listening socket's fd and the address it listens on */
  listenFd: number;
  listen: { address: string; port: number };
  /** [0]: 1 once the server stops (finish the connection in progress, take no other); [1 + index]: 1 while this worker serves one */
  control: SharedArrayBuffer;
  index: number;
}

/** What one connection did: the main thread logs and counts it. */
export interface ConnectionReport {
  type: "connection";
  id: string;
  peer: string;
  ms: number;
  requests: number;
  bytesIn: number;
  bytesOut: number;
  /** ok: the program served it; timeout, crash, refused (a system call wasp refuses), error (wasp's own) */
  outcome: "ok" | "timeout" | "crash" | "refused" | "error";
  /** the status wasp answered for the program (502, 504), if it did */
  status?: number;
  code?: string;
  detail?: string;
  /** what the program wrote on its stdout and stderr while it served the connection */
  output?: Uint8Array;
}

const ENCODER = new TextEncoder();

/** An error's stable code (the standalone binary's class names are minified). */
function errorCode(e: unknown): string {
  return e instanceof WaspError ? e.code : "WASP_INTERNAL";
}

/** A whole HTTP answer of the server's, for a request the program failed before it answered. */
function failure(status: 502 | 504, id: string): Uint8Array {
  const body = JSON.stringify({ error: status === 504 ? "timeout" : "bad_gateway", request_id: id });
  const reason = status === 504 ? "Gateway Timeout" : "Bad Gateway";
  return ENCODER.encode(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\nX-Request-Id: ${id}\r\n\r\n${body}`);
}

function outputOf(stdout: Uint8Array, stderr: Uint8Array): Uint8Array | undefined {
  if (stdout.length === 0 && stderr.length === 0) return undefined;
  if (stderr.length === 0) return stdout;
  if (stdout.length === 0) return stderr;
  return Buffer.concat([stdout, stderr]);
}

self.onmessage = (e: MessageEvent<ProgramWorkerInit>) => {
  self.onmessage = null;
  const init = e.data;
  const p = init.program;
  let program: LinuxProgram;
  try {
    program = LinuxProgram.fromFile(p.path, {
      serve: { listen: init.listen },
      timeoutMs: p.timeoutMs,
      memory: p.memory,
      allow: p.allow,
      env: p.env,
      files: p.files,
      dirs: p.dirs,
      poolSize: 2,
    });
    const start = program.run(p.args);
    if (start.listening === undefined) {
      const said = new TextDecoder().decode(start.stderr).trim().split("\n").pop() ?? "";
      self.postMessage({ type: "error", code: "WASP_BAD_ARGS", message: `${p.name} exited with status ${start.status} before it waited for a connection${said ? ` (its last line: ${said.slice(0, 200)})` : ""}` });
      program.close();
      return;
    }
    // wasp's own warm-up connections: the system-call sites the program reaches serving one are
    // trained into the snapshot (a client's never are), so that no connection pays their first use
    let warmed = 0;
    for (const request of p.warmRequests) {
      try {
        program.run({ connection: new MemoryConnection(ENCODER.encode(request)), keepAliveMs: 0, train: true });
        warmed++;
      } catch {
        // a warm-up the program fails trains nothing; its clients' connections are served as they come
      }
    }
    self.postMessage({ type: "ready", listening: start.listening, warmed, output: outputOf(start.stdout, start.stderr) });
  } catch (err) {
    self.postMessage({ type: "error", code: errorCode(err), message: err instanceof Error ? err.message : String(err) });
    return;
  }
  const control = new Int32Array(init.control);
  const busy = 1 + init.index;
  let served = 0;
  // the connections' reports go to the main thread together while connections are queued, and at
  // once when none is (a message each is a thread wake-up and a main thread's turn per connection)
  let reports: ConnectionReport[] = [];
  const flush = () => {
    if (reports.length === 0) return;
    self.postMessage(reports);
    reports = [];
  };
  while (Atomics.load(control, 0) === 0) {
    let a = reports.length < 64 ? acceptWaiting(init.listenFd, 0) : undefined;
    if (!a) {
      flush();
      a = acceptWaiting(init.listenFd, 100);
      if (!a) continue;
    }
    Atomics.store(control, busy, 1);
    const id = `${init.index.toString(16)}${(served++).toString(16).padStart(7, "0")}${Math.floor(Math.random() * 0xffffffff).toString(16).padStart(8, "0")}`;
    const conn = new SocketConnection(a.fd, a, p.maxRequests);
    const t0 = performance.now();
    const report: ConnectionReport = { type: "connection", id, peer: `${a.address}:${a.port}`, ms: 0, requests: 0, bytesIn: 0, bytesOut: 0, outcome: "ok" };
    try {
      const r = program.run({ connection: conn, keepAliveMs: p.keepAliveMs });
      report.output = outputOf(r.stdout, r.stderr);
      // a server that exits with a failure (a panic after its answer, say) has crashed
      if (!r.served?.idle && r.status !== 0) {
        report.outcome = "crash";
        report.code = "EXIT"; // not an error of wasp's: the program's own status
        report.detail = `the program exited with status ${r.status}`;
        if (conn.unanswered && conn.speaksHttp) {
          report.status = 502;
          conn.failWith(failure(502, id));
        }
      }
    } catch (err) {
      const timeout = err instanceof TimeoutError;
      report.outcome = timeout ? "timeout" : err instanceof PolicyViolationError ? "refused" : errorCode(err) === "WASP_INTERNAL" ? "error" : "crash";
      report.code = errorCode(err);
      report.detail = err instanceof Error ? err.message : String(err);
      if (conn.unanswered && conn.speaksHttp) {
        report.status = timeout ? 504 : 502;
        conn.failWith(failure(report.status as 502 | 504, id));
      }
    } finally {
      conn.release();
      Atomics.store(control, busy, 0);
    }
    report.ms = performance.now() - t0;
    report.requests = conn.stats.requests;
    report.bytesIn = conn.stats.bytesIn;
    report.bytesOut = conn.stats.bytesOut;
    reports.push(report);
  }
  flush();
  program.close();
  // the thread ends here (nothing keeps it): the main thread sees its close event
  self.postMessage({ type: "stopped" });
};
