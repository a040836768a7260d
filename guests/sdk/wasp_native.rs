//! The native form of the Rust SDK (`wasp::` in a `#![no_std]` guest built with `--native`): what
//! guests/sdk/virtine.zig and root.zig give a Zig guest. The guest runs in 64-bit long mode at CPL3
//! with the first 1 GiB identity-mapped, no OS; the host talks to it through the info page
//! (abi::Layout::INFO) and two ports. Console output is buffered in guest memory and read by the
//! host at exit, so a pure computation leaves with one exit.

use crate::abi;
use crate::hypercall;
use core::fmt;

// ---------------------------------------------------------------------------------------------
// The info page.

#[inline(always)]
fn info(offset: u64) -> u64 {
    unsafe { core::ptr::read_volatile((abi::Layout::INFO + offset) as *const u64) }
}

#[inline(always)]
fn set_info(offset: u64, value: u64) {
    unsafe { core::ptr::write_volatile((abi::Layout::INFO + offset) as *mut u64, value) }
}

/// Most integer arguments a virtine receives.
pub const MAX_ARGS: usize = 6;

/// Number of arguments the host passed (0..6).
pub fn argc() -> usize {
    let n = unsafe { core::ptr::read_volatile((abi::Layout::INFO + abi::Info::ARGC) as *const u32) };
    core::cmp::min(n as usize, MAX_ARGS)
}

/// The arguments of this call, from the info page (after a snapshot: the resumed call's own).
pub fn args() -> &'static [u64] {
    unsafe { core::slice::from_raw_parts((abi::Layout::INFO + abi::Info::ARGS) as *const u64, argc()) }
}

/// Argument `i`, or 0 when the host passed fewer than `i + 1`.
pub fn arg(i: usize) -> u64 {
    if i >= argc() {
        return 0;
    }
    info(abi::Info::ARGS + 8 * i as u64)
}

/// Bytes of guest RAM.
pub fn mem_size() -> u64 {
    info(abi::Info::MEM_SIZE)
}

/// First free page-aligned address after the image; free memory from here to `heap_end()`.
pub fn heap_start() -> u64 {
    info(abi::Info::HEAP_START)
}

/// Where the heap ends: the first of the stack's unmapped guard pages.
pub fn heap_end() -> u64 {
    info(abi::Info::HEAP_END)
}

// ---------------------------------------------------------------------------------------------
// Call data: the input, and the room for the output, in the data window at the top of RAM.

/// The call's input bytes (empty when none).
pub fn input() -> &'static [u8] {
    unsafe { core::slice::from_raw_parts(info(abi::Info::INPUT_ADDR) as *const u8, info(abi::Info::INPUT_LEN) as usize) }
}

/// The output did not fit the room the host gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoSpaceLeft;

/// Bytes of output written so far.
pub fn output_len() -> usize {
    info(abi::Info::OUTPUT_LEN) as usize
}

/// Appends `bytes` to the call's output; `NoSpaceLeft` (nothing written) when they do not fit.
pub fn write_output(bytes: &[u8]) -> Result<(), NoSpaceLeft> {
    let cap = info(abi::Info::OUTPUT_CAP) as usize;
    let len = output_len();
    if len > cap || bytes.len() > cap - len {
        return Err(NoSpaceLeft);
    }
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), (info(abi::Info::OUTPUT_ADDR) as usize + len) as *mut u8, bytes.len()) };
    set_info(abi::Info::OUTPUT_LEN, (len + bytes.len()) as u64);
    Ok(())
}

/// The whole room for the output, to fill in place before `set_output_len`.
///
/// # Safety
/// One slice at a time: the slice aliases every other this returns.
pub unsafe fn output_buffer() -> &'static mut [u8] {
    core::slice::from_raw_parts_mut(info(abi::Info::OUTPUT_ADDR) as *mut u8, info(abi::Info::OUTPUT_CAP) as usize)
}

/// Sets the output's length (after filling `output_buffer()`).
pub fn set_output_len(n: usize) -> Result<(), NoSpaceLeft> {
    if n as u64 > info(abi::Info::OUTPUT_CAP) {
        return Err(NoSpaceLeft);
    }
    set_info(abi::Info::OUTPUT_LEN, n as u64);
    Ok(())
}

