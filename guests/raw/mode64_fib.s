# Fig. 3 of the Wasp paper, 64-bit column: boots from real mode through protected mode to 64-bit
# long mode (as raw_fib64), then fib(n) by double recursion, n = the first argument (info page
# args[0] at 0x7010, a full u64). Result in RAX, `out 0xFA, al`.
#
# rdtsc right before and right after the computation go to the milestone table: u64 at 0x7100
# and 0x7108, count (2) as a u64 at 0x70f8.
#
# Entered at 0x8000 in real mode with CS base 0. Memory it uses besides its own image and those
# info-page fields:
#   0x10000-0x12fff  page tables (PML4, PDPT, PD: identity map of the first 4 MiB, 2 MiB pages)
#   0x13000-0x1ffff  stack (RSP starts at 0x20000, grows down)

    .include "boot.inc"
    .include "fib.inc"

    .text
    .globl _start

    .code16
_start:
    cli
    ENTER_PROTECTED_MODE gdt_desc   # DS is 0 at entry
    ENTER_LONG_MODE

    movl $STACK_TOP, %esp
    MEASURED_FIB64 fib

    FIB64 fib

    GDT gdt, DESC_CODE32, DESC_DATA, DESC_CODE64
    GDT_DESC gdt
