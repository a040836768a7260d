//! The in-VM system-call layer of Linux guests (docs/linux-guests.md, "The in-VM layer"): the
//! system calls a program makes that need nothing outside its VM, answered inside it, without an
//! exit. The host rewrites a `syscall` site, at its first exit, into a jump to a stub that calls
//! here with the program's registers (src/linux/sites.ts), RSP past the red zone. The layer
//! runs at CPL3 like the program, with no more privilege: what it touches, the program could touch
//! itself, and the host trusts nothing it leaves (src/linux/block.ts checks the process state it
//! shares with the host). It answers on the same state and with the same algorithms as the host's
//! src/linux/process.ts and src/linux/memory.ts (tests/linux-layer.test.ts runs programs with the
//! layer on and off and compares every result); whatever it does not know, it hands to the host
//! with `out LINUX_FORWARD`, the program's number and arguments in their registers.
//!
//! Built for x86_64 without SSE (build.zig): the program's XMM registers survive a system call
//! untouched, as Linux keeps them. It has no writable data of its own: its state is the process
//! block, the call page and the windows the config page names; its stack is LinuxLayer.STACK.

const abi = @import("abi");

const PAGE: u64 = 4096;

/// The program's registers at its system call, pushed by `entry` on the layer's stack: all of them
/// but RAX, RCX and R11 come back from here, so that an access that faulted (`efault`), which
/// abandons the layer's own frames, still returns every register the program had.
const Frame = extern struct {
    nr: u64,
    rdi: u64,
    rsi: u64,
    rdx: u64,
    r10: u64,
    r8: u64,
    r9: u64,
    rbx: u64,
    rbp: u64,
    r12: u64,
    r13: u64,
    r14: u64,
    r15: u64,
    rflags: u64,
    rip: u64,
    rsp: u64,
};

// ---------------------------------------------------------------------------------------------
// Entry. The blob starts with it (layer.ld): a stub calls LinuxLayer.CODE, below the program's red
// zone. Its return address is popped at once; R11 ends as Linux leaves it (RFLAGS), the stub sets
// RCX (the program's RIP after its `syscall`); every other register but RAX (the result) is the
// program's.

export fn entry() linksection(".entry") callconv(.Naked) noreturn {
    asm volatile (
        \\ popq %%rcx
        \\ movq %%rsp, %%r11
        \\ movq %[top], %%rsp
        \\ pushq %%r11
        \\ pushq %%rcx
        \\ pushfq
        \\ pushq %%r15
        \\ pushq %%r14
        \\ pushq %%r13
        \\ pushq %%r12
        \\ pushq %%rbp
        \\ pushq %%rbx
        \\ pushq %%r9
        \\ pushq %%r8
        \\ pushq %%r10
        \\ pushq %%rdx
        \\ pushq %%rsi
        \\ pushq %%rdi
        \\ pushq %%rax
        \\ movq %%rsp, %%rdi
        \\ cld
        \\ callq %[dispatch:P]
        \\ .globl wasp_layer_return
        \\ wasp_layer_return:
        \\ addq $8, %%rsp
        \\ popq %%rdi
        \\ popq %%rsi
        \\ popq %%rdx
        \\ popq %%r10
        \\ popq %%r8
        \\ popq %%r9
        \\ popq %%rbx
        \\ popq %%rbp
        \\ popq %%r12
        \\ popq %%r13
        \\ popq %%r14
        \\ popq %%r15
        \\ movq (%%rsp), %%r11
        \\ popfq
        \\ popq %%rcx
        \\ popq %%rsp
        \\ jmpq *%%rcx
        :
        : [top] "i" (abi.LinuxLayer.STACK_TOP),
          [dispatch] "X" (&dispatch),
    );
}

/// Where the host resumes the layer when one of its accesses to the program's memory faulted (a
/// pointer the program could not use itself): the system call returns -EFAULT, as Linux's would.
export fn efault() linksection(".efault") callconv(.Naked) noreturn {
    asm volatile (
        \\ movq %[frame], %%rsp
        \\ movq $-14, %%rax
        \\ jmp wasp_layer_return
        :
        : [frame] "i" (abi.LinuxLayer.STACK_TOP - @sizeOf(Frame)),
    );
}

// ---------------------------------------------------------------------------------------------
// The state, as the config page (host-built, read-only) says where it is.

fn cfg(off: u64) u64 {
    return @as(*const volatile u64, @ptrFromInt(abi.LinuxLayer.CONFIG + off)).*;
}

fn block(off: u64) *volatile u64 {
    return @ptrFromInt(cfg(abi.LinuxConfig.BLOCK) + off);
}

fn call(off: u64) *volatile u64 {
    return @ptrFromInt(cfg(abi.LinuxConfig.CALL) + off);
}

/// The byte at guest address `addr` (a place the config names: never 0).
fn bytePtr(addr: u64) *volatile u8 {
    return @ptrFromInt(addr);
}

const E = struct {
    const PERM: u64 = 1;
    const NOENT: u64 = 2;
    const BADF: u64 = 9;
    const AGAIN: u64 = 11;
    const NOMEM: u64 = 12;
    const FAULT: u64 = 14;
    const INVAL: u64 = 22;
    const MFILE: u64 = 24;
    const NOTTY: u64 = 25;
    const SPIPE: u64 = 29;
    const ROFS: u64 = 30;
    const RANGE: u64 = 34;
    const NAMETOOLONG: u64 = 36;
};

fn err(e: u64) u64 {
    return 0 -% e;
}

/// A result the layer cannot give: the call goes to the host.
const Forward = error{Forward};

// ---------------------------------------------------------------------------------------------
// Dispatch.

/// x86-64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl).
const NR = struct {
    const exit = 60;
    const exit_group = 231;
    const read = 0;
    const write = 1;
    const open = 2;
    const close = 3;
    const stat = 4;
    const fstat = 5;
    const lstat = 6;
    const poll = 7;
    const lseek = 8;
    const mmap = 9;
    const munmap = 11;
    const brk = 12;
    const rt_sigaction = 13;
    const rt_sigprocmask = 14;
    const ioctl = 16;
    const pread64 = 17;
    const readv = 19;
    const writev = 20;
    const access = 21;
    const sched_yield = 24;
    const mremap = 25;
    const madvise = 28;
    const getpid = 39;
    const uname = 63;
    const fcntl = 72;
    const getcwd = 79;
    const gettimeofday = 96;
    const getrlimit = 97;
    const getuid = 102;
    const getgid = 104;
    const geteuid = 107;
    const getegid = 108;
    const getppid = 110;
    const sigaltstack = 131;
    const gettid = 186;
    const time = 201;
    const futex = 202;
    const sched_getaffinity = 204;
    const set_tid_address = 218;
    const clock_gettime = 228;
    const clock_getres = 229;
    const openat = 257;
    const newfstatat = 262;
    const faccessat = 269;
    const set_robust_list = 273;
    const prlimit64 = 302;
    const getrandom = 318;
    const setsockopt = 54;
    const sendto = 44;
    const arch_prctl = 158;
    const faccessat2 = 439;
};

