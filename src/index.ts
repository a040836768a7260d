// wasp's public TypeScript interface (the package's entry point, `import { Virtine } from "wasp"`).
// Everything else under src/ is internal and may change.
export { Virtine, type VirtineOptions, type InvokeResult, MAX_ARGS, DEFAULT_TIMEOUT_MS } from "./virtine/virtine.ts";
export { CompileError, compileZig, type ZigOptions, type CompiledZig } from "./image/zig.ts";
export { SnapshotFile, writeSnapshotFile } from "./snapshot/file.ts";
export {
  WaspError,
  SyscallError,
  KvmUnavailableError,
  BadImageError,
  BadArgsError,
  BadSnapshotError,
  GuestFaultError,
  MemoryFaultError,
  PolicyViolationError,
  TimeoutError,
  GuestPanicError,
  EXIT_STATUS,
} from "./errors.ts";
