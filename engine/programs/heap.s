; heap.s - grows the heap by 96 pages and touches each one twice.
;
; The first pass is page-table-write heavy: every page is a demand-zero fault, so the kernel writes a
; new page-table entry each time (under shadow paging each of those writes is traced by the VMM).
; The second pass is TLB-miss heavy: 96 pages do not fit in a 16-entry TLB, so nearly every access
; walks the page tables (under nested paging each walk reads host tables too).

        .org 0x00400000

SYS_WRITE = 1
SYS_EXIT  = 4
SYS_SBRK  = 5
PAGES     = 96

_start:
        mov r0, SYS_SBRK                  ; sbrk(PAGES * 4096)
        mov r1, PAGES * 4096
        syscall
        cmp r0, 0xffffffff
        jz failed
        mov r4, r0                        ; r4 = start of the new heap

        mov r5, 0                         ; pass 1: write the page number into each page
first_pass:
        mov r6, r5
        shl r6, 12
        add r6, r4
        st [r6], r5                       ; demand-zero fault, then the store succeeds
        add r5, 1
        cmp r5, PAGES
        jnz first_pass

        mov r5, 0                         ; pass 2: read them back
        mov r7, 0
second_pass:
        mov r6, r5
        shl r6, 12
        add r6, r4
        ld r1, [r6]
        add r7, r1                        ; sum of 0..PAGES-1
        add r5, 1
        cmp r5, PAGES
        jnz second_pass

        cmp r7, PAGES * (PAGES - 1) / 2
        jnz failed
        mov r0, SYS_WRITE
        mov r1, success
        mov r2, success_end - success
        syscall
        mov r0, SYS_EXIT
        mov r1, 0
        syscall

failed:
        mov r0, SYS_WRITE
        mov r1, failure
        mov r2, failure_end - failure
        syscall
        mov r0, SYS_EXIT
        mov r1, 1
        syscall

success:
        .ascii "heap: 96 demand-zero pages written and read back\n"
success_end:
failure:
        .ascii "heap: FAILED\n"
failure_end:
