// Hypercall ABI v1: the one source of truth shared by the host and the guest SDK.
// `scripts/gen-abi.ts` writes `guests/sdk/abi.zig` from this file, and a test checks that the
// committed Zig file is exactly what the generator produces, so the two sides cannot drift apart.

/** Version of this ABI, written into every native image header and the info page. */
export const ABI_VERSION = 1;

/** I/O ports. An `OUT` to EXIT ends the virtine (result in RAX); an `OUT` to HYPERCALL is a call. */
export const Port = {
  EXIT: 0xfa,
  HYPERCALL: 0xfb,
  /** used only by the host's exception handlers (src/image/boot.ts) to report a guest fault */
  FAULT: 0xfc,
  /** used only by a Linux guest's system-call entry (src/linux/entry.ts): a `syscall` reaching the host */
  LINUX_SYSCALL: 0xfd,
  /**
   * used only by a Linux guest's in-VM system-call layer (guests/linux/layer.zig): a system call it
   * hands to the host, the program's number and arguments in RAX, RDI, RSI, RDX, R10, R8, R9
   */
  LINUX_FORWARD: 0xfe,
} as const;

/**
 * Where a Linux guest's in-VM system-call layer lives (docs/linux-guests.md, "The in-VM layer"):
 * host-built pages below the program's (rebuilt, never read, from a snapshot file). A rewritten
 * `syscall` site jumps to its stub (src/linux/sites.ts), which calls the layer's entry. The layer
 * runs at CPL3, as the program does, on a stack of its own; the config page tells it where the
 * program's state is.
 */
export const LinuxLayer = {
  /** the layer's code and read-only data (dist/guests/layer.bin), user, read-only, executable: its entry first */
  CODE: 0x100000,
  /** where the host resumes the layer when an access it made for the program faulted: the call returns -EFAULT */
  EFAULT: 0x100100,
  CODE_SIZE: 0x40000,
  /** the layer's stack (user, writable, no-execute): nothing on it outlives a system call */
  STACK: 0x140000,
  STACK_TOP: 0x150000,
  /** the config page (user, read-only): LinuxConfig, the addresses below, built by the host */
  CONFIG: 0x150000,
  /** end of the layer's pages; page tables of 4 KiB regions go between Layout.HOST_END and CODE */
  END: 0x151000,
} as const;

/** The config page (LinuxLayer.CONFIG), u64 fields: where the layer finds the process's state. */
export const LinuxConfig = {
  MAGIC: 0, // u64 "WASPLNX1"
  /** the process block (LinuxBlock), the call page (LinuxCall), the table of placed files (LinuxFiles) */
  BLOCK: 8,
  CALL: 16,
  FILES: 24,
  /** the program break's range and the anonymous mappings' (one state byte per page at PAGES) */
  BRK_START: 32,
  BRK_END: 40,
  MMAP_START: 48,
  MMAP_END: 56,
  PAGES: 64,
  /** the windows: stdin's bytes, stdout's and stderr's buffers */
  IN: 72,
  IN_CAP: 80,
  OUT: 88,
  OUT_CAP: 96,
  ERR: 104,
  ERR_CAP: 112,
  /** the stack's size (getrlimit) */
  STACK_SIZE: 120,
  /** the end of guest memory (the stack's top) */
  MEM_END: 128,
  /** the log of the system calls the layer answered, when the call is recorded (LinuxLog entries) */
  LOG: 136,
  LOG_CAP: 144,
  /** nonzero: the program was granted host directories, so a path the placed files lack is the host's to answer */
  DIRS: 152,
  /** a served program's connection window: what the program sends there waits for the host's next exit (0: no window) */
  NET_OUT: 160,
  NET_OUT_CAP: 168,
  SIZE: 176,
} as const;

export const LINUX_CONFIG_MAGIC = 0x31584e4c50534157n; // "WASPLNX1" little-endian

/**
 * The process block: the process's state besides its memory's bytes, in its own memory (so a
 * snapshot keeps it), read and written by the layer and the host alike. The guest can write it:
 * the host checks every field it uses (a bad one ends the call).
 */
