//! Test guest: calls the snapshot hypercall twice. Only the first may be captured; a later call
//! resumes right after it with the memory of that moment (counter == 1).
//! Result: counter * 100 + first * 10 + second, where first/second are what the hypercalls returned.
const virtine = @import("virtine");

var counter: u64 = 0;

pub fn main() u64 {
    counter += 1;
    const first = virtine.snapshot();
    counter += 10;
    const second = virtine.snapshot();
    return counter * 100 + first * 10 + second;
}
