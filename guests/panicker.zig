//! Test guest: panics, which the SDK turns into the `panic` hypercall.
pub fn main() u64 {
    @panic("guest gave up");
}
