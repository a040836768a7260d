//! Test guest: returns the host's time (the `time` hypercall, which must be granted).
const virtine = @import("virtine");

pub fn main() u64 {
    return virtine.time();
}
