//! AES-128-CBC with Zig's std.crypto AES, shared by the AES guests (guests/aes_chunk.zig,
//! guests/aes.zig) and the native program they are measured against (guests/aes_native.zig), so
//! that both sides run the same code. Not a guest itself.
//!
//! std.crypto uses AES-NI only where the build's CPU model has both AES and AVX (its AES-NI code
//! is VEX-encoded, chosen at compile time): the experiment's guest (aes_chunk) and its native
//! baseline are built with both (build.zig, aesTarget), virtines having AVX since issue 24.4; the
//! sealing service (aes.zig) stays on the baseline CPU and std's software AES. `hardware` says
//! which one a build has.
const std = @import("std");
const aes = std.crypto.core.aes;

pub const Aes128 = aes.Aes128;
pub const EncCtx = aes.AesEncryptCtx(Aes128);
pub const DecCtx = aes.AesDecryptCtx(Aes128);
pub const block = 16;
pub const hardware = aes.has_hardware_support;

/// CBC-encrypts `data` (whole 16-byte blocks) in place, chaining from `iv`; returns the last
/// ciphertext block, the IV of the next chunk of the same stream.
pub fn encrypt(ctx: EncCtx, iv: [block]u8, data: []u8) [block]u8 {
    std.debug.assert(data.len % block == 0);
    var prev = iv;
    var i: usize = 0;
    while (i < data.len) : (i += block) {
        var x: [block]u8 = data[i..][0..block].*;
        for (&x, prev) |*b, p| b.* ^= p;
        ctx.encrypt(&prev, &x);
        data[i..][0..block].* = prev;
    }
    return prev;
}

/// CBC-decrypts `data` (whole 16-byte blocks) in place, chaining from `iv`.
pub fn decrypt(ctx: DecCtx, iv: [block]u8, data: []u8) void {
    std.debug.assert(data.len % block == 0);
    var prev = iv;
    var i: usize = 0;
    while (i < data.len) : (i += block) {
        const c: [block]u8 = data[i..][0..block].*;
        var p: [block]u8 = undefined;
        ctx.decrypt(&p, &c);
        for (&p, prev) |*b, q| b.* ^= q;
        data[i..][0..block].* = p;
        prev = c;
    }
}

/// A 16-byte key from `bytes`: 16 raw bytes, or 32 hexadecimal digits (a final newline allowed).
pub fn parseKey(bytes: []const u8) ?[block]u8 {
    if (bytes.len == block) return bytes[0..block].*;
    const text = std.mem.trimRight(u8, bytes, "\r\n");
    if (text.len != 2 * block) return null;
    var key: [block]u8 = undefined;
    _ = std.fmt.hexToBytes(&key, text) catch return null;
    return key;
}
