//! Test guest: prints n lines "line I\n" (I = 0..n-1) and returns n. With n large enough the
//! output overflows the console buffer and exercises the SDK's flush through `write`.
const virtine = @import("virtine");

pub fn main(n: u64) u64 {
    var i: u64 = 0;
    while (i < n) : (i += 1) virtine.print("line {d}\n", .{i});
    return n;
}