export const LinuxBlock = {
  MAGIC: 0, // u64 "WASPPROC"
  BRK: 8, // u64: the program break
  BRK_HIGH: 16, // u64: the highest the break has been (pages above it are still zero)
  FS_BASE: 24, // u64: as arch_prctl set it (the host loads it into the vCPU)
  GS_BASE: 32,
  /** the program's RIP and RSP at the system call the layer is answering (for reports) */
  SAVED_RIP: 40,
  SAVED_RSP: 48,
  /** MAX_FDS entries of FD_SIZE bytes: u8 LinuxFd kind, 3 zero bytes, u32 file index, u64 position */
  FDS: 64,
  FD_SIZE: 16,
  MAX_FDS: 64,
  /** u64: nonzero once a served program has more than one thread (the layer hands futex, gettid and exit to the host) */
  THREADS: 2032,
  /** u64: the length of the working directory (0: "/", as a program starts); chdir sets it, relative paths are the host's then */
  CWD_LEN: 2040,
  /** the working directory's bytes: an absolute, normalized path without a trailing slash, at most CWD_CAP bytes */
  CWD: 2048,
  CWD_CAP: 2048,
  SIZE: 4096,
} as const;

export const LINUX_BLOCK_MAGIC = 0x434f525050534157n; // "WASPPROC" little-endian

/** What an fd of the block is (SOCKET: a served program's listener, connection or epoll instance; the host answers every call on it). */
export const LinuxFd = { CLOSED: 0, STDIN: 1, STDOUT: 2, STDERR: 3, FILE: 4, SOCKET: 5 } as const;

/** The state byte of an anonymous-mapping page (LinuxConfig.PAGES). */
export const LinuxPage = {
  /** handed out by mmap now */
  MAPPED: 1,
  /** handed out at some time since the start: zeroed when handed out again */
  USED: 2,
  /** its page table entry is not the default read-write (mprotect, or mmap with other protections): only the host changes it */
  PROTECTED: 4,
} as const;

/**
 * The call page: what one call starts with, written by the host before every entry (its input's
 * length, the clock, random bytes), and what the call leaves (its position in stdin, its output's
 * lengths, how many system calls the layer answered). u64 fields.
 */
export const LinuxCall = {
  FLAGS: 0, // LinuxCallFlag bits
  IN_LEN: 8, // bytes of the input in the window
  IN_TOTAL: 16, // the input's length (past the window the host serves it)
  IN_POS: 24, // stdin's position
  OUT_LEN: 32, // bytes in the stdout window
  ERR_LEN: 40,
  ANSWERED: 48, // system calls the layer answered in this call
  /** the clock: ns since the epoch = NS_BASE + ((rdtsc - TSC_BASE) * TSC_MULT) >> 32 */
  TSC_BASE: 56,
  NS_BASE: 64,
  TSC_MULT: 72,
  /** random bytes for getrandom: RANDOM_LEN of them at RANDOM, RANDOM_POS used */
  RANDOM_LEN: 80,
  RANDOM_POS: 88,
  /** entries in the log (LinuxConfig.LOG) */
  LOG_LEN: 96,
  /** what the last answer took from outside the program: the clock's nanoseconds, the random bytes' position */
  LAST_NS: 104,
  LAST_RANDOM: 112,
  /** bytes in a served program's connection window (LinuxConfig.NET_OUT) */
  NET_LEN: 120,
  RANDOM: 128,
  RANDOM_CAP: 256,
  /** nonzero: the layer closed a served program's last fd of its connection (the host ends the connection at its next exit) */
  NET_CLOSED: 384,
  SIZE: 392,
} as const;

/** LinuxCall.FLAGS bits. */
export const LinuxCallFlag = {
  /** hand every system call to the host (tracing, recording, replaying, a debugger) */
  FORWARD: 1,
  /** the program is granted the clock (clock_gettime and the rest; -EPERM otherwise) */
  TIME: 2,
  /** the program is granted randomness (getrandom; -EPERM otherwise) */
  RANDOM: 4,
  /** the call is recorded: each system call the layer answers is logged (LinuxLog), the host reads the log */
  LOG: 8,
} as const;

/**
 * An entry of the log of a recorded call (u64 fields): the system call the layer answered, its
 * six arguments and its result, and what it took from outside the program (the clock's
 * nanoseconds, the position of the random bytes it used).
 */
export const LinuxLog = { NR: 0, ARGS: 8, RESULT: 56, NS: 64, RANDOM: 72, SIZE: 80 } as const;

/**
 * The table of placed files (read-only for the guest): u64 COUNT, then COUNT entries of u64 path
 * offset (from the table's start), u64 path length, u64 data address, u64 size; the paths after them.
 */
