//! wasp.rs: the Rust SDK of wasp, the crate `wasp` that `wasp build prog.rs` (and `Virtine.fromRust`)
//! hands to every Rust program it builds. One file, two forms (docs/guests.md, "Rust"):
//!
//! - A Linux program with `std` (`wasp build prog.rs`: a static x86-64 Linux executable). Its input
//!   is stdin, its output stdout, its arguments argv, as for C; this crate adds what Linux has no
//!   system call for, exactly what `wasp.h` gives C — `snapshot()`, host functions, raw hypercalls —
//!   and `input()`/`write_output()` over stdin and stdout.
//! - A native image (`wasp build prog.rs --native`: `#![no_std]`, `pub extern "C" fn main(n: u64)
//!   -> u64`, compiled with `--cfg wasp_native`): the info page (arguments, input, output, console),
//!   the image header, `_start` and the panic handler, as the Zig SDK's root.zig and virtine.zig.
//!
//! Everything goes through one `out` to wasp's hypercall port (allowed at CPL3 by the TSS's I/O
//! bitmap); the numbers are `abi`, generated from src/abi/guest-abi.ts. Written for Rust 1.63
//! (Debian 12's rustc) and later: no feature newer than that.
#![no_std]
#![allow(clippy::missing_safety_doc)]

#[cfg(not(wasp_native))]
extern crate std;

/// The generated ABI constants (scripts/gen-abi.ts from src/abi/guest-abi.ts).
pub mod abi;

use core::arch::asm;

// the port is a literal in the instructions below (a `const` operand is newer than Rust 1.63)
const _: () = assert!(abi::Port::HYPERCALL == 0xfb && abi::Port::EXIT == 0xfa);

/// A raw hypercall: `nr` in RAX, `a`..`d` in RDI, RSI, RDX, RCX; the host's RAX. A hypercall the
/// virtine was not granted ends the call with a policy error (`WASP_POLICY`).
///
/// # Safety
/// Some hypercalls write guest memory where their arguments point (`random`, `host`, `file`).
#[inline(always)]
pub unsafe fn hypercall(nr: u64, a: u64, b: u64, c: u64, d: u64) -> u64 {
    let ret: u64;
    // no `nomem`: the host may read what the guest stored before and write what it loads after
    asm!("out 0xfb, al", inout("rax") nr => ret, in("rdi") a, in("rsi") b, in("rdx") c, in("rcx") d, options(nostack, preserves_flags));
    ret
}

/// The snapshot point. On the call that reaches it first, wasp captures the whole virtine here and
/// this returns false (also when snapshots are off); every later call starts from that capture and
/// this returns true — with that call's own arguments and input. Call it before reading the input.
pub fn snapshot() -> bool {
    unsafe { hypercall(abi::HC_SNAPSHOT, 0, 0, 0, 0) == 1 }
}

/// The host's CLOCK_REALTIME in nanoseconds (hypercall `time`: must be granted, `--allow time`).
pub fn time() -> u64 {
    unsafe { hypercall(abi::HC_TIME, 0, 0, 0, 0) }
}

/// Fills `buf` with random bytes from the host (hypercall `random`: must be granted); the host's RAX.
pub fn random(buf: &mut [u8]) -> u64 {
    unsafe { hypercall(abi::HC_RANDOM, buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0) }
}

// ---------------------------------------------------------------------------------------------
// Host functions: functions the embedder gave this virtine (`hostFunctions`, `hostModule`), called
// by name. Arguments and the result are wasp's values (abi::HostCall): a tag byte, then an 8-byte
// integer, or a u32 length and the bytes, little-endian — the bytes wasp.h's wasp_put_* write.