/// `write!` onto the call's output: `write!(wasp::Output, "{}", x)`.
pub struct Output;

impl fmt::Write for Output {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_output(s.as_bytes()).map_err(|_| fmt::Error)
    }
}

// ---------------------------------------------------------------------------------------------
// Console: buffered in guest memory (info CONSOLE_ADDR/CAP/LEN), flushed only when full.

/// Hands the buffered console bytes to the host now (one `write` hypercall); rarely needed.
pub fn flush() {
    let len = info(abi::Info::CONSOLE_LEN);
    if len == 0 {
        return;
    }
    unsafe { hypercall(abi::HC_WRITE, info(abi::Info::CONSOLE_ADDR), len, 0, 0) };
    set_info(abi::Info::CONSOLE_LEN, 0);
}

/// Appends `bytes` to the console buffer, flushing it whenever it is full and more must go in.
pub fn write(bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        let (addr, cap, len) = (info(abi::Info::CONSOLE_ADDR), info(abi::Info::CONSOLE_CAP), info(abi::Info::CONSOLE_LEN));
        if cap == 0 {
            // no buffer at all: straight to the host
            unsafe { hypercall(abi::HC_WRITE, rest.as_ptr() as u64, rest.len() as u64, 0, 0) };
            return;
        }
        if len >= cap {
            flush();
            continue;
        }
        let n = core::cmp::min(rest.len() as u64, cap - len) as usize;
        unsafe { core::ptr::copy_nonoverlapping(rest.as_ptr(), (addr + len) as *mut u8, n) };
        set_info(abi::Info::CONSOLE_LEN, len + n as u64);
        rest = &rest[n..];
    }
}

/// `write!` onto the console: what `print!` uses.
pub struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write(s.as_bytes());
        Ok(())
    }
}

#[doc(hidden)]
pub fn print_fmt(args: fmt::Arguments) {
    let _ = fmt::Write::write_fmt(&mut Console, args);
}

/// Formatted console output (`format!` syntax), buffered.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::print_fmt(core::format_args!($($arg)*)) };
}

/// `print!` and a newline.
#[macro_export]
macro_rules! println {
    () => { $crate::write(b"\n") };
    ($($arg:tt)*) => {{ $crate::print_fmt(core::format_args!($($arg)*)); $crate::write(b"\n"); }};
}

// ---------------------------------------------------------------------------------------------
// The end of a call.

/// Ends the virtine now with `value` as its result (the host reads the console buffer at exit).
pub fn exit(value: u64) -> ! {
    loop {
        // the host never resumes a virtine after this port; the loop only makes it `!`
        unsafe { core::arch::asm!("out 0xfa, al", in("rax") value, options(nostack, preserves_flags)) };
    }
}

/// Flushes the console, then ends the call with `msg` (the `panic` hypercall: `WASP_GUEST_PANIC`).
pub fn abort(msg: &str) -> ! {
    flush();
    unsafe { hypercall(abi::HC_PANIC, msg.as_ptr() as u64, msg.len() as u64, 0, 0) };
    exit(u64::MAX)
}

/// A panic (a failed bounds or overflow check, `panic!`): its message through `abort`.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    struct Buf {
        bytes: [u8; 512],
        len: usize,
    }
    impl fmt::Write for Buf {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let n = core::cmp::min(s.len(), self.bytes.len() - self.len);
            self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
            self.len += n;
            Ok(())
        }
    }
    let mut buf = Buf { bytes: [0; 512], len: 0 };
    let _ = fmt::Write::write_fmt(&mut buf, format_args!("{}", info));
    // one line: newer Rust puts the message on a line after the location
    for b in buf.bytes[..buf.len].iter_mut() {
        if *b == b'\n' {
            *b = b' ';
        }
    }
    // cut at a character boundary: a message cut inside one is still text
    let mut len = buf.len;
    while core::str::from_utf8(&buf.bytes[..len]).is_err() {
        len -= 1;
    }
    abort(unsafe { core::str::from_utf8_unchecked(&buf.bytes[..len]) })
}

// ---------------------------------------------------------------------------------------------
// Files the host granted (`files`, `--file GUEST=HOST`), read-only, by their absolute path.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileError {
    FileNotGranted,
    PathTooLong,
}