export const LinuxFiles = { COUNT: 0, ENTRIES: 8, ENTRY_SIZE: 32, PATH: 0, PATH_LEN: 8, DATA: 16, DATA_SIZE: 24 } as const;

/**
 * Hypercall numbers (RAX at the `OUT` to Port.HYPERCALL). Arguments in RDI, RSI, RDX, RCX; the
 * result comes back in RAX. `defaultGranted` marks what pure computation needs; the rest must be
 * granted by the host per invocation.
 */
export const Hypercalls = [
  { name: "exit", nr: 0, defaultGranted: true, doc: "end the virtine; RDI is the result" },
  { name: "write", nr: 1, defaultGranted: true, doc: "console output: RDI = guest address, RSI = length" },
  { name: "panic", nr: 2, defaultGranted: true, doc: "end the virtine with an error: RDI = message address, RSI = length" },
  { name: "time", nr: 3, defaultGranted: false, doc: "returns the host's CLOCK_REALTIME in nanoseconds" },
  { name: "random", nr: 4, defaultGranted: false, doc: "fill RDI (address) with RSI (length) random bytes from the host" },
  { name: "snapshot", nr: 5, defaultGranted: true, doc: "capture the guest's state once; later calls resume here with RAX = 1 (0 when captured or off)" },
  { name: "host", nr: 6, defaultGranted: false, doc: "call a host function the embedder gave this virtine: RDI = address of a HostCall request; RAX = the result's encoded length (written to the request's output buffer when it fits)" },
  { name: "file", nr: 7, defaultGranted: false, doc: "read a file the host granted this virtine (its files option): RDI = address of a FileRead request; RAX = the file's size (the bytes from the request's offset copied into its buffer, as many as fit), or FILE_NOT_GRANTED" },
] as const;

export type HypercallName = (typeof Hypercalls)[number]["name"];

/**
 * Fixed guest-physical layout (identity-mapped for native images). Pages 1-6 and 0x18-0x1b hold
 * host-built structures and are supervisor-only in the page tables, so a CPL3 guest cannot rewrite
 * them; page 0x1c (the entry trampoline) is user read-only.
 */
export const Layout = {
  /** page 0 is not present: a null dereference faults */
  PML4: 0x1000,
  PDPT: 0x2000,
  PD: 0x3000,
  /** 4 KiB page table for the first 2 MiB, so the low pages can differ in access */
  PT: 0x4000,
  GDT: 0x5000,
  IDT: 0x6000,
  /** the info page: arguments and console bookkeeping, read/write for the guest */
  INFO: 0x7000,
  /** raw images are loaded here and entered in real mode (Wasp's convention) */
  RAW_LOAD: 0x8000,
  /** the console buffer for native images: guest-written, read by the host at exit */
  CONSOLE: 0x8000,
  CONSOLE_SIZE: 0x10000,
  /** the TSS with an I/O permission bitmap for every port (supervisor-only; see image/boot.ts) */
  TSS: 0x18000,
  /** the stack the CPU switches to when a CPL3 guest takes an exception (TSS.RSP0) */
  FAULT_STACK_TOP: 0x1c000,
  /**
   * the entry trampoline: host code the guest runs first, at CPL3, to load the snapshot's FPU/SSE
   * state (FXRSTOR) and jump to the real entry — read-only and executable for the guest
   */
  TRAMPOLINE: 0x1c000,
  /**
   * the 4 KiB page table of the 2 MiB region that holds a native guest's stack guard (its pages
   * not present), when that region is above the first 2 MiB (supervisor-only)
   */
  STACK_PT: 0x1d000,
  /** end of the host's pages */
  HOST_END: 0x1e000,
  /** native images are loaded at 1 MiB */
  NATIVE_LOAD: 0x100000,
  /** how far the identity map reaches: 1 GiB in 2 MiB pages (beyond guest RAM: MMIO exits) */
  MAPPED: 0x40000000,
} as const;

