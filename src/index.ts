// wasp's public TypeScript interface (the package's entry point, `import { Virtine } from "wasp"`).
// Everything else under src/ is internal and may change.
export {
  Virtine,
  type VirtineOptions,
  type CallOptions,
  type RunRequest,
  type Result,
  type Arg,
  type Data,
  type DataOut,
  type Json,
} from "./api/virtine.ts";
export { WorkerPool, type WorkerPoolOptions, DEFAULT_MAX_QUEUE } from "./api/workers.ts";
export { MAX_ARGS, DEFAULT_TIMEOUT_MS, DEFAULT_DATA_SIZE, DEFAULT_STACK_SIZE } from "./virtine/runner.ts";
export { CompileError, type ZigOptions } from "./image/zig.ts";
export { type HostFunction, type HostValue } from "./hypercall/host-call.ts";
export { JsVirtine, type JsOptions, type JsResult, type JsRunRequest } from "./api/js.ts";
export { PyVirtine, type PyOptions, type PyResult, type PyRunRequest } from "./api/python.ts";
// static Linux executables and C (as Virtines: Virtine.load, Virtine.fromC; LinuxProgram is their engine on one thread)
export { LinuxProgram, DEFAULT_LINUX_MEMORY, type LinuxOptions, type LinuxRunRequest, type LinuxRunResult } from "./virtine/linux.ts";
export { compileC, type COptions, type CompiledC } from "./linux/c.ts";
// Rust: a program with std (a static Linux executable) or a #![no_std] function (a native image); Virtine.fromRust
export { compileRust } from "./linux/rust.ts";
export { compileRustImage, type RustOptions } from "./image/rust.ts";
// a recorded call (`record: true`, `wasp invoke --record`, `wasp serve --record-failures`) run again and checked
export { replayRecording as replay, type ReplayOptions, type Replayed } from "./virtine/replay.ts";
export {
  WaspError,
  SyscallError,
  KvmUnavailableError,
  BadImageError,
  BadArgsError,
  BadSnapshotError,
  BadOutputError,
  GuestFaultError,
  MemoryFaultError,
  PolicyViolationError,
  TimeoutError,
  GuestPanicError,
  CancelledError,
  QueueFullError,
  ClosedError,
  StackOverflowError,
  HostFunctionError,
  JsSyntaxError,
  JsError,
  PyError,
  type PyPhase,
  JsMemoryError,
  JsStackError,
  BadRecordingError,
  ReplayDivergedError,
  type JsPhase,
  EXIT_STATUS,
} from "./errors.ts";
// what wasp prints of a guest's text, for callers who print `result.console` or `guestMessage` too
export { escapeGuestLine, escapeGuestText } from "./guest-text.ts";
