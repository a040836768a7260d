# A privileged guest that builds its own page tables (issue 11: a reset must leave KVM no
# translation the restored memory does not have). Real mode -> 32-bit protected mode -> long mode
# (boot.inc), then a page table of its own maps linear 2-4 MiB in 4 KiB pages. (Long mode, not
# 32-bit paging, classic or PAE: KVM on PVM triple-faults when a guest turns either on.) Physical 0x300000 holds 0xaaaa0001 and
# 0x301000 holds 0xbbbb0002. Then the snapshot hypercall: every later call resumes there.
#
# After it, with args[0] (info page, 0x7010) = 1 the guest remaps linear 0x300000 to physical
# 0x301000 in its page table; with any other value it changes nothing. It returns the dword it
# reads at linear 0x300000: 0xaaaa0001 through the snapshot's page tables, 0xbbbb0002 through the
# remapped ones. A call that changes nothing must see the snapshot's mapping, whatever an earlier
# call on the same shell did.

    .include "boot.inc"

    .set PT, 0x20000                # the 4 KiB page table of linear 2-4 MiB (above the stack)
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
    ENTER_LONG_MODE                 # boot.inc's identity map of 0-4 MiB in two 2 MiB pages

    movl $0xaaaa0001, PROBE
    movl $0xbbbb0002, OTHER

    # linear 2-4 MiB in 4 KiB pages instead: a page table of 512 entries, then PD[1] points to it
    cld
    movl $PT, %edi
    movl $(0x200000 | 0x3), %eax    # present | writable
    movl $512, %ecx
1:  movq %rax, (%rdi)
    addq $8, %rdi
    addl $0x1000, %eax
    loop 1b
    movq $(PT | 0x3), %rax
    movq %rax, PD + 8
    movq %cr3, %rax                 # flush the 2 MiB translation
    movq %rax, %cr3

    movl $5, %eax                   # the snapshot hypercall
    outb %al, $0xfb

    cmpl $1, ARG0
    jne 2f
    movl $(OTHER | 0x3), PT + ((PROBE - 0x200000) >> 12) * 8
    invlpg PROBE
2:  movl PROBE, %eax
    outb %al, $0xfa
3:  hlt
    jmp 3b

    GDT gdt, DESC_CODE32, DESC_DATA, DESC_CODE64
    GDT_DESC gdt
