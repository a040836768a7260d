# A privileged guest that leaves KVM translations its memory no longer shows, the two ways a reset
# that skips the memory-slot re-add must still catch (src/shell/translations.ts; tests/reset.test.ts).
# Boots to long mode (boot.inc: PML4 0x10000 -> PDPT 0x11000 -> PD 0x12000, 0-4 MiB in 2 MiB pages),
# then maps linear 2-4 MiB through a 4 KiB page table of its own at 0x20000 (identity), every entry
# and PD[1] with the accessed bit already set. Physical 0x300000 holds 0xaaaa0001 and 0x301000
# holds 0xbbbb0002. Then the snapshot hypercall: every later call resumes there, with the pages
# 0x40000-0x43fff zero (no table of the snapshot's points to them).
#
# After it, by args[0] (info page, 0x7010):
#   1  builds a second hierarchy in 0x40000-0x43fff — the first 2 MiB as one 2 MiB page, linear
#      2-4 MiB in 4 KiB pages with linear 0x300000 on physical 0x301000 — loads it into CR3, reads
#      linear 0x300000 (0xbbbb0002) and loads the snapshot's CR3 back: the call ends with the
#      snapshot's tables in use, its own only in memory the reset restores.
#   2  loads CR3 = 0x40000 and reads linear 0x300000. Those pages are zero again (the reset put the
#      snapshot's back): nothing is mapped, so the next instruction fetch faults and, with no IDT,
#      the guest triple-faults — unless KVM kept the translations call 1 made.
#   3  points the snapshot's own entry for linear 0x300000 at physical 0x301000, invalidates it,
#      reads it (0xbbbb0002), then puts the entry back as it was without invalidating it: the call
#      ends with memory as the snapshot has it (the page is restored, its contents unchanged), and
#      with KVM free to keep the remapped translation (x86 lets a TLB keep an entry until INVLPG;
#      KVM's "unsync" page tables do).
#   anything else  reads linear 0x300000 through the snapshot's tables (0xaaaa0001).
# The result is the dword read (`out 0xFA`).

    .include "boot.inc"

    .set PT, 0x20000                # the snapshot's 4 KiB page table of linear 2-4 MiB
    .set T_PML4, 0x40000            # the second hierarchy (call 1)
    .set T_PDPT, 0x41000
    .set T_PD, 0x42000
    .set T_PT, 0x43000
    .set PROBE, 0x300000
    .set OTHER, 0x301000
    .set PROBE_PTE, PT + ((PROBE - 0x200000) >> 12) * 8
    .set ARG0, 0x7010
    .set P_RW_A, 0x23               # present | writable | accessed

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

    # linear 2-4 MiB in 4 KiB pages: 512 entries, then PD[1] points to them
    cld
    movl $PT, %edi
    movl $(0x200000 | P_RW_A), %eax
    movl $512, %ecx
1:  movq %rax, (%rdi)
    addq $8, %rdi
    addl $0x1000, %eax
    loop 1b
    movq $(PT | P_RW_A), %rax
    movq %rax, PD + 8
    movq %cr3, %rax                 # flush the 2 MiB translation
    movq %rax, %cr3

    movl $5, %eax                   # the snapshot hypercall
    outb %al, $0xfb

    movl ARG0, %eax
    cmpl $1, %eax
    je build
    cmpl $2, %eax
    je reuse
    cmpl $3, %eax
    je unsync
    jmp read

build:
    movq $(T_PDPT | 0x3), %rax      # present | writable
    movq %rax, T_PML4
    movq $(T_PD | 0x3), %rax
    movq %rax, T_PDPT
    movq $(0x000000 | 0x83), %rax   # the first 2 MiB: one 2 MiB page, as the snapshot's
    movq %rax, T_PD
    movq $(T_PT | 0x3), %rax
    movq %rax, T_PD + 8
    movl $T_PT, %edi
    movl $(0x200000 | 0x3), %eax
    movl $512, %ecx
2:  movq %rax, (%rdi)
    addq $8, %rdi
    addl $0x1000, %eax
    loop 2b
    movl $(OTHER | 0x3), T_PT + ((PROBE - 0x200000) >> 12) * 8
    movl $T_PML4, %eax
    movq %rax, %cr3
    movl PROBE, %ebx                # through its own tables: 0xbbbb0002
    movl $PML4, %eax
    movq %rax, %cr3                 # the snapshot's tables again
    movl %ebx, %eax
    jmp done

reuse:
    movl $T_PML4, %eax
    movq %rax, %cr3                 # zero tables: the next fetch faults, unless KVM kept call 1's
    jmp read

unsync:
    movl PROBE, %eax                # a translation of the snapshot's entry first
    movl $(OTHER | P_RW_A), PROBE_PTE
    invlpg PROBE
    movl PROBE, %ebx                # 0xbbbb0002
    movl $(PROBE | P_RW_A), PROBE_PTE   # the snapshot's entry again, not invalidated
    movl %ebx, %eax
    jmp done

read:
    movl PROBE, %eax
done:
    outb %al, $0xfa
3:  hlt
    jmp 3b

    GDT gdt, DESC_CODE32, DESC_DATA, DESC_CODE64
    GDT_DESC gdt
