; pagefault.s - asks for heap memory with sbrk and touches it: demand-zero paging.
;
; sbrk only moves the end of the heap; no page is mapped yet. The first store to each new
; page is a page fault (vector 14, cr2 = the address). The kernel sees the address is inside
; the heap, maps a zero-filled frame there and returns, and the store is executed again,
; this time successfully. The program then checks what it reads back.

        .org 0x00400000

SYS_WRITE = 1
SYS_EXIT  = 4
SYS_SBRK  = 5

_start:
        mov r0, SYS_SBRK                  ; sbrk(8192): two pages of heap
        mov r1, 8192
        syscall
        mov r4, r0                        ; r4 = the old break = start of the new memory
        cmp r4, 0xffffffff
        jz failed

first_touch:
        ld r0, [r4 + 4096]                ; first touch of page 2 (a read): must be zero
        cmp r0, 0
        jnz failed
        mov r0, 0x12345678
second_touch:
        st [r4], r0                       ; first touch of page 1 (a write)
        ld r1, [r4]                       ; read it back
        cmp r1, r0
        jnz failed
        st [r4 + 8188], r0                ; last word of page 2: already mapped, no fault

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
        .ascii "pagefault: heap pages arrived on first touch, zero-filled\n"
success_end:
failure:
        .ascii "pagefault: FAILED\n"
failure_end:
