# A privileged guest that builds its own page tables (issue 11: a reset must leave KVM no
# translation the restored memory does not have). Real mode -> 32-bit protected mode with 32-bit
# paging: an identity map of the first 4 MiB in 4 KiB pages. Physical 0x300000 holds 0xaaaa0001 and
# 0x301000 holds 0xbbbb0002. Then the snapshot hypercall: every later call resumes there.
#
# After it, with args[0] (info page, 0x7010) = 1 the guest remaps linear 0x300000 to physical
# 0x301000 in its page table; with any other value it changes nothing. It returns the dword it
# reads at linear 0x300000: 0xaaaa0001 through the snapshot's page tables, 0xbbbb0002 through the
# remapped ones. A call that changes nothing must see the snapshot's mapping, whatever an earlier
# call on the same shell did.

    .include "boot.inc"

    .set PD32, 0x10000              # page directory (1024 four-byte entries)
    .set PT32, 0x11000              # the page table of linear 0-4 MiB
    .set PROBE, 0x300000
    .set OTHER, 0x301000
    .set ARG0, 0x7010

    .text
    .globl _start

    .code16
_start:
    cli
    ENTER_PROTECTED_MODE gdt_desc   # DS is 0 at entry
    movl $STACK_TOP, %esp

    movl $0xaaaa0001, PROBE
    movl $0xbbbb0002, OTHER

    cld
    movl $PD32, %edi
    xorl %eax, %eax
    movl $1024, %ecx
    rep stosl
    movl $(PT32 | 0x3), PD32        # present | writable
    movl $PT32, %edi
    movl $0x3, %eax                 # page 0, present | writable
    movl $1024, %ecx
1:  stosl
    addl $0x1000, %eax
    loop 1b

    movl $PD32, %eax
    movl %eax, %cr3
    movl %cr0, %eax
    orl $0x80000000, %eax           # CR0.PG
    movl %eax, %cr0

    movl $5, %eax                   # the snapshot hypercall
    outb %al, $0xfb

    cmpl $1, ARG0
    jne 2f
    movl $(OTHER | 0x3), PT32 + (PROBE >> 12) * 4
    invlpg PROBE
2:  movl PROBE, %eax
    outb %al, $0xfa
3:  hlt
    jmp 3b

    GDT gdt, DESC_CODE32, DESC_DATA
    GDT_DESC gdt
