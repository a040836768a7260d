// A Zig program written for Linux with Zig's standard library (not the guest SDK): counts the
// lines, words and bytes of its standard input, like `wc`. Build and run:
//   ./dist/wasp build examples/linux/wc.zig --linux -o /tmp/wc
//   echo "two words" | ./dist/wasp invoke /tmp/wc -i -
const std = @import("std");

pub fn main() !void {
    var lines: usize = 0;
    var words: usize = 0;
    var bytes: usize = 0;
    var in_word = false;
    var buf: [4096]u8 = undefined;
    const stdin = std.io.getStdIn();
    while (true) {
        const n = try stdin.read(&buf);
        if (n == 0) break;
        bytes += n;
        for (buf[0..n]) |c| {
            if (c == '\n') lines += 1;
            const space = c == ' ' or c == '\n' or c == '\t' or c == '\r';
            if (!space and !in_word) words += 1;
            in_word = !space;
        }
    }
    try std.io.getStdOut().writer().print("{d} {d} {d}\n", .{ lines, words, bytes });
}
