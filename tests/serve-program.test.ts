// `wasp serve --program` (issue 25, part 1) on the real /dev/kvm, through the standalone binary:
// servers written here from scratch, for no one in particular — a blocking keep-alive server, an
// epoll event loop, a server that forks per connection — each snapshotted where it waits for a
// connection and served a connection per virtine. What one connection leaves in the program's
// memory no later connection sees; a crash is a 502 and ends only its connection; the deadline is a
// 504; the request cap and the keep-alive time end a connection; what a program may not do before
// its snapshot (fork, a thread, a second listener) is refused in one line; metrics, readiness and
// the sandbox's filter on every thread; SIGTERM ends it with status 0.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compileC } from "../src/linux/c.ts";
import { readLines, slow, waitFor, WASP, type Line } from "./support.ts";

let tmp: string;
const built: Record<string, string> = {};

const BLOCKING = `
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static int counter = 0;
static char last[256] = "";

int main(int argc, char **argv) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons(argc > 1 ? atoi(argv[1]) : 8080);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 64) < 0) { perror("listen"); return 1; }
  fprintf(stderr, "blocking server up\\n");
  for (;;) {
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    int c = accept(s, (struct sockaddr *)&peer, &len);
    if (c < 0) continue;
    char buf[4096];
    size_t have = 0;
    for (;;) {
      ssize_t n = read(c, buf + have, sizeof buf - 1 - have);
      if (n <= 0) break;
      have += n;
      buf[have] = 0;
      char *end = strstr(buf, "\\r\\n\\r\\n");
      if (!end) continue;
      char path[256] = "";
      sscanf(buf, "%*s %255s", path);
      if (strcmp(path, "/crash") == 0) *(volatile int *)0 = 1;
      if (strcmp(path, "/spin") == 0) for (;;) {}
      if (strcmp(path, "/big") == 0) {
        /* 100,000 bytes past the connection window: in writes of 7,000, then a writev of three parts */
        static char big[100000];
        for (int i = 0; i < (int)sizeof big; i++) big[i] = 'a' + i % 26;
        char hb[128];
        int hn = snprintf(hb, sizeof hb, "HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n", (int)sizeof big);
        write(c, hb, hn);
        int at = 0;
        while (at < 70000) { int w = write(c, big + at, 7000); if (w <= 0) break; at += w; }
        struct iovec v[3] = { { big + at, 10000 }, { big + at + 10000, 15000 }, { big + at + 25000, 5000 } };
        writev(c, v, 3);
        size_t used = end + 4 - buf;
        memmove(buf, buf + used, have - used);
        have -= used;
        continue;
      }
      char extra[64] = "";
      if (strcmp(path, "/connect") == 0) {
        int o = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in d = {0};
        d.sin_family = AF_INET;
        d.sin_port = htons(80);
        d.sin_addr.s_addr = htonl(0x01010101);
        int r = connect(o, (struct sockaddr *)&d, sizeof d);
        snprintf(extra, sizeof extra, " connect=%d errno=%d", r, r < 0 ? errno : 0);
        close(o);
      }
      counter++;
      char body[700];
      int bl = snprintf(body, sizeof body, "path=%s counter=%d last=%s peer=%s%s\\n", path, counter, last, inet_ntoa(peer.sin_addr), extra);
      snprintf(last, sizeof last, "%s", path);
      char out[1024];
      int ol = snprintf(out, sizeof out, "HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: %d\\r\\n\\r\\n%s", bl, body);
      write(c, out, ol);
      size_t used = end + 4 - buf;
      memmove(buf, buf + used, have - used);
      have -= used;
    }
    close(c);
  }
}`;

