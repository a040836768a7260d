//! The wasp guest SDK: what a native virtine imports as `@import("virtine")`.
//!
//! A guest runs in 64-bit long mode at CPL3 with the first 1 GiB identity-mapped. The host
//! talks to it through the info page (abi.Layout.INFO) and two I/O ports: an `out` to
//! abi.Port.EXIT ends the virtine with RAX as the result, an `out` to abi.Port.HYPERCALL is a
//! hypercall (RAX = number, RDI/RSI/RDX/RCX = arguments, result back in RAX).
//!
//! Console output is buffered in guest memory (the buffer named by the info page) and read by
//! the host when the virtine exits, so a pure computation leaves with a single exit. Only a
//! full buffer is flushed early, with one `write` hypercall.

const std = @import("std");

/// The generated ABI constants (scripts/gen-abi.ts from src/abi/guest-abi.ts).
pub const abi = @import("abi.zig");

/// Requests and responses of guests behind `wasp serve` (http.zig).
pub const http = @import("http.zig");

// ---------------------------------------------------------------------------------------------
// Port I/O: the only inline assembly a guest needs lives here and in root.zig.

const exit_insn = std.fmt.comptimePrint("outb %%al, $0x{x}", .{abi.Port.EXIT});
const hypercall_insn = std.fmt.comptimePrint("outb %%al, $0x{x}", .{abi.Port.HYPERCALL});

/// A raw hypercall: `nr` in RAX, `a`..`d` in RDI, RSI, RDX, RCX; returns the host's RAX.
/// Only RAX is written by the host. The "memory" clobber makes every store before the call
/// visible to the host and every load after it see what the host wrote.
pub inline fn hypercall(nr: u64, a: u64, b: u64, c: u64, d: u64) u64 {
    return asm volatile (hypercall_insn
        : [ret] "={rax}" (-> u64),
        : [nr] "{rax}" (nr),
          [a] "{rdi}" (a),
          [b] "{rsi}" (b),
          [c] "{rdx}" (c),
          [d] "{rcx}" (d),
        : "memory"
    );
}

