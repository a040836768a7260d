//! Builds the wasp guest images into `<prefix>/guests/NAME.bin`:
//!   zig build --prefix dist --cache-dir .zig-cache --global-cache-dir .zig-cache/global
//!
//! Native guests (guests/NAME.zig): freestanding x86_64 executables whose root source file is
//! guests/sdk/root.zig (header, entry, panic) with the guest file as module "guest" and the SDK
//! as module "virtine", linked by guests/sdk/linker.ld at 0x100000 and objcopy'd to a flat
//! binary that starts with the image header.
//!
//! Raw guests (guests/raw/NAME.s): 16-bit real-mode assembly, sharing the macros of the
//! guests/raw/*.inc files it includes, linked at 0x8000 by guests/raw/linker.ld and objcopy'd
//! to a flat binary.
//!
//! The JavaScript engine (guests/js/runtime.c with QuickJS 2021-03-27, whose C source the npm
//! package `qjsc` brings into node_modules): a static x86-64 Linux executable (musl), installed
//! as `<prefix>/guests/js.elf`, the program of every JavaScript virtine (docs/js.md).

const std = @import("std");

/// Native guests: guests/NAME.zig -> guests/NAME.bin. Add a guest by adding its name here.
const native_guests = [_][]const u8{
    "fib",
    "noop",
    "hello",
    "inittable",
    "echo",
    "jsonstats",
    // test guests, used by the host's test suite
    "spin",
    "printer",
    "panicker",
    "hypercall",
    "writes",
    "time",
    "calls",
    "sum6",
    "snaptwice",
    "httphello",
    "httpstatic", // the paper's fig. 13 page (src/bench/http.ts)
    "aes_chunk", // the paper's OpenSSL experiment, a chunk per call (src/bench/aes.ts)
    "aes", // a sealing service whose key lives only in its snapshot (docs/serve.md)
};

/// Raw real-mode images: guests/raw/NAME.s -> guests/NAME.bin.
const raw_guests = [_][]const u8{
    "raw_hlt",
    "raw_port",
    "raw_fib64",
    "raw_triple",
    "raw_remap", // builds its own page tables: a reset must flush KVM's translations
    "raw_transient", // uses a hierarchy of its own for a moment: what a reset cannot see
    // self-booting guests for the paper's experiments (docs/guests.md)
    "boot_fib",
    "mode16_fib",
    "mode32_fib",
    "mode64_fib",
};

/// Files the raw guests `.include` (guests/raw/NAME): shared macros and constants.
const raw_include_files = [_][]const u8{
    "boot.inc", // real mode -> protected mode -> long mode, page tables, GDTs
    "fib.inc", // argument, milestone table, fib routine, exit
};

/// The guests `wasp bench` measures (src/bench/guests.ts): built for speed, safety checks off.
const bench_guests = [_][]const u8{ "fib", "noop", "calls", "writes", "inittable" };

fn isBenchGuest(name: []const u8) bool {
    for (bench_guests) |b| if (std.mem.eql(u8, b, name)) return true;
    return false;
}

/// The AES experiment's guest and its native counterpart (guests/aes_native.zig) are built alike:
/// optimized for speed, safety off, for the baseline CPU with AES-NI and AVX (the same std.crypto
/// code on both sides: std chooses its AES-NI code at compile time, by the build's CPU model, and
/// that code is VEX-encoded — it needs the AVX state virtines have had since issue 24.4).
fn optimizeOf(name: []const u8) std.builtin.OptimizeMode {
    if (std.mem.eql(u8, name, "aes_chunk")) return .ReleaseFast;
    return if (isBenchGuest(name)) .ReleaseSmall else .ReleaseSafe;
}