const EPOLL = `
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct conn { int fd; char buf[4096]; size_t have; };
static long served = 0;

int main(void) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons(7000);
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 128) < 0) return 1;
  int ep = epoll_create1(0);
  struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
  epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
  for (;;) {
    struct epoll_event evs[16];
    int n = epoll_wait(ep, evs, 16, -1);
    for (int i = 0; i < n; i++) {
      if (evs[i].data.ptr == NULL) {
        for (;;) {
          int c = accept4(s, NULL, NULL, SOCK_NONBLOCK);
          if (c < 0) break;
          struct conn *k = calloc(1, sizeof *k);
          k->fd = c;
          struct epoll_event ce = { .events = EPOLLIN, .data.ptr = k };
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
        }
        continue;
      }
      struct conn *k = evs[i].data.ptr;
      for (;;) {
        ssize_t r = recv(k->fd, k->buf + k->have, sizeof k->buf - 1 - k->have, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN)) { epoll_ctl(ep, EPOLL_CTL_DEL, k->fd, NULL); close(k->fd); free(k); break; }
        if (r < 0) break;
        k->have += r;
        k->buf[k->have] = 0;
        char *end;
        while ((end = strstr(k->buf, "\\r\\n\\r\\n")) != NULL) {
          served++;
          char out[256];
          char body[64];
          int bl = snprintf(body, sizeof body, "epoll served=%ld\\n", served);
          int ol = snprintf(out, sizeof out, "HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n%s", bl, body);
          send(k->fd, out, ol, MSG_NOSIGNAL);
          size_t used = end + 4 - k->buf;
          memmove(k->buf, k->buf + used, k->have - used + 1);
          k->have -= used;
        }
      }
    }
  }
}`;

const FORKING = `
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int handled = 0;

int main(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons(7001);
  bind(s, (struct sockaddr *)&a, sizeof a);
  listen(s, 16);
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) continue;
    pid_t pid = fork();
    if (pid == 0) {
      close(s);
      dup2(c, 0);
      dup2(c, 1);
      close(c);
      char buf[2048];
      ssize_t n = read(0, buf, sizeof buf - 1);
      buf[n > 0 ? n : 0] = 0;
      handled++;
      char body[128];
      int bl = snprintf(body, sizeof body, "child handled=%d first=%.3s\\n", handled, buf);
      dprintf(1, "HTTP/1.0 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n%s", bl, body);
      _exit(0);
    }
    close(c);
    waitpid(-1, NULL, WNOHANG);
  }
}`;

const THREADED = `
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int total = 0;
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int turn = 0, rounds = 0;

/* two players hand the turn back and forth through a condition variable: each wait blocks its thread */
static void *player(void *arg) {
  int me = (int)(long)arg;
  for (int i = 0; i < 50; i++) {
    pthread_mutex_lock(&m);
    while (turn != me) pthread_cond_wait(&cv, &m);
    turn = 1 - me;
    rounds++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&m);
  }
  return 0;
}

static void *handle(void *arg) {
  int c = (int)(long)arg;
  char buf[2048];
  ssize_t n = read(c, buf, sizeof buf - 1);
  if (n <= 0) { close(c); return 0; }
  pthread_t p[2];
  for (long i = 0; i < 2; i++) pthread_create(&p[i], 0, player, (void *)i);
  for (int i = 0; i < 2; i++) pthread_join(p[i], 0);
  pthread_mutex_lock(&m);
  int t = ++total;
  pthread_mutex_unlock(&m);
  char body[64];
  int bl = snprintf(body, sizeof body, "rounds=%d total=%d\\n", rounds, t);
  dprintf(c, "HTTP/1.0 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n%s", bl, body);
  close(c);
  return 0;
}

int main(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons(7002);
  bind(s, (struct sockaddr *)&a, sizeof a);
  listen(s, 16);
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0) continue;
    pthread_t t;
    pthread_create(&t, 0, handle, (void *)(long)c);
    pthread_detach(t);
  }
}`;

const SELECTING = `
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

static int served = 0;

int main(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons(7003);
  bind(s, (struct sockaddr *)&a, sizeof a);
  listen(s, 16);
  for (;;) {
    fd_set r;
    FD_ZERO(&r);
    FD_SET(s, &r);
    if (select(s + 1, &r, NULL, NULL, NULL) <= 0 || !FD_ISSET(s, &r)) continue;
    int c = accept(s, NULL, NULL);
    if (c < 0) continue;
    FD_ZERO(&r);
    FD_SET(c, &r);
    struct timeval tv = { 2, 0 };
    if (select(c + 1, &r, NULL, NULL, &tv) == 1 && FD_ISSET(c, &r)) {
      char buf[2048];
      ssize_t n = read(c, buf, sizeof buf);
      char body[64];
      int bl = snprintf(body, sizeof body, "selected served=%d read=%d\\n", ++served, n > 0);
      dprintf(c, "HTTP/1.0 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n%s", bl, body);
    }
    close(c);
  }
}`;

