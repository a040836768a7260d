//! Test guest: writes one byte into each of k consecutive pages starting at heap_start (so the
//! host sees k pages dirtied), returns k.
const virtine = @import("virtine");

pub fn main(k: u64) u64 {
    const base = virtine.heapStart();
    var i: u64 = 0;
    while (i < k) : (i += 1) {
        const p: *volatile u8 = @ptrFromInt(base + i * 4096);
        p.* = @truncate(i +% 1);
    }
    return k;
}