fn dispatch(f: *Frame) callconv(.C) u64 {
    const flags = call(abi.LinuxCall.FLAGS).*;
    if (flags & abi.LinuxCallFlag.FORWARD != 0) return forward(f);
    // a recorded call: what the layer answers goes into the log; a full log is the host's to read
    const logging = flags & abi.LinuxCallFlag.LOG != 0;
    const logged = call(abi.LinuxCall.LOG_LEN).*;
    if (logging and logged >= cfg(abi.LinuxConfig.LOG_CAP)) return forward(f);
    // the end, at the exit port (a recorded call's goes to the host, which records it)
    if (!logging and (f.nr == NR.exit_group or (f.nr == NR.exit and !threadsOn()))) exit(f.rdi);
    const r = answer(f) catch return forward(f);
    call(abi.LinuxCall.ANSWERED).* +%= 1;
    if (logging) log(f, logged, r);
    return r;
}

/// Appends a system call the layer answered to the log (its arguments as the program gave them).
fn log(f: *Frame, at: u64, result: u64) void {
    const e: [*]volatile u64 = @ptrFromInt(cfg(abi.LinuxConfig.LOG) + at * abi.LinuxLog.SIZE);
    e[abi.LinuxLog.NR / 8] = f.nr;
    e[abi.LinuxLog.ARGS / 8] = f.rdi;
    e[abi.LinuxLog.ARGS / 8 + 1] = f.rsi;
    e[abi.LinuxLog.ARGS / 8 + 2] = f.rdx;
    e[abi.LinuxLog.ARGS / 8 + 3] = f.r10;
    e[abi.LinuxLog.ARGS / 8 + 4] = f.r8;
    e[abi.LinuxLog.ARGS / 8 + 5] = f.r9;
    e[abi.LinuxLog.RESULT / 8] = result;
    e[abi.LinuxLog.NS / 8] = call(abi.LinuxCall.LAST_NS).*;
    e[abi.LinuxLog.RANDOM / 8] = call(abi.LinuxCall.LAST_RANDOM).*;
    call(abi.LinuxCall.LOG_LEN).* = at + 1;
}

/// The end of the call: the host takes the windows' bytes at this exit (the status's low 8 bits, as Linux keeps them).
fn exit(status: u64) noreturn {
    call(abi.LinuxCall.ANSWERED).* +%= 1;
    asm volatile ("outb %%al, %[port]"
        :
        : [port] "i" (abi.Port.EXIT),
          [status] "{rax}" (status & 0xff),
        : "memory"
    );
    unreachable;
}

/// Hands the system call to the host: the program's number and arguments in their registers.
fn forward(f: *Frame) u64 {
    block(abi.LinuxBlock.SAVED_RIP).* = f.rip;
    block(abi.LinuxBlock.SAVED_RSP).* = f.rsp;
    return asm volatile ("outb %%al, %[port]"
        : [ret] "={rax}" (-> u64),
        : [port] "i" (abi.Port.LINUX_FORWARD),
          [nr] "{rax}" (f.nr),
          [a] "{rdi}" (f.rdi),
          [b] "{rsi}" (f.rsi),
          [c] "{rdx}" (f.rdx),
          [d] "{r10}" (f.r10),
          [e] "{r8}" (f.r8),
          [g] "{r9}" (f.r9),
        : "memory"
    );
}

fn answer(f: *Frame) Forward!u64 {
    const a = [6]u64{ f.rdi, f.rsi, f.rdx, f.r10, f.r8, f.r9 };
    // above 0xffff the host answers (it counts what it does not know)
    if (f.nr > 0xffff) return error.Forward;
    // a served program's sockets are the host's: every call on one goes to it
    switch (f.nr) {
        // what the program sends on its connection waits in the connection window for the host's next exit
        NR.write, NR.writev => if (isSocket(fdOf(a[0])) and !isConnection(fdOf(a[0]))) return error.Forward,
        NR.close => if (isSocket(fdOf(a[0])) and !isConnection(fdOf(a[0]))) return error.Forward,
        NR.read, NR.pread64, NR.readv, NR.fstat, NR.lseek, NR.ioctl, NR.fcntl => if (isSocket(fdOf(a[0]))) return error.Forward,
        NR.poll => if (pollsSocket(a[0], a[1])) return error.Forward,
        else => {},
    }
    return switch (f.nr) {
        NR.read => read(fdOf(a[0]), a[1], a[2], null),
        NR.pread64 => read(fdOf(a[0]), a[1], a[2], a[3]),
        NR.readv => vector(fdOf(a[0]), a[1], a[2], false),
        NR.write => write(fdOf(a[0]), a[1], a[2]),
        NR.writev => vector(fdOf(a[0]), a[1], a[2], true),
        NR.close => close(fdOf(a[0])),
        NR.fstat => fstat(fdOf(a[0]), a[1]),
        NR.lseek => lseek(fdOf(a[0]), a[1], a[2] & 0xffffffff),
        NR.ioctl => if (fdEntry(fdOf(a[0])) != null) err(E.NOTTY) else err(E.BADF),
        NR.fcntl => fcntl(fdOf(a[0]), a[1]),
        NR.poll => poll(a[0], a[1]),
        NR.open => open(AT_FDCWD, a[0], a[1]),
        NR.openat => open(a[0], a[1], a[2]),
        NR.stat, NR.lstat => statPath(AT_FDCWD, a[0], a[1]),
        NR.newfstatat => newfstatat(a[0], a[1], a[2], a[3]),
        NR.access => access(AT_FDCWD, a[0]),
        NR.faccessat, NR.faccessat2 => access(a[0], a[1]),
        NR.getcwd => getcwd(a[0], a[1]),
        NR.brk => brk(a[0]),
        NR.mmap => mmap(a[0], a[1], a[2], a[3], a[4]),
        NR.munmap => munmap(a[0], a[1]),
        NR.mremap => mremap(a[0], a[1], a[2], a[3]),
        NR.madvise => if (a[2] == 4) dontNeed(a[0], a[1]) else 0,
        NR.getpid, NR.set_tid_address => 1,
        // a served program's threads are the host's to tell apart and to wake
        NR.gettid => if (threadsOn()) error.Forward else 1,
        NR.getppid => 0,
        NR.getuid, NR.geteuid, NR.getgid, NR.getegid => 1000,
        NR.uname => uname(a[0]),
        NR.set_robust_list, NR.sched_yield, NR.rt_sigprocmask, NR.sigaltstack => 0,
        NR.rt_sigaction => rtSigaction(a[2]),
        NR.getrlimit => rlimit(a[0], 0, a[1]),
        NR.prlimit64 => if (a[0] != 0 and a[0] != 1) err(E.PERM) else rlimit(a[1], a[2], a[3]),
        NR.sched_getaffinity => affinity(a[1], a[2]),
        NR.futex => if (threadsOn()) error.Forward else if (a[1] & 0x7f == 0) err(E.AGAIN) else 0,
        NR.clock_gettime => clockGettime(a[1]),
        NR.clock_getres => clockGetres(a[1]),
        NR.gettimeofday => gettimeofday(a[0]),
        NR.time => time(a[0]),
        NR.getrandom => getrandom(a[0], a[1]),
        // a served program's options on its sockets change nothing (wasp's own socket is TCP_NODELAY): no exit
        NR.setsockopt => if (isSocket(fdOf(a[0]))) 0 else error.Forward,
        // send(2) and sendto(2) without an address, on the connection: a write
        NR.sendto => if (a[4] == 0 and isConnection(fdOf(a[0]))) write(fdOf(a[0]), a[1], a[2]) else error.Forward,
        NR.arch_prctl => archPrctl(a[0], a[1]),
        else => error.Forward,
    };
}

