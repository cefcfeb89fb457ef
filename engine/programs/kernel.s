; =====================================================================================================
; kernel.s - the vizvm teaching kernel
;
; A complete (if tiny) protected-mode kernel for the vizvm ISA: it installs a trap table, builds one
; address space per boot module, drops to ring 3, and then only ever runs again because the hardware
; traps into it (system call, fault, or timer interrupt). Read it top to bottom; docs/kernel.md has
; the same story in prose.
;
; PHYSICAL MEMORY (default 1 MiB machine)
;   0x00000000  page 0: boot-info block at 0x500 (read once at boot; page 0 is then left unmapped
;               so that a NULL pointer in the kernel faults instead of reading garbage)
;   0x00001000  this kernel: code, then data (trap table, process table, messages, boot stack)
;   kernel_end  free frames, up to the module area
;   0x00040000  boot modules, 0x10000 bytes apart (the user programs as the loader left them)
;   after them  free frames, up to the end of memory (at most 4 MiB: the kernel maps no more)
;   Every free frame's address sits on one stack (free_stack); the kernel never writes into a free
;   frame, so under a VMM that backs guest memory on first touch a free frame costs the host nothing.
;
; VIRTUAL MEMORY (the same layout in every process's address space; 2, 3 or 4 page-table levels,
; as the boot-info block says the MMU walks)
;   0x00000000 - 0x003fffff  the kernel: identity-mapped, supervisor only (U=0), page 0 not mapped.
;                            The kernel's own page tables, shared by every address space.
;   0x00400000 - ...         user code and data, copied from the module (user, writable)
;   0x00600000 - brk         user heap: grows with sbrk, pages arrive on first touch (demand-zero)
;                            up to 0x00700000
;   0x007f0000 - 0x007fffff  user stack: sp starts at 0x00800000; the top page is mapped at load,
;                            the rest (64 KiB in all) arrives on first touch like the heap
;   A process has its own tables only where its mappings differ from the kernel's (new_address_space).
;
; SYSTEM CALLS  (syscall; r0 = number, arguments r1, r2, r3; result in r0, -1 on error)
;   1 write(buf, len)   print len bytes from user memory; returns len
;   2 getpid()          returns the process id (1, 2, ... in module order)
;   3 yield()           give the CPU to the next process
;   4 exit(code)        end the process
;   5 sbrk(increment)   move the heap's end; returns the old end (heap starts at 0x00600000)
;
; CONVENTIONS
;   Kernel functions take arguments in r1-r3 and return a result in r0. They may change r0-r3 and
;   must preserve r4-r6 (push/pop them). While a trap is being handled r7 points at the trap
;   frame and no function changes it.
;
; THE PARAVIRTUAL BUILD  (assemble with defines={"PARAVIRT": 1})
;   The same source, ported to run deprivileged under the hypervisor (docs/vmm.md): every privileged
;   instruction is replaced by a hypercall (arguments r1-r3, result in r0, so the port saves what a
;   hypercall would clobber), and page-table entries are written in batches through mmu_update.
;   Each change sits in an ".ifdef PARAVIRT / .else / .endif" block next to the native code it
;   replaces; search for PARAVIRT to see the whole port. The kernel uses no sensitive-unprivileged
;   instruction (pushf, popf, smsw, sidt), so there is nothing else to port.
; =====================================================================================================

        .org 0x1000

; ---------------------------------------------------------------------------- constants
BOOT_INFO        = 0x500          ; the loader's boot-info block
BOOT_MAGIC       = 0x49424d56     ; "VMBI"
BI_MEMORY        = 4              ;   offsets in the block: memory size,
BI_COUNT         = 8              ;   module count,
BI_LEVELS        = 12             ;   page-table levels the MMU walks (1-4),
BI_MODULES       = 16             ;   then one 28-byte record per module:
MOD_START        = 0              ;     physical start,
MOD_LENGTH       = 4              ;     length in bytes,
MOD_ENTRY        = 8              ;     entry point (a user virtual address),
MOD_NAME         = 12             ;     16-byte NUL-padded name
MOD_RECORD       = 28
MODULE_BASE      = 0x40000        ; where the loader put module 0
MODULE_STRIDE    = 0x10000        ; and how far apart the modules are

PAGE_SIZE        = 4096
PAGE_SHIFT       = 12             ; the low 12 bits of an address are the offset in its page
FRAME_MASK       = 0xfffff000     ; bits 12-31 of a page-table entry: the frame
PTE_P            = 0x1            ; present
PTE_W            = 0x2            ; writable
PTE_U            = 0x4            ; user may access
KERNEL_PTE       = PTE_P | PTE_W  ; kernel pages: supervisor only
USER_PTE         = PTE_P | PTE_W | PTE_U
MAPPED_LIMIT     = 0x400000       ; the kernel identity-maps at most 4 MiB
CR0_PG           = 0x1            ; cr0 bit 0 turns paging on

USER_BASE        = 0x00400000     ; user programs are assembled at (and copied to) this address
USER_END         = 0x00800000     ; end of the user part of the address space
HEAP_BASE        = 0x00600000
HEAP_LIMIT       = 0x00700000
STACK_LIMIT      = 0x007f0000
STACK_TOP        = 0x00800000
USER_FLAGS       = 0x3200         ; IF (0x200) set, ring 3 in bits 12-13: how iret enters user mode
FLAGS_RING       = 0x3000         ; the ring bits of the saved flags

PORT_CONSOLE     = 0x10
PORT_CONSOLE_ST  = 0x11
PORT_TIMER       = 0x20
PORT_POWER       = 0xf4
PORT_BALLOON     = 0x30           ; the VMM's balloon device: read the target (pages), or all ones if absent
PORT_BALLOON_IN  = 0x31           ;   write a frame the driver gives to the host (inflate)
PORT_BALLOON_OUT = 0x32           ;   write a frame the driver takes back (deflate)
NO_DEVICE        = 0xffffffff     ; what a port with no device behind it reads as
BALLOON_POLL     = 4              ; ask the host for the balloon target every 4 timer ticks
BALLOON_RATE     = 16             ; move at most 16 pages per poll (rate-limited, like a real driver)
BALLOON_KEEP     = 8              ; never inflate below 8 free frames: the kernel still needs some
MAX_FRAMES       = 1024           ; 4 MiB / 4 KiB: the most frames the kernel can have
EXIT_UNSUPPORTED = 2              ; power-off code when the machine is configured in a way we cannot run
TIMER_INTERVAL   = 200            ; preempt the running process every 200 instructions

VEC_PAGE_FAULT   = 14
VEC_TIMER        = 32
PF_PRESENT       = 0x1            ; page-fault error code: 1 = protection violation, 0 = not present

; The trap frame, as it sits on the kernel stack once trap_common has saved the registers:
; the CPU pushed the last five words, trap_common the first eight.
TF_R0            = 0
TF_R1            = 4
TF_R2            = 8
TF_R3            = 12
TF_ERROR         = 32             ; error code (page faults)
TF_VECTOR        = 36             ; which vector
TF_PC            = 40             ; where iret resumes
TF_FLAGS         = 44             ; flags | ring << 12 of the interrupted code
TF_SP            = 48             ; its stack pointer
TF_SIZE          = 52

