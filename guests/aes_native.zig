//! The native side of the paper's OpenSSL experiment (src/bench/aes.ts): the AES-128-CBC code of
//! the virtine guest guests/aes_chunk.zig (guests/aescbc.zig), run by a static Linux program.
//!
//!   aes_native KEY_HEX IV_HEX CHUNK ROUNDS < plaintext > ciphertext
//!
//! encrypts standard input (whole 16-byte blocks) as one CBC stream, CHUNK bytes per call of the
//! chunk function (as each virtine encrypts one chunk), ROUNDS times; writes the ciphertext to
//! standard output and each round's time in nanoseconds, one per line, to standard error.
const std = @import("std");
const cbc = @import("aescbc.zig");

fn fail(msg: []const u8) noreturn {
    std.io.getStdErr().writer().print("aes_native: {s}\n", .{msg}) catch {};
    std.process.exit(2);
}

/// One chunk, as a virtine gets it: the IV and the plaintext in, the ciphertext out.
noinline fn chunkCall(ctx: *const cbc.EncCtx, iv: [cbc.block]u8, in: []const u8, out: []u8) [cbc.block]u8 {
    @memcpy(out, in);
    return cbc.encrypt(ctx.*, iv, out);
}

pub fn main() !void {
    var args = std.process.args();
    _ = args.next();
    const key_hex = args.next() orelse fail("usage: aes_native KEY_HEX IV_HEX CHUNK ROUNDS < plaintext");
    const iv_hex = args.next() orelse fail("no IV");
    const chunk = std.fmt.parseInt(usize, args.next() orelse fail("no chunk size"), 10) catch fail("bad chunk size");
    const rounds = std.fmt.parseInt(usize, args.next() orelse fail("no rounds"), 10) catch fail("bad rounds");
    const key = cbc.parseKey(key_hex) orelse fail("the key is 32 hex digits");
    const iv0 = cbc.parseKey(iv_hex) orelse fail("the IV is 32 hex digits");
    if (chunk == 0 or chunk % cbc.block != 0 or rounds == 0) fail("the chunk is whole 16-byte blocks; rounds > 0");

    const gpa = std.heap.page_allocator;
    const plain = try std.io.getStdIn().readToEndAlloc(gpa, 1 << 30);
    if (plain.len % chunk != 0) fail("the input is whole chunks");
    const cipher = try gpa.alloc(u8, plain.len);
    const ctx = cbc.Aes128.initEnc(key);

    const err = std.io.getStdErr().writer();
    for (0..rounds) |_| {
        var timer = try std.time.Timer.start();
        var iv = iv0;
        var at: usize = 0;
        while (at < plain.len) : (at += chunk) iv = chunkCall(&ctx, iv, plain[at..][0..chunk], cipher[at..][0..chunk]);
        try err.print("{d}\n", .{timer.read()});
    }
    try std.io.getStdOut().writeAll(cipher);
}
