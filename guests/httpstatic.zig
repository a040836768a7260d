//! The Wasp paper's fig. 13 handler behind `wasp serve` (src/bench/http.ts): a static page. Its
//! initialization builds the whole response (headers and the page, embedded at build time) and
//! takes the snapshot there; a call resumed from it checks the request and returns the response.
//! Without a snapshot every call builds it again.
const std = @import("std");
const virtine = @import("virtine");

const page = @embedFile("httpstatic.page");
var response: [4096]u8 = undefined;
var response_len: usize = 0;

pub fn main(_: []const u8) ![]const u8 {
    if (response_len == 0) {
        const r = try std.fmt.bufPrint(&response, "Status: 200\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{s}", .{page});
        response_len = r.len;
        _ = virtine.snapshot();
    }
    // the input of this call: a call resumed from the snapshot has its own (the parameter was the
    // snapshotting call's)
    const req = try virtine.http.request();
    if (!std.mem.eql(u8, req.method, "GET") and !std.mem.eql(u8, req.method, "HEAD")) return virtine.http.respond(405, "text/plain", "GET only\n");
    return response[0..response_len];
}
