// `wasp serve`'s sandbox (docs/security.md, "The server"): Landlock before its threads start and
// its seccomp filter before it says ready, every thread filtered, its functions still served and
// its failures still recorded under it, a reload that names a new file refused with why; and, in a
// child that sandboxes itself the same way, what it refuses on its main thread and on a thread
// started after, while it serves.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compileC } from "../src/linux/c.ts";
import { BadArgsError } from "../src/errors.ts";
import { functionConfig, type ServeConfig } from "../src/serve/config.ts";
import { checkReloadable, servePaths } from "../src/serve/sandbox.ts";
import { guest, readLines, slow, waitFor, WASP, type Line } from "./support.ts";

let tmp: string;
let cgi: string;
beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "wasp-serve-sandbox-"));
  cgi = (await compileC(`#include <stdio.h>\nint main(void) { printf("Content-Type: text/plain\\r\\n\\r\\ncgi\\n"); return 0; }`, { name: "cgi", cacheDir: join(tmp, "cache") })).path;
  writeFileSync(join(tmp, "h.js"), `export default function handler(req) { if (req.path.endsWith("/boom")) throw new Error("boom"); return { ok: true }; }`);
  writeFileSync(join(tmp, "secret.txt"), "not for the server\n");
}, slow(300_000));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Each thread's `Seccomp:` and `NoNewPrivs:` of a running process. */
function threadStates(pid: number): { seccomp: string; noNewPrivs: string }[] {
  const states: { seccomp: string; noNewPrivs: string }[] = [];
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    let status: string;
    try {
      status = readFileSync(`/proc/${pid}/task/${t}/status`, "utf8");
    } catch {
      continue; // a thread that ended since the listing
    }
    const field = (name: string) => new RegExp(`^${name}:\\s+(\\S+)`, "m").exec(status)?.[1] ?? "?";
    states.push({ seccomp: field("Seccomp"), noNewPrivs: field("NoNewPrivs") });
  }
  return states;
}

function toml(functions: { route: string; image: string }[], recordings: string): string {
  return `port = 0\nwarm_calls = 1\nrecord_failures = "${recordings}"\n${functions.map((f) => `[[function]]\nroute = "${f.route}"\nimage = "${f.image}"\n`).join("")}`;
}

describe("a sandboxed wasp serve", () => {
  test("every thread filtered; image, CGI and JavaScript functions served; failures recorded; a reload of new files refused, of the same files done", async () => {
    const recordings = join(tmp, "rec");
    mkdirSync(recordings);
    const file = join(tmp, "wasp.toml");
    const functions = [
      { route: "/hello", image: guest("httphello") },
      { route: "/cgi", image: cgi },
      { route: "/js", image: join(tmp, "h.js") },
    ];
    writeFileSync(file, toml(functions, recordings));
    const p = Bun.spawn([WASP, "serve", "--config", file], { stderr: "pipe", stdout: "pipe" });
    try {
      const lines = readLines(p.stderr);
      const url = (await waitFor(lines, (l) => l.msg === "listening")).url as string;
      await waitFor(lines, (l) => l.msg === "ready");
      // the filter is in before the server says it is ready
      const msgs = lines.lines.map((l: Line) => l.msg);
      expect(msgs.indexOf("sandbox")).toBeGreaterThan(-1);
      expect(msgs.indexOf("sandbox")).toBeLessThan(msgs.indexOf("ready"));
      expect(lines.lines.find((l: Line) => l.msg === "sandbox")?.detail).toMatch(/^seccomp allows \d+ system calls on every thread; /);
      const threads = threadStates(p.pid);
      expect(threads.length).toBeGreaterThan(2); // the main thread, the workers, Bun's own
      for (const t of threads) expect(t).toEqual({ seccomp: "2", noNewPrivs: "1" });

      expect((await fetch(`${url}hello/x`)).status).toBe(200);
      const c = await fetch(`${url}cgi`);
      expect([c.status, await c.text()]).toEqual([200, "cgi\n"]);
      expect(await (await fetch(`${url}js/a`)).json()).toEqual({ ok: true });
      // a failure's recording is written in the folder the sandbox grants
      expect((await fetch(`${url}js/boom`)).status).toBe(502);
      for (let i = 0; i < 100 && !readdirSync(recordings).some((f) => f.endsWith(".rec")); i++) await Bun.sleep(20);
      expect(readdirSync(recordings).filter((f) => f.endsWith(".rec")).length).toBe(1);

      // a new image: Landlock cannot be widened, so the reload is refused before anything loads
      const copy = join(tmp, "other.bin");
      copyFileSync(guest("httphello"), copy);
      writeFileSync(file, toml([...functions, { route: "/other", image: copy }], recordings));
      p.kill("SIGHUP");
      const refused = await waitFor(lines, (l) => l.msg === "reload failed; the previous configuration keeps serving");
      expect(refused.error).toContain(`${copy} is new: restart wasp serve to serve them (or run it with --no-sandbox)`);
      expect((await fetch(`${url}other/x`)).status).toBe(404);
      expect((await fetch(`${url}hello/x`)).status).toBe(200);
      // the same files under other routes: reloaded
      writeFileSync(file, toml([{ route: "/again", image: guest("httphello") }, ...functions.slice(1)], recordings));
      p.kill("SIGHUP");
      await waitFor(lines, (l) => l.msg === "reloaded");
      expect((await fetch(`${url}again/x`)).status).toBe(200);
      p.kill("SIGTERM");
      expect(await p.exited).toBe(0);
    } finally {
      p.kill("SIGKILL");
    }
  }, slow(180_000));

  test("--no-sandbox: no filter on any thread, and the log says so", async () => {
    const p = Bun.spawn([WASP, "serve", "--route", `/h=${guest("httphello")}`, "--port", "0", "--warm-calls", "1", "--no-sandbox"], { stderr: "pipe", stdout: "pipe" });
    try {
      const lines = readLines(p.stderr);
      await waitFor(lines, (l) => l.msg === "ready");
      expect(lines.lines.some((l: Line) => l.level === "warn" && String(l.msg).startsWith("sandbox off (--no-sandbox)"))).toBe(true);
      for (const t of threadStates(p.pid)) expect(t.seccomp).toBe("0");
      p.kill("SIGTERM");
      expect(await p.exited).toBe(0);
    } finally {
      p.kill("SIGKILL");
    }
  }, slow(120_000));
});

