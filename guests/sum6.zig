//! Test guest: checks that the six arguments in registers match the info page, and returns
//! a + 2b + 3c + 4d + 5e + 6f (wrapping), or all ones if registers and memory disagree.
const virtine = @import("virtine");

pub fn main(a: u64, b: u64, c: u64, d: u64, e: u64, f: u64) u64 {
    const regs = [_]u64{ a, b, c, d, e, f };
    for (regs, 0..) |v, i| {
        if (virtine.arg(i) != v) return ~@as(u64, 0);
    }
    var sum: u64 = 0;
    for (regs, 1..) |v, k| sum +%= v *% k;
    return sum;
}
