//! Root source file of every native wasp guest (build.zig makes the guest's own file the
//! module "guest"). It provides:
//!   - the image header (section .wasp_header, placed first, at 0x100000, by linker.ld),
//!   - `_start`, the entry the header names: it calls the guest's `main` with the arguments the
//!     host left in RDI, RSI, RDX, RCX, R8, R9 and ends the virtine with `out 0xFA` (RAX = result),
//!   - `panic`, so `@panic` and failed safety checks reach the host as a `panic` hypercall.

const std = @import("std");
const guest = @import("guest");
const virtine = @import("virtine");
const build_options = @import("wasp_build");
const abi = virtine.abi;

// ---------------------------------------------------------------------------------------------
// Image header.

/// Defined by linker.ld: the end of the image including bss.
extern const __image_end: u8;

const Header = extern struct {
    magic: u64,
    abi_version: u32,
    header_size: u32,
    entry: *const anyopaque,
    load_addr: u64,
    image_end: *const anyopaque,
    mem_wanted: u64,
    flags: u64,
    name: [abi.HEADER_NAME_LEN]u8,
};

comptime {
    std.debug.assert(@sizeOf(Header) == abi.Header.SIZE);
    std.debug.assert(@offsetOf(Header, "magic") == abi.Header.MAGIC);
    std.debug.assert(@offsetOf(Header, "abi_version") == abi.Header.ABI_VERSION);
    std.debug.assert(@offsetOf(Header, "header_size") == abi.Header.HEADER_SIZE);
    std.debug.assert(@offsetOf(Header, "entry") == abi.Header.ENTRY);
    std.debug.assert(@offsetOf(Header, "load_addr") == abi.Header.LOAD_ADDR);
    std.debug.assert(@offsetOf(Header, "image_end") == abi.Header.IMAGE_END);
    std.debug.assert(@offsetOf(Header, "mem_wanted") == abi.Header.MEM_WANTED);
    std.debug.assert(@offsetOf(Header, "flags") == abi.Header.FLAGS);
    std.debug.assert(@offsetOf(Header, "name") == abi.Header.NAME);
}

fn headerName(comptime name: []const u8) [abi.HEADER_NAME_LEN]u8 {
    // Keep at least one NUL so the host can read it as a C string.
    if (name.len >= abi.HEADER_NAME_LEN)
        @compileError("guest name '" ++ name ++ "' is longer than 23 bytes");
    var out = [_]u8{0} ** abi.HEADER_NAME_LEN;
    @memcpy(out[0..name.len], name);
    return out;
}

/// What `main` takes, for the host (abi.HeaderFlags): its integer parameters, or its input.
fn mainFlags() u64 {
    const params = @typeInfo(@TypeOf(guest.main)).Fn.params;
    const takes_input = params.len == 1 and params[0].type == []const u8;
    const argc: u64 = if (takes_input) 0 else params.len;
    return abi.HeaderFlags.MAIN_DECLARED |
        (if (takes_input) abi.HeaderFlags.TAKES_INPUT else 0) |
        (argc << abi.HeaderFlags.ARGC_SHIFT);
}

/// RAM the guest asks for: `pub const wasp_memory: u64` in the guest file, else 0 (host default).
const mem_wanted: u64 = if (@hasDecl(guest, "wasp_memory")) guest.wasp_memory else 0;

export const wasp_header: Header linksection(".wasp_header") = .{
    .magic = abi.HEADER_MAGIC,
    .abi_version = abi.ABI_VERSION,
    .header_size = abi.Header.SIZE,
    .entry = @ptrCast(&_start),
    .load_addr = abi.Layout.NATIVE_LOAD,
    .image_end = @ptrCast(&__image_end),
    .mem_wanted = mem_wanted,
    .flags = mainFlags(),
    .name = headerName(build_options.name),
};

// ---------------------------------------------------------------------------------------------
// Entry.

/// The host enters here at CPL3 with RSP = top of guest RAM (16-byte aligned) and the
/// arguments in RDI, RSI, RDX, RCX, R8, R9. The argument registers are passed through untouched
/// to `startGuest` (SysV C convention); RSP is re-aligned to 16 before the `call`, so the callee
/// sees RSP + 8 16-byte aligned as the ABI requires (SSE spills with movaps rely on it).
export fn _start() callconv(.Naked) noreturn {
    asm volatile (
        \\ xorl %%ebp, %%ebp
        \\ andq $-16, %%rsp
        \\ callq %[startGuest:P]
        \\ ud2
        :
        : [startGuest] "X" (&startGuest),
    );
}

fn startGuest(a0: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) callconv(.C) noreturn {
    virtine.exit(callMain(.{ a0, a1, a2, a3, a4, a5 }));
}

/// Calls `guest.main`, which takes 0 to 6 64-bit integer parameters and returns a 64-bit
/// integer, `void` (result 0), or an error union of those (an error panics with its name).
inline fn callMain(regs: [6]u64) u64 {
    if (!@hasDecl(guest, "main"))
        @compileError("a guest must declare `pub fn main(...) u64`");
    const Main = @TypeOf(guest.main);
    const info = switch (@typeInfo(Main)) {
        .Fn => |f| f,
        else => @compileError("guest `main` must be a function"),
    };
    if (info.params.len > regs.len)
        @compileError("guest `main` takes at most 6 parameters");

    var call_args: std.meta.ArgsTuple(Main) = undefined;
    inline for (info.params, 0..) |param, i| {
        const P = param.type orelse @compileError("guest `main` cannot be generic");
        if (P == []const u8) {
            // `main(input: []const u8)`: the call's input bytes
            if (info.params.len != 1) @compileError("a guest `main` that takes its input ([]const u8) takes nothing else");
            call_args[i] = virtine.input();
            continue;
        }
        call_args[i] = switch (@typeInfo(P)) {
            .Int => |int| if (int.bits == 64)
                @bitCast(regs[i])
            else
                @compileError(param_error),
            else => @compileError(param_error),
        };
    }

    const result = @call(.auto, guest.main, call_args);
    return toResult(@TypeOf(result), result);
}

const param_error = "guest `main` parameters must be 64-bit integers (u64), or one []const u8 (the input)";
const result_error = "guest `main` must return u64, void or []const u8 (the output), or an error union of one";

inline fn toResult(comptime R: type, value: R) u64 {
    if (R == []const u8 or R == []u8) {
        // the output: copied to the output buffer unless it is already there; the result is its length
        // (it may lie in the output buffer itself: copying forwards to its start is safe then)
        const buf = virtine.outputBuffer();
        if (value.len > buf.len) virtine.abort("the guest's output does not fit its data window");
        if (value.ptr != buf.ptr) std.mem.copyForwards(u8, buf[0..value.len], value);
        virtine.setOutputLen(value.len) catch unreachable;
        return value.len;
    }
    switch (@typeInfo(R)) {
        .Void => return 0,
        .Int => |int| {
            if (int.bits != 64) @compileError(result_error);
            return @bitCast(value);
        },
        .ErrorUnion => |eu| {
            const ok = value catch |err| virtine.abort(@errorName(err));
            return toResult(eu.payload, ok);
        },
        else => @compileError(result_error),
    }
}

// ---------------------------------------------------------------------------------------------
// Panic: `@panic("...")` and safety checks. The message goes to the host through the `panic`
// hypercall (after pending console output is flushed); the virtine never continues.

pub fn panic(msg: []const u8, error_return_trace: ?*std.builtin.StackTrace, ret_addr: ?usize) noreturn {
    _ = error_return_trace;
    _ = ret_addr;
    virtine.abort(msg);
}