/// End the virtine now with `value` as its result (one `out` to the exit port). Buffered
/// console output is not flushed: the host reads the buffer at exit.
pub fn exit(value: u64) noreturn {
    // The host never resumes a virtine after this port; the loop only satisfies `noreturn`.
    while (true) {
        asm volatile (exit_insn
            :
            : [value] "{rax}" (value),
            : "memory"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The info page.

inline fn infoU64(comptime offset: usize) *volatile u64 {
    return @ptrFromInt(abi.Layout.INFO + offset);
}

inline fn infoU32(comptime offset: usize) *volatile u32 {
    return @ptrFromInt(abi.Layout.INFO + offset);
}

/// Maximum number of integer arguments a virtine receives.
pub const max_args = 6;

/// Number of arguments the host passed (0..6).
pub fn argc() usize {
    return @min(infoU32(abi.Info.ARGC).*, max_args);
}

/// The arguments the host passed, read from the info page (the same values `main` receives in
/// its parameters). After a snapshot restore they are the arguments of the current call.
pub fn args() []const u64 {
    const base: [*]const u64 = @ptrFromInt(abi.Layout.INFO + abi.Info.ARGS);
    return base[0..argc()];
}

/// Argument `i`, or 0 if the host passed fewer than `i + 1` arguments.
pub fn arg(i: usize) u64 {
    if (i >= argc()) return 0;
    const base: [*]const volatile u64 = @ptrFromInt(abi.Layout.INFO + abi.Info.ARGS);
    return base[i];
}

/// Bytes of guest RAM (guest-physical addresses 0 .. memSize()).
pub fn memSize() u64 {
    return infoU64(abi.Info.MEM_SIZE).*;
}

/// First free, page-aligned address after the image (code, data and bss). Memory from here up
/// to `heapEnd()` (the stack's guard pages) is the guest's to use.
pub fn heapStart() u64 {
    return infoU64(abi.Info.HEAP_START).*;
}

// ---------------------------------------------------------------------------------------------
// Call data: bytes in and out. The host copies a call's input to the bottom of the data window
// (the top of RAM; the stack starts below it) and leaves the rest of the window for the output.
// Both are described by the info page; the host reads OUTPUT_LEN bytes back when the call ends.

/// The input bytes of this call (empty when the host passed none).
pub fn input() []const u8 {
    const base: [*]const u8 = @ptrFromInt(infoU64(abi.Info.INPUT_ADDR).*);
    return base[0..infoU64(abi.Info.INPUT_LEN).*];
}

/// The whole room for this call's output (what `writeOutput` appends to).
pub fn outputBuffer() []u8 {
    const base: [*]u8 = @ptrFromInt(infoU64(abi.Info.OUTPUT_ADDR).*);
    return base[0..infoU64(abi.Info.OUTPUT_CAP).*];
}

/// Bytes of output written so far.
pub fn outputLen() usize {
    return infoU64(abi.Info.OUTPUT_LEN).*;
}

/// Set the output's length directly (after filling `outputBuffer()` in place).
pub fn setOutputLen(n: usize) error{NoSpaceLeft}!void {
    if (n > infoU64(abi.Info.OUTPUT_CAP).*) return error.NoSpaceLeft;
    infoU64(abi.Info.OUTPUT_LEN).* = n;
}

/// Append `bytes` to the output; error.NoSpaceLeft (nothing written) if they do not fit.
pub fn writeOutput(bytes: []const u8) error{NoSpaceLeft}!void {
    const buf = outputBuffer();
    const len = outputLen();
    if (bytes.len > buf.len - len) return error.NoSpaceLeft;
    @memcpy(buf[len..][0..bytes.len], bytes);
    infoU64(abi.Info.OUTPUT_LEN).* = len + bytes.len;
}

fn outputWriteFn(_: void, bytes: []const u8) error{NoSpaceLeft}!usize {
    try writeOutput(bytes);
    return bytes.len;
}

pub const OutputWriter = std.io.Writer(void, error{NoSpaceLeft}, outputWriteFn);

/// A std.io.Writer onto the output (for std.fmt or std.json.stringify).
pub fn outputWriter() OutputWriter {
    return .{ .context = {} };
}

// ---------------------------------------------------------------------------------------------
// Heap: the memory between the image and the stack, handed out by a bump allocator whose state
// lives in guest memory (so it is part of a snapshot and starts over at every call). It ends
// where the host put the stack's guard pages (HEAP_END in the info page): past them is the stack.

/// Room left for the stack below the data window when the host gives no heap end (an older host).
pub const stack_reserve = 256 * 1024;

/// Where the heap ends: the first of the stack's unmapped guard pages.
pub fn heapEnd() u64 {
    const end = infoU64(abi.Info.HEAP_END).*;
    if (end != 0) return end;
    const window = infoU64(abi.Info.INPUT_ADDR).*;
    const start = heapStart();
    return if (window > start + stack_reserve) window - stack_reserve else start;
}

var heap_state: ?std.heap.FixedBufferAllocator = null;

/// An allocator over the free memory after the image (freeing only gives back the last block).
pub fn allocator() std.mem.Allocator {
    if (heap_state == null) {
        const start = heapStart();
        const end = @max(heapEnd(), start);
        const base: [*]u8 = @ptrFromInt(start);
        heap_state = std.heap.FixedBufferAllocator.init(base[0 .. end - start]);
    }
    return heap_state.?.allocator();
}

// ---------------------------------------------------------------------------------------------
// Console.

/// Hand the buffered console bytes to the host now (one `write` hypercall) and empty the
/// buffer. Does nothing if the buffer is empty. Normally not needed: the host reads the buffer
/// when the virtine exits, and `print` flushes by itself when the buffer is full.
pub fn flush() void {
    const len = infoU64(abi.Info.CONSOLE_LEN).*;
    if (len == 0) return;
    _ = hypercall(abi.HC_WRITE, infoU64(abi.Info.CONSOLE_ADDR).*, len, 0, 0);
    infoU64(abi.Info.CONSOLE_LEN).* = 0;
}

/// Append `bytes` to the console buffer; flush first whenever it is full and more must go in.
pub fn write(bytes: []const u8) void {
    var rest = bytes;
    while (rest.len > 0) {
        const addr = infoU64(abi.Info.CONSOLE_ADDR).*;
        const cap = infoU64(abi.Info.CONSOLE_CAP).*;
        const len = infoU64(abi.Info.CONSOLE_LEN).*;
        if (cap == 0) {
            // No buffer at all: every write goes straight to the host.
            _ = hypercall(abi.HC_WRITE, @intFromPtr(rest.ptr), rest.len, 0, 0);
            return;
        }
        if (len >= cap) {
            flush();
            continue;
        }
        const n: usize = @intCast(@min(rest.len, cap - len));
        const dst: [*]u8 = @ptrFromInt(addr + len);
        @memcpy(dst[0..n], rest[0..n]);
        infoU64(abi.Info.CONSOLE_LEN).* = len + n;
        rest = rest[n..];
    }
}

fn writeFn(_: void, bytes: []const u8) error{}!usize {
    write(bytes);
    return bytes.len;
}

pub const Writer = std.io.Writer(void, error{}, writeFn);

/// A std.io.Writer onto the console buffer.
pub fn writer() Writer {
    return .{ .context = {} };
}

/// Formatted console output (std.fmt syntax), buffered.
pub fn print(comptime fmt: []const u8, fmt_args: anytype) void {
    std.fmt.format(writer(), fmt, fmt_args) catch |err| switch (err) {};
}

// ---------------------------------------------------------------------------------------------
// Hypercalls that must be granted by the host per invocation.

/// The host's CLOCK_REALTIME in nanoseconds.
pub fn time() u64 {
    return hypercall(abi.HC_TIME, 0, 0, 0, 0);
}

/// Fill `buf` with random bytes from the host; returns the host's result (RAX).
pub fn random(buf: []u8) u64 {
    return hypercall(abi.HC_RANDOM, @intFromPtr(buf.ptr), buf.len, 0, 0);
}

/// Ask the host to capture the guest's state here: later calls of this virtine resume from
/// this point instead of `_start` (read their arguments with `args()`/`arg()`, not from
/// `main`'s parameters). Returns the host's RAX.
pub fn snapshot() u64 {
    return hypercall(abi.HC_SNAPSHOT, 0, 0, 0, 0);
}

// ---------------------------------------------------------------------------------------------
// Files the host granted this virtine (its `files` option, `wasp invoke --file GUEST=HOST`),
// read-only, by the absolute path they were granted at. The host read them when the virtine was
// loaded: every call sees the same bytes.

const FileRequest = extern struct { path_ptr: u64, path_len: u64, offset: u64, buf_ptr: u64, buf_len: u64 };

pub const FileError = error{ FileNotGranted, PathTooLong };

/// Reads the granted file `path` from byte `offset` into `buf`; returns the bytes read (fewer than
/// `buf.len` at the end of the file, none past it). error.FileNotGranted when the host granted no
/// file at `path`.
pub fn readFile(path: []const u8, offset: u64, buf: []u8) FileError![]u8 {
    const size = try fileSize(path, offset, buf);
    const n = if (offset >= size) 0 else @min(size - offset, buf.len, abi.FileRead.MAX_READ);
    return buf[0..n];
}

/// The size of the granted file `path`, or error.FileNotGranted.
pub fn fileLen(path: []const u8) FileError!u64 {
    return fileSize(path, 0, &.{});
}

/// Reads all of the granted file `path` into `buf`, or error.NoSpaceLeft if it is larger. A file
/// up to 16 MiB takes one hypercall.
pub fn readWholeFile(path: []const u8, buf: []u8) (FileError || error{NoSpaceLeft})![]u8 {
    const size = try fileSize(path, 0, buf);
    if (size > buf.len) return error.NoSpaceLeft;
    var at: usize = @min(size, abi.FileRead.MAX_READ);
    while (at < size) at += (try readFile(path, at, buf[at..size])).len;
    return buf[0..size];
}

fn fileSize(path: []const u8, offset: u64, buf: []u8) FileError!u64 {
    if (path.len > abi.FileRead.MAX_PATH) return error.PathTooLong;
    var req = FileRequest{ .path_ptr = @intFromPtr(path.ptr), .path_len = path.len, .offset = offset, .buf_ptr = @intFromPtr(buf.ptr), .buf_len = buf.len };
    const size = hypercall(abi.HC_FILE, @intFromPtr(&req), 0, 0, 0);
    if (size == abi.FILE_NOT_GRANTED) return error.FileNotGranted;
    return size;
}

/// End the virtine with an error: flush pending console output, then send `msg` through the
/// `panic` hypercall. `@panic` and safety checks end up here (see root.zig).
pub fn abort(msg: []const u8) noreturn {
    flush();
    _ = hypercall(abi.HC_PANIC, @intFromPtr(msg.ptr), msg.len, 0, 0);
    // The host ends the virtine on `panic`; should it ever return, leave with an exit anyway.
    exit(std.math.maxInt(u64));
}

// ---------------------------------------------------------------------------------------------
// Host functions: TypeScript functions the embedder gave this virtine (`hostFunctions`,
// `hostModule`), called by name. Arguments are integers, byte slices and `str` text; they are
// encoded (hostcall.zig) and copied by the host, which never sees a pointer to follow.

const hostcall = @import("hostcall.zig");
/// Text for a host function (it receives a string); a plain slice is bytes (a Uint8Array).
pub const str = hostcall.str;
pub const HostError = hostcall.Error;

const HostRequest = extern struct { name_ptr: u64, name_len: u64, args_ptr: u64, args_len: u64, out_ptr: u64, out_cap: u64 };
/// The encoded arguments of a call (only in guests that call host functions).
var host_args: [64 * 1024]u8 = undefined;

/// Calls host function `name` with `call_args` (a tuple); its encoded result, in `out`. A function the
/// virtine was not given, or one that throws, ends the call on the host's side.
pub fn hostCall(name: []const u8, call_args: anytype, out: []u8) HostError![]const u8 {
    const n = try hostcall.encode(&host_args, call_args);
    var req = HostRequest{
        .name_ptr = @intFromPtr(name.ptr),
        .name_len = name.len,
        .args_ptr = @intFromPtr(&host_args),
        .args_len = n,
        .out_ptr = @intFromPtr(out.ptr),
        .out_cap = out.len,
    };
    const len = hypercall(abi.HC_HOST, @intFromPtr(&req), 0, 0, 0);
    if (len > out.len) return error.HostResultTooLarge;
    return out[0..len];
}

/// Calls a host function that returns an integer: `const sum = try virtine.hostInt("add", .{ a, b });`
pub fn hostInt(name: []const u8, call_args: anytype) HostError!u64 {
    var out: [9]u8 = undefined;
    return hostcall.decodeInt(try hostCall(name, call_args, &out));
}

/// Calls a host function that returns bytes or a string; they land in `out` (5 bytes more than
/// the longest result expected: the encoding's tag and length), and the slice holding them is returned.
pub fn hostBytes(name: []const u8, call_args: anytype, out: []u8) HostError![]const u8 {
    return hostcall.decodeBytes(try hostCall(name, call_args, out));
}