fn fdOf(reg: u64) i64 {
    return @as(i32, @bitCast(@as(u32, @truncate(reg))));
}

const AT_FDCWD: u64 = @bitCast(@as(i64, -100));

// ---------------------------------------------------------------------------------------------
// The program's memory, as the host's GuestAccess allows it: never below LINUX_LOW (wasp's
// pages), never past the end of memory, no wrap. The accesses themselves run with the program's
// own rights: one it could not make faults, and the host resumes at `efault`.

fn userRange(addr: u64, len: u64) ?[*]u8 {
    if (len == 0) return @ptrFromInt(abi.LinuxLayer.END); // any non-null address: nothing is touched
    const low: u64 = 0x200000; // LINUX_LOW
    const top = cfg(abi.LinuxConfig.MEM_END);
    if (addr < low or addr >= top or len > top - addr) return null;
    return @ptrFromInt(addr);
}

fn copyIn(dst: [*]u8, src: [*]const volatile u8, n: u64) void {
    var i: u64 = 0;
    while (i < n) : (i += 1) dst[i] = src[i];
}

fn copyOut(dst: [*]volatile u8, src: [*]const u8, n: u64) void {
    var i: u64 = 0;
    while (i < n) : (i += 1) dst[i] = src[i];
}

fn fill(dst: [*]volatile u8, n: u64, v: u8) void {
    var i: u64 = 0;
    while (i < n) : (i += 1) dst[i] = v;
}

fn putU64(dst: [*]u8, off: u64, v: u64) void {
    var i: u6 = 0;
    while (true) : (i += 1) {
        dst[off + i] = @truncate(v >> (@as(u6, i) * 8));
        if (i == 7) break;
    }
}

fn getU64(src: [*]const u8, off: u64) u64 {
    var v: u64 = 0;
    var i: u6 = 0;
    while (true) : (i += 1) {
        v |= @as(u64, src[off + i]) << (i * 8);
        if (i == 7) break;
    }
    return v;
}

// ---------------------------------------------------------------------------------------------
// File descriptors (the block's table) and the placed files (the host's table, read-only).

const Fd = struct {
    kind: u8,
    file: u32,
    pos: u64,
};

fn fdSlot(fd: i64) ?[*]volatile u8 {
    if (fd < 0 or fd >= abi.LinuxBlock.MAX_FDS) return null;
    return @ptrFromInt(cfg(abi.LinuxConfig.BLOCK) + abi.LinuxBlock.FDS + @as(u64, @intCast(fd)) * abi.LinuxBlock.FD_SIZE);
}

/// Descriptor `fd`, or null when it is closed. A kind or file the host would refuse is handed to it.
fn fdEntry(fd: i64) ?Fd {
    const s = fdSlot(fd) orelse return null;
    const kind = s[0];
    if (kind == abi.LinuxFd.CLOSED) return null;
    const file = @as(u32, s[4]) | @as(u32, s[5]) << 8 | @as(u32, s[6]) << 16 | @as(u32, s[7]) << 24;
    var pos: u64 = 0;
    var i: u6 = 0;
    while (i < 8) : (i += 1) pos |= @as(u64, s[8 + i]) << (i * 8);
    return .{ .kind = kind, .file = file, .pos = pos };
}

fn isSocket(fd: i64) bool {
    const e = fdEntry(fd) orelse return false;
    return e.kind == abi.LinuxFd.SOCKET;
}

/// A served program's connection (a socket entry whose position field is 1, as the host makes it).
fn isConnection(fd: i64) bool {
    const e = fdEntry(fd) orelse return false;
    return e.kind == abi.LinuxFd.SOCKET and e.pos == 1 and cfg(abi.LinuxConfig.NET_OUT_CAP) != 0;
}

/// Appends to the connection window, or — when it would not fit — lets the host take the send.
fn netAppend(src: [*]const u8, len: u64) Forward!void {
    const cap = cfg(abi.LinuxConfig.NET_OUT_CAP);
    const len_at = call(abi.LinuxCall.NET_LEN);
    const used = len_at.*;
    if (cap == 0 or used > cap or len > cap - used) return error.Forward;
    copyOut(@ptrFromInt(cfg(abi.LinuxConfig.NET_OUT) + used), src, len);
    len_at.* = used + len;
}

/// Whether a poll list names a socket (an unreadable list is poll's own -EFAULT).
fn pollsSocket(fds: u64, count: u64) bool {
    if (count > 1024) return false;
    const list = userRange(fds, count * 8) orelse return false;
    var i: u64 = 0;
    while (i < count) : (i += 1) {
        const p = list + i * 8;
        const fd: i32 = @bitCast(@as(u32, p[0]) | @as(u32, p[1]) << 8 | @as(u32, p[2]) << 16 | @as(u32, p[3]) << 24);
        if (fd >= 0 and isSocket(fd)) return true;
    }
    return false;
}

fn setFd(fd: i64, e: ?Fd) void {
    const s = fdSlot(fd) orelse return;
    fill(s, abi.LinuxBlock.FD_SIZE, 0);
    const v = e orelse return;
    s[0] = v.kind;
    s[4] = @truncate(v.file);
    s[5] = @truncate(v.file >> 8);
    s[6] = @truncate(v.file >> 16);
    s[7] = @truncate(v.file >> 24);
    var i: u6 = 0;
    while (i < 8) : (i += 1) s[8 + i] = @truncate(v.pos >> (i * 8));
}

