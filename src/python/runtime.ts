// Python virtines: Debian's (or any) unmodified python3, a dynamically linked Linux program, run
// with wasp's runner script (guests/python/runner.py) and the user's module as granted files and
// the interpreter's standard library as granted directories; and the protocol of one call of it —
// the same as a JavaScript virtine's (src/js/engine.ts): a call's arguments as "A" and a JSON array
// on stdin, the result as JSON on stdout, an exception as a JSON envelope with an exit status that
// says its kind. The runner's snapshot point comes after the module is imported and warmed up, so
// every call resumes a warm interpreter. docs/python.md is the reference.
import { accessSync, constants, existsSync, readdirSync, readFileSync, realpathSync, statSync } from "node:fs";
import { basename, delimiter, dirname, isAbsolute, join, resolve } from "node:path";
import runnerFile from "../../guests/python/runner.py" with { type: "file" };
import { BadArgsError, BadImageError, BadOutputError, BadSnapshotError, PyError, type PyPhase } from "../errors.ts";
import { escapeGuestLine } from "../guest-text.ts";
import { isElf } from "../linux/elf.ts";
import { envelope } from "../js/engine.ts";

/** The interpreter's program name (argv[0]) in a Python virtine: how its snapshot file is told apart. */
export const PY_PROGRAM = "wasp-python";
/** Where the runner, the module and the warm-up calls are placed (granted files, read before the snapshot). */
export const PY_RUNNER_PATH = "/wasp/runner.py";
export const PY_MODULE_PATH = "/wasp/handler.py";
export const PY_WARMUP_PATH = "/wasp/warmup.json";
/** A module's cap. */
export const MAX_PY_SOURCE = 16 << 20;
/** A Python virtine's defaults: the interpreter wants more room than a small C program. */
export const PY_DEFAULT_MEMORY = 256 << 20;
export const PY_DEFAULT_STACK = 8 << 20;

let runnerBytes: Uint8Array | undefined;

/** The runner script's bytes (read once per process; embedded in the standalone binary). */
export function pyRunner(): Uint8Array {
  if (runnerBytes) return runnerBytes;
  try {
    runnerBytes = new Uint8Array(readFileSync(runnerFile));
  } catch (e) {
    throw new BadImageError(`wasp's Python runner ${runnerFile} cannot be read (${e instanceof Error ? e.message : String(e)})`);
  }
  return runnerBytes;
}

/** A python3 found on the host, with what a virtine of it is granted. */
export interface PythonInstall {
  /** the executable's real path on the host */
  path: string;
  bytes: Uint8Array;
  /** `sys.prefix`: the directory above bin/ */
  prefix: string;
  /** "python3.11": the standard library's directory name under prefix/lib */
  version: string;
  /** the directories granted, read-only, at the same paths in the guest: the standard library and the site packages found */
  dirs: Record<string, string>;
  /** the interpreter's environment: its home, and a fixed hash seed (see docs/python.md) */
  env: Record<string, string>;
}

/** The arguments python3 runs with: no user site, no bytecode written, the runner with the module's name. */
export function pyArgs(fileName: string): string[] {
  return ["-s", "-B", PY_RUNNER_PATH, fileName];
}

/**
 * The python3 a Python virtine runs: `given` (`--python PATH`, the `python` option), else the first
 * `python3` on PATH that is an executable file. It must be an ELF executable — a shell script (a
 * pyenv shim) cannot run in a virtine — with its standard library at prefix/lib/pythonX.Y.
 */
export function findPython(given?: string, envPath = process.env.PATH ?? ""): PythonInstall {
  if (given !== undefined) {
    if (typeof given !== "string" || given === "") throw new BadArgsError("python is the path of a python3 executable");
    const path = isAbsolute(given) ? given : resolve(given);
    if (!existsSync(path)) throw new BadArgsError(`--python ${given}: no such file`);
    return pythonAt(path);
  }
  // the first python3 on PATH that a virtine can run: one that is not (a pyenv shim, a wrapper
  // script) is passed over for the next, as a shell would not, but as the user means
  const found = envPath.split(delimiter).filter((d) => d !== "").map((d) => join(d, "python3")).filter(executable);
  if (found.length === 0) throw new BadArgsError("no python3 on PATH: install it (Debian: apt install python3) or give --python PATH");
  let first: BadArgsError | undefined;
  for (const path of found) {
    try {
      return pythonAt(path);
    } catch (e) {
      if (!(e instanceof BadArgsError)) throw e;
      first ??= e;
    }
  }
  if (found.length === 1 || !first) throw first ?? new BadArgsError("no python3 on PATH");
  throw new BadArgsError(`${first.message} (and the ${found.length - 1} other python3 on PATH ${found.length === 2 ? "is" : "are"} none either)`);
}

/** The python3 installation of the executable at `path`, or a BadArgsError saying why it is none a virtine can run. */
function pythonAt(path: string): PythonInstall {
  let real: string;
  let bytes: Uint8Array;
  try {
    real = realpathSync(path);
    if (!statSync(real).isFile()) throw new Error("not a file");
    bytes = new Uint8Array(readFileSync(real));
  } catch (e) {
    throw new BadArgsError(`${path}: cannot read it (${e instanceof Error ? e.message.replace(/^[A-Z]+: /, "") : String(e)})`);
  }
  if (!isElf(bytes)) {
    const script = bytes[0] === 0x23 && bytes[1] === 0x21;
    throw new BadArgsError(`${path} is ${script ? "a script (a pyenv shim?)" : "not an ELF executable"}, not a python3 a virtine can run: give --python with the interpreter itself (e.g. /usr/bin/python3)`);
  }
  const prefix = dirname(dirname(real));
  const version = stdlibName(prefix, basename(real));
  if (version === undefined) throw new BadArgsError(`${path}: no standard library found under ${prefix}/lib (python3.X with os.py): not a python3 installation wasp understands`);
  const dirs: Record<string, string> = {};
  for (const d of [join(prefix, "lib", version), join(prefix, "lib", "python3", "dist-packages"), join(prefix, "local", "lib", version, "dist-packages")]) {
    if (isDirectory(d)) dirs[d] = d;
  }
  return { path: real, bytes, prefix, version, dirs, env: { PYTHONHOME: prefix, PYTHONHASHSEED: "0" } };
}

function executable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** The standard library's directory under prefix/lib: the one the executable's name says (python3.11), else the only python3.X holding os.py. */
function stdlibName(prefix: string, exeName: string): string | undefined {
  const holds = (v: string) => existsSync(join(prefix, "lib", v, "os.py"));
  if (/^python3\.\d+$/.test(exeName) && holds(exeName)) return exeName;
  let names: string[];
  try {
    names = readdirSync(join(prefix, "lib")).filter((n) => /^python3\.\d+$/.test(n) && holds(n));
  } catch {
    return undefined;
  }
  return names.length === 1 ? names[0] : undefined;
}

/** A module's file name as tracebacks show it: one line, printable, at most 100 characters. */
export function checkPyFileName(name: unknown): string {
  if (typeof name !== "string" || name.length === 0 || name.length > 100 || /[\0-\x1f\x7f]/.test(name)) {
    throw new BadArgsError(`the module's name ${typeof name === "string" ? JSON.stringify(name) : typeof name} is not a file name of 1 to 100 printable characters`);
  }
  return name;
}

/** The module's file name a Python snapshot's saved arguments give (the interpreter's arguments are the file's: checked). */
export function savedPyName(saved: readonly string[], path: string): string {
  if (saved.length !== 4 || saved[2] !== PY_RUNNER_PATH) throw new BadSnapshotError(`${path}: not the snapshot of a Python virtine (its arguments are not the runner's)`);
  try {
    return checkPyFileName(saved[3]);
  } catch {
    throw new BadSnapshotError(`${path}: the module's name in the snapshot is not a file name`);
  }
}

/** The files the runner reads at load: itself, the module's source and, if any, the warm-up calls. */
export function pyFiles(source: string | Uint8Array, warmup: readonly unknown[] | undefined): Record<string, Uint8Array> {
  const bytes = typeof source === "string" ? new TextEncoder().encode(source) : source;
  if (!(bytes instanceof Uint8Array)) throw new BadArgsError(`a Python virtine's source is a string or bytes, not ${typeof source}`);
  if (bytes.length > MAX_PY_SOURCE) throw new BadArgsError(`the module is ${bytes.length} bytes, more than ${MAX_PY_SOURCE >> 20} MiB`);
  const files: Record<string, Uint8Array> = { [PY_RUNNER_PATH]: pyRunner(), [PY_MODULE_PATH]: bytes };
  if (warmup !== undefined) {
    if (!Array.isArray(warmup)) throw new BadArgsError("warmup is a list of inputs, each handed to the handler before the snapshot");
    const calls = warmup.map((input, i) => {
      if (input === undefined) return "[]";
      let text: string | undefined;
      try {
        text = JSON.stringify(input);
      } catch (e) {
        throw new BadArgsError(`warm-up input ${i + 1} cannot be sent as JSON (${e instanceof Error ? e.message : String(e)})`);
      }
      if (text === undefined) throw new BadArgsError(`warm-up input ${i + 1} is a ${typeof input}, which JSON cannot carry`);
      return `[${text}]`;
    });
    files[PY_WARMUP_PATH] = new TextEncoder().encode(`[${calls.join(",")}]`);
  }
  return files;
}

/** A Python call's outcome, as the runner reported it through its exit status and stdout. */
export interface PyReply {
  status: number;
  stdout: Uint8Array;
  stdoutTruncated: boolean;
}

/** The runner's exit statuses (guests/python/runner.py). */
const ST = { OK: 0, RAISED: 1, SYNTAX: 2, MEMORY: 3, RECURSION: 4, BAD_INPUT: 5, SETUP: 7 } as const;

/**
 * The handler's result, or the typed error the reply stands for. Everything in the reply is the
 * guest's: a status the runner never gives, an envelope that is not what it writes, or output cut
 * at the cap is a BadOutputError, never trusted. An interpreter that died before the runner could
 * report (a fatal error, a signal) is a PyError of phase "load" or "call" with its status.
 */
export function decodePyReply(reply: PyReply, of: { maxOutput: number; fileName: string; stderr?: Uint8Array }): unknown {
  const text = new TextDecoder().decode(reply.stdout);
  if (reply.stdoutTruncated) throw new BadOutputError(`the handler's result went past the ${of.maxOutput}-byte output cap (maxOutput)`);
  if (reply.status === ST.OK) {
    if (reply.stdout.length === 0) return undefined;
    try {
      return JSON.parse(text);
    } catch {
      throw new BadOutputError(`the Python runner's result is not JSON: ${escapeGuestLine(text.slice(0, 80))}`);
    }
  }
  if (reply.status === ST.SETUP || (reply.stdout.length === 0 && reply.status !== ST.BAD_INPUT)) {
    // python3 itself failed (it prints why on stderr), or the runner could not report
    const said = new TextDecoder().decode(of.stderr ?? new Uint8Array(0)).trim().split("\n").filter((l) => l !== "").pop() ?? "";
    throw new PyError("", `the Python interpreter ended with status ${reply.status}${said === "" ? "" : `: ${said}`}`, new TextDecoder().decode(of.stderr ?? new Uint8Array(0)), "load");
  }
  if (!Object.values(ST).includes(reply.status as never)) throw new BadOutputError(`the Python runner ended with status ${reply.status}, which it never gives`);
  const e = envelope(text, "the Python runner");
  if (reply.status === ST.BAD_INPUT) throw new BadArgsError(`the Python runner refused the call: ${escapeGuestLine(e.message)}`);
  if (reply.status === ST.SYNTAX && (e.line === undefined || e.column === undefined)) throw new BadOutputError("the Python runner's syntax error has no position");
  throw new PyError(e.name, e.message, e.stack, (e.phase === "setup" ? "load" : e.phase) as PyPhase, e.line !== undefined ? { file: of.fileName, line: e.line, column: e.column ?? 1 } : undefined);
}
