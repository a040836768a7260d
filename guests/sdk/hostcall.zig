//! Host functions from a Zig guest: the arguments of a `host` hypercall encoded as wasp's values
//! (abi.HostCall: a tag byte, then an 8-byte integer or a u32 length and the bytes), and a result
//! decoded. Pure code, no I/O: `zig test guests/sdk/hostcall.zig` runs its tests on the host, and
//! tests/host-call.test.ts checks the same bytes against the host's decoder.

const std = @import("std");
const abi = @import("abi.zig");

pub const Error = error{ HostArgsTooLarge, HostResultTooLarge, HostBadResult };

/// Text for the host (a string, UTF-8): `virtine.str("hello")`. A plain slice is bytes.
pub const Str = struct { text: []const u8 };
pub fn str(text: []const u8) Str {
    return .{ .text = text };
}

/// Encodes `args` (a tuple of integers, byte slices, string literals and `str` values) into `buf`;
/// the encoded length.
pub fn encode(buf: []u8, args: anytype) Error!usize {
    var at: usize = 0;
    inline for (args) |arg| {
        const T = @TypeOf(arg);
        switch (@typeInfo(T)) {
            .Int, .ComptimeInt => {
                const signed = switch (@typeInfo(T)) {
                    .Int => |i| i.signedness == .signed,
                    else => arg < 0,
                };
                if (at + 9 > buf.len) return error.HostArgsTooLarge;
                if (signed and arg < 0) {
                    buf[at] = abi.HostCall.TAG_I64;
                    std.mem.writeInt(i64, buf[at + 1 ..][0..8], @as(i64, arg), .Little);
                } else {
                    buf[at] = abi.HostCall.TAG_U64;
                    std.mem.writeInt(u64, buf[at + 1 ..][0..8], @as(u64, @intCast(arg)), .Little);
                }
                at += 9;
            },
            else => {
                const tag: u8, const bytes: []const u8 = if (T == Str) .{ abi.HostCall.TAG_STRING, arg.text } else .{ abi.HostCall.TAG_BYTES, asBytes(arg) };
                if (bytes.len > std.math.maxInt(u32) or at + 5 + bytes.len > buf.len) return error.HostArgsTooLarge;
                buf[at] = tag;
                std.mem.writeInt(u32, buf[at + 1 ..][0..4], @intCast(bytes.len), .Little);
                @memcpy(buf[at + 5 ..][0..bytes.len], bytes);
                at += 5 + bytes.len;
            },
        }
    }
    return at;
}

fn asBytes(arg: anytype) []const u8 {
    const T = @TypeOf(arg);
    return switch (@typeInfo(T)) {
        .Pointer => |p| switch (p.size) {
            .Slice => std.mem.sliceAsBytes(arg),
            .One => std.mem.sliceAsBytes(arg[0..]), // a string literal: *const [N:0]u8
            else => @compileError("host-call argument of type " ++ @typeName(T) ++ " is not a slice"),
        },
        else => @compileError("host-call argument of type " ++ @typeName(T) ++ " is neither an integer nor bytes"),
    };
}

/// An integer result (the host returned a bigint or a number).
pub fn decodeInt(result: []const u8) Error!u64 {
    if (result.len != 9 or (result[0] != abi.HostCall.TAG_U64 and result[0] != abi.HostCall.TAG_I64)) return error.HostBadResult;
    return std.mem.readInt(u64, result[1..9], .Little);
}

/// A bytes or string result: its bytes (inside `result`).
pub fn decodeBytes(result: []const u8) Error![]const u8 {
    if (result.len < 5 or (result[0] != abi.HostCall.TAG_BYTES and result[0] != abi.HostCall.TAG_STRING)) return error.HostBadResult;
    const n = std.mem.readInt(u32, result[1..5], .Little);
    if (n != result.len - 5) return error.HostBadResult;
    return result[5..];
}

/// The bytes tests/host-call.test.ts decodes with the host's decoder: keep the two in step.
pub const test_vector = [_]u8{
    abi.HostCall.TAG_U64, 42, 0, 0, 0, 0, 0, 0, 0,
    abi.HostCall.TAG_I64, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    abi.HostCall.TAG_BYTES, 3, 0, 0, 0, 1, 2, 3,
    abi.HostCall.TAG_STRING, 2, 0, 0, 0, 'h', 'i',
};

test "the SDK encodes integers, bytes and strings as the host decodes them" {
    var buf: [64]u8 = undefined;
    const bytes = [_]u8{ 1, 2, 3 };
    const n = try encode(&buf, .{ @as(u64, 42), @as(i64, -2), @as([]const u8, &bytes), str("hi") });
    try std.testing.expectEqualSlices(u8, &test_vector, buf[0..n]);
}

test "arguments past the buffer are an error, not an overflow" {
    var buf: [8]u8 = undefined;
    try std.testing.expectError(error.HostArgsTooLarge, encode(&buf, .{@as(u64, 1)}));
    try std.testing.expectError(error.HostArgsTooLarge, encode(&buf, .{"a longer string"}));
}

test "results decode only when well-formed" {
    try std.testing.expectEqual(@as(u64, 42), try decodeInt(test_vector[0..9]));
    try std.testing.expectError(error.HostBadResult, decodeInt(test_vector[0..8]));
    try std.testing.expectEqualSlices(u8, &[_]u8{ 1, 2, 3 }, try decodeBytes(test_vector[18..26]));
    try std.testing.expectError(error.HostBadResult, decodeBytes(test_vector[18..25]));
}
