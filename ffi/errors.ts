// The root of wasp's typed errors. Every error wasp throws on purpose is a WaspError with a stable
// `code` that programs can switch on; the message says what happened and, where it can, what to do.
// Domain errors (timeouts, guest faults, policy) live in src/errors.ts; this file holds the base
// class and the error of a failed libc call, which is all the lowest layer needs.

export class WaspError extends Error {
  readonly code: string;
  /** a call recorded with `record: true` that failed: its recording (docs/recording-format.md) */
  recording?: Uint8Array;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A libc call failed: names the call and the errno (`ioctl(KVM_RUN) failed: EINTR (4)`). */
export class SyscallError extends WaspError {
  readonly call: string;
  readonly errno: number;
  readonly errnoName: string;
  constructor(call: string, errno: number, errnoName: string, detail?: string) {
    super("WASP_SYSCALL", `${call} failed: ${errnoName} (${errno})${detail ? `: ${detail}` : ""}`);
    this.call = call;
    this.errno = errno;
    this.errnoName = errnoName;
  }
}
