//! The paper's OpenSSL experiment as a virtine (src/bench/aes.ts): one chunk of an AES-128-CBC
//! stream encrypted per call. The first call's input is the key (16 bytes, or 32 hex digits): it is
//! expanded, then the snapshot is taken, so the key schedule lives only in the snapshot. Every
//! later call's input is the chunk's IV (the previous chunk's last ciphertext block) followed by
//! the chunk (whole 16-byte blocks); its output is the chunk encrypted.
const virtine = @import("virtine");
const cbc = @import("aescbc.zig");

var ctx: cbc.EncCtx = undefined;
var keyed = false;

pub fn main(_: []const u8) ![]const u8 {
    if (!keyed) {
        const key = cbc.parseKey(virtine.input()) orelse virtine.abort("aes_chunk: the first call's input is the key: 16 bytes or 32 hex digits");
        ctx = cbc.Aes128.initEnc(key);
        keyed = true;
        if (virtine.snapshot() == 0) return virtine.outputBuffer()[0..0]; // the keying call itself
    }
    const in = virtine.input(); // this call's (main's parameter was the keying call's)
    if (in.len < cbc.block or in.len % cbc.block != 0) virtine.abort("aes_chunk: the input is a 16-byte IV and whole 16-byte blocks");
    const out = virtine.outputBuffer();
    if (in.len - cbc.block > out.len) return error.NoSpaceLeft;
    const data = out[0 .. in.len - cbc.block];
    @memcpy(data, in[cbc.block..]);
    _ = cbc.encrypt(ctx, in[0..cbc.block].*, data);
    return data;
}