/** Programs a served program may not be: each does its forbidden thing before it waits for a connection. */
const REFUSED: Record<string, { source: string; says: RegExp }> = {
  forks: {
    source: `#include <unistd.h>\n#include <netinet/in.h>\n#include <sys/socket.h>\nint main(void) { if (fork() == 0) return 0; int s = socket(AF_INET, SOCK_STREAM, 0); struct sockaddr_in a = {0}; a.sin_family = AF_INET; bind(s, (void *)&a, sizeof a); listen(s, 1); accept(s, 0, 0); return 0; }`,
    says: /forked before it waited for a connection \(fork\)/,
  },
  thread: {
    source: `#include <pthread.h>\n#include <netinet/in.h>\n#include <sys/socket.h>\nstatic void *run(void *x) { return x; }\nint main(void) { pthread_t t; pthread_create(&t, 0, run, 0); int s = socket(AF_INET, SOCK_STREAM, 0); struct sockaddr_in a = {0}; a.sin_family = AF_INET; bind(s, (void *)&a, sizeof a); listen(s, 1); accept(s, 0, 0); return 0; }`,
    says: /made a thread before it waited for a connection \(clone\)/,
  },
  twoListeners: {
    source: `#include <netinet/in.h>\n#include <sys/socket.h>\nint main(void) { for (int i = 0; i < 2; i++) { int s = socket(AF_INET, SOCK_STREAM, 0); struct sockaddr_in a = {0}; a.sin_family = AF_INET; a.sin_port = htons(9000 + i); bind(s, (void *)&a, sizeof a); listen(s, 1); } return 0; }`,
    says: /listens on a second socket/,
  },
  otherSocket: {
    source: `#include <netinet/in.h>\n#include <sys/socket.h>\nint main(void) { int u = socket(AF_INET, SOCK_DGRAM, 0); (void)u; int s = socket(AF_INET, SOCK_STREAM, 0); struct sockaddr_in a = {0}; a.sin_family = AF_INET; bind(s, (void *)&a, sizeof a); listen(s, 1); accept(s, 0, 0); return 0; }`,
    says: /has another socket open when it waits for a connection \(fd 3: a UDP socket\)/,
  },
  exits: {
    source: `#include <stdio.h>\nint main(void) { fprintf(stderr, "no config, giving up\\n"); return 3; }`,
    says: /exited with status 3 before it waited for a connection \(its last line: no config, giving up\)/,
  },
};

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "wasp-serve-program-"));
  const cacheDir = join(tmp, "cache");
  const sources: Record<string, string> = { blocking: BLOCKING, epoll: EPOLL, forking: FORKING, threaded: THREADED, selecting: SELECTING, ...Object.fromEntries(Object.entries(REFUSED).map(([k, v]) => [k, v.source])) };
  for (const [name, source] of Object.entries(sources)) {
    // under its own name: the program's name in the logs and metrics
    built[name] = join(tmp, name);
    copyFileSync((await compileC(source, { name, cacheDir, optimize: "fast" })).path, built[name]);
    chmodSync(built[name], 0o755);
  }
}, slow(600_000));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Served {
  proc: ReturnType<typeof Bun.spawn>;
  lines: ReturnType<typeof readLines>;
  port: number;
  admin: string;
}

async function serve(program: string[], flags: string[] = []): Promise<Served> {
  const proc = Bun.spawn([WASP, "serve", "--listen", "127.0.0.1:0", "--port", "0", "--workers", "2", ...flags, "--program", ...program], { stderr: "pipe", stdout: "pipe" });
  const lines = readLines(proc.stderr as ReadableStream<Uint8Array>);
  const listening = await Promise.race([waitFor(lines, (l) => l.msg === "listening"), proc.exited.then((code) => ({ exited: code }) as Line)]);
  if ("exited" in listening) throw new Error(`wasp serve exited with ${listening.exited} before it listened`);
  await waitFor(lines, (l) => l.msg === "ready");
  return { proc, lines, port: Number(String(listening.serves).split(":")[1]), admin: String(listening.url) };
}

async function stop(s: Served): Promise<number> {
  s.proc.kill("SIGTERM");
  return await s.proc.exited;
}

/**
 * One TCP connection: each request written after the previous answer came whole (by its
 * Content-Length); the answers, and whether the server closed the connection (`closed`) and when.
 */
