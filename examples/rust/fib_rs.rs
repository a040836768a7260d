//! The Wasp paper's Rust interface: a function as a virtine. fib(n) by plain double recursion, a
//! `#![no_std]` function built into a native wasp image — every call in a VM of its own.
//! Build and run (the rustc on PATH; docs/guests.md, "Rust"):
//!   ./dist/wasp build examples/rust/fib_rs.rs --native -o /tmp/fib_rs.bin
//!   ./dist/wasp invoke /tmp/fib_rs.bin 30            # 832040
#![no_std]

fn fib(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    fib(n - 1).wrapping_add(fib(n - 2))
}

#[no_mangle]
pub extern "C" fn main(n: u64) -> u64 {
    fib(n)
}
