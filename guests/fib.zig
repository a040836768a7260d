//! fib(n), computed by plain double recursion: a CPU benchmark, not a clever algorithm.
fn fib(n: u64) u64 {
    if (n < 2) return n;
    return fib(n - 1) +% fib(n - 2);
}

pub fn main(n: u64) u64 {
    return fib(n);
}