#[repr(C)]
struct FileRequest {
    path: u64,
    path_len: u64,
    offset: u64,
    buf: u64,
    buf_len: u64,
}

fn file_size(path: &str, offset: u64, buf: &mut [u8]) -> Result<u64, FileError> {
    if path.len() as u64 > abi::FileRead::MAX_PATH {
        return Err(FileError::PathTooLong);
    }
    let req = FileRequest { path: path.as_ptr() as u64, path_len: path.len() as u64, offset, buf: buf.as_mut_ptr() as u64, buf_len: buf.len() as u64 };
    let size = unsafe { hypercall(abi::HC_FILE, &req as *const FileRequest as u64, 0, 0, 0) };
    if size == abi::FILE_NOT_GRANTED {
        return Err(FileError::FileNotGranted);
    }
    Ok(size)
}

/// Reads the granted file `path` from `offset` into `buf`: the bytes read (none past its end).
pub fn read_file<'b>(path: &str, offset: u64, buf: &'b mut [u8]) -> Result<&'b mut [u8], FileError> {
    let size = file_size(path, offset, buf)?;
    let n = if offset >= size { 0 } else { core::cmp::min(core::cmp::min(size - offset, buf.len() as u64), abi::FileRead::MAX_READ) };
    Ok(&mut buf[..n as usize])
}

/// The size of the granted file `path`.
pub fn file_len(path: &str) -> Result<u64, FileError> {
    file_size(path, 0, &mut [])
}

// ---------------------------------------------------------------------------------------------
// The C library functions the compiler calls for copies and fills: a guest has no libc, and the
// compiler_builtins of a Linux target leaves them to one. `rep movsb`/`rep stosb` (fast on every
// x86-64 since Ivy Bridge's ERMSB), not loops, which the optimizer would turn back into calls of
// the very function they are.

#[no_mangle]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    core::arch::asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _, options(nostack, preserves_flags));
    dst
}

#[no_mangle]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize).wrapping_sub(src as usize) >= n {
        // dst below src, or past its end: forwards never reads a byte already written
        return memcpy(dst, src, n);
    }
    // dst inside [src, src + n): backwards, from the last byte (the direction flag set, then cleared as the ABI wants)
    if n > 0 {
        core::arch::asm!("std", "rep movsb", "cld", inout("rcx") n => _, inout("rdi") dst.add(n - 1) => _, inout("rsi") src.add(n - 1) => _, options(nostack));
    }
    dst
}

#[no_mangle]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    core::arch::asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _, in("al") c as u8, options(nostack, preserves_flags));
    dst
}

#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        let (x, y) = (*a.add(i), *b.add(i));
        if x != y {
            return x as i32 - y as i32;
        }
        i += 1;
    }
    0
}

#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    memcmp(a, b, n)
}

// ---------------------------------------------------------------------------------------------
// The image: what `wasp build --native` links around the guest's `main` (src/image/rust.ts writes
// the crate root that expands `__wasp_image!`). Not for guests to use.

#[doc(hidden)]
pub mod rt {
    use crate::abi;

    /// The native image header (abi::Header), the first bytes of the image (linker.ld).
    #[repr(C)]
    pub struct Header {
        pub magic: u64,
        pub abi_version: u32,
        pub header_size: u32,
        pub entry: unsafe extern "C" fn() -> !,
        pub load_addr: u64,
        pub image_end: *const u8,
        pub mem_wanted: u64,
        pub flags: u64,
        pub name: [u8; abi::HEADER_NAME_LEN as usize],
    }
    // read by the host only; never written
    unsafe impl Sync for Header {}

    const _: () = assert!(core::mem::size_of::<Header>() as u64 == abi::Header::SIZE);

    extern "C" {
        /// The entry the header names (below): RSP aligned, then `wasp_entry` of the crate root.
        pub fn _start() -> !;
        /// linker.ld: the end of the image, bss included
        pub static __image_end: u8;
    }