const PlacedFile = struct { data: u64, size: u64, path: u64, path_len: u64 };

fn filesCount() u64 {
    return @as(*const volatile u64, @ptrFromInt(cfg(abi.LinuxConfig.FILES) + abi.LinuxFiles.COUNT)).*;
}

fn placed(i: u64) ?PlacedFile {
    if (i >= filesCount()) return null;
    const at = cfg(abi.LinuxConfig.FILES) + abi.LinuxFiles.ENTRIES + i * abi.LinuxFiles.ENTRY_SIZE;
    const e: [*]const volatile u64 = @ptrFromInt(at);
    return .{ .path = cfg(abi.LinuxConfig.FILES) + e[0], .path_len = e[1], .data = e[2], .size = e[3] };
}

/// The file of a file descriptor entry (its index checked; a bad one is the host's to judge).
fn fileOf(e: Fd) Forward!PlacedFile {
    return placed(e.file) orelse error.Forward;
}

const MAX_IO: u64 = 1 << 30;
const WRITE_CHUNK: u64 = 1 << 20;

fn read(fd: i64, buf: u64, len: u64, at: ?u64) Forward!u64 {
    const e = fdEntry(fd) orelse return err(E.BADF);
    switch (e.kind) {
        abi.LinuxFd.STDIN, abi.LinuxFd.FILE => {},
        abi.LinuxFd.STDOUT, abi.LinuxFd.STDERR => return err(E.BADF),
        else => return error.Forward,
    }
    if (len > MAX_IO) return err(E.INVAL);
    if (at != null and e.kind == abi.LinuxFd.STDIN) return err(E.SPIPE);
    if (at) |off| if (@as(i64, @bitCast(off)) < 0) return err(E.INVAL);
    if (e.kind == abi.LinuxFd.STDIN) {
        const total = call(abi.LinuxCall.IN_TOTAL).*;
        const window = call(abi.LinuxCall.IN_LEN).*;
        const pos = call(abi.LinuxCall.IN_POS).*;
        if (pos > total or window > total or window > cfg(abi.LinuxConfig.IN_CAP)) return error.Forward;
        const n = @min(len, total - pos);
        // what the window does not hold, the host serves (the read as a whole: the same count)
        if (pos + n > window) return error.Forward;
        if (n > 0) {
            const dst = userRange(buf, n) orelse return err(E.FAULT);
            copyIn(dst, @ptrFromInt(cfg(abi.LinuxConfig.IN) + pos), n);
        }
        call(abi.LinuxCall.IN_POS).* = pos + n;
        return n;
    }
    const file = try fileOf(e);
    const from = if (at) |off| @min(off, file.size) else e.pos;
    const n = if (from < file.size) @min(len, file.size - from) else 0;
    if (n > 0) {
        const dst = userRange(buf, n) orelse return err(E.FAULT);
        copyIn(dst, @ptrFromInt(file.data + from), n);
    }
    if (at == null) {
        var moved = e;
        moved.pos = from + n;
        setFd(fd, moved);
    }
    return n;
}

fn write(fd: i64, buf: u64, len: u64) Forward!u64 {
    const e = fdEntry(fd) orelse return err(E.BADF);
    if (e.kind == abi.LinuxFd.SOCKET) {
        if (!isConnection(fd)) return error.Forward;
        if (len > MAX_IO) return err(E.INVAL);
        const from = userRange(buf, len) orelse return err(E.FAULT);
        try netAppend(from, len);
        return len;
    }
    if (e.kind != abi.LinuxFd.STDOUT and e.kind != abi.LinuxFd.STDERR) return if (e.kind == abi.LinuxFd.STDIN or e.kind == abi.LinuxFd.FILE) err(E.BADF) else error.Forward;
    if (len > MAX_IO) return err(E.INVAL);
    const src = userRange(buf, len) orelse return err(E.FAULT);
    try append(e.kind, src, len);
    return len;
}

/// Appends to a stream's window, or — when it would not fit — lets the host take the write.
fn append(kind: u8, src: [*]const u8, len: u64) Forward!void {
    const out = kind == abi.LinuxFd.STDOUT;
    const len_at = call(if (out) abi.LinuxCall.OUT_LEN else abi.LinuxCall.ERR_LEN);
    const window = if (out) cfg(abi.LinuxConfig.OUT) else cfg(abi.LinuxConfig.ERR);
    const cap = if (out) cfg(abi.LinuxConfig.OUT_CAP) else cfg(abi.LinuxConfig.ERR_CAP);
    const used = len_at.*;
    if (used > cap or len > cap - used) return error.Forward;
    copyOut(@ptrFromInt(window + used), src, len);
    len_at.* = used + len;
}

/// readv/writev: each (base, len) in turn, stopping at a short transfer, as the host does.
fn vector(fd: i64, iov: u64, count: u64, out: bool) Forward!u64 {
    if (count > 1024) return err(E.INVAL);
    const list = userRange(iov, count * 16) orelse return err(E.FAULT);
    if (out) {
        // a write the window cannot take whole goes to the host whole (the host writes it in order)
        const e = fdEntry(fd) orelse return err(E.BADF);
        const conn = isConnection(fd);
        if (!conn and e.kind != abi.LinuxFd.STDOUT and e.kind != abi.LinuxFd.STDERR) return if (e.kind == abi.LinuxFd.STDIN or e.kind == abi.LinuxFd.FILE) err(E.BADF) else error.Forward;
        var total: u64 = 0;
        var i: u64 = 0;
        while (i < count) : (i += 1) {
            const len = getU64(list, i * 16 + 8);
            if (len > MAX_IO) return error.Forward;
            total += len;
            if (total > WRITE_CHUNK) return error.Forward;
        }
        const used = call(if (conn) abi.LinuxCall.NET_LEN else if (e.kind == abi.LinuxFd.STDOUT) abi.LinuxCall.OUT_LEN else abi.LinuxCall.ERR_LEN).*;
        const cap = if (conn) cfg(abi.LinuxConfig.NET_OUT_CAP) else if (e.kind == abi.LinuxFd.STDOUT) cfg(abi.LinuxConfig.OUT_CAP) else cfg(abi.LinuxConfig.ERR_CAP);
        if (used > cap or total > cap - used) return error.Forward;
    }
    var done: u64 = 0;
    var i: u64 = 0;
    while (i < count) : (i += 1) {
        const base = getU64(list, i * 16);
        const len = getU64(list, i * 16 + 8);
        const n = if (out) try write(fd, base, len) else try read(fd, base, len, null);
        // a bad buffer fails the whole call, as the host's does; another error after some bytes is a short count
        if (@as(i64, @bitCast(n)) < 0) return if (done > 0 and n != err(E.FAULT)) done else n;
        done += n;
        if (n < len) break;
    }
    return done;
}

