//! Example guest with a heavy initialization, for measuring snapshots that many virtines start
//! from: it fills an 8 MiB table (in .bss) at run time, then takes the snapshot hypercall, so
//! only the first call pays for the initialization and later calls resume with the table built.
//!
//! table[i] = mix^R(i ^ SEED) for i in 0..N, where mix is splitmix64's finalizer (below) applied
//! R = `rounds` times, all arithmetic wrapping mod 2^64.
//!
//! After the snapshot point (arguments read from the info page, never from `main`'s registers):
//!   arg(0) = index: the result is table[index % N]
//!   arg(1) = k:     if k > 0, one byte is written into each of min(k, 64) distinct pages of a
//!                   256 KiB scratch buffer, so the call dirties k pages (the result is the same)
const virtine = @import("virtine");

/// 16 MiB of guest RAM: the image at 1 MiB, then the 8 MiB table and 256 KiB of scratch.
pub const wasp_memory: u64 = 16 << 20;

/// Number of table entries (8 MiB of u64).
pub const N: usize = 1 << 20;
/// XORed into the index before mixing.
pub const SEED: u64 = 0x5EED0F7AB1E;
/// Rounds of `mix` per entry. Measured on this project's machine (guest code native at CPL3): a
/// first call with snapshots off (the whole initialization, N * 220 = 231M rounds, plus the
/// call's own small overhead) took 0.88-0.94 s, about 4 ns (one dependent mix chain) per round.
pub const rounds: u64 = 220;

/// Pages of the scratch buffer (the most a call can dirty through `k`).
pub const scratch_pages: usize = 64;
const page_size: usize = 4096;

/// splitmix64's finalizer.
fn mix(x0: u64) u64 {
    var z = x0 +% 0x9E3779B97F4A7C15;
    z = (z ^ (z >> 30)) *% 0xBF58476D1CE4E5B9;
    z = (z ^ (z >> 27)) *% 0x94D049BB133111EB;
    return z ^ (z >> 31);
}

/// Zero-initialized globals: in .bss, not in the image file.
var table: [N]u64 = [_]u64{0} ** N;
var scratch: [scratch_pages * page_size]u8 align(page_size) = [_]u8{0} ** (scratch_pages * page_size);

fn buildTable() void {
    for (&table, 0..) |*slot, i| {
        var x: u64 = @as(u64, i) ^ SEED;
        var r: u64 = 0;
        while (r < rounds) : (r += 1) x = mix(x);
        slot.* = x;
    }
}

pub fn main() u64 {
    buildTable();

    // Later calls resume right after this, with the table already built.
    _ = virtine.snapshot();

    const index = virtine.arg(0);
    const k: usize = @intCast(@min(virtine.arg(1), scratch_pages));
    // Volatile stores: the scratch buffer is never read, so plain stores could be dropped.
    const base: [*]volatile u8 = @ptrCast(&scratch);
    var p: usize = 0;
    while (p < k) : (p += 1) base[p * page_size] = @truncate(index +% p);

    return table[@intCast(index % N)];
}