; One process-table entry (a "process control block").
P_STATE          = 0              ; FREE, RUNNABLE, ZOMBIE (finished, memory not yet freed) or DEAD
P_PID            = 4
P_CR3            = 8              ; root table address | pid (the address-space id)
P_KSTACK         = 12             ; top of its kernel stack (loaded into ksp)
P_BRK            = 16             ; end of its heap
P_NAME           = 20             ; 16 bytes, from the boot-info block
P_SIZE           = 36
MAX_PROCS        = 8
FREE             = 0
RUNNABLE         = 1
ZOMBIE           = 2
DEAD             = 3

SYS_MAX          = 5              ; highest system-call number

.ifdef PARAVIRT
; Hypercall numbers (docs/vmm.md): hypercall N, arguments in r1-r3, result in r0.
HC_SET_TRAP_TABLE = 1             ; r1 = trap-table base                    (replaces lidt)
HC_SET_CR3       = 2              ; r1 = root table | address-space id      (movcr cr3)
HC_SET_CR0       = 3              ; r1 = cr0                                (movcr cr0)
HC_STACK_SWITCH  = 4              ; r1 = kernel stack for traps from user   (movcr ksp)
HC_IRET          = 5              ; pops the trap frame at sp               (iret)
HC_IO_OUT        = 7              ; r1 = port, r2 = value                   (out)
HC_IO_IN         = 8              ; r1 = port; r0 = the value               (in)
HC_READ_CR2      = 10             ; r0 = the last page-fault address        (movrc cr2)
HC_MMU_UPDATE    = 11             ; r1 = array of (entry, value) pairs, r2 = how many (page-table stores)
HC_READ_CR3      = 13             ; r0 = the current root                   (movrc cr3)
; (6 set_interrupts, 9 block and 12 tlb_flush replace cli/sti, hlt and invlpg/tlbflush, which this
; kernel never executes: it runs with interrupts off, never waits and never unmaps a page.)
PTE_BATCH        = 32             ; page-table writes queued before one mmu_update
.endif

; ===================================================================================== boot
_start:
        mov sp, boot_stack_top            ; a stack, before anything calls anything
.ifdef PARAVIRT
        mov r1, trap_table                ; tell the hypervisor where the trap handlers are
        hypercall HC_SET_TRAP_TABLE
.else
        mov r0, trap_table                ; tell the CPU where the trap handlers are
        lidt r0
.endif
        call balloon_probe                ; a VMM's balloon device? (it picks the timer handler)

        ; The boot-info block: check it, then note how much memory there is and how many modules.
        ld r0, [BOOT_INFO]
        cmp r0, BOOT_MAGIC
        jnz boot_bad_info
        ld r0, [BOOT_INFO + BI_MEMORY]
        cmp r0, MAPPED_LIMIT
        jb boot_memory_ok
        mov r0, MAPPED_LIMIT              ; frames past 4 MiB would be out of the kernel's reach
boot_memory_ok:
        st [memory_top], r0
        ld r0, [BOOT_INFO + BI_LEVELS]    ; how many page-table levels the MMU walks: pick the
        st [page_levels], r0              ; matching row of walk_rows (0 = a setting we cannot run)
        cmp r0, 5
        jae boot_bad_levels
        shl r0, 2
        ld r0, [r0 + walk_rows]
        cmp r0, 0
        jz boot_bad_levels
        st [walk_row], r0
        ld r0, [BOOT_INFO + BI_COUNT]
        st [module_count], r0
        cmp r0, MAX_PROCS + 1
        jb boot_count_ok
        mov r0, MAX_PROCS                 ; the process table is full: ignore the extra modules
boot_count_ok:
        st [process_count], r0

        mov r1, msg_banner                ; "[kernel] booting: memory 1024 KiB, modules 2"
        call print_str
        ld r1, [BOOT_INFO + BI_MEMORY]
        shr r1, 10
        call print_dec
        mov r1, msg_banner_modules
        call print_str
        ld r1, [module_count]
        call print_dec
        call print_newline
        ld r0, [process_count]
        ld r1, [module_count]
        cmp r0, r1
        jz boot_all_modules
        mov r1, msg_too_many              ; "[kernel] only 8 processes: extra modules ignored"
        call print_str
boot_all_modules:

        call init_frames                  ; every unused frame onto the free list
        call build_kernel_space           ; the kernel's own address space, shared by all

        mov r4, 0                         ; one process per module
boot_next_module:
        ld r0, [process_count]
        cmp r4, r0
        jae boot_modules_done
        mov r1, r4
        call create_process
        add r4, 1
        jmp boot_next_module
boot_modules_done:

.ifdef PARAVIRT
        ld r1, [kernel_cr3]               ; paging on: cr3 first, then cr0.PG
        hypercall HC_SET_CR3
        mov r1, CR0_PG
        hypercall HC_SET_CR0
        mov r1, PORT_TIMER                ; the timer will take the CPU back from user code
        mov r2, TIMER_INTERVAL
        hypercall HC_IO_OUT
.else
        ld r0, [kernel_cr3]               ; paging on: cr3 first, then cr0.PG
        movcr cr3, r0
        mov r0, CR0_PG
        movcr cr0, r0
        mov r0, TIMER_INTERVAL            ; the timer will take the CPU back from user code
        out PORT_TIMER, r0
.endif
        jmp schedule                      ; pick process 1 and iret into it: boot is over

boot_bad_info:
        mov r1, msg_bad_boot_info
        jmp panic

boot_bad_levels:                          ; "[kernel] cannot run with page_levels 1: ..."
        mov r1, msg_bad_levels
        call print_str
        ld r1, [page_levels]
        call print_dec
        mov r1, msg_bad_levels_why
        call print_str
        mov r0, EXIT_UNSUPPORTED
.ifdef PARAVIRT
        call pv_power_off
.else
        out PORT_POWER, r0
.endif

; ============================================================================ physical frames
; init_frames: put every frame that nobody uses on the free list: the ones between the last module
; and the top of memory, then the ones between the end of the kernel and the module area. Each range
; is pushed from its top down, so the list starts with the first frame after the kernel.
init_frames:
        ld r1, [module_count]             ; first frame after the last module
        mul r1, MODULE_STRIDE
        add r1, MODULE_BASE
        ld r2, [memory_top]
        call free_range
        mov r1, kernel_end + PAGE_SIZE - 1  ; first whole frame after the kernel image
        and r1, FRAME_MASK
        mov r2, MODULE_BASE
        call free_range
        ld r0, [free_frames]
        st [boot_free_frames], r0
        ret

; free_range(r1 = first frame, r2 = end): free every frame in [r1, r2), the highest first.
free_range:
        sub r2, PAGE_SIZE
        cmp r2, r1
        jb free_range_done
        push r1
        mov r1, r2
        call free_frame
        pop r1
        jmp free_range
free_range_done:
        ret

