//! A guest behind `wasp serve` (virtine.http): answers with what it was asked — method, path,
//! query, a header, the body — and with a status for a few paths (tests/serve.test.ts).
const std = @import("std");
const virtine = @import("virtine");

var page: [4096]u8 = undefined;

pub fn main(input: []const u8) ![]const u8 {
    const req = try virtine.http.parse(input);
    if (std.mem.endsWith(u8, req.path, "/missing")) return virtine.http.respond(404, "text/plain", "nothing here\n");
    if (std.mem.endsWith(u8, req.path, "/panic")) @panic("asked to panic");
    if (std.mem.endsWith(u8, req.path, "/spin")) while (true) {};
    if (std.mem.endsWith(u8, req.path, "/bad")) {
        try virtine.writeOutput("this is not a CGI response");
        return virtine.outputBuffer()[0..virtine.outputLen()];
    }
    const body = try std.fmt.bufPrint(&page, "{s} {s} q={s} agent={s} body={s}\n", .{ req.method, req.path, req.query, req.header("user-agent") orelse "-", req.body });
    return virtine.http.respondWith(200, "text/plain", &.{.{ "X-Guest", "httphello" }}, body);
}