fn close(fd: i64) u64 {
    if (fdEntry(fd) == null) return err(E.BADF);
    // a served program's connection: the host sees it gone at its next exit
    if (isConnection(fd)) call(abi.LinuxCall.NET_CLOSED).* = 1;
    setFd(fd, null);
    return 0;
}

fn lseek(fd: i64, off: u64, whence: u64) Forward!u64 {
    const e = fdEntry(fd) orelse return err(E.BADF);
    if (e.kind != abi.LinuxFd.FILE) return err(E.SPIPE);
    const file = try fileOf(e);
    const base: i128 = switch (whence) {
        0 => 0,
        1 => e.pos,
        2 => file.size,
        else => return err(E.INVAL),
    };
    const to = base + @as(i64, @bitCast(off));
    if (to < 0 or to > (1 << 53) - 1) return err(E.INVAL);
    var moved = e;
    moved.pos = @intCast(to);
    setFd(fd, moved);
    return @intCast(to);
}

fn fcntl(fd: i64, cmd: u64) u64 {
    const e = fdEntry(fd) orelse return err(E.BADF);
    if (cmd & 0xffffffff != 3) return 0; // F_GETFL only says something
    return if (e.kind == abi.LinuxFd.STDOUT or e.kind == abi.LinuxFd.STDERR) 1 else 0;
}

fn poll(fds: u64, count: u64) u64 {
    if (count > 1024) return err(E.INVAL);
    const list = userRange(fds, count * 8) orelse return err(E.FAULT);
    var ready: u64 = 0;
    var i: u64 = 0;
    while (i < count) : (i += 1) {
        const p = list + i * 8;
        const fd: i32 = @bitCast(@as(u32, p[0]) | @as(u32, p[1]) << 8 | @as(u32, p[2]) << 16 | @as(u32, p[3]) << 24);
        const events: u16 = @as(u16, p[4]) | @as(u16, p[5]) << 8;
        var revents: u16 = 0;
        if (fd >= 0) {
            if (fdEntry(fd)) |e| {
                revents = events & @as(u16, if (e.kind == abi.LinuxFd.STDOUT or e.kind == abi.LinuxFd.STDERR) 4 else 1);
            } else revents = 0x20;
        }
        p[6] = @truncate(revents);
        p[7] = @truncate(revents >> 8);
        if (revents != 0) ready += 1;
    }
    return ready;
}

// ---------------------------------------------------------------------------------------------
// Paths: absolute, normalized as the host's normalize() does, looked up among the placed files.

const MAX_PATH = 4096;

/// The program's C string at `addr`, normalized into `out`: its length, or an error for the program.
fn pathAt(addr: u64, out: *[MAX_PATH + 2]u8) union(enum) { ok: usize, errno: u64 } {
    // read it byte by byte, at most MAX_PATH bytes
    var raw: [MAX_PATH]u8 = undefined;
    var n: usize = 0;
    while (true) {
        if (n == MAX_PATH) return .{ .errno = E.NAMETOOLONG };
        const p = userRange(addr + n, 1) orelse return .{ .errno = E.FAULT };
        const c = p[0];
        if (c == 0) break;
        raw[n] = c;
        n += 1;
    }
    return .{ .ok = normalize(raw[0..n], out) };
}

/// "/a/./b/../c" -> "/a/c", never above "/"; a relative path is taken from "/". Returns the length.
fn normalize(path: []const u8, out: *[MAX_PATH + 2]u8) usize {
    out[0] = '/';
    var len: usize = 1;
    var i: usize = 0;
    while (i < path.len) {
        while (i < path.len and path[i] == '/') i += 1;
        const start = i;
        while (i < path.len and path[i] != '/') i += 1;
        const part = path[start..i];
        if (part.len == 0 or (part.len == 1 and part[0] == '.')) continue;
        if (part.len == 2 and part[0] == '.' and part[1] == '.') {
            // drop the last component
            while (len > 1 and out[len - 1] != '/') len -= 1;
            if (len > 1) len -= 1;
            continue;
        }
        if (len > 1) {
            out[len] = '/';
            len += 1;
        }
        for (part) |c| {
            out[len] = c;
            len += 1;
        }
    }
    return len;
}

/// The index of the placed file at `path`, or null.
fn lookup(path: []const u8) ?u64 {
    const count = filesCount();
    var i: u64 = 0;
    while (i < count) : (i += 1) {
        const f = placed(i) orelse return null;
        if (f.path_len == path.len and startsWith(f, path)) return i;
    }
    return null;
}

/// Whether placed file `f`'s path begins with `path` (its length checked by the caller).
fn startsWith(f: PlacedFile, path: []const u8) bool {
    const p: [*]const volatile u8 = @ptrFromInt(f.path);
    for (path, 0..) |c, k| if (p[k] != c) return false;
    return true;
}

/// A path relative to `dirfd` made absolute into `buf` (only AT_FDCWD has a directory: "/"): its length, or an error.
fn resolvePath(dirfd: u64, addr: u64, buf: *[MAX_PATH + 2]u8) union(enum) { ok: usize, errno: u64 } {
    // peek at the first byte: a relative path needs AT_FDCWD
    const first = userRange(addr, 1) orelse return .{ .errno = E.FAULT };
    const relative = first[0] != '/';
    const r = pathAt(addr, buf);
    const len = switch (r) {
        .ok => |l| l,
        .errno => |e| return .{ .errno = e },
    };
    // relative to a working directory chdir set: the host's to resolve
    if (relative and cwdSet()) return .{ .errno = FORWARD_PATH };
    // relative to a directory fd: only the host opens directories (those it grants)
    if (relative and fdOf(dirfd) != -100) return .{ .errno = if (dirsGranted()) FORWARD_PATH else E.NOENT };
    return .{ .ok = len };
}

/// resolvePath's errno for a path the host must resolve.
const FORWARD_PATH: u64 = 0;

/// Whether the program was granted host directories: a path the placed files lack is the host's.
fn dirsGranted() bool {
    return cfg(abi.LinuxConfig.DIRS) != 0;
}

/// Whether a path the placed files lack goes to the host: under granted directories, or wasp's own (/dev/wasp/: the snapshot point).
fn hostPath(path: []const u8) bool {
    const wasp = "/dev/wasp/";
    if (dirsGranted()) return true;
    if (path.len <= wasp.len) return false;
    for (wasp, 0..) |c, i| if (path[i] != c) return false;
    return true;
}

