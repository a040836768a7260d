// wasp's typed errors, one class per failure class, each with a stable `code` and a CLI exit status.
// This module is shared by every layer of src/ (it depends only on ffi/errors.ts and src/guest-text.ts).
import { WaspError, SyscallError } from "../ffi/errors.ts";
import { escapeGuestLine } from "./guest-text.ts";

export { WaspError, SyscallError };

/** /dev/kvm cannot be opened or lacks what wasp needs. */
export class KvmUnavailableError extends WaspError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("WASP_KVM_UNAVAILABLE", message, options);
  }
}

/** The image file is missing, unreadable, malformed or does not fit. */
export class BadImageError extends WaspError {
  constructor(message: string) {
    super("WASP_BAD_IMAGE", message);
  }
}

/** A snapshot file is truncated, corrupt, of a newer format, too big, or from an incompatible CPU. */
export class BadSnapshotError extends WaspError {
  constructor(message: string) {
    super("WASP_BAD_SNAPSHOT", message);
  }
}

/** A recording (`wasp invoke --record`) that is damaged, foreign, of another version, or malformed. */
export class BadRecordingError extends WaspError {
  constructor(message: string) {
    super("WASP_BAD_RECORDING", message);
  }
}

/**
 * A replay that did not do what its recording says: the first differing event — its index, what was
 * recorded, what happened (index -1: the starting state; the outcome: the event count).
 */
export class ReplayDivergedError extends WaspError {
  constructor(
    readonly index: number,
    readonly recorded: string,
    readonly happened: string,
  ) {
    super("WASP_REPLAY_DIVERGED", `the replay diverged at event ${index}: recorded ${recorded}; happened ${happened}`);
  }
}

/** Arguments or options are invalid (too many arguments, not an integer, memory above the cap...). */
export class BadArgsError extends WaspError {
  constructor(message: string) {
    super("WASP_BAD_ARGS", message);
  }
}

/** The guest faulted: a triple fault, a failed entry, an internal KVM error, an unexpected exit. */
export class GuestFaultError extends WaspError {
  constructor(
    message: string,
    readonly exitReason: string,
    readonly rip: bigint,
    /** the general registers at the fault, for --verbose */
    readonly regs?: Record<string, bigint>,
    /** the exception vector, when it is known */
    readonly vector?: number,
  ) {
    super("WASP_GUEST_FAULT", message);
  }
}

/** The guest touched guest-physical memory outside its RAM, or handed the host a bad range. */
export class MemoryFaultError extends WaspError {
  constructor(
    message: string,
    readonly address: bigint,
    readonly access: "read" | "write",
  ) {
    super("WASP_MEMORY_FAULT", message);
  }
}

/** The guest asked for something its policy does not grant (a hypercall, a port). */
export class PolicyViolationError extends WaspError {
  constructor(
    message: string,
    readonly what: string,
  ) {
    super("WASP_POLICY", message);
  }
}

/** The invocation ran past its deadline and was stopped. */
export class TimeoutError extends WaspError {
  constructor(readonly timeoutMs: number) {
    super("WASP_TIMEOUT", `the guest ran past its deadline of ${timeoutMs} ms and was stopped`);
  }
}

/** The guest's stack ran into the unmapped guard pages under it: it needs a bigger stack (or has runaway recursion). */
export class StackOverflowError extends WaspError {
  constructor(
    readonly stackSize: number,
    /** the address the guest touched in the guard */
    readonly address: bigint,
    readonly rip: bigint,
  ) {
    super(
      "WASP_STACK_OVERFLOW",
      `the guest overflowed its stack of ${stackSize} bytes (it touched the guard page at 0x${address.toString(16)}, RIP 0x${rip.toString(16)}): give it a bigger stack (--stack, the stackSize option) or bound its recursion`,
    );
  }
}

/**
 * The guest panicked and said why. `message` quotes the guest escaped to one printable line
 * (src/guest-text.ts): a guest cannot forge lines or drive a terminal through it.
 */
export class GuestPanicError extends WaspError {
  /** the guest's message as it sent it, unescaped (its bytes decoded as UTF-8): data, not for a terminal */
  readonly guestMessage: string;
  /** `guestMessage`: the guest's bytes (better: invalid UTF-8 is escaped byte by byte) or their text */
  constructor(guestMessage: string | Uint8Array) {
    super("WASP_GUEST_PANIC", `the guest panicked: ${escapeGuestLine(guestMessage)}`);
    this.guestMessage = typeof guestMessage === "string" ? guestMessage : new TextDecoder("utf-8", { ignoreBOM: true }).decode(guestMessage);
  }
}

/**
 * A host function the embedder gave the virtine threw (or returned what cannot be encoded): the
 * call that made it fails with the function's name and the error's message; the `cause` is the
 * thrown value.
 */
export class HostFunctionError extends WaspError {
  constructor(
    readonly functionName: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super("WASP_HOST_FUNCTION", `host function "${functionName}" failed: ${message}`, options);
  }
}

/**
 * The call was stopped on request before it ended: the public API turns it into the caller's
 * abort reason (an AbortSignal's), so users rarely see this class itself.
 */
export class CancelledError extends WaspError {
  constructor(message = "the call was cancelled") {
    super("WASP_CANCELLED", message);
  }
}

/** A call could not be queued: the worker pool's queue is full (`maxQueue`). */
export class QueueFullError extends WaspError {
  constructor(readonly maxQueue: number) {
    super("WASP_QUEUE_FULL", `the worker pool's queue is full (${maxQueue} calls waiting): wait for calls to finish, or raise maxQueue`);
  }
}