; alloc_frame() -> r0 = physical address of a zero-filled frame, or 0 when memory is exhausted.
alloc_frame:
        ld r1, [free_frames]              ; pop free_stack (take_frame, inline)
        mov r0, 0
        cmp r1, 0
        jz alloc_frame_done               ; nothing left: return 0
        sub r1, 1
        st [free_frames], r1
        shl r1, 2
        ld r0, [r1 + free_stack]
        mov r1, r0                        ; zero it, 16 bytes per round: a fresh frame must never
        lea r2, [r0 + PAGE_SIZE]          ; show what its previous owner left in it
        mov r3, 0
alloc_frame_zero:
        st [r1], r3
        st [r1 + 4], r3
        st [r1 + 8], r3
        st [r1 + 12], r3
        add r1, 16
        cmp r1, r2
        jb alloc_frame_zero
alloc_frame_done:
        ret

; take_frame() -> r0 = a free frame as it is (not zeroed), or 0 when there is none. Pops free_stack.
take_frame:
        ld r1, [free_frames]
        mov r0, 0
        cmp r1, 0
        jz take_frame_done
        sub r1, 1
        st [free_frames], r1
        shl r1, 2
        ld r0, [r1 + free_stack]
take_frame_done:
        ret

; free_frame(r1 = frame): give a frame back (push it on the free stack).
free_frame:
        and r1, FRAME_MASK
        ld r0, [free_frames]              ; (changes only r0 and r1: free_range relies on that)
        shl r0, 2
        st [r0 + free_stack], r1
        ld r0, [free_frames]
        add r0, 1
        st [free_frames], r0
        ret

; ============================================================================ the balloon driver
; Under a VMM that overcommits memory (docs/vmm.md, "Overcommit") the host may want memory back.
; It sets a balloon target, in pages; the driver "inflates" by taking frames off its own free stack
; (so the guest, not the host, picks the victims: only frames nobody uses) and reporting each one,
; and the host then frees the machine frame behind it. When the target drops, the driver deflates:
; it reports the frame and puts it back on the free stack (the host backs it again on first touch).
; It polls every BALLOON_POLL timer ticks and moves at most BALLOON_RATE pages per poll. On a real
; machine the port has no device behind it and reads as all ones: the driver stays off.

; balloon_probe: is there a balloon device? If so the timer vector gets the handler that also polls
; it (so on a real machine the timer path costs not one instruction more). Runs early in boot, before
; the timer is started.
balloon_probe:
.ifdef PARAVIRT
        mov r1, PORT_BALLOON
        hypercall HC_IO_IN
.else
        in r0, PORT_BALLOON
.endif
        cmp r0, NO_DEVICE
        jz balloon_probe_done
        mov r0, trap_timer_balloon
        st [trap_table + 4 * VEC_TIMER], r0
balloon_probe_done:
        ret

; balloon_poll: called on every timer tick; every BALLOON_POLL ticks, move toward the host's target.
balloon_poll:
        ld r0, [balloon_ticks]
        add r0, 1
        st [balloon_ticks], r0
        cmp r0, BALLOON_POLL
        jb balloon_poll_off
        mov r0, 0
        st [balloon_ticks], r0
        push r4
        push r5
.ifdef PARAVIRT
        mov r1, PORT_BALLOON
        hypercall HC_IO_IN
.else
        in r0, PORT_BALLOON
.endif
        mov r4, r0                        ; r4 = target
        mov r5, BALLOON_RATE              ; r5 = pages this poll may still move
balloon_poll_next:
        ld r0, [balloon_size]
        cmp r0, r4
        jz balloon_poll_done              ; on target
        jb balloon_inflate
        sub r0, 1                         ; above target: deflate the most recent page
        st [balloon_size], r0
        shl r0, 2
        ld r1, [r0 + balloon_list]
        mov r2, r1
        mov r1, PORT_BALLOON_OUT
        call balloon_out
        mov r1, r2
        call free_frame
        jmp balloon_poll_moved
balloon_inflate:
        ld r0, [free_frames]
        cmp r0, BALLOON_KEEP + 1
        jb balloon_poll_done              ; the kernel keeps a few frames for itself
        call take_frame
        mov r2, r0
        ld r0, [balloon_size]
        mov r1, r0
        add r1, 1
        st [balloon_size], r1
        shl r0, 2
        st [r0 + balloon_list], r2
        mov r1, PORT_BALLOON_IN
        call balloon_out
balloon_poll_moved:
        sub r5, 1
        jnz balloon_poll_next
balloon_poll_done:
        pop r5
        pop r4
balloon_poll_off:
        ret

; balloon_out(r1 = PORT_BALLOON_IN or PORT_BALLOON_OUT, r2 = frame): report a frame to the device. Keeps r2.
balloon_out:
.ifdef PARAVIRT
        hypercall HC_IO_OUT
.else
        cmp r1, PORT_BALLOON_IN
        jnz balloon_out_deflate
        out PORT_BALLOON_IN, r2
        ret
balloon_out_deflate:
        out PORT_BALLOON_OUT, r2
.endif
        ret

; ============================================================================ page tables
; The MMU splits a virtual address into page_levels table indexes and a 12-bit offset (see
; walk_rows in the data section): a 2-level walk uses va bits 22-31 in the root table and bits
; 12-21 in the page table, like 32-bit x86. Every table is one page-aligned frame (the smaller
; tables of 3 and 4 levels leave the rest of their frame unused). An entry is frame | flags; a
; non-leaf entry points at the next table down.

; build_kernel_space: the kernel's own address space (kernel_cr3): its 4 MiB mapped onto itself
; (virtual address = physical address), supervisor only. Every process's address space shares
; these tables (new_address_space).
build_kernel_space:
        push r4
        call alloc_frame                  ; the root table
        st [kernel_cr3], r0
        mov r4, PAGE_SIZE                 ; page 0 stays unmapped: a NULL pointer faults
build_kernel_space_map:
        ld r1, [kernel_cr3]               ; map_page(root, page, page | P | W): no U, so user
        mov r2, r4                        ; code cannot touch it
        mov r3, r4
        or r3, KERNEL_PTE
        call map_page
        cmp r0, 0
        jz out_of_memory
        add r4, PAGE_SIZE
        ld r0, [memory_top]
        cmp r4, r0
        jb build_kernel_space_map
.ifdef PARAVIRT
        call flush_pte_updates            ; before paging is turned on
.endif
        pop r4
        ret

; set_pte(r1 = address of a page-table entry, r2 = new value): every write of a page-table entry
; goes through here (Linux has the same hook, for the same reason: a hypervisor wants to see it).
; Changes r0 at most.
set_pte:
.ifdef PARAVIRT
        ; Queue the write as an (entry address, value) pair; flush_pte_updates hands the queue to
        ; the hypervisor in one mmu_update hypercall.
        ld r0, [pte_batch_count]
        cmp r0, PTE_BATCH
        jb set_pte_queue
        call flush_pte_updates            ; the queue is full
        mov r0, 0
