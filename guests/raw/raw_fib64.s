# Raw image in the style of the Wasp paper's fib64 virtine: boots itself from 16-bit real mode
# to 64-bit long mode, then computes fib(n) recursively, n = the first argument (read from the
# info page, 0x7000 + 16, as a full u64). Result in RAX, then `out 0xFA, al`.
#
# Entered at 0x8000 in real mode with CS base 0. Memory it uses besides its own image:
#   0x10000-0x12fff  page tables (PML4, PDPT, PD: identity map of the first 4 MiB, 2 MiB pages)
#   0x13000-0x1ffff  stack (RSP starts at 0x20000, grows down)
# so the virtine needs at least 128 KiB of RAM. It writes nothing else.

    .include "boot.inc"
    .include "fib.inc"

    .text
    .globl _start

    .code16
_start:
    cli
    xorw %ax, %ax
    movw %ax, %ds
    ENTER_PROTECTED_MODE gdt_desc, jump=ljmp
    ENTER_LONG_MODE

    movl $STACK_TOP, %esp
    movq INFO_ARG0, %rdi
    call fib
    EXIT_RESULT

    FIB64 fib

    GDT gdt, DESC_CODE32, DESC_DATA, DESC_CODE64
    GDT_DESC gdt