/** The info page (Layout.INFO): offsets in bytes. All fields little-endian. */
export const Info = {
  MAGIC: 0, // u64 "WASPINFO"
  ABI_VERSION: 8, // u32
  ARGC: 12, // u32
  ARGS: 16, // u64[6]
  MEM_SIZE: 64, // u64: bytes of guest RAM
  CONSOLE_ADDR: 72, // u64
  CONSOLE_CAP: 80, // u64
  CONSOLE_LEN: 88, // u64: guest-written count of bytes in the console buffer
  HEAP_START: 96, // u64: first free byte after the image (page-aligned)
  // Call data (native images): the data window at the top of RAM holds the input, then the output.
  INPUT_ADDR: 104, // u64: where the call's input bytes are
  INPUT_LEN: 112, // u64
  OUTPUT_ADDR: 120, // u64: where the guest writes its output (page-aligned, after the input)
  OUTPUT_CAP: 128, // u64: room there
  OUTPUT_LEN: 136, // u64: guest-written count of output bytes (checked against OUTPUT_CAP by the host)
  // The stack (native images): below the data window, with unmapped guard pages under it.
  HEAP_END: 144, // u64: end of the heap: the stack's guard pages start here (0: no guard)
  STACK_BOTTOM: 152, // u64: lowest address of the stack (the guard's end)
  SIZE: 160,
} as const;

export const INFO_MAGIC = 0x4f464e4950534157n; // "WASPINFO" little-endian

/** The native image header, at the start of the file (and so at Layout.NATIVE_LOAD). */
export const Header = {
  MAGIC: 0, // u64 "WASPVRT1"
  ABI_VERSION: 8, // u32
  HEADER_SIZE: 12, // u32
  ENTRY: 16, // u64: guest address of the entry point
  LOAD_ADDR: 24, // u64: must be Layout.NATIVE_LOAD
  IMAGE_END: 32, // u64: guest address of the end of the image including bss
  MEM_WANTED: 40, // u64: bytes of RAM the image asks for (0: the host's default)
  FLAGS: 48, // u64: HeaderFlags (0: the image says nothing of its main)
  NAME: 56, // [24]u8: the image's name, NUL-padded
  SIZE: 80,
} as const;

/**
 * The header's flags: what the guest's `main` takes, filled in by the SDK (root.zig) so that the
 * host can say when a call gives it something it ignores. Bits outside these are refused.
 */
export const HeaderFlags = {
  /** the fields below are set (an image built without the SDK may leave all flags 0) */
  MAIN_DECLARED: 0x1,
  /** main takes the call's input bytes (`main(input: []const u8)`) */
  TAKES_INPUT: 0x2,
  /** bits 8-11: how many integer arguments main takes (0-6) */
  ARGC_SHIFT: 8,
  ARGC_MASK: 0xf,
} as const;

/**
 * The `host` hypercall (host functions, given by the embedder): RDI points at a request of six u64
 * (offsets below: the function's name, the encoded arguments, the buffer for the encoded result).
 * Arguments and results are values, each a tag byte then its payload, little-endian: TAG_U64 and
 * TAG_I64 an 8-byte integer, TAG_BYTES and TAG_STRING a u32 length then the bytes (a string is UTF-8).
 */
export const HostCall = {
  NAME_PTR: 0,
  NAME_LEN: 8,
  ARGS_PTR: 16,
  ARGS_LEN: 24,
  OUT_PTR: 32,
  OUT_CAP: 40,
  SIZE: 48,
  TAG_U64: 1,
  TAG_I64: 2,
  TAG_BYTES: 3,
  TAG_STRING: 4,
  /** longest function name */
  MAX_NAME: 64,
  /** most arguments in one call */
  MAX_VALUES: 16,
  /** most bytes of encoded arguments, and of an encoded result */
  MAX_BYTES: 1048576,
} as const;

/**
 * The `file` hypercall: RDI points at a request of five u64 (offsets below): the file's path as
 * granted (absolute, exactly as the host granted it), the offset to read from, the buffer. The
 * files are the ones the embedder granted this virtine, read by the host when the virtine was
 * loaded. Granting files grants the hypercall (as host functions grant `host`). A call copies at most MAX_READ bytes.
 */
export const FileRead = {
  PATH_PTR: 0,
  PATH_LEN: 8,
  OFFSET: 16,
  BUF_PTR: 24,
  BUF_LEN: 32,
  SIZE: 40,
  /** longest path */
  MAX_PATH: 4096,
  /** most bytes one call copies (a larger buffer is filled this far) */
  MAX_READ: 16777216,
} as const;

/** The `file` hypercall's RAX when the path is not one the host granted: 2^64 - 1. */
export const FILE_NOT_GRANTED = 0xffffffffffffffffn;

export const HEADER_MAGIC = 0x3154525650534157n; // "WASPVRT1" little-endian
export const HEADER_NAME_LEN = 24;

/** Stack alignment the SDK's entry expects: RSP is 16-byte aligned at the first instruction. */
export const STACK_ALIGN = 16;
