//! Data in, data out: returns its input reversed, and its length as the result.
const virtine = @import("virtine");

pub fn main(input: []const u8) ![]const u8 {
    const out = virtine.outputBuffer();
    if (input.len > out.len) return error.OutputTooSmall;
    for (input, 0..) |b, i| out[input.len - 1 - i] = b;
    return out[0..input.len];
}
