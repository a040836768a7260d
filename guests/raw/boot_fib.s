# The Wasp paper's boot-time virtine (Table 1, Fig. 11): boots itself from 16-bit real mode to
# 64-bit long mode like raw_fib64, recording an rdtsc milestone at each step, then makes the
# snapshot hypercall and computes fib(n) recursively, n = the first argument (info page args[0]).
# Result in RAX, then `out 0xFA, al`.
#
# Milestone table (u64 TSC values, EDX:EAX of rdtsc), at 0x7100 in the info page:
#   [0] first instruction            [1] after lgdt (32-bit GDT)     [2] after CR0.PE is set
#   [3] first instruction in 32-bit  [4] after CR0.PG (identity map built, paging on)
#   [5] after lgdt of the 64-bit GDT (in compatibility mode)
#   [6] first instruction in 64-bit  [7] right before fib            [8] right after fib
# and the number of milestones (9) as a u64 at 0x70f8.
#
# Snapshot point: right after [6], with the stack set up, `mov $5, %eax; out %al, $0xfb`
# (hypercall 5). A host that captures the VM there resumes later calls right after the `out`
# with RAX = 1 (RAX = 0 on the capturing run, or when the host ignores the call). Everything
# after that point reads n from the info page again, so a resumed call computes fib of its own
# argument; it writes only [7], [8] and the count.
#
# Entered at 0x8000 in real mode with CS base 0. Memory it uses besides its own image:
#   0x7100-0x7147, 0x70f8  the milestone table and count (info page)
#   0x10000-0x12fff  page tables (PML4, PDPT, PD: identity map of the first 4 MiB, 2 MiB pages)
#   0x13000-0x1ffff  stack (RSP starts at 0x20000, grows down)
# so the virtine needs at least 128 KiB of RAM.

    .include "boot.inc"             # mode switches, page tables 0x10000-0x12fff, STACK_TOP
    .include "fib.inc"              # INFO_ARG0, MS_COUNT, MS_TABLE, MARK, fib

    .set MS_N, 9

    # gdt32: 0x08 = 32-bit code, 0x10 = data (SEL_CODE32, SEL_DATA);
    # gdt64: 0x08 = 64-bit code, 0x10 = data
    .set SEL_GDT64_CODE, 0x08

    .set HC_SNAPSHOT, 5

    .text
    .globl _start

    # The steps of ENTER_PROTECTED_MODE and ENTER_LONG_MODE one by one, a milestone between.
    .code16
_start:
    MARK 0
    cli
    lgdtl gdt32_desc                # DS is 0 at entry
    MARK 1
    ENABLE_PE
    MARK 2
    JUMP_CODE32
    MARK 3                          # DS still has its real-mode base 0 and limit 64 KiB
    LOAD_DATA_SEGMENTS
    ENABLE_LONG_MODE
    MARK 4
    lgdtl gdt64_desc                # CS/DS/SS keep their cached descriptors until reloaded
    MARK 5
    JUMP_CODE64 SEL_GDT64_CODE
    MARK 6
    movl $STACK_TOP, %esp
    movl $HC_SNAPSHOT, %eax
    outb %al, $0xfb                 # snapshot: later calls resume here, RAX = 1
snapshot_resume:
    movq INFO_ARG0, %rdi            # this call's n (not a register from before the snapshot)
    movq $MS_N, MS_COUNT
    TIMED_CALL64 fib, 7, 8
    EXIT_RESULT

    FIB64 fib

    GDT gdt32, DESC_CODE32, DESC_DATA
    GDT gdt64, DESC_CODE64, DESC_DATA
    GDT_DESC gdt32
    GDT_DESC gdt64
