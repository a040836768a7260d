//! HTTP for guests behind `wasp serve` (`virtine.http`): the server hands a native guest the
//! request as an HTTP/1.1 message in its input (request line, headers with lower-case names, a
//! blank line, the body, its length in content-length) and reads the guest's output as a CGI
//! response (RFC 3875: `Status:` and other header lines, a blank line, the body). docs/serve.md.
//!
//!     pub fn main(input: []const u8) ![]const u8 {
//!         const req = try virtine.http.parse(input);
//!         if (!std.mem.eql(u8, req.path, "/hello")) return virtine.http.respond(404, "text/plain", "no\n");
//!         return virtine.http.respond(200, "text/plain", "hello\n");
//!     }

const std = @import("std");
const virtine = @import("virtine.zig");

pub const Request = struct {
    method: []const u8,
    /// the request target as sent: path and query
    target: []const u8,
    /// the path (before "?"), still percent-encoded
    path: []const u8,
    /// the query (after "?", without it), or ""
    query: []const u8,
    /// the header lines, CRLF-separated (read them with `header`)
    head: []const u8,
    body: []const u8,

    /// The value of header `name` (case-insensitive), or null.
    pub fn header(self: Request, name: []const u8) ?[]const u8 {
        var lines = std.mem.splitSequence(u8, self.head, "\r\n");
        while (lines.next()) |line| {
            const colon = std.mem.indexOfScalar(u8, line, ':') orelse continue;
            if (std.ascii.eqlIgnoreCase(line[0..colon], name)) return std.mem.trim(u8, line[colon + 1 ..], " \t");
        }
        return null;
    }
};

pub const ParseError = error{BadRequest};

/// The request in `bytes` (a call's input). The server writes it; a malformed one is BadRequest.
pub fn parse(bytes: []const u8) ParseError!Request {
    const head_end = std.mem.indexOf(u8, bytes, "\r\n\r\n") orelse return error.BadRequest;
    const line_end = std.mem.indexOf(u8, bytes[0 .. head_end + 2], "\r\n") orelse return error.BadRequest;
    const line = bytes[0..line_end];
    var parts = std.mem.splitScalar(u8, line, ' ');
    const method = parts.next() orelse return error.BadRequest;
    const target = parts.next() orelse return error.BadRequest;
    const version = parts.next() orelse return error.BadRequest;
    if (parts.next() != null or !std.mem.eql(u8, version, "HTTP/1.1") or method.len == 0 or target.len == 0) return error.BadRequest;
    const q = std.mem.indexOfScalar(u8, target, '?');
    const head = if (line_end + 2 <= head_end) bytes[line_end + 2 .. head_end] else "";
    return .{
        .method = method,
        .target = target,
        .path = if (q) |i| target[0..i] else target,
        .query = if (q) |i| target[i + 1 ..] else "",
        .head = head,
        .body = bytes[head_end + 4 ..],
    };
}

/// The request of this call (`parse(virtine.input())`).
pub fn request() ParseError!Request {
    return parse(virtine.input());
}

/// Writes a response — status, content type, body — into the call's output and returns it (what
/// `main` returns). error.NoSpaceLeft when it does not fit the data window.
pub fn respond(status: u16, content_type: []const u8, body: []const u8) error{NoSpaceLeft}![]const u8 {
    return respondWith(status, content_type, &.{}, body);
}

/// `respond` with more header lines (name, value): each must be a token and a value without CR/LF
/// (the server checks them and answers 502 otherwise).
pub fn respondWith(status: u16, content_type: []const u8, headers: []const [2][]const u8, body: []const u8) error{NoSpaceLeft}![]const u8 {
    try virtine.setOutputLen(0);
    const w = virtine.outputWriter();
    try w.print("Status: {d}\r\nContent-Type: {s}\r\n", .{ status, content_type });
    for (headers) |h| try w.print("{s}: {s}\r\n", .{ h[0], h[1] });
    try w.writeAll("\r\n");
    try w.writeAll(body);
    return virtine.outputBuffer()[0..virtine.outputLen()];
}
