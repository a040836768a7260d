# Fig. 3 of the Wasp paper, 32-bit column: switches from real mode to 32-bit protected mode (flat
# segments, no paging), then fib(n) by double recursion, n = the low 32 bits of the first argument
# (info page args[0] at 0x7010); exact up to fib(47). Result in EAX (RAX), `out 0xFA, al`.
#
# rdtsc right before and right after the computation go to the milestone table: u64 at 0x7100
# and 0x7108, count (2) as a u64 at 0x70f8.
#
# Entered at 0x8000 in real mode with CS base 0. Memory it uses besides its own image and those
# info-page fields: the stack, ESP from 0x20000 down.

    .include "boot.inc"
    .include "fib.inc"

    .text
    .globl _start

    .code16
_start:
    cli
    ENTER_PROTECTED_MODE gdt_desc   # DS is 0 at entry

    movl $STACK_TOP, %esp
    MEASURED_FIB32 fib

    FIB32 fib

    GDT gdt, DESC_CODE32, DESC_DATA
    GDT_DESC gdt