pub fn build(b: *std.Build) void {
    // Long mode at CPL3 with SSE enabled by the host (CR4.OSFXSR) but no AVX/XSAVE: the
    // baseline x86_64 CPU model (SSE2, nothing newer) is what the guest may assume.
    const target = std.zig.CrossTarget{
        .cpu_arch = .x86_64,
        .os_tag = .freestanding,
        .abi = .none,
        .cpu_model = .baseline,
    };

    // Guests are built with Zig's safety checks on (ReleaseSafe): integer overflow, `unreachable`,
    // bounds and alignment end the call with a panic that names them, instead of wrapping or
    // returning garbage. The benchmark guests alone are built ReleaseSmall, safety off — the
    // figures measure wasp, not the checks: every call copies the image into a fresh VM, so small
    // images start faster, and their hot code (fib's recursion) is plain integer code that -Os
    // compiles about as well as -O3.

    const virtine_mod = b.createModule(.{ .source_file = .{ .path = "guests/sdk/virtine.zig" } });

    for (native_guests) |name| {
        const guest_mod = b.createModule(.{
            .source_file = .{ .path = b.fmt("guests/{s}.zig", .{name}) },
            .dependencies = &.{.{ .name = "virtine", .module = virtine_mod }},
        });

        const options = b.addOptions();
        options.addOption([]const u8, "name", name);

        const exe = b.addExecutable(.{
            .name = name,
            .root_source_file = .{ .path = "guests/sdk/root.zig" },
            .target = if (std.mem.eql(u8, name, "aes_chunk")) aesTarget(.freestanding, .none) else target,
            .optimize = optimizeOf(name),
            .single_threaded = true,
        });
        exe.addModule("guest", guest_mod);
        exe.addModule("virtine", virtine_mod);
        exe.addOptions("wasp_build", options);
        exe.setLinkerScript(.{ .path = "guests/sdk/linker.ld" });
        exe.stack_protector = false; // no TLS canary in a virtine
        exe.pie = false; // linked at a fixed address, identity-mapped
        exe.force_pic = false;
        // default (small) code model: everything lives in the low 2 GiB
        // Red zone left on: nothing ever writes into it (no interrupts are delivered, hypercalls
        // are port exits, an exception would switch to the TSS stack, and the entry trampoline
        // saves its two registers below the red zone).
        // symbols and DWARF kept in the ELF, installed beside the image as NAME.debug for gdb
        // (docs/debugging.md); the flat image holds only the loadable sections either way
        exe.strip = false;
        exe.link_gc_sections = true;

        installFlat(b, exe, name);
        const symbols = b.addInstallFile(exe.getEmittedBin(), b.fmt("guests/{s}.debug", .{name}));
        b.getInstallStep().dependOn(&symbols.step);
    }

    // The raw guests' `.include` files, copied into a directory of the cache that is named after
    // their contents: as its path is part of each guest's cache key, editing an include file
    // rebuilds the guests (zig records no dependencies of plain `.s` files on their includes).
    const raw_includes = b.addWriteFiles();
    for (raw_include_files) |file| {
        _ = raw_includes.addCopyFile(.{ .path = b.fmt("guests/raw/{s}", .{file}) }, file);
    }

    for (raw_guests) |name| {
        const exe = b.addExecutable(.{
            .name = name,
            .target = target,
            .optimize = .ReleaseSmall, // assembly: the mode changes nothing in it
        });
        exe.addAssemblyFile(.{ .path = b.fmt("guests/raw/{s}.s", .{name}) });
        exe.addIncludePath(raw_includes.getDirectory());
        exe.setLinkerScript(.{ .path = "guests/raw/linker.ld" });
        exe.bundle_compiler_rt = false;
        exe.pie = false;
        exe.strip = true;

        installFlat(b, exe, name);
    }

    buildJs(b);
    buildAesNative(b);
    buildLayer(b);
}

/// guests/linux/layer.zig: the in-VM system-call layer of Linux guests, a flat blob linked at
/// LinuxLayer.CODE (layer.ld), installed as `<prefix>/guests/layer.bin` (src/linux/start.ts places
/// it). No SSE, MMX or x87: the program's vector registers survive its system calls untouched.
fn buildLayer(b: *std.Build) void {
    var target = std.zig.CrossTarget{ .cpu_arch = .x86_64, .os_tag = .freestanding, .abi = .none, .cpu_model = .baseline };
    const x86 = std.Target.x86.Feature;
    for ([_]x86{ .sse, .sse2, .mmx, .x87, .avx, .avx2 }) |f| target.cpu_features_sub.addFeature(@intFromEnum(f));
    target.cpu_features_add.addFeature(@intFromEnum(x86.soft_float));
    const abi_mod = b.createModule(.{ .source_file = .{ .path = "guests/sdk/abi.zig" } });
    const exe = b.addExecutable(.{
        .name = "layer",
        .root_source_file = .{ .path = "guests/linux/layer.zig" },
        .target = target,
        .optimize = .ReleaseSafe,
        .single_threaded = true,
    });
    exe.addModule("abi", abi_mod);
    exe.setLinkerScript(.{ .path = "guests/linux/layer.ld" });
    exe.stack_protector = false;
    exe.pie = false;
    exe.force_pic = false;
    exe.strip = false;
    exe.link_gc_sections = true;
    exe.bundle_compiler_rt = true; // memset, memcpy, stack probes: built for the same CPU, without SSE
    exe.red_zone = false;
    installFlat(b, exe, "layer");
    const symbols = b.addInstallFile(exe.getEmittedBin(), "guests/layer.debug");
    b.getInstallStep().dependOn(&symbols.step);
}

/// The baseline x86-64 CPU with AES-NI and AVX: what std.crypto's hardware AES needs (the AES
/// experiment, optimizeOf). Every x86-64 CPU since 2011 has both; where the guest's CPU lacks them,
/// the guest stops at its first AES instruction with an invalid-opcode fault.
fn aesTarget(os: std.Target.Os.Tag, abi: std.Target.Abi) std.zig.CrossTarget {
    var t = std.zig.CrossTarget{ .cpu_arch = .x86_64, .os_tag = os, .abi = abi, .cpu_model = .baseline };
    const x86 = std.Target.x86.Feature;
    for ([_]x86{ .aes, .avx }) |f| t.cpu_features_add.addFeature(@intFromEnum(f));
    return t;
}