set_pte_queue:
        shl r0, 3                         ; pair n is at pte_batch + 8 * n
        st [r0 + pte_batch], r1
        st [r0 + pte_batch + 4], r2
        ld r0, [pte_batch_count]
        add r0, 1
        st [pte_batch_count], r0
        ret
.else
        st [r1], r2
        ret
.endif

; map_page(r1 = root table, r2 = virtual address, r3 = frame | flags) -> r0 = 1, or 0 if no frame
; was left for a page table. Walks the tables as the MMU will, one level per row of walk_row,
; creating missing tables on the way; a new table's entry is P W, plus U if the page is the user's
; (the MMU ANDs W and U down the walk, so the leaf entry decides).
map_page:
        push r4
        push r5
        push r6
        mov r4, r1                        ; r4 = the table at this level, the root first
        ld r5, [walk_row]                 ; r5 = this level's (shift, index mask)
map_page_level:
        ld r0, [r5]                       ; r6 = the entry for va in this table:
        mov r6, r2                        ;      table + ((va >> shift) & mask) * 4
        shr r6, r0
        ld r0, [r5 + 4]
        and r6, r0
        shl r6, 2
        add r6, r4
        ld r0, [r5]
        cmp r0, PAGE_SHIFT
        jz map_page_leaf                  ; the last level: r6 is the page-table entry itself
        ld r0, [r6]
        test r0, PTE_P
        jnz map_page_down
        push r2                           ; no table below this entry yet: allocate one
        push r3
        call alloc_frame
        pop r3
        pop r2
        cmp r0, 0
        jz map_page_done                  ; out of memory: r0 = 0
        mov r4, r0                        ; r4 = the new table, one level down
        push r2
        mov r2, r3                        ; its entry: the table | P | W, and U if the leaf has it
        and r2, PTE_U
        or r2, KERNEL_PTE
        or r2, r4
        mov r1, r6
        call set_pte
.ifdef PARAVIRT
        call flush_pte_updates            ; the next walk reads this entry: write it now
.endif
        pop r2
        add r5, 8
        jmp map_page_level
map_page_down:
        and r0, FRAME_MASK
        mov r4, r0                        ; the next table down
        add r5, 8
        jmp map_page_level
map_page_leaf:
        mov r1, r6                        ; the page-table entry
        mov r2, r3
        call set_pte
        mov r0, 1
map_page_done:
        pop r6
        pop r5
        pop r4
        ret

; new_address_space() -> r0 = the root table of a fresh address space that maps the kernel exactly
; as kernel_cr3 does. It shares the kernel's tables from the first level whose entries cover at most
; 4 MiB (an entry covers 1 << shift bytes): it copies the kernel's entries for the first 4 MiB there,
; and above that level it gets tables of its own (user memory hangs below the same entries):
;   2 levels: root entry 0 = the kernel's page table
;   3 levels: its own root and level-1 table; level-1 entries 0-15 = the kernel's 16 page tables
;   4 levels: its own root and level-1 table; level-1 entry 0 = the kernel's level-2 table
; Copied entries have no U bit: reap_zombies never frees what they point at.
new_address_space:
        push r4
        push r5
        push r6
        call alloc_frame
        cmp r0, 0
        jz out_of_memory
        push r0                           ; [sp] = the new root: the result
        mov r4, r0                        ; r4 = the new address space's table at this level
        ld r5, [kernel_cr3]               ; r5 = the kernel's table at this level
        ld r6, [walk_row]                 ; r6 = this level's (shift, index mask)
new_address_space_level:
        ld r0, [r6]
        cmp r0, 23                        ; does an entry here cover at most 4 MiB (shift <= 22)?
        jb new_address_space_share
        call alloc_frame                  ; no: a table of its own one level down, under entry 0
        cmp r0, 0
        jz out_of_memory
        push r0
        mov r1, r4
        mov r2, r0
        or r2, USER_PTE
        call set_pte
        pop r4
        ld r5, [r5]                       ; and the kernel's table one level down
        and r5, FRAME_MASK
        add r6, 8
        jmp new_address_space_level
new_address_space_share:
        mov r3, MAPPED_LIMIT              ; r3 = how many entries map the kernel's 4 MiB
        shr r3, r0
new_address_space_copy:
        mov r1, r4
        ld r2, [r5]
        call set_pte
        add r4, 4
        add r5, 4
        sub r3, 1
        jnz new_address_space_copy
.ifdef PARAVIRT
        call flush_pte_updates            ; map_page will walk these tables
.endif
        pop r0
        pop r6
        pop r5
        pop r4
        ret

; map_zero_page(r1 = root table, r2 = virtual address) -> r0 = 1, or 0 if memory ran out:
; a fresh zero-filled frame, mapped user-writable at the page holding r2.
map_zero_page:
        push r1
        push r2
        call alloc_frame
        pop r2
        pop r1
        cmp r0, 0
        jz map_zero_page_done             ; out of memory: r0 = 0
        push r0
        mov r3, r0
        or r3, USER_PTE
        and r2, FRAME_MASK
        call map_page
.ifdef PARAVIRT
        call flush_pte_updates            ; before user code touches the page
.endif
        pop r1
        cmp r0, 0
        jnz map_zero_page_done
        call free_frame                   ; no room for a page table: give the frame back
        mov r0, 0
map_zero_page_done:
        ret

; ============================================================================ processes
; create_process(r1 = module index): the module becomes process r1 + 1, ready to run.
create_process:
        push r4
        push r5
        push r6
        mov r4, r1
        mul r4, P_SIZE
        add r4, process_table             ; r4 = its process-table entry
        mov r5, r1
        mul r5, MOD_RECORD
        add r5, BOOT_INFO + BI_MODULES    ; r5 = its boot-info record
        add r1, 1
        st [r4 + P_PID], r1
        mov r0, HEAP_BASE
        st [r4 + P_BRK], r0
        lea r1, [r4 + P_NAME]             ; copy the 16-byte name
        lea r2, [r5 + MOD_NAME]
        mov r3, 16
        call copy_words

        call new_address_space            ; its address space: the kernel (supervisor only) ...
        mov r6, r0                        ; r6 = its root table
        ld r1, [r4 + P_PID]
        or r0, r1                         ; cr3 = root | pid: the pid is the address-space id
        st [r4 + P_CR3], r0

        ; Code and data: copy the module page by page into fresh frames at USER_BASE.
        push 0                            ; [sp] = bytes copied so far
create_process_copy:
        ld r0, [sp]
        ld r1, [r5 + MOD_LENGTH]
        cmp r0, r1
        jae create_process_copied
        call alloc_frame
        cmp r0, 0
        jz out_of_memory
        push r0                           ; the frame
        mov r1, r0                        ; copy_words(frame, module start + copied,
        ld r2, [r5 + MOD_START]           ;            min(4096, length - copied))
        ld r0, [sp + 4]
        add r2, r0
        ld r3, [r5 + MOD_LENGTH]
        sub r3, r0
        cmp r3, PAGE_SIZE
        jb create_process_short
        mov r3, PAGE_SIZE
