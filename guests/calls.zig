//! Benchmark guest: makes `n` empty `write` hypercalls (a round trip each) and returns n.
const virtine = @import("virtine");

pub fn main(n: u64) u64 {
    var i: u64 = 0;
    while (i < n) : (i += 1) _ = virtine.hypercall(virtine.abi.HC_WRITE, 0, 0, 0, 0);
    return n;
}