function talk(port: number, requests: string[], opts: { idleMs?: number } = {}): Promise<{ answers: string[]; closed: boolean; raw: string }> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, "127.0.0.1");
    const answers: string[] = [];
    let buf = "";
    let raw = "";
    let next = 0;
    let closed = false;
    let idle: Timer | undefined;
    const finish = () => {
      clearTimeout(idle);
      sock.destroy();
      resolve({ answers, closed, raw });
    };
    const send = () => {
      if (next < requests.length) sock.write(requests[next++]);
      else idle = setTimeout(finish, opts.idleMs ?? 50);
    };
    sock.on("connect", send);
    sock.on("data", (d) => {
      buf += d.toString("latin1");
      raw += d.toString("latin1");
      for (;;) {
        const head = buf.indexOf("\r\n\r\n");
        if (head < 0) return;
        const m = /content-length: *(\d+)/i.exec(buf.slice(0, head));
        const len = m ? Number(m[1]) : buf.length - head - 4;
        if (buf.length < head + 4 + len) return;
        answers.push(buf.slice(0, head + 4 + len));
        buf = buf.slice(head + 4 + len);
        send();
      }
    });
    sock.on("end", () => {
      closed = true;
      if (buf.length > 0) answers.push(buf);
      finish();
    });
    sock.on("error", (e) => (closed ? finish() : reject(e)));
  });
}

const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;
const body = (answer: string) => answer.slice(answer.indexOf("\r\n\r\n") + 4);

