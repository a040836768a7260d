//! The Wasp paper's fig. 13 handler behind `wasp serve` (src/bench/http.ts): a static page read
//! from a file the server grants (`files = { "/srv/page.html" = ... }`). Its initialization reads
//! the page and formats the whole response, then takes the snapshot there: a call resumed from it
//! checks the request and answers. (A granted file's bytes are fixed when the virtine is loaded,
//! so a page read before the snapshot is the page a request would read.) Without a snapshot every
//! request starts at the entry: it reads the page and formats the response again.
const std = @import("std");
const virtine = @import("virtine");

const page_path = "/srv/page.html";
var response: [64 * 1024]u8 = undefined;
var response_len: usize = 0;

pub fn main(_: []const u8) ![]const u8 {
    if (response_len == 0) {
        const head = try std.fmt.bufPrint(&response, "Status: 200\r\nContent-Type: text/html; charset=utf-8\r\n\r\n", .{});
        const page = try virtine.readWholeFile(page_path, response[head.len..]);
        response_len = head.len + page.len;
        _ = virtine.snapshot();
    }
    // the input of this call: a call resumed from the snapshot has its own (the parameter was the
    // snapshotting call's)
    const req = try virtine.http.request();
    if (!std.mem.eql(u8, req.method, "GET") and !std.mem.eql(u8, req.method, "HEAD")) return virtine.http.respond(405, "text/plain", "GET only\n");
    return response[0..response_len];
}
