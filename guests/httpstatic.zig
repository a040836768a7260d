//! The Wasp paper's fig. 13 handler behind `wasp serve` (src/bench/http.ts): a static page, read
//! on every request from a file the server grants (`files = { "/srv/page.html" = ... }`), as the
//! paper's server reads its page. Its initialization formats the response's head and takes the
//! snapshot there; a call resumed from it checks the request, then writes the head and the page
//! into its output. Without a snapshot every call formats the head again.
const std = @import("std");
const virtine = @import("virtine");

const page_path = "/srv/page.html";
var head: [256]u8 = undefined;
var head_len: usize = 0;

pub fn main(_: []const u8) ![]const u8 {
    if (head_len == 0) {
        head_len = (try std.fmt.bufPrint(&head, "Status: 200\r\nContent-Type: text/html; charset=utf-8\r\n\r\n", .{})).len;
        _ = virtine.snapshot();
    }
    // the input of this call: a call resumed from the snapshot has its own (the parameter was the
    // snapshotting call's)
    const req = try virtine.http.request();
    if (!std.mem.eql(u8, req.method, "GET") and !std.mem.eql(u8, req.method, "HEAD")) return virtine.http.respond(405, "text/plain", "GET only\n");
    const out = virtine.outputBuffer();
    @memcpy(out[0..head_len], head[0..head_len]);
    const page = virtine.readWholeFile(page_path, out[head_len..]) catch |err| switch (err) {
        error.FileNotGranted => return virtine.http.respond(404, "text/plain", "no page granted at " ++ page_path ++ "\n"),
        else => return err,
    };
    try virtine.setOutputLen(head_len + page.len);
    return out[0 .. head_len + page.len];
}