create_process_short:
        call copy_words
        pop r3                            ; map_page(root, USER_BASE + copied,
        or r3, USER_PTE                   ;          frame | P | W | U)
        mov r1, r6
        ld r2, [sp]
        add r2, USER_BASE
        call map_page
        cmp r0, 0
        jz out_of_memory
        ld r0, [sp]                       ; next page
        add r0, PAGE_SIZE
        st [sp], r0
        jmp create_process_copy
create_process_copied:
        pop r0

        mov r1, r6                        ; the top page of the user stack (map_zero_page
        mov r2, STACK_TOP - PAGE_SIZE     ; also flushes the code pages' queued mappings)
        call map_zero_page
        cmp r0, 0
        jz out_of_memory

        call alloc_frame                  ; its kernel stack: traps from this process land here
        cmp r0, 0
        jz out_of_memory
        add r0, PAGE_SIZE
        st [r4 + P_KSTACK], r0
        ; A trap frame that "returns" to the program's entry point: registers all zero (the frame
        ; is fresh), pc = the entry from the boot-info record, flags = IF | ring 3, sp = top of the
        ; user stack. The scheduler starts the process exactly as it resumes a preempted one: pop
        ; and iret.
        sub r0, TF_SIZE
        ld r1, [r5 + MOD_ENTRY]
        st [r0 + TF_PC], r1
        mov r1, USER_FLAGS
        st [r0 + TF_FLAGS], r1
        mov r1, STACK_TOP
        st [r0 + TF_SP], r1
        mov r0, RUNNABLE
        st [r4 + P_STATE], r0

        mov r1, msg_loaded                ; "[kernel] loaded hello as pid 1"
        call print_str
        lea r1, [r4 + P_NAME]
        call print_str
        mov r1, msg_as_pid
        call print_str
        ld r1, [r4 + P_PID]
        call print_dec
        call print_newline
        pop r6
        pop r5
        pop r4
        ret

; copy_words(r1 = destination, r2 = source, r3 = bytes): copy whole words (rounding up).
copy_words:
        add r3, r1
copy_words_next:
        cmp r1, r3
        jae copy_words_done
        ld r0, [r2]
        st [r1], r0
        add r1, 4
        add r2, 4
        jmp copy_words_next
copy_words_done:
        ret

; end_current_process: the running process is finished. Its memory is freed later by the
; scheduler, which runs on its own stack: right now we are still standing on its kernel stack.
end_current_process:
        ld r0, [current]
        mov r1, ZOMBIE
        st [r0 + P_STATE], r1
        ld r0, [zombie_count]
        add r0, 1
        st [zombie_count], r0
        mov r0, 1
        st [need_resched], r0
        ret

; kill_current(r1 = reason): print "[kernel] pid 2 killed: <reason> at 0x00400018" (plus the
; faulting address for a page fault) and end the process.
kill_current:
        push r1
        call print_pid_prefix             ; "[kernel] pid 2"
        mov r1, msg_killed
        call print_str
        pop r1
        call print_str
        mov r1, msg_at
        call print_str
        ld r1, [r7 + TF_PC]
        call print_hex
        ld r0, [r7 + TF_VECTOR]
        cmp r0, VEC_PAGE_FAULT
        jnz kill_current_end
        mov r1, msg_address               ; " (address 0x00000000)"
        call print_str
.ifdef PARAVIRT
        hypercall HC_READ_CR2
        mov r1, r0
.else
        movrc r1, cr2
.endif
        call print_hex
        mov r1, msg_close
        call print_str
kill_current_end:
        call print_newline
        ld r0, [killed_count]
        add r0, 1
        st [killed_count], r0
        jmp end_current_process

; reap_zombies: free the memory of every finished process (the pages and page tables of its
; address space, and its kernel stack). Runs on the scheduler stack, in the kernel's own address
; space, so nothing being freed is in use.
reap_zombies:
        push r4
.ifdef PARAVIRT
        ld r1, [kernel_cr3]
        hypercall HC_SET_CR3
.else
        ld r0, [kernel_cr3]
        movcr cr3, r0
.endif
        mov r4, process_table
reap_zombies_next:
        ld r0, [r4 + P_STATE]
        cmp r0, ZOMBIE
        jnz reap_zombies_skip
        ld r1, [r4 + P_CR3]               ; its address space, from the root table down
        ld r2, [walk_row]
        call free_tables
        ld r1, [r4 + P_KSTACK]
        sub r1, PAGE_SIZE
        call free_frame
        mov r0, DEAD
        st [r4 + P_STATE], r0
reap_zombies_skip:
        add r4, P_SIZE
        cmp r4, process_table_end
        jb reap_zombies_next
        mov r0, 0
        st [zombie_count], r0
        pop r4
        ret

