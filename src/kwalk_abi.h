/*
 * kwalk_abi.h - what the kernel half of the read-in-the-tick (kwalk.bpf.c) and its user half
 * (kwalk.c) exchange: the ranges of memory to copy for one thread, and the record of the copy.
 * Plain fixed-width fields, the same for the BPF target and x86_64 user space.
 */
#ifndef MIXSPY_KWALK_ABI_H
#define MIXSPY_KWALK_ABI_H

#define KWALK_MAX_RANGES 512
#define KWALK_PIECE (32 * 1024)  /* the longest range (a power of two) */
#define KWALK_DATA (64 * 1024)   /* all ranges together, less one byte (a power of two) */

struct kwalk_range {
	unsigned long long addr;
	unsigned int len;        /* at most KWALK_PIECE */
	unsigned int off;        /* where in the record's data: off + len < KWALK_DATA */
};

/* The one thread armed now, and what to copy of it. */
struct kwalk_req {
	unsigned long long seq;
	unsigned int tid;
	unsigned int n;          /* ranges */
	unsigned int used;       /* bytes of data the ranges fill (< KWALK_DATA) */
	unsigned int pad;
	struct kwalk_range r[KWALK_MAX_RANGES];
};

struct kwalk_rec {
	unsigned long long seq;
	unsigned long long t0, t1;   /* bpf_ktime_get_ns at the copy's start and end */
	unsigned long long ok[KWALK_MAX_RANGES / 64];   /* range k copied: bit k % 64 of ok[k / 64] */
	unsigned int tid;
	unsigned int used;
	unsigned char data[KWALK_DATA + KWALK_PIECE];
};

#define KWALK_REC_HEAD ((unsigned long)&((struct kwalk_rec *)0)->data)

#endif
