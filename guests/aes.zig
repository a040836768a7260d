//! A sealing service behind `wasp serve` (docs/serve.md, "A key that lives only in a snapshot"):
//! AES-128-CBC, then HMAC-SHA256 (encrypt-then-MAC), with a key that exists nowhere but in the
//! function's snapshot file.
//!
//!   wasp snapshot aes -i key.hex --allow random -o aes.snap   # the key: 16 bytes or 32 hex digits
//!   POST PREFIX/encrypt   body: any bytes -> IV (16 random bytes) || CBC(body, PKCS#7) || tag (32)
//!   POST PREFIX/decrypt   body: a sealed message -> the bytes sealed (400 if it is not one of ours)
//!
//! The cipher's key is the key itself (so `openssl enc -aes-128-cbc -K KEY -iv IV` opens the
//! ciphertext part too); the tag is HMAC-SHA256 over IV || ciphertext under a key derived from it
//! (HKDF-SHA256, info "wasp aes.zig mac"), checked in constant time before anything is decrypted:
//! a forged or altered message is refused without a word about its padding.
//! The first call (the one `wasp snapshot` makes) takes the key as its input, expands it and takes
//! the snapshot; every request resumes there with the key schedule in memory, so the key file can
//! be deleted. Each encryption draws its IV from the host (the `random` grant).
const std = @import("std");
const virtine = @import("virtine");
const cbc = @import("aescbc.zig");

const Hmac = std.crypto.auth.hmac.sha2.HmacSha256;
const tag_len = Hmac.mac_length;

var enc: cbc.EncCtx = undefined;
var dec: cbc.DecCtx = undefined;
var mac_key: [32]u8 = undefined;
var keyed = false;

pub fn main(_: []const u8) ![]const u8 {
    if (!keyed) {
        const key = cbc.parseKey(virtine.input()) orelse virtine.abort("aes: the first call's input is the key: 16 bytes or 32 hex digits (wasp snapshot aes -i KEY_FILE)");
        enc = cbc.Aes128.initEnc(key);
        dec = cbc.Aes128.initDec(key);
        const Hkdf = std.crypto.kdf.hkdf.HkdfSha256;
        Hkdf.expand(&mac_key, "wasp aes.zig mac", Hkdf.extract("", &key));
        keyed = true;
        if (virtine.snapshot() == 0) return virtine.outputBuffer()[0..0];
    }
    const req = virtine.http.request() catch return virtine.http.respond(400, "text/plain", "not an HTTP request\n");
    if (!std.mem.eql(u8, req.method, "POST")) return virtine.http.respondWith(405, "text/plain", &.{.{ "Allow", "POST" }}, "POST a body to /encrypt or /decrypt\n");
    if (std.mem.endsWith(u8, req.path, "/encrypt")) return seal(req.body);
    if (std.mem.endsWith(u8, req.path, "/decrypt")) return open(req.body);
    return virtine.http.respond(404, "text/plain", "POST to /encrypt or /decrypt\n");
}

const head = "Status: 200\r\nContent-Type: application/octet-stream\r\n\r\n";

/// The response's body room after the head, `len` bytes long, or null when it does not fit.
fn bodyRoom(len: usize) ?[]u8 {
    const out = virtine.outputBuffer();
    if (head.len + len > out.len) return null;
    @memcpy(out[0..head.len], head);
    virtine.setOutputLen(head.len + len) catch return null;
    return out[head.len..][0..len];
}

fn seal(body: []const u8) ![]const u8 {
    const pad = cbc.block - body.len % cbc.block; // PKCS#7: 1..16 bytes of value `pad`
    const room = bodyRoom(cbc.block + body.len + pad + tag_len) orelse return virtine.http.respond(413, "text/plain", "too large to seal\n");
    var iv: [cbc.block]u8 = undefined;
    _ = virtine.random(&iv);
    @memcpy(room[0..cbc.block], &iv);
    const data = room[cbc.block .. room.len - tag_len];
    @memcpy(data[0..body.len], body);
    @memset(data[body.len..], @intCast(pad));
    _ = cbc.encrypt(enc, iv, data);
    Hmac.create(room[room.len - tag_len ..][0..tag_len], room[0 .. room.len - tag_len], &mac_key);
    return virtine.outputBuffer()[0..virtine.outputLen()];
}

fn refuse() ![]const u8 {
    return virtine.http.respond(400, "text/plain", "not a message sealed with this key\n");
}

fn open(body: []const u8) ![]const u8 {
    if (body.len < 2 * cbc.block + tag_len or (body.len - tag_len) % cbc.block != 0) return refuse();
    const sealed = body[0 .. body.len - tag_len];
    var tag: [tag_len]u8 = undefined;
    Hmac.create(&tag, sealed, &mac_key);
    if (!std.crypto.utils.timingSafeEql([tag_len]u8, tag, body[body.len - tag_len ..][0..tag_len].*)) return refuse();
    const room = bodyRoom(sealed.len - cbc.block) orelse return virtine.http.respond(413, "text/plain", "too large to open\n");
    @memcpy(room, sealed[cbc.block..]);
    cbc.decrypt(dec, sealed[0..cbc.block].*, room);
    // authentic, so sealed by seal(): its padding is well formed
    const pad = room[room.len - 1];
    if (pad == 0 or pad > cbc.block) return refuse();
    try virtine.setOutputLen(head.len + room.len - pad);
    return virtine.outputBuffer()[0..virtine.outputLen()];
}