; free_tables(r1 = a table, r2 = its level's row in walk_row): free everything a process owns below
; the table, then the table itself. What it owns has the U bit: its pages, and the tables of its own
; that lead to them (freed recursively, one level down). Entries without U are the kernel's shared
; tables (new_address_space): left alone.
free_tables:
        push r4
        push r5
        push r6
        and r1, FRAME_MASK
        push r1                           ; [sp] = the table, freed last
        mov r4, r1                        ; r4 = the entry
        mov r5, r2                        ; r5 = the level's (shift, index mask)
        ld r6, [r5 + 4]                   ; r6 = the end of the table: table + (mask + 1) * 4
        add r6, 1
        shl r6, 2
        add r6, r4
free_tables_entry:
        ld r1, [r4]
        mov r0, r1
        and r0, PTE_P | PTE_U
        cmp r0, PTE_P | PTE_U
        jnz free_tables_next              ; nothing there, or the kernel's
        ld r0, [r5]
        cmp r0, PAGE_SHIFT
        jz free_tables_page
        lea r2, [r5 + 8]                  ; a table of the process's own, one level down
        call free_tables
        jmp free_tables_next
free_tables_page:
        call free_frame                   ; a page of the process's
free_tables_next:
        add r4, 4
        cmp r4, r6
        jb free_tables_entry
        pop r1
        call free_frame
        pop r6
        pop r5
        pop r4
        ret

; ============================================================================ the scheduler
; schedule: choose the next runnable process after the current one (round robin) and resume it.
; Entered by jmp (never call) with interrupts off, from boot or from trap_exit; it never returns.
schedule:
        mov sp, boot_stack_top            ; the scheduler's own stack (the boot stack)
        mov r0, 0
        st [need_resched], r0
        ld r0, [zombie_count]
        cmp r0, 0
        jz schedule_pick
        call reap_zombies
schedule_pick:
        ld r6, [current]                  ; start looking just after the current process
        cmp r6, 0
        jnz schedule_have_start
        mov r6, process_table_end - P_SIZE  ; no current yet: so that the first look is entry 0
schedule_have_start:
        mov r5, MAX_PROCS                 ; look at every entry once, the current one last
schedule_look:
        add r6, P_SIZE
        cmp r6, process_table_end
        jb schedule_in_table
        mov r6, process_table             ; wrap around
schedule_in_table:
        ld r0, [r6 + P_STATE]
        cmp r0, RUNNABLE
        jz schedule_switch
        sub r5, 1
        jnz schedule_look
        jmp all_done                      ; nobody left to run

schedule_switch:
        st [current], r6
.ifdef PARAVIRT
        hypercall HC_READ_CR3             ; switch address space (loading cr3 flushes the TLB,
        ld r1, [r6 + P_CR3]               ; so skip it when the process did not change)
        cmp r0, r1
        jz schedule_same_space
        hypercall HC_SET_CR3
.else
        ld r0, [r6 + P_CR3]               ; switch address space (loading cr3 flushes the TLB,
        movrc r1, cr3                     ; so skip it when the process did not change)
        cmp r0, r1
        jz schedule_same_space
        movcr cr3, r0
.endif
schedule_same_space:
        ld r0, [r6 + P_KSTACK]            ; its next trap will push its frame here
.ifdef PARAVIRT
        mov r1, r0
        hypercall HC_STACK_SWITCH
        mov r0, r1
.else
        movcr ksp, r0
.endif
        sub r0, TF_SIZE                   ; and here is the frame its last trap left
        mov sp, r0
        jmp trap_return                   ; pop its registers and iret into it

all_done:
        mov r1, msg_all_done              ; "[kernel] all processes finished (2 exited, 0 killed)"
        call print_str
        ld r1, [exited_count]
        call print_dec
        mov r1, msg_exited_comma
        call print_str
        ld r1, [killed_count]
        call print_dec
        mov r1, msg_killed_end
        call print_str
        mov r0, 0                         ; power off, exit code 0
.ifdef PARAVIRT
        call pv_power_off
.else
        out PORT_POWER, r0
.endif

; ============================================================================ trap entry
; Every trap-table entry points at a three-instruction stub: save r7, put the address of the
; handler in r7, and join trap_common. The CPU has already switched to the kernel stack (from
; ksp) and pushed sp, flags|ring, pc, vector and error code.
trap_divide:          push r7
                      mov r7, handle_divide
                      jmp trap_common
trap_breakpoint:      push r7
                      mov r7, handle_breakpoint
                      jmp trap_common
trap_invalid_opcode:  push r7
                      mov r7, handle_invalid_opcode
                      jmp trap_common
trap_privileged:      push r7
                      mov r7, handle_privileged
                      jmp trap_common
trap_page_fault:      push r7
                      mov r7, handle_page_fault
                      jmp trap_common
trap_alignment:       push r7
                      mov r7, handle_alignment
                      jmp trap_common
trap_timer_balloon:   push r7
                      mov r7, handle_timer_balloon
                      jmp trap_common
trap_timer:           push r7
                      mov r7, handle_timer
                      jmp trap_common
trap_device:          push r7
                      mov r7, handle_device
                      jmp trap_common
trap_syscall:         push r7
                      mov r7, handle_syscall
                      jmp trap_common

; trap_common: save the rest of the registers, so the stack holds the complete trap frame (TF_*)
; of the interrupted code, and call the handler with r7 = the frame.
trap_common:
        push r6
        push r5
        push r4
        push r3
        push r2
        push r1
        push r0
        mov r6, r7                        ; the handler
        mov r7, sp                        ; the frame
        ld r0, [r7 + TF_FLAGS]            ; from the kernel itself? only a page fault on user
        test r0, FLAGS_RING               ; memory is expected there; anything else is a bug
        jnz trap_common_call
        ld r0, [r7 + TF_VECTOR]
        cmp r0, VEC_PAGE_FAULT
        jnz kernel_trap_panic
trap_common_call:
        call r6
trap_exit:
        ld r0, [r7 + TF_FLAGS]            ; back to user mode: switch process if asked to
        test r0, FLAGS_RING
        jz trap_return
        ld r0, [need_resched]
        cmp r0, 0
        jnz schedule
trap_return:
        pop r0                            ; restore the registers from the frame ...
        pop r1
        pop r2
        pop r3
        pop r4
        pop r5
        pop r6
        pop r7
.ifdef PARAVIRT
        hypercall HC_IRET                 ; ... and pc, flags, ring and sp (r0 is left alone)
.else
        iret                              ; ... and pc, flags, ring and sp
.endif

kernel_trap_panic:
        mov r1, msg_kernel_trap           ; "[kernel] panic: trap 13 in the kernel at 0x..."
        call print_str
        ld r1, [r7 + TF_VECTOR]
        call print_dec
        mov r1, msg_in_kernel_at
        call print_str
        ld r1, [r7 + TF_PC]
        call print_hex
        call print_newline
        mov r0, 1
.ifdef PARAVIRT
        call pv_power_off
.else
        out PORT_POWER, r0
.endif

; ============================================================================ trap handlers
; Faults caused by the user program: the process dies, the others go on.
handle_divide:
        mov r1, msg_divide
        jmp kill_current
handle_invalid_opcode:
        mov r1, msg_invalid_opcode
        jmp kill_current
handle_privileged:
        mov r1, msg_privileged
        jmp kill_current
handle_alignment:
        mov r1, msg_alignment
        jmp kill_current

; brk: report it and carry on (the frame's pc is already the next instruction).
handle_breakpoint:
        call print_pid_prefix             ; "[kernel] pid 2"
        mov r1, msg_breakpoint
        call print_str
        ld r1, [r7 + TF_PC]
        sub r1, 8
        call print_hex
        call print_newline
        ret

; The timer: the running process has had its time slice.
handle_timer:
        mov r0, 1
        st [need_resched], r0
        ret

; The timer with a balloon device present: the same, and the balloon driver's poll.
handle_timer_balloon:
        mov r0, 1
        st [need_resched], r0
        jmp balloon_poll

; Console input arrived: echo every waiting byte.
handle_device:
.ifdef PARAVIRT
        mov r1, PORT_CONSOLE_ST
        hypercall HC_IO_IN
.else
        in r0, PORT_CONSOLE_ST
.endif
        cmp r0, 0
        jz handle_device_done
.ifdef PARAVIRT
        mov r1, PORT_CONSOLE
        hypercall HC_IO_IN
        call pv_console_out
.else
        in r0, PORT_CONSOLE
        out PORT_CONSOLE, r0
.endif
        jmp handle_device
handle_device_done:
        ret

; Page fault. cr2 = the address, the error code says why. A missing page inside the heap (below
; the break) or the stack area is not an error: it is demand-zero memory, so map a zeroed frame
; there and return; iret re-executes the instruction, which now succeeds.
handle_page_fault:
.ifdef PARAVIRT
        hypercall HC_READ_CR2
        mov r1, r0
.else
        movrc r1, cr2
.endif
        ld r0, [r7 + TF_ERROR]
        test r0, PF_PRESENT
        jnz page_fault_bad                ; the page is there but forbidden: never fixable
        ld r2, [current]
        cmp r2, 0
        jz page_fault_bad                 ; no process yet
        cmp r1, HEAP_BASE
        jb page_fault_not_heap
        ld r0, [r2 + P_BRK]
        cmp r1, r0
        jb page_fault_demand_zero
page_fault_not_heap:
        cmp r1, STACK_LIMIT
        jb page_fault_bad
        cmp r1, STACK_TOP
        jb page_fault_demand_zero
page_fault_bad:
        ld r0, [r7 + TF_FLAGS]
        test r0, FLAGS_RING
        jz page_fault_in_kernel
        mov r1, msg_page_fault
        jmp kill_current
page_fault_in_kernel:
        ; The kernel touched a bad user address on a process's behalf (write's buffer). If the
        ; code doing it left a recovery address in fault_fixup, resume there instead of crashing.
        ld r0, [fault_fixup]
        cmp r0, 0
        jz kernel_trap_panic
        st [r7 + TF_PC], r0
        mov r0, 0
        st [fault_fixup], r0
        ret
page_fault_demand_zero:
        ld r0, [r2 + P_CR3]               ; map_zero_page(its root table, the faulting address)
        mov r2, r1
        mov r1, r0
        and r1, FRAME_MASK
        call map_zero_page
        cmp r0, 0
        jz page_fault_no_memory
        ld r0, [demand_zero_pages]
        add r0, 1
        st [demand_zero_pages], r0
        ret                               ; iret retries the instruction
page_fault_no_memory:
        mov r1, msg_out_of_memory
        jmp kill_current

; ============================================================================ system calls
; The number is in the saved r0, the arguments in the saved r1-r3; the result goes back into
; the saved r0, which trap_return pops into the user's r0.
handle_syscall:
        ld r0, [r7 + TF_R0]
        cmp r0, SYS_MAX + 1
        jae syscall_unknown               ; unsigned compare: catches "negative" numbers too
        shl r0, 2
        ld r0, [r0 + syscall_table]       ; the function for this number
        cmp r0, 0
        jz syscall_unknown
        ld r1, [r7 + TF_R1]
        ld r2, [r7 + TF_R2]
        ld r3, [r7 + TF_R3]
        call r0
        st [r7 + TF_R0], r0
        ret
syscall_unknown:
        mov r0, 0xffffffff
        st [r7 + TF_R0], r0
        ret

; write(r1 = buffer, r2 = length) -> bytes written, or -1 if the buffer is not user memory.
sys_write:
        cmp r1, USER_BASE                 ; the whole buffer must be in user space: never let a
        jb sys_write_bad                  ; process make the kernel print the kernel's memory
        add r2, r1                        ; r2 = end of the buffer
        jb sys_write_bad                  ; (carry: the end wrapped past 4 GiB)
        mov r0, USER_END
        cmp r0, r2
        jb sys_write_bad                  ; ends past the user area
        mov r0, sys_write_fault           ; reading it may still fault (an unmapped page)
        st [fault_fixup], r0
        mov r3, r1
sys_write_next:
        cmp r3, r2
        jae sys_write_done
        ldb r0, [r3]
.ifdef PARAVIRT
        call pv_console_out
.else
        out PORT_CONSOLE, r0
.endif
        add r3, 1
        jmp sys_write_next
sys_write_done:
        mov r0, 0
        st [fault_fixup], r0
        mov r0, r2
        sub r0, r1                        ; the length
        ret
sys_write_fault:                          ; the page-fault handler resumed us here
sys_write_bad:
        mov r0, 0xffffffff
        ret

; getpid() -> the pid
sys_getpid:
        ld r0, [current]
        ld r0, [r0 + P_PID]
        ret

; yield() -> 0, after the other processes have had a turn
sys_yield:
        mov r0, 1
        st [need_resched], r0
        mov r0, 0
        ret

; exit(r1 = code): "[kernel] pid 1 exited with code 0"; never returns to the process.
sys_exit:
        push r1
        call print_pid_prefix             ; "[kernel] pid 2"
        mov r1, msg_exited
        call print_str
        pop r1
        call print_dec
        call print_newline
        ld r0, [exited_count]
        add r0, 1
        st [exited_count], r0
        jmp end_current_process

; sbrk(r1 = increment) -> the old break, or -1 if the heap would leave [HEAP_BASE, HEAP_LIMIT].
; Nothing is mapped here: the pages arrive one by one, on first touch (handle_page_fault).
sbrk_fail:
        mov r0, 0xffffffff
        ret
sys_sbrk:
        ld r2, [current]
        ld r0, [r2 + P_BRK]               ; the old break: the result
        mov r3, r0
        add r3, r1                        ; the new break (a negative increment shrinks the heap)
        cmp r3, HEAP_BASE
        jb sbrk_fail
        mov r1, HEAP_LIMIT
        cmp r1, r3
        jb sbrk_fail
        st [r2 + P_BRK], r3
        ret

; ============================================================================ console output
; print_str(r1 = NUL-terminated string)
print_str:
        ldb r0, [r1]
        cmp r0, 0
        jz print_str_done
.ifdef PARAVIRT
        call pv_console_out
.else
        out PORT_CONSOLE, r0
.endif
        add r1, 1
        jmp print_str
print_str_done:
        ret

; print_dec(r1 = unsigned number), in decimal: print r1 / 10 first (recursively), then r1 % 10.
print_dec:
        cmp r1, 10
        jb print_dec_digit
        push r1
        div r1, 10
        call print_dec
        pop r1
        mod r1, 10
print_dec_digit:
        add r1, 48                        ; '0'
.ifdef PARAVIRT
        mov r0, r1
        call pv_console_out
.else
        out PORT_CONSOLE, r1
.endif
        ret

; print_hex(r1 = number) as 0x followed by 8 hex digits.
print_hex:
        mov r0, 48                        ; '0'
.ifdef PARAVIRT
        call pv_console_out
.else
        out PORT_CONSOLE, r0
.endif
        mov r0, 120                       ; 'x'
.ifdef PARAVIRT
        call pv_console_out
.else
        out PORT_CONSOLE, r0
.endif
        mov r2, 28                        ; shift of the highest digit
print_hex_digit:
        mov r0, r1
        shr r0, r2
        and r0, 0xf
        cmp r0, 10
        jb print_hex_number
        add r0, 39                        ; 'a' - '0' - 10
print_hex_number:
        add r0, 48
.ifdef PARAVIRT
        call pv_console_out
.else
        out PORT_CONSOLE, r0
.endif
        sub r2, 4
        jge print_hex_digit
        ret

; print_pid_prefix: "[kernel] pid " and the running process's pid.
print_pid_prefix:
        mov r1, msg_pid
        call print_str
        ld r1, [current]
        ld r1, [r1 + P_PID]
        jmp print_dec                     ; (a tail call: print_dec's ret returns for us)

print_newline:
        mov r0, 10
.ifdef PARAVIRT
        call pv_console_out
.else
        out PORT_CONSOLE, r0
.endif
        ret

; panic(r1 = message): something is so wrong the kernel cannot go on; power off with code 1.
out_of_memory:
        mov r1, msg_out_of_memory
panic:
        push r1
        mov r1, msg_panic
        call print_str
        pop r1
        call print_str
        call print_newline
        mov r0, 1
.ifdef PARAVIRT
        call pv_power_off
.else
        out PORT_POWER, r0
.endif

.ifdef PARAVIRT
; ============================================================================ paravirtual helpers
; pv_console_out: print the byte in r0 (io_out to the console port). Changes no register, like the
; out instruction it replaces.
pv_console_out:
        push r0
        push r1
        push r2
        mov r2, r0
        mov r1, PORT_CONSOLE
        hypercall HC_IO_OUT
        pop r2
        pop r1
        pop r0
        ret

; flush_pte_updates: hand the queued page-table writes to the hypervisor, which checks every pair
; (the entry, and the frame a present entry names, must be this VM's memory) and writes them.
; Call it before anything reads the entries: the MMU (before user code runs or cr3 is loaded) or
; map_page's walk. Changes no register.
flush_pte_updates:
        push r0
        push r1
        push r2
        ld r2, [pte_batch_count]
        cmp r2, 0
        jz flush_pte_updates_done
        mov r1, pte_batch
        hypercall HC_MMU_UPDATE           ; r0 = how many pairs it applied
        cmp r0, r2
        jnz flush_pte_updates_refused
        mov r0, 0
        st [pte_batch_count], r0
flush_pte_updates_done:
        pop r2
        pop r1
        pop r0
        ret
flush_pte_updates_refused:
        mov r1, msg_mmu_update_refused
        jmp panic

; pv_power_off: power off with exit code r0 (io_out to the power port). The VM stops here.
pv_power_off:
        mov r2, r0
        mov r1, PORT_POWER
        hypercall HC_IO_OUT
.endif

; ===================================================================================== data
        .align 4
; The trap table: 256 handler addresses, one per vector; 0 = no handler (a trap there would be
; a triple fault). lidt points the CPU at it.
trap_table:
        .word trap_divide                 ; 0   divide by zero
        .space 8                          ; 1-2
        .word trap_breakpoint             ; 3   brk
        .space 8                          ; 4-5
        .word trap_invalid_opcode         ; 6   invalid opcode
        .space 24                         ; 7-12
        .word trap_privileged             ; 13  privileged instruction in ring 3
        .word trap_page_fault             ; 14  page fault
        .space 8                          ; 15-16
        .word trap_alignment              ; 17  misaligned access
        .space 56                         ; 18-31
        .word trap_timer                  ; 32  timer interrupt
        .word trap_device                 ; 33  console input
        .space 376                        ; 34-127
        .word trap_syscall                ; 128 syscall
        .space 508                        ; 129-255

; System calls by number.
syscall_table:
        .word 0                           ; 0   (none)
        .word sys_write                   ; 1
        .word sys_getpid                  ; 2
        .word sys_yield                   ; 3
        .word sys_exit                    ; 4
        .word sys_sbrk                    ; 5

; The process table.
process_table:
        .space MAX_PROCS * P_SIZE
process_table_end:

current:            .word 0               ; process-table entry of the running process (0: none)
need_resched:       .word 0               ; set by the timer, yield and exit: switch on the way out
fault_fixup:        .word 0               ; where to resume if the kernel faults on user memory
zombie_count:       .word 0               ; finished processes whose memory is not freed yet
process_count:      .word 0
module_count:       .word 0
exited_count:       .word 0
killed_count:       .word 0
demand_zero_pages:  .word 0               ; pages handed out by the page-fault handler
memory_top:         .word 0               ; end of the physical memory the kernel uses
free_frames:        .word 0               ; how many frames are on free_stack
boot_free_frames:   .word 0               ; ... and how many there were after boot
kernel_cr3:         .word 0               ; the kernel's own root table (no user part)
.ifdef PARAVIRT
pte_batch_count:    .word 0               ; page-table writes queued for the next mmu_update
pte_batch:          .space PTE_BATCH * 8  ; ... as (entry address, value) pairs
.endif
page_levels:        .word 0               ; page-table levels the MMU walks, from the boot-info block
walk_row:           .word 0               ; the row of walk_rows for page_levels

; How the MMU splits a virtual address (engine/mmu.py split_levels): the 20-bit page number is cut
; into page_levels indexes, as evenly as possible, upper levels wider. Per level, root first: the
; shift and mask that give the index, (va >> shift) & mask. The last level's shift is PAGE_SHIFT.
walk_2:             .word 22, 0x3ff,  12, 0x3ff                        ; 10 + 10 bits (x86)
walk_3:             .word 25, 0x7f,   18, 0x7f,   12, 0x3f             ; 7 + 7 + 6 bits
walk_4:             .word 27, 0x1f,   22, 0x1f,   17, 0x1f,  12, 0x1f  ; 5 + 5 + 5 + 5 bits
; By page_levels. One level would need a linear table of 2^20 entries (4 MiB) per address space,
; more than the 4 MiB the kernel maps: 0, not supported.
walk_rows:          .word 0, 0, walk_2, walk_3, walk_4

msg_banner:         .asciz "[kernel] booting: memory "
msg_banner_modules: .asciz " KiB, modules "
msg_loaded:         .asciz "[kernel] loaded "
msg_as_pid:         .asciz " as pid "
msg_too_many:       .asciz "[kernel] only 8 processes: extra modules ignored\n"
msg_pid:            .asciz "[kernel] pid "
msg_exited:         .asciz " exited with code "
msg_killed:         .asciz " killed: "
msg_at:             .asciz " at "
msg_address:        .asciz " (address "
msg_close:          .asciz ")"
msg_breakpoint:     .asciz " breakpoint at "
msg_divide:         .asciz "divide by zero"
msg_invalid_opcode: .asciz "invalid opcode"
msg_privileged:     .asciz "privileged instruction"
msg_alignment:      .asciz "misaligned access"
msg_page_fault:     .asciz "page fault"
msg_out_of_memory:  .asciz "out of memory"
msg_all_done:       .asciz "[kernel] all processes finished ("
msg_exited_comma:   .asciz " exited, "
msg_killed_end:     .asciz " killed); powering off\n"
msg_panic:          .asciz "[kernel] panic: "
msg_bad_boot_info:  .asciz "no boot-info block at 0x500"
msg_bad_levels:     .asciz "[kernel] cannot run with page_levels "
msg_bad_levels_why: .asciz ": only 2, 3 and 4 are supported (one level needs a 4 MiB table per address space, more than the kernel maps); powering off\n"
msg_kernel_trap:    .asciz "[kernel] panic: trap "
msg_in_kernel_at:   .asciz " in the kernel at "
.ifdef PARAVIRT
msg_mmu_update_refused: .asciz "the hypervisor refused a page-table update"
.endif

        .align 4
balloon_ticks:      .word 0               ; timer ticks since the last poll
balloon_size:       .word 0               ; frames in the balloon (given to the host)

        .align 4096                       ; two page-aligned arrays: pages that stay zero cost a VMM nothing
free_stack:         .space MAX_FRAMES * 4 ; free frames, the next one to hand out on top
balloon_list:       .space MAX_FRAMES * 4 ; frames in the balloon, in the order they went in

        .align 16
boot_stack:
        .space 1024                       ; the boot stack, later the scheduler's stack
boot_stack_top:
kernel_end:
