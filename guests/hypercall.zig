//! Test guest: makes the raw hypercall `nr` with arguments a, b, c and returns its result, so
//! tests can probe the host's checks (unknown numbers, ungranted calls, bad addresses).
const virtine = @import("virtine");

pub fn main(nr: u64, a: u64, b: u64, c: u64) u64 {
    return virtine.hypercall(nr, a, b, c, 0);
}