/// An argument of a host function.
#[derive(Clone, Copy, Debug)]
pub enum Value<'a> {
    U64(u64),
    /// a negative one travels as TAG_I64, as wasp_put_i64 sends it; others as TAG_U64
    I64(i64),
    /// bytes for the host (a Uint8Array)
    Bytes(&'a [u8]),
    /// text for the host (a string)
    Str(&'a str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostError {
    /// the encoded arguments do not fit the buffer
    ArgsTooLarge,
    /// the result is longer than the buffer given for it
    ResultTooLarge,
    /// the result is not of the kind asked for (an integer, bytes)
    BadResult,
}

/// Encodes `args` into `buf`; the encoded length.
pub fn encode(buf: &mut [u8], args: &[Value]) -> Result<usize, HostError> {
    let mut at = 0usize;
    for arg in args {
        let (tag, bytes): (u64, &[u8]) = match *arg {
            Value::U64(v) => {
                at = put_int(buf, at, abi::HostCall::TAG_U64, v)?;
                continue;
            }
            Value::I64(v) => {
                at = put_int(buf, at, if v < 0 { abi::HostCall::TAG_I64 } else { abi::HostCall::TAG_U64 }, v as u64)?;
                continue;
            }
            Value::Bytes(b) => (abi::HostCall::TAG_BYTES, b),
            Value::Str(s) => (abi::HostCall::TAG_STRING, s.as_bytes()),
        };
        if bytes.len() > u32::MAX as usize || buf.len() - at < 5 || buf.len() - at - 5 < bytes.len() {
            return Err(HostError::ArgsTooLarge);
        }
        buf[at] = tag as u8;
        buf[at + 1..at + 5].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
        buf[at + 5..at + 5 + bytes.len()].copy_from_slice(bytes);
        at += 5 + bytes.len();
    }
    Ok(at)
}

fn put_int(buf: &mut [u8], at: usize, tag: u64, v: u64) -> Result<usize, HostError> {
    if buf.len() - at < 9 {
        return Err(HostError::ArgsTooLarge);
    }
    buf[at] = tag as u8;
    buf[at + 1..at + 9].copy_from_slice(&v.to_le_bytes());
    Ok(at + 9)
}

/// An integer result (the host returned a bigint or a number).
pub fn decode_int(result: &[u8]) -> Result<u64, HostError> {
    if result.len() != 9 || (result[0] as u64 != abi::HostCall::TAG_U64 && result[0] as u64 != abi::HostCall::TAG_I64) {
        return Err(HostError::BadResult);
    }
    let mut v = [0u8; 8];
    v.copy_from_slice(&result[1..9]);
    Ok(u64::from_le_bytes(v))
}

/// A bytes or string result: its bytes, inside `result`.
pub fn decode_bytes(result: &[u8]) -> Result<&[u8], HostError> {
    if result.len() < 5 || (result[0] as u64 != abi::HostCall::TAG_BYTES && result[0] as u64 != abi::HostCall::TAG_STRING) {
        return Err(HostError::BadResult);
    }
    let mut n = [0u8; 4];
    n.copy_from_slice(&result[1..5]);
    if u32::from_le_bytes(n) as usize != result.len() - 5 {
        return Err(HostError::BadResult);
    }
    Ok(&result[5..])
}

#[repr(C)]
struct HostRequest {
    name: u64,
    name_len: u64,
    args: u64,
    args_len: u64,
    out: u64,
    out_cap: u64,
}

const _: () = assert!(core::mem::size_of::<HostRequest>() as u64 == abi::HostCall::SIZE);

/// The encoded arguments of a call (a virtine runs one thread: no call overlaps another).
struct ArgBuffer(core::cell::UnsafeCell<[u8; 64 * 1024]>);
unsafe impl Sync for ArgBuffer {}
static HOST_ARGS: ArgBuffer = ArgBuffer(core::cell::UnsafeCell::new([0; 64 * 1024]));

/// Calls host function `name` with `args`; its encoded result, in `out`. A function the virtine
/// was not given, or one that throws, ends the call on the host's side.
pub fn host_call<'o>(name: &str, args: &[Value], out: &'o mut [u8]) -> Result<&'o [u8], HostError> {
    let buf = unsafe { &mut *HOST_ARGS.0.get() };
    let n = encode(buf, args)?;
    let req = HostRequest { name: name.as_ptr() as u64, name_len: name.len() as u64, args: buf.as_ptr() as u64, args_len: n as u64, out: out.as_mut_ptr() as u64, out_cap: out.len() as u64 };
    let len = unsafe { hypercall(abi::HC_HOST, &req as *const HostRequest as u64, 0, 0, 0) };
    if len > out.len() as u64 {
        return Err(HostError::ResultTooLarge);
    }
    Ok(&out[..len as usize])
}

/// Calls a host function that returns an integer: `wasp::host_int("add", &[Value::U64(a), Value::U64(b)])`.
pub fn host_int(name: &str, args: &[Value]) -> Result<u64, HostError> {
    let mut out = [0u8; 9];
    decode_int(host_call(name, args, &mut out)?)
}

/// Calls a host function that returns bytes or a string, into `out` (5 bytes more than the longest
/// result expected: the encoding's tag and length); the bytes, inside `out`.
pub fn host_bytes<'o>(name: &str, args: &[Value], out: &'o mut [u8]) -> Result<&'o [u8], HostError> {
    decode_bytes(host_call(name, args, out)?)
}

// ---------------------------------------------------------------------------------------------
// A Linux program's input and output: stdin and stdout.

/// The call's input: all of stdin.
#[cfg(not(wasp_native))]
pub fn input() -> std::io::Result<std::vec::Vec<u8>> {
    use std::io::Read;
    let mut bytes = std::vec::Vec::new();
    std::io::stdin().lock().read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Appends `bytes` to the call's output (stdout), written through at once.
#[cfg(not(wasp_native))]
pub fn write_output(bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}

// ---------------------------------------------------------------------------------------------
// A native image: the info page (abi::Layout::INFO), its call data, its console.

#[cfg(wasp_native)]
#[path = "wasp_native.rs"]
mod native;
#[cfg(wasp_native)]
pub use native::*;
