/*
 * kwalk_abi.h - what the kernel half of the copy-in-the-tick (kwalk.bpf.c) and its user half
 * (kwalk.c) exchange: the ranges of memory to copy for one thread - each at an address, or at a
 * pointer found in the copy of an earlier range (how a frame chain is followed) - and the record
 * of the copy. Plain fixed-width fields, the same for the BPF target and x86_64 user space.
 */
#ifndef MIXSPY_KWALK_ABI_H
#define MIXSPY_KWALK_ABI_H

#define KWALK_MAX_RANGES 512     /* (a power of two) */
#define KWALK_PIECE (32 * 1024)  /* the longest range (a power of two) */
#define KWALK_DATA (128 * 1024)  /* all ranges together, less one piece (a power of two) */
#define KWALK_BASE_SP (-2)       /* kwalk_range.base: from the thread's user stack pointer */
#define KWALK_NREGS 21           /* x86_64 struct pt_regs, r15 ... ss (user_regs_struct's start) */

struct kwalk_range {
	unsigned long long addr;   /* where; or, from a pointer (base >= 0), added to it */
	unsigned int len;          /* at most KWALK_PIECE */
	unsigned int off;          /* where its bytes go in the record's data: < KWALK_DATA */
	int base;                  /* -1; KWALK_BASE_SP; or an earlier range whose copy holds the
				    * pointer ... */
	unsigned int at;           /* ... this far into it (8-byte aligned in the data) */
	unsigned int pad;
	unsigned long long end;    /* 0; or a range starting below it stops there (the end of
				    * the stack, for a range from sp) */
};

/* The one thread armed now, and what to copy of it. User space writes it in place (the map is
 * mmapped) in this order: arm = 0; wait for busy == 0; the ranges; arm (a release store). A copy
 * takes the arm (compare-and-swap to 0: one copy per arming, whichever program sees the thread
 * first) with busy raised, so the ranges it reads never change under it. */
struct kwalk_req {
	unsigned long long arm;    /* (request seq << 32) | tid; 0: none armed */
	unsigned int busy;         /* copies under way */
	unsigned int n;            /* ranges */
	struct kwalk_range r[KWALK_MAX_RANGES];
};

struct kwalk_rec {
	unsigned long long seq;      /* the request's (arm >> 32) */
	unsigned long long t0, t1;   /* bpf_ktime_get_ns at the copy's start and end */
	unsigned long long ok[KWALK_MAX_RANGES / 64];   /* range k copied: bit k % 64 of ok[k / 64] */
	unsigned long long addr[KWALK_MAX_RANGES];      /* where range k was copied from */
	unsigned long long regs[KWALK_NREGS];           /* the thread's user registers */
	unsigned int tid;
	unsigned int pad;
	unsigned char data[KWALK_DATA + KWALK_PIECE];
};

/* How much of a range of len bytes at addr is copied: it stops at end (when end is not 0 and the
 * range starts below it). Both halves use it: the copy, and the reading of its record. */
static inline unsigned int kwalk_clip(unsigned long long addr, unsigned int len, unsigned long long end)
{
	return end && addr < end && end - addr < len ? (unsigned int)(end - addr) : len;
}

/* Was range k of the request copied? (k masked: the verifier wants the index bounded) */
#define KWALK_OK(r, k) (((r)->ok[((k) / 64) & (KWALK_MAX_RANGES / 64 - 1)] >> ((k) % 64)) & 1)

#endif