/// An error of resolvePath for the program, or the hand-over to the host.
fn pathErr(e: u64) Forward!u64 {
    return if (e == FORWARD_PATH) error.Forward else err(e);
}

/// A path relative to `dirfd` resolved: the file's index, or an error.
fn resolve(dirfd: u64, addr: u64) union(enum) { file: ?u64, errno: u64, host } {
    var buf: [MAX_PATH + 2]u8 = undefined;
    const len = switch (resolvePath(dirfd, addr, &buf)) {
        .ok => |l| l,
        .errno => |e| return .{ .errno = e },
    };
    const found = lookup(buf[0..len]);
    if (found == null and hostPath(buf[0..len])) return .host;
    return .{ .file = found };
}

/// Whether `path` (normalized) is a directory holding a placed file ("/" always is), as the host's isDirectory says.
fn isDirectory(path: []const u8) bool {
    if (path.len == 1) return true;
    const count = filesCount();
    var i: u64 = 0;
    while (i < count) : (i += 1) {
        const f = placed(i) orelse return false;
        if (f.path_len <= path.len) continue;
        const p: [*]const volatile u8 = @ptrFromInt(f.path);
        if (p[path.len] == '/' and startsWith(f, path)) return true;
    }
    return false;
}

/// A directory's inode number, as the host's dirIno gives it: its path's FNV-1a hash above 2^32.
fn dirIno(path: []const u8) u64 {
    var h: u32 = 0x811c9dc5;
    for (path) |c| {
        h ^= c;
        h *%= 0x01000193;
    }
    return (1 << 32) | @as(u64, h);
}

/// The inode number of placed file `index` (the streams' is 1).
fn fileIno(index: u64) u64 {
    return 16 + index;
}

fn open(dirfd: u64, path: u64, flags: u64) Forward!u64 {
    const file = switch (resolve(dirfd, path)) {
        .file => |f| f orelse return if (flags & 0x40 != 0) err(E.ROFS) else err(E.NOENT),
        .errno => |e| return pathErr(e),
        .host => return error.Forward,
    };
    // O_DIRECTORY on a file, and writing: the host's answers
    if (flags & 0x10000 != 0) return error.Forward;
    if (flags & 3 != 0) return err(E.ROFS);
    var fd: i64 = 3;
    while (fd < abi.LinuxBlock.MAX_FDS and fdEntry(fd) != null) fd += 1;
    if (fd >= abi.LinuxBlock.MAX_FDS) return err(E.MFILE);
    setFd(fd, .{ .kind = abi.LinuxFd.FILE, .file = @intCast(file), .pos = 0 });
    return @intCast(fd);
}

fn access(dirfd: u64, path: u64) Forward!u64 {
    var buf: [MAX_PATH + 2]u8 = undefined;
    const len = switch (resolvePath(dirfd, path, &buf)) {
        .ok => |l| l,
        .errno => |e| return pathErr(e),
    };
    if (lookup(buf[0..len]) != null) return 0;
    if (hostPath(buf[0..len])) return error.Forward;
    return if (isDirectory(buf[0..len])) 0 else err(E.NOENT);
}

/// A struct stat (x86-64, 144 bytes) for a file of `mode`, `size` and inode number `ino`, as the host writes it.
fn putStat(buf: u64, mode: u64, size: u64, ino: u64) u64 {
    const st = userRange(buf, 144) orelse return err(E.FAULT);
    var s: [144]u8 = [_]u8{0} ** 144;
    putU64(&s, 8, ino); // st_ino
    putU64(&s, 16, 1); // st_nlink
    putU64(&s, 24, mode | (1000 << 32)); // st_mode, st_uid
    putU64(&s, 32, 1000); // st_gid
    putU64(&s, 48, size); // st_size
    putU64(&s, 56, 4096); // st_blksize
    putU64(&s, 64, (size + 511) / 512); // st_blocks
    copyOut(st, &s, 144);
    return 0;
}

fn fstat(fd: i64, buf: u64) Forward!u64 {
    const e = fdEntry(fd) orelse return err(E.BADF);
    if (e.kind == abi.LinuxFd.FILE) return putStat(buf, 0o100444, (try fileOf(e)).size, fileIno(e.file));
    return putStat(buf, 0o010600, 0, 1);
}

fn statPath(dirfd: u64, path: u64, buf: u64) Forward!u64 {
    var pbuf: [MAX_PATH + 2]u8 = undefined;
    const len = switch (resolvePath(dirfd, path, &pbuf)) {
        .ok => |l| l,
        .errno => |e| return pathErr(e),
    };
    const p = pbuf[0..len];
    const file = lookup(p) orelse {
        if (hostPath(p)) return error.Forward;
        // a directory that holds a granted file exists (a loader stats the directories it searches)
        if (isDirectory(p)) return putStat(buf, 0o040555, 4096, dirIno(p));
        return err(E.NOENT);
    };
    const f = placed(file) orelse return err(E.NOENT);
    return putStat(buf, 0o100444, f.size, fileIno(file));
}

fn newfstatat(dirfd: u64, path: u64, buf: u64, flags: u64) Forward!u64 {
    // an empty path with AT_EMPTY_PATH is fstat of the fd
    if (flags & 0x1000 != 0) {
        const first = userRange(path, 1) orelse return err(E.FAULT);
        if (first[0] == 0) return if (isSocket(fdOf(dirfd))) error.Forward else fstat(fdOf(dirfd), buf);
    }
    return statPath(dirfd, path, buf);
}

/// Whether a served program has threads (the block's THREADS).
fn threadsOn() bool {
    return block(abi.LinuxBlock.THREADS).* != 0;
}

/// Whether chdir has left "/" (the block's CWD_LEN).
fn cwdSet() bool {
    return block(abi.LinuxBlock.CWD_LEN).* != 0;
}

fn getcwd(buf: u64, size: u64) Forward!u64 {
    if (cwdSet()) return error.Forward;
    if (size < 2) return err(E.RANGE);
    const dst = userRange(buf, 2) orelse return err(E.FAULT);
    dst[0] = '/';
    dst[1] = 0;
    return 2;
}

// ---------------------------------------------------------------------------------------------
// Memory: the break and anonymous mappings, as src/linux/memory.ts hands them out.

const MAPPED: u8 = abi.LinuxPage.MAPPED;
const USED: u8 = abi.LinuxPage.USED;
const PROTECTED: u8 = abi.LinuxPage.PROTECTED;

fn zero(addr: u64, len: u64) void {
    fill(@ptrFromInt(addr), len, 0);
}