describe("wasp serve --program", () => {
  test("a blocking server: a connection keeps its state across its requests, the next connection sees none of it; a crash is a 502, the deadline a 504, each ending only its connection", async () => {
    const s = await serve([built.blocking, "8080"], ["--timeout", "1500"]);
    try {
      const first = await talk(s.port, [get("/a"), get("/b")]);
      expect(first.answers.map(body)).toEqual(["path=/a counter=1 last= peer=127.0.0.1\n", "path=/b counter=2 last=/a peer=127.0.0.1\n"]);
      // a new connection: a virtine resumed from the snapshot, which never saw /a or /b
      const second = await talk(s.port, [get("/c")]);
      expect(body(second.answers[0])).toBe("path=/c counter=1 last= peer=127.0.0.1\n");
      // many connections at once, each its own
      const many = await Promise.all(Array.from({ length: 12 }, (_, i) => talk(s.port, [get(`/m${i}`)])));
      many.forEach((r, i) => expect(body(r.answers[0])).toBe(`path=/m${i} counter=1 last= peer=127.0.0.1\n`));

      const crash = await talk(s.port, [get("/crash")]);
      expect(crash.answers[0]).toStartWith("HTTP/1.1 502 Bad Gateway\r\n");
      expect(crash.closed).toBe(true);
      const id = /X-Request-Id: (\w+)/.exec(crash.answers[0])?.[1];
      expect(body(crash.answers[0])).toBe(JSON.stringify({ error: "bad_gateway", request_id: id }));
      const crashed = await waitFor(s.lines, (l) => l.connection_id === id);
      expect(crashed).toMatchObject({ outcome: "crash", status: 502 });
      expect(String(crashed.detail)).toStartWith("WASP_GUEST_FAULT: ");

      const t0 = performance.now();
      const spin = await talk(s.port, [get("/spin")]);
      expect(performance.now() - t0).toBeGreaterThanOrEqual(1400);
      expect(spin.answers[0]).toStartWith("HTTP/1.1 504 Gateway Timeout\r\n");
      expect(body(spin.answers[0])).toContain('"error":"timeout"');

      // an answer past the connection window, in many writes and a writev, arrives whole and in order, and the connection goes on
      const big = await talk(s.port, [get("/big"), get("/after")]);
      const expected = Array.from({ length: 100000 }, (_, i) => String.fromCharCode(97 + (i % 26))).join("");
      expect(body(big.answers[0]) === expected).toBe(true);
      expect(body(big.answers[1])).toBe("path=/after counter=1 last= peer=127.0.0.1\n");
      // the program has no network but its listener: its connect fails as Linux's without a route
      const out = await talk(s.port, [get("/connect")]);
      expect(body(out.answers[0])).toBe("path=/connect counter=1 last= peer=127.0.0.1 connect=-1 errno=101\n");
      // and after all of it the program serves as at first
      expect(body((await talk(s.port, [get("/d")])).answers[0])).toBe("path=/d counter=1 last= peer=127.0.0.1\n");

      // every connection's report reaches the main thread when its virtine ends (after the client closed)
      while (s.lines.lines.filter((l) => l.outcome === "ok").length < 17) await Bun.sleep(20);
      expect((await fetch(`${s.admin}/readyz`)).status).toBe(200);
      expect((await fetch(`${s.admin}/healthz`)).status).toBe(200);
      const metrics = await (await fetch(`${s.admin}/metrics`)).text();
      expect(metrics).toContain('wasp_program_connections_total{program="blocking",outcome="crash"} 1');
      expect(metrics).toContain('wasp_program_connections_total{program="blocking",outcome="timeout"} 1');
      expect(metrics).toContain('wasp_program_connections_total{program="blocking",outcome="ok"} 17');
      expect(metrics).toContain('wasp_program_connections_in_flight{program="blocking"} 0');
      expect(metrics).toMatch(/wasp_program_requests_total\{program="blocking"\} \d+/);
      // the sandbox: every thread of the server filtered
      for (const t of readdirSync(`/proc/${s.proc.pid}/task`)) {
        expect(readFileSync(`/proc/${s.proc.pid}/task/${t}/status`, "utf8")).toMatch(/^Seccomp:\s+2$/m);
      }
      expect(await stop(s)).toBe(0);
      await waitFor(s.lines, (l) => l.msg === "stopped");
    } finally {
      s.proc.kill("SIGKILL");
    }
  }, slow(120_000));

  test("the request cap and the keep-alive time end a connection for the program, as a client's close would", async () => {
    const s = await serve([built.blocking], ["--max-requests", "2", "--keep-alive", "300"]);
    try {
      const capped = await talk(s.port, [get("/1"), get("/2"), get("/3")], { idleMs: 2000 });
      expect(capped.answers.map(body)).toEqual(["path=/1 counter=1 last= peer=127.0.0.1\n", "path=/2 counter=2 last=/1 peer=127.0.0.1\n"]);
      expect(capped.closed).toBe(true);
      const t0 = performance.now();
      const idle = await talk(s.port, [get("/x")], { idleMs: 5000 });
      const took = performance.now() - t0;
      expect(idle.answers.length).toBe(1);
      expect(idle.closed).toBe(true);
      expect(took).toBeGreaterThanOrEqual(250);
      expect(took).toBeLessThan(4000);
      // a connection that says nothing is closed after the keep-alive time too (it holds a worker)
      const t1 = performance.now();
      const silent = await talk(s.port, [], { idleMs: 5000 });
      expect(silent.closed).toBe(true);
      expect(silent.answers).toEqual([]);
      expect(performance.now() - t1).toBeLessThan(4000);
      expect(await stop(s)).toBe(0);
    } finally {
      s.proc.kill("SIGKILL");
    }
  }, slow(60_000));

  test("an epoll event loop (non-blocking sockets, snapshotted in epoll_wait): connections at once, each in a virtine of its own", async () => {
    const s = await serve([built.epoll]);
    try {
      const snap = await waitFor(s.lines, (l) => l.msg === "snapshot");
      expect(String(snap.at)).toMatch(/^epoll_p?wait$/);
      const keep = await talk(s.port, [get("/a"), get("/b"), get("/c")]);
      expect(keep.answers.map(body)).toEqual(["epoll served=1\n", "epoll served=2\n", "epoll served=3\n"]);
      const many = await Promise.all(Array.from({ length: 16 }, () => talk(s.port, [get("/"), get("/")])));
      for (const r of many) expect(r.answers.map(body)).toEqual(["epoll served=1\n", "epoll served=2\n"]);
      expect(await stop(s)).toBe(0);
    } finally {
      s.proc.kill("SIGKILL");
    }
  }, slow(60_000));

  test("a server on select(2): snapshotted in select on its listener, its connection selected for reading", async () => {
    const s = await serve([built.selecting]);
    try {
      expect((await waitFor(s.lines, (l) => l.msg === "snapshot")).at).toBe("select");
      for (let i = 0; i < 3; i++) expect(body((await talk(s.port, [get(`/${i}`)])).answers[0])).toBe("selected served=1 read=1\n");
      expect(await stop(s)).toBe(0);
    } finally {
      s.proc.kill("SIGKILL");
    }
  }, slow(60_000));

  test("from a configuration file's [program] table", async () => {
    const file = join(tmp, "program.toml");
    writeFileSync(file, `port = 0\nworkers = 1\n[program]\nname = "from-toml"\npath = "blocking"\nargs = ["8080"]\nlisten = "127.0.0.1:0"\nkeep_alive_ms = 200\n`);
    const proc = Bun.spawn([WASP, "serve", "--config", file], { stderr: "pipe", stdout: "pipe" });
    try {
      const lines = readLines(proc.stderr as ReadableStream<Uint8Array>);
      const listening = await waitFor(lines, (l) => l.msg === "listening");
      expect(listening).toMatchObject({ program: "from-toml", workers: 1 });
      await waitFor(lines, (l) => l.msg === "ready");
      const r = await talk(Number(String(listening.serves).split(":")[1]), [get("/t")]);
      expect(body(r.answers[0])).toBe("path=/t counter=1 last= peer=127.0.0.1\n");
      proc.kill("SIGTERM");
      expect(await proc.exited).toBe(0);
    } finally {
      proc.kill("SIGKILL");
    }
  }, slow(60_000));

  test("a server that forks per connection: the virtine goes on as the child, whose fds 0 and 1 are the connection", async () => {
    const s = await serve([built.forking]);
    try {
      for (let i = 0; i < 4; i++) {
        const r = await talk(s.port, [get(`/${i}`)]);
        expect(body(r.answers[0])).toBe("child handled=1 first=GET\n");
        expect(r.closed).toBe(true);
      }
      expect(await stop(s)).toBe(0);
    } finally {
      s.proc.kill("SIGKILL");
    }
  }, slow(60_000));

  test("a server that starts a thread per connection: its threads run in the connection's vCPU, one at a time, through mutexes, condition variables and joins", async () => {
    const s = await serve([built.threaded]);
    try {
      for (let i = 0; i < 3; i++) {
        const r = await talk(s.port, [get(`/${i}`)]);
        // every connection from the snapshot: the counter starts again; 100 turns handed back and forth
        expect(body(r.answers[0])).toBe("rounds=100 total=1\n");
      }
      const parallel = await Promise.all(Array.from({ length: 6 }, () => talk(s.port, [get("/")])));
      for (const r of parallel) expect(body(r.answers[0])).toBe("rounds=100 total=1\n");
      expect(await stop(s)).toBe(0);
    } finally {
      s.proc.kill("SIGKILL");
    }
  }, slow(60_000));

  for (const [name, { says }] of Object.entries(REFUSED)) {
    test(`refused before its snapshot, in one line: ${name}`, () => {
      const r = Bun.spawnSync([WASP, "serve", "--listen", "127.0.0.1:0", "--port", "0", "--workers", "1", "--program", built[name]], { timeout: slow(30_000) });
      const err = r.stderr.toString();
      expect(r.exitCode).not.toBe(0);
      const lines = err.trim().split("\n").filter((l) => l.startsWith("wasp: "));
      expect(lines.length).toBe(1);
      expect(lines[0]).toMatch(says);
      expect(err).not.toContain("    at ");
    });
  }

  test("bad command lines are one line each", () => {
    const cases: [string[], RegExp][] = [
      [["--program", built.blocking], /--program needs --listen HOST:PORT/],
      [["--program", built.blocking, "--listen", "nowhere"], /--listen "nowhere" is not HOST:PORT/],
      [["--program", built.blocking, "--listen", "127.0.0.1:0", "--route", "/x=./y"], /--program and --route/],
      [["--listen", "127.0.0.1:0", "--route", "/x=./y"], /--listen goes with --program/],
      [["--route", "/x=./y", "--", "extra"], /wasp serve takes arguments only for --program/],
      [["--program", join(tmp, "missing"), "--listen", "127.0.0.1:0"], /missing/],
    ];
    for (const [args, says] of cases) {
      const r = Bun.spawnSync([WASP, "serve", ...args]);
      expect(r.exitCode).not.toBe(0);
      const err = r.stderr.toString().trim();
      expect(err.split("\n").length).toBe(1);
      expect(err).toStartWith("wasp: ");
      expect(err).toMatch(says);
    }
  });
});
