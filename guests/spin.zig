//! Test guest: never returns (the host must stop it, e.g. by a timeout).
pub fn main() u64 {
    var counter: u64 = 0;
    const p: *volatile u64 = &counter;
    // A volatile store each round keeps the loop from being optimized away.
    while (true) p.* +%= 1;
}