    // The host enters at CPL3 with RSP at the top of the stack and the arguments in RDI, RSI, RDX,
    // RCX, R8, R9, which reach `wasp_entry` untouched (SysV); RSP is aligned to 16 before the call,
    // so the callee sees RSP + 8 aligned as the ABI wants. As root.zig's `_start`.
    core::arch::global_asm!(
        ".pushsection .text._start,\"ax\",@progbits",
        ".globl _start",
        ".type _start,@function",
        "_start:",
        "xorl %ebp, %ebp",
        "andq $-16, %rsp",
        "callq wasp_entry",
        "ud2",
        ".size _start, . - _start",
        ".popsection",
        options(att_syntax)
    );

    /// A guest's `main` as a function pointer: 0 to 6 u64 parameters, a u64 result (`extern "C"` or not).
    pub trait Main {
        const ARGC: u64;
        fn call(self, regs: [u64; 6]) -> u64;
    }

    macro_rules! main_of {
        ($n:expr, ($($t:ident),*), ($($i:tt),*)) => {
            impl Main for extern "C" fn($($t),*) -> u64 {
                const ARGC: u64 = $n;
                #[inline(always)]
                #[allow(unused_variables)]
                fn call(self, regs: [u64; 6]) -> u64 {
                    self($(regs[$i]),*)
                }
            }
            impl Main for fn($($t),*) -> u64 {
                const ARGC: u64 = $n;
                #[inline(always)]
                #[allow(unused_variables)]
                fn call(self, regs: [u64; 6]) -> u64 {
                    self($(regs[$i]),*)
                }
            }
        };
    }
    main_of!(0, (), ());
    main_of!(1, (u64), (0));
    main_of!(2, (u64, u64), (0, 1));
    main_of!(3, (u64, u64, u64), (0, 1, 2));
    main_of!(4, (u64, u64, u64, u64), (0, 1, 2, 3));
    main_of!(5, (u64, u64, u64, u64, u64), (0, 1, 2, 3, 4));
    main_of!(6, (u64, u64, u64, u64, u64, u64), (0, 1, 2, 3, 4, 5));

    /// abi::HeaderFlags of a `main`: its number of integer parameters.
    pub const fn flags_of<M: Main>(_main: &M) -> u64 {
        abi::HeaderFlags::MAIN_DECLARED | (M::ARGC << abi::HeaderFlags::ARGC_SHIFT)
    }

    /// The header's name field: the name NUL-padded (at most 23 bytes: one NUL stays).
    pub const fn name(text: &str) -> [u8; abi::HEADER_NAME_LEN as usize] {
        let bytes = text.as_bytes();
        assert!(bytes.len() < abi::HEADER_NAME_LEN as usize, "an image's name is at most 23 bytes");
        let mut out = [0u8; abi::HEADER_NAME_LEN as usize];
        let mut i = 0;
        while i < bytes.len() {
            out[i] = bytes[i];
            i += 1;
        }
        out
    }

    /// Runs `main` with the call's arguments and ends the virtine with its result.
    #[inline(always)]
    pub fn start<M: Main>(main: M, regs: [u64; 6]) -> ! {
        crate::exit(main.call(regs))
    }
}

/// The image around a guest's `main` (the crate root src/image/rust.ts writes:
/// `__wasp_image!("name", guest::main, extern "C" fn(u64) -> u64)`, the type as `main` is declared:
/// a `main` of another type does not compile).
#[doc(hidden)]
#[macro_export]
macro_rules! __wasp_image {
    ($name:expr, $main:path, $ty:ty) => {
        const WASP_MAIN: $ty = $main;

        #[no_mangle]
        pub extern "C" fn wasp_entry(a0: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> ! {
            $crate::rt::start(WASP_MAIN, [a0, a1, a2, a3, a4, a5])
        }

        #[used]
        #[no_mangle]
        #[link_section = ".wasp_header"]
        #[allow(unused_unsafe, non_upper_case_globals)]
        pub static wasp_header: $crate::rt::Header = $crate::rt::Header {
            magic: $crate::abi::HEADER_MAGIC,
            abi_version: $crate::abi::ABI_VERSION as u32,
            header_size: $crate::abi::Header::SIZE as u32,
            entry: $crate::rt::_start,
            load_addr: $crate::abi::Layout::NATIVE_LOAD,
            image_end: unsafe { core::ptr::addr_of!($crate::rt::__image_end) },
            mem_wanted: 0,
            flags: $crate::rt::flags_of(&WASP_MAIN),
            name: $crate::rt::name($name),
        };
    };
}
