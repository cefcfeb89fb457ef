; 12-software-tlb.s - the user program of lesson 12 (a software-managed TLB under the VMM).
;
; It loads a word from three data pages, one after the other, then from the first page again.
; Run with a 2-entry TLB: the code page stays (every fetch uses it), so the data pages evict each
; other, and the last load misses on a page whose mapping was installed before.

        .org 0x00400000

SYS_WRITE = 1
SYS_EXIT  = 4
SPIN      = 4

_start:
        mov r5, SPIN                      ; a short delay that puts the first load early in a time
spin:                                     ; slice: no timer interrupt lands in what the lesson shows
        sub r5, 1
        jnz spin
        mov r1, page_a
load_a:
        ld r2, [r1]                       ; the first touch of page_a: a TLB miss
        ld r3, [page_b]
        ld r3, [page_c]
again:
        ld r4, [r1]                       ; page_a again: evicted by page_c
        cmp r4, r2
        jnz failed
        mov r0, SYS_WRITE
        mov r1, message
        mov r2, message_end - message
        syscall
        mov r0, SYS_EXIT                  ; exit(0)
        mov r1, 0
        syscall
failed:
        mov r0, SYS_EXIT                  ; exit(1): page_a read back wrong
        mov r1, 1
        syscall

message:
        .ascii "three pages touched, then the first again\n"
message_end:

        .align 4096
page_a: .word 42
        .align 4096
page_b: .word 1
        .align 4096
page_c: .word 2