/** The virtine (or its worker pool) was closed before the call could run. */
export class ClosedError extends WaspError {
  constructor(what: string) {
    super("WASP_CLOSED", `the ${what} is closed`);
  }
}

/** The guest's output is not what the call asked for (JSON that does not parse). */
export class BadOutputError extends WaspError {
  constructor(message: string) {
    super("WASP_BAD_OUTPUT", message);
  }
}

/** The host process could not be hardened or sandboxed (prctl, seccomp, Landlock refused). */
export class SandboxError extends WaspError {
  constructor(message: string) {
    super("WASP_SANDBOX", message);
  }
}

/** The command line could not write its output (a full disk, an I/O error). */
export class WriteError extends WaspError {
  constructor(message: string) {
    super("WASP_WRITE", message);
  }
}

/** Where a JavaScript virtine's error arose: loading its module, a warm-up call, or a call. */
export type JsPhase = "load" | "warmup" | "call";

/**
 * A JavaScript virtine's module does not parse. `line` and `column` (1-based, columns in code
 * points) are where the parser stopped; `jsMessage` is the engine's message.
 */
export class JsSyntaxError extends WaspError {
  constructor(
    readonly fileName: string,
    readonly line: number,
    readonly column: number,
    readonly jsMessage: string,
  ) {
    super("WASP_JS_SYNTAX", `${escapeGuestLine(fileName)}:${line}:${column}: SyntaxError: ${escapeGuestLine(jsMessage)}`);
  }
}

/**
 * A JavaScript virtine's code threw (or its promise rejected, or never settled): the error's name,
 * message and stack as the engine gave them (data from the guest: escape before a terminal).
 */
export class JsError extends WaspError {
  constructor(
    readonly jsName: string,
    readonly jsMessage: string,
    readonly jsStack: string,
    readonly phase: JsPhase,
  ) {
    super("WASP_JS_ERROR", `${phase === "call" ? "" : `at ${phase}: `}${escapeGuestLine(jsName === "" ? "uncaught" : jsName)}: ${escapeGuestLine(jsMessage)}`);
  }
}

/** A JavaScript virtine's engine reached its heap limit (`heapLimit`); the next call starts clean. */
export class JsMemoryError extends WaspError {
  constructor(
    readonly limit: number,
    readonly phase: JsPhase,
  ) {
    super("WASP_JS_MEMORY", `${phase === "call" ? "" : `at ${phase}: `}the JavaScript heap ran out of its ${limit}-byte limit`);
  }
}

/** A JavaScript virtine's engine reached its stack limit (unbounded recursion); the next call starts clean. */
export class JsStackError extends WaspError {
  constructor(
    readonly limit: number,
    readonly phase: JsPhase,
  ) {
    super("WASP_JS_STACK", `${phase === "call" ? "" : `at ${phase}: `}the JavaScript stack overflowed its ${limit}-byte limit (unbounded recursion?)`);
  }
}

export type PyPhase = "load" | "warmup" | "call";

/**
 * A Python virtine's code raised (or its module does not compile: `pyName` "SyntaxError" with
 * `position`): the exception's type name, message and traceback text as the interpreter gave
 * them (data from the guest: escape before a terminal). An interpreter that died before it could
 * report has an empty `pyName` and its last line of stderr as the message.
 */
export class PyError extends WaspError {
  constructor(
    readonly pyName: string,
    readonly pyMessage: string,
    readonly traceback: string,
    readonly phase: PyPhase,
    readonly position?: { file: string; line: number; column: number },
  ) {
    const where = position ? `${escapeGuestLine(position.file)}:${position.line}:${position.column}: ` : "";
    super("WASP_PY_ERROR", `${phase === "call" ? "" : `at ${phase}: `}${where}${escapeGuestLine(pyName === "" ? "python3" : pyName)}: ${escapeGuestLine(pyMessage)}`);
  }
}

/**
 * CLI exit status per error code: one per class, documented in docs/errors.md. 1 is kept for
 * anything unexpected (a bug in wasp), 2 for command-line usage errors (commander's own).
 */
export const EXIT_STATUS: Record<string, number> = {
  WASP_BAD_ARGS: 2,
  WASP_BAD_IMAGE: 3,
  WASP_KVM_UNAVAILABLE: 4,
  WASP_GUEST_FAULT: 5,
  WASP_MEMORY_FAULT: 6,
  WASP_POLICY: 7,
  WASP_TIMEOUT: 8,
  WASP_GUEST_PANIC: 9,
  WASP_SYSCALL: 10,
  WASP_BENCH_REGRESSION: 11,
  WASP_BAD_SNAPSHOT: 12,
  WASP_COMPILE: 13,
  WASP_CANCELLED: 14,
  WASP_QUEUE_FULL: 15,
  WASP_CLOSED: 16,
  WASP_BAD_OUTPUT: 17,
  WASP_SANDBOX: 18,
  WASP_WRITE: 19,
  WASP_BENCH_EMPTY: 20,
  WASP_STACK_OVERFLOW: 21,
  WASP_HOST_FUNCTION: 22,
  WASP_JS_SYNTAX: 23,
  WASP_JS_ERROR: 24,
  WASP_JS_MEMORY: 25,
  WASP_JS_STACK: 26,
  WASP_BAD_RECORDING: 27,
  WASP_REPLAY_DIVERGED: 28,
  WASP_PY_ERROR: 29,
};
