//! JSON in, JSON out: `{"values": [numbers...]}` → `{"count":N,"sum":S,"min":A,"max":B,"mean":M}`.
//! Parses with std.json on the SDK's heap allocator; a malformed input ends in a panic that the
//! host reports as a GuestPanicError.
const std = @import("std");
const virtine = @import("virtine");

const Input = struct { values: []const f64 };

pub fn main(input: []const u8) !void {
    const parsed = try std.json.parseFromSliceLeaky(Input, virtine.allocator(), input, .{ .ignore_unknown_fields = true });
    var sum: f64 = 0;
    var min: f64 = std.math.inf(f64);
    var max: f64 = -std.math.inf(f64);
    for (parsed.values) |v| {
        sum += v;
        min = @min(min, v);
        max = @max(max, v);
    }
    const n = parsed.values.len;
    try std.json.stringify(.{
        .count = n,
        .sum = sum,
        .min = if (n > 0) min else 0,
        .max = if (n > 0) max else 0,
        .mean = if (n > 0) sum / @as(f64, @floatFromInt(n)) else 0,
    }, .{}, virtine.outputWriter());
}