fn brk(addr: u64) Forward!u64 {
    const start = cfg(abi.LinuxConfig.BRK_START);
    const end = cfg(abi.LinuxConfig.BRK_END);
    const cur = block(abi.LinuxBlock.BRK).*;
    const high = block(abi.LinuxBlock.BRK_HIGH).*;
    if (cur < start or cur > end or high < start or high > end) return error.Forward;
    if (addr == 0 or addr < start or addr > end) return cur;
    if (addr > cur) {
        const dirty_end = @min(addr, high);
        if (dirty_end > cur) zero(cur, dirty_end - cur);
    }
    block(abi.LinuxBlock.BRK).* = addr;
    if (addr > high) block(abi.LinuxBlock.BRK_HIGH).* = addr;
    return addr;
}

fn pageStates() []volatile u8 {
    const n = (cfg(abi.LinuxConfig.MMAP_END) - cfg(abi.LinuxConfig.MMAP_START)) / PAGE;
    const p: [*]volatile u8 = @ptrFromInt(cfg(abi.LinuxConfig.PAGES));
    return p[0..n];
}

fn pagesOf(len: u64) ?u64 {
    if (len == 0 or len > (1 << 40)) return null;
    return (len + PAGE - 1) / PAGE;
}

fn indexOf(addr: u64) ?u64 {
    const start = cfg(abi.LinuxConfig.MMAP_START);
    const end = cfg(abi.LinuxConfig.MMAP_END);
    if (addr < start or addr >= end) return null;
    return (addr - start) / PAGE;
}

/// The highest run of `pages` free pages, or null.
fn findFree(states: []volatile u8, pages: u64) ?u64 {
    var run: u64 = 0;
    var p = states.len;
    while (p > 0) {
        p -= 1;
        run = if (states[p] & MAPPED != 0) 0 else run + 1;
        if (run == pages) return p;
    }
    return null;
}

/// Pages whose protection the host changed are the host's to hand out.
fn anyProtected(states: []volatile u8, first: u64, count: u64) bool {
    var p = first;
    while (p < first + count) : (p += 1) if (states[p] & PROTECTED != 0) return true;
    return false;
}

fn handOut(states: []volatile u8, first: u64, count: u64) void {
    const start = cfg(abi.LinuxConfig.MMAP_START);
    var p = first;
    while (p < first + count) : (p += 1) {
        if (states[p] & USED != 0) zero(start + p * PAGE, PAGE);
        states[p] |= MAPPED | USED;
    }
}

const MAP_PRIVATE: u64 = 0x02;
const MAP_FIXED: u64 = 0x10;
const MAP_ANONYMOUS: u64 = 0x20;

fn mmap(addr: u64, len: u64, prot: u64, flags: u64, fd: u64) Forward!u64 {
    _ = fd;
    if (flags & MAP_ANONYMOUS == 0 or flags & MAP_PRIVATE == 0) return error.Forward;
    if (prot & ~@as(u64, 7) != 0) return err(E.INVAL);
    // memory that is not read-write needs its page tables changed: the host's
    if (prot != 3) return error.Forward;
    const pages = pagesOf(len) orelse return err(E.INVAL);
    const states = pageStates();
    var first: u64 = undefined;
    if (flags & MAP_FIXED != 0) {
        const i = indexOf(addr) orelse return err(E.NOMEM);
        if (addr % PAGE != 0 or i + pages > states.len) return err(E.NOMEM);
        first = i;
    } else {
        first = findFree(states, pages) orelse return err(E.NOMEM);
    }
    if (anyProtected(states, first, pages)) return error.Forward;
    handOut(states, first, pages);
    return cfg(abi.LinuxConfig.MMAP_START) + first * PAGE;
}

fn munmap(addr: u64, len: u64) Forward!u64 {
    const first = indexOf(addr) orelse return err(E.INVAL);
    const pages = pagesOf(len) orelse return err(E.INVAL);
    if (addr % PAGE != 0) return err(E.INVAL);
    const states = pageStates();
    const end = @min(first + pages, states.len);
    if (anyProtected(states, first, end - first)) return error.Forward;
    var p = first;
    while (p < end) : (p += 1) states[p] &= ~MAPPED;
    return 0;
}

fn mremap(addr: u64, old_len: u64, new_len: u64, flags: u64) Forward!u64 {
    const first = indexOf(addr) orelse return err(E.INVAL);
    const old_pages = pagesOf(old_len) orelse return err(E.INVAL);
    const new_pages = pagesOf(new_len) orelse return err(E.INVAL);
    if (addr % PAGE != 0) return err(E.INVAL);
    const states = pageStates();
    if (first + old_pages > states.len) return err(E.FAULT);
    var p = first;
    while (p < first + old_pages) : (p += 1) if (states[p] & MAPPED == 0) return err(E.FAULT);
    if (anyProtected(states, first, old_pages)) return error.Forward;
    if (new_pages <= old_pages) {
        p = first + new_pages;
        while (p < first + old_pages) : (p += 1) states[p] &= ~MAPPED;
        return addr;
    }
    if (first + new_pages <= states.len) {
        var free = true;
        p = first + old_pages;
        while (p < first + new_pages) : (p += 1) if (states[p] & MAPPED != 0) {
            free = false;
            break;
        };
        if (free) {
            if (anyProtected(states, first + old_pages, new_pages - old_pages)) return error.Forward;
            handOut(states, first + old_pages, new_pages - old_pages);
            return addr;
        }
    }
    if (flags & 1 == 0) return err(E.NOMEM);
    const moved = findFree(states, new_pages) orelse return err(E.NOMEM);
    if (anyProtected(states, moved, new_pages)) return error.Forward;
    handOut(states, moved, new_pages);
    const start = cfg(abi.LinuxConfig.MMAP_START);
    const to = start + moved * PAGE;
    copyOut(@ptrFromInt(to), @ptrFromInt(start + first * PAGE), old_pages * PAGE);
    p = first;
    while (p < first + old_pages) : (p += 1) states[p] &= ~MAPPED;
    return to;
}