describe("what a reload may name (src/serve/sandbox.ts)", () => {
  const fn = (route: string, image: string) => functionConfig({ route, image }, route, tmp, { timeoutMs: 1000, maxBody: 1024 });
  const conf = (functions: ServeConfig["functions"], dir?: string): ServeConfig => ({ host: "127.0.0.1", port: 0, functions, maxQueue: 8, graceMs: 100, warmCalls: 0, accessLog: false, ...(dir && { recordFailures: { dir, maxFiles: 1, maxBytes: 1 << 20 } }) });

  test("the files it started with, in any routes: allowed; a new image or a new recordings folder: refused by name", () => {
    const started = servePaths(conf([fn("/a", guest("httphello")), fn("/c", cgi)], join(tmp, "rec-a")), "/dev/kvm");
    expect(started.read).toContain(guest("httphello"));
    expect(started.folders).toEqual([join(tmp, "rec-a")]);
    expect(() => checkReloadable(conf([fn("/b", guest("httphello"))], join(tmp, "rec-a")), started)).not.toThrow();
    const other = join(tmp, "new.bin");
    copyFileSync(guest("httphello"), other);
    const e = (() => {
      try {
        checkReloadable(conf([fn("/a", other)], join(tmp, "rec-a")), started);
      } catch (x) {
        return x;
      }
    })();
    expect(e).toBeInstanceOf(BadArgsError);
    expect((e as BadArgsError).code).toBe("WASP_BAD_ARGS");
    expect((e as BadArgsError).message).toBe(`the sandbox lets this server read only the files its configuration named when it started, and ${other} is new: restart wasp serve to serve them (or run it with --no-sandbox)`);
    expect(() => checkReloadable(conf([fn("/a", guest("httphello"))], join(tmp, "rec-b")), started)).toThrow(`the sandbox lets this server write recordings only in the folder it started with, and ${join(tmp, "rec-b")} is new: restart wasp serve`);
  });
});

describe("inside the serve sandbox (a child that sandboxes itself as wasp serve does)", () => {
  /** The child's report (its first line), then its server answers a request from outside. */
  async function child(extra: string[]): Promise<{ report: Record<string, unknown>; status: number; body: string }> {
    const p = Bun.spawn([process.execPath, join(import.meta.dir, "serve-sandbox-child.ts"), guest("httphello"), join(tmp, "secret.txt"), ...extra], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    try {
      const lines = readLines(p.stdout);
      const report = await waitFor(lines, (l) => l.port !== undefined);
      const r = await fetch(`http://127.0.0.1:${report.port}/h/x`);
      const body = await r.text();
      p.stdin.end();
      expect(await p.exited).toBe(0);
      return { report, status: r.status, body };
    } finally {
      p.kill("SIGKILL");
    }
  }

  test("no socket, no program, no file it was not given, on its main thread and on a thread started after; it still serves", async () => {
    const { report, status, body } = await child([]);
    expect(report.filter).toBeGreaterThan(100);
    expect(report).toMatchObject({ socket: "EPERM", socketpair: "EPERM", execve: "EPERM" });
    // where the kernel has Landlock, files the configuration did not name do not open
    if ((report.landlockAbi as number) > 0) {
      expect(report.forbiddenOpen).toBe("EACCES");
      expect(report.thread).toEqual({ socket: "EPERM", open: "EACCES" });
    } else expect((report.thread as Record<string, unknown>).socket).toBe("EPERM");
    expect(status).toBe(200);
    expect(body).toStartWith("GET /h/x");
  }, slow(120_000));

  test("the same child without the sandbox can do all of it: the refusals are the sandbox's", async () => {
    const { report, status } = await child(["--no-sandbox"]);
    expect(report).toMatchObject({ filter: 0, forbiddenOpen: "opened", execve: 0, thread: { socket: "made", open: "opened" } });
    expect(typeof report.socket).toBe("number");
    expect(status).toBe(200);
  }, slow(120_000));
});