/// guests/aes_native.zig: the AES experiment's native baseline, a static Linux program installed as
/// `<prefix>/guests/aes_native` (src/bench/aes.ts runs it).
fn buildAesNative(b: *std.Build) void {
    const exe = b.addExecutable(.{
        .name = "aes_native",
        .root_source_file = .{ .path = "guests/aes_native.zig" },
        .target = aesTarget(.linux, .musl),
        .optimize = .ReleaseFast,
        .single_threaded = true,
    });
    exe.linkage = .static;
    exe.strip = true;
    const install = b.addInstallArtifact(exe, .{ .dest_dir = .{ .override = .{ .custom = "guests" } } });
    b.getInstallStep().dependOn(&install.step);
}

/// QuickJS's release as the npm package `qjsc` ships it.
const quickjs_dir = "node_modules/qjsc/deps/quickjs_2021_03_27";
const quickjs_headers = [_][]const u8{ "cutils.h", "libbf.h", "libregexp-opcode.h", "libregexp.h", "libunicode-table.h", "libunicode.h", "list.h", "quickjs-atom.h", "quickjs-opcode.h", "quickjs.h" };
/// Compiled on their own; quickjs.c itself is compiled inside guests/js/runtime.c.
const quickjs_sources = [_][]const u8{ "cutils.c", "libbf.c", "libregexp.c", "libunicode.c" };

/// The one line wasp adds to the engine: js_parse_error tells the runtime where the parser
/// stopped, so that a syntax error carries its column (the release reports lines only).
const parse_error_anchor = "    JS_ThrowError2(ctx, JS_SYNTAX_ERROR, fmt, ap, FALSE);\n    va_end(ap);\n";
const parse_error_hook = "#ifdef WASP_PARSE_ERROR_HOOK\n    WASP_PARSE_ERROR_HOOK(s);\n#endif\n";

fn buildJs(b: *std.Build) void {
    const target = std.zig.CrossTarget{ .cpu_arch = .x86_64, .os_tag = .linux, .abi = .musl, .cpu_model = .baseline };
    const src = b.addWriteFiles();

    const original = std.fs.cwd().readFileAlloc(b.allocator, b.pathFromRoot(quickjs_dir ++ "/quickjs.c"), 16 << 20) catch |err| {
        std.debug.panic("cannot read {s}/quickjs.c ({s}): npm install brings it (the qjsc package)", .{ quickjs_dir, @errorName(err) });
    };
    const at = std.mem.indexOf(u8, original, parse_error_anchor) orelse @panic("quickjs.c: js_parse_error is not the release's");
    if (std.mem.indexOfPos(u8, original, at + 1, parse_error_anchor) != null) @panic("quickjs.c: js_parse_error's anchor is not unique");
    const cut = at + parse_error_anchor.len;
    _ = src.add("quickjs.c", b.fmt("{s}{s}{s}", .{ original[0..cut], parse_error_hook, original[cut..] }));
    for (quickjs_headers) |h| _ = src.addCopyFile(.{ .path = b.fmt("{s}/{s}", .{ quickjs_dir, h }) }, h);
    _ = src.addCopyFile(.{ .path = quickjs_dir ++ "/VERSION" }, "VERSION");

    const exe = b.addExecutable(.{ .name = "js", .target = target, .optimize = .ReleaseFast });
    exe.linkLibC();
    exe.addIncludePath(src.getDirectory());
    exe.addIncludePath(.{ .path = "guests/sdk" });
    const flags = [_][]const u8{
        "-std=gnu11",
        "-D_GNU_SOURCE",
        "-DCONFIG_VERSION=\"2021-03-27\"",
        "-DCONFIG_BIGNUM", // BigInt
        "-fwrapv", // the engine relies on wrapping signed arithmetic, as its Makefile says
        "-fno-sanitize=undefined",
        "-Wno-everything", // third-party code: its warnings are not ours to fix
    };
    for (quickjs_sources) |file| exe.addCSourceFile(.{ .file = src.addCopyFile(.{ .path = b.fmt("{s}/{s}", .{ quickjs_dir, file }) }, file), .flags = &flags });
    exe.addCSourceFile(.{ .file = .{ .path = "guests/js/runtime.c" }, .flags = &(flags ++ [_][]const u8{ "-Wall", "-Wextra", "-Werror" }) });
    // the symbol table kept (the debug information not): the host finds the functions its system
    // calls are in by it (src/linux/unwind.ts; zig's musl has no unwind entries), to rewrite them
    exe.strip = false;
    exe.link_gc_sections = true;
    const symbols = exe.addObjCopy(.{ .format = .elf, .strip = .debug, .basename = "js.elf" });
    const install = b.addInstallFile(symbols.getOutput(), "guests/js.elf");
    b.getInstallStep().dependOn(&install.step);
}

/// objcopy the linked ELF to a flat binary and install it as `<prefix>/guests/NAME.bin`.
fn installFlat(b: *std.Build, exe: *std.Build.Step.Compile, name: []const u8) void {
    const bin = exe.addObjCopy(.{ .format = .bin, .basename = b.fmt("{s}.bin", .{name}) });
    const install = b.addInstallFile(bin.getOutput(), b.fmt("guests/{s}.bin", .{name}));
    b.getInstallStep().dependOn(&install.step);
}