fn dontNeed(addr: u64, len: u64) u64 {
    const first = indexOf(addr) orelse return err(E.INVAL);
    const pages = pagesOf(len) orelse return err(E.INVAL);
    if (addr % PAGE != 0) return err(E.INVAL);
    const states = pageStates();
    const end = @min(first + pages, states.len);
    const start = cfg(abi.LinuxConfig.MMAP_START);
    var p = first;
    while (p < end) : (p += 1) if (states[p] & MAPPED != 0) zero(start + p * PAGE, PAGE);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// TLS bases. Setting one takes the host (the vCPU's FS or GS base), unless it is already the value
// the process block says it has: a call of a program started at its entry, whose snapshot the
// training call left with the base libc's start-up sets (src/virtine/linux.ts, #train).

fn archPrctl(code: u64, addr: u64) Forward!u64 {
    switch (code) {
        0x1002 => if (addr == block(abi.LinuxBlock.FS_BASE).*) return 0, // ARCH_SET_FS
        0x1001 => if (addr == block(abi.LinuxBlock.GS_BASE).*) return 0, // ARCH_SET_GS
        0x1003, 0x1004 => { // ARCH_GET_FS, ARCH_GET_GS
            const dst = userRange(addr, 8) orelse return err(E.FAULT);
            var b: [8]u8 = undefined;
            putU64(&b, 0, block(if (code == 0x1003) abi.LinuxBlock.FS_BASE else abi.LinuxBlock.GS_BASE).*);
            copyOut(dst, &b, 8);
            return 0;
        },
        else => {},
    }
    return error.Forward;
}

// ---------------------------------------------------------------------------------------------
// Identity, limits, signals.

fn uname(buf: u64) u64 {
    const fields = [_][]const u8{ "Linux", "wasp", "6.1.0-wasp", "#1 wasp virtine", "x86_64", "(none)" };
    const dst = userRange(buf, 65 * fields.len) orelse return err(E.FAULT);
    fill(dst, 65 * fields.len, 0);
    for (fields, 0..) |f, i| copyOut(dst + i * 65, f.ptr, f.len);
    return 0;
}

fn rtSigaction(old: u64) u64 {
    // accepted, never delivered: the old action reads as the default
    if (old != 0) {
        const dst = userRange(old, 32) orelse return err(E.FAULT);
        fill(dst, 32, 0);
    }
    return 0;
}

fn rlimit(resource: u64, new: u64, old: u64) u64 {
    if (new != 0) return err(E.PERM);
    if (old == 0) return 0;
    const value: u64 = switch (resource) {
        3 => cfg(abi.LinuxConfig.STACK_SIZE),
        7 => abi.LinuxBlock.MAX_FDS,
        2 => cfg(abi.LinuxConfig.BRK_END) - cfg(abi.LinuxConfig.BRK_START),
        else => ~@as(u64, 0),
    };
    const dst = userRange(old, 16) orelse return err(E.FAULT);
    var b: [16]u8 = undefined;
    putU64(&b, 0, value);
    putU64(&b, 8, value);
    copyOut(dst, &b, 16);
    return 0;
}

fn affinity(len: u64, mask: u64) u64 {
    if (len < 8) return err(E.INVAL);
    const dst = userRange(mask, 8) orelse return err(E.FAULT);
    fill(dst, 8, 0);
    dst[0] = 1; // one CPU
    return 8;
}

// ---------------------------------------------------------------------------------------------
// The clock (with the `time` grant): the host's nanoseconds at a TSC reading it put in the call
// page, advanced by the TSC, which a CPL3 guest reads natively. And random bytes (with `random`).

fn granted(bit: u64) bool {
    return call(abi.LinuxCall.FLAGS).* & bit != 0;
}

fn rdtsc() u64 {
    var lo: u32 = undefined;
    var hi: u32 = undefined;
    asm volatile ("rdtsc"
        : [lo] "={eax}" (lo),
          [hi] "={edx}" (hi),
    );
    return @as(u64, hi) << 32 | lo;
}

/// Nanoseconds since the epoch, or null when the host gave no clock this call.
fn now() ?u64 {
    const mult = call(abi.LinuxCall.TSC_MULT).*;
    if (mult == 0) return null;
    const tsc = rdtsc();
    const base = call(abi.LinuxCall.TSC_BASE).*;
    const delta = if (tsc > base) tsc - base else 0;
    const ns: u64 = @truncate((@as(u128, delta) * mult) >> 32);
    const t = call(abi.LinuxCall.NS_BASE).* +% ns;
    call(abi.LinuxCall.LAST_NS).* = t;
    return t;
}

fn timespec(buf: u64, ns: u64) u64 {
    const dst = userRange(buf, 16) orelse return err(E.FAULT);
    var b: [16]u8 = undefined;
    putU64(&b, 0, ns / 1_000_000_000);
    putU64(&b, 8, ns % 1_000_000_000);
    copyOut(dst, &b, 16);
    return 0;
}

fn clockGettime(buf: u64) Forward!u64 {
    if (!granted(abi.LinuxCallFlag.TIME)) return err(E.PERM);
    return timespec(buf, now() orelse return error.Forward);
}

fn clockGetres(buf: u64) u64 {
    if (!granted(abi.LinuxCallFlag.TIME)) return err(E.PERM);
    return if (buf != 0) timespec(buf, 1) else 0;
}

fn gettimeofday(buf: u64) Forward!u64 {
    if (!granted(abi.LinuxCallFlag.TIME)) return err(E.PERM);
    const ns = now() orelse return error.Forward;
    if (buf != 0) {
        const dst = userRange(buf, 16) orelse return err(E.FAULT);
        var b: [16]u8 = undefined;
        putU64(&b, 0, ns / 1_000_000_000);
        putU64(&b, 8, (ns % 1_000_000_000) / 1000);
        copyOut(dst, &b, 16);
    }
    return 0;
}

fn time(buf: u64) Forward!u64 {
    if (!granted(abi.LinuxCallFlag.TIME)) return err(E.PERM);
    const seconds = (now() orelse return error.Forward) / 1_000_000_000;
    if (buf != 0) {
        const dst = userRange(buf, 8) orelse return err(E.FAULT);
        var b: [8]u8 = undefined;
        putU64(&b, 0, seconds);
        copyOut(dst, &b, 8);
    }
    return seconds;
}

fn getrandom(buf: u64, len: u64) Forward!u64 {
    if (!granted(abi.LinuxCallFlag.RANDOM)) return err(E.PERM);
    const n = @min(len, 256 * 1024);
    const have = call(abi.LinuxCall.RANDOM_LEN).*;
    const pos = call(abi.LinuxCall.RANDOM_POS).*;
    if (have > abi.LinuxCall.RANDOM_CAP or pos > have or n > have - pos) return error.Forward;
    const dst = userRange(buf, n) orelse return err(E.FAULT);
    copyIn(dst, @ptrFromInt(cfg(abi.LinuxConfig.CALL) + abi.LinuxCall.RANDOM + pos), n);
    call(abi.LinuxCall.RANDOM_POS).* = pos + n;
    call(abi.LinuxCall.LAST_RANDOM).* = pos;
    return n;
}

// A bug of the layer's own (a failed safety check) ends the call as the program's fault would:
// the host reports the exception and its RIP, inside the layer.
pub fn panic(msg: []const u8, trace: ?*@import("std").builtin.StackTrace, ret: ?usize) noreturn {
    _ = msg;
    _ = trace;
    _ = ret;
    asm volatile ("ud2");
    unreachable;
}
