/*
 * walk.bpf.c - the kernel half of bench/bpf/walk: at each tick of a thread's CPU clock, walk its
 * Python 3.11+ frame chain (thread state -> cframe -> current frame -> previous ...) right there
 * in the interrupt, with the thread standing where the tick caught it, and hand the code and
 * instruction pointers of each frame to user space. No ptrace stop, no resume: what the thread
 * loses is this program's run time, which the kernel counts (kernel.bpf_stats_enabled). The
 * offsets come from user space (mixspy's layout table for the interpreter).
 */
#include <linux/bpf.h>
#include <linux/bpf_perf_event.h>
#include <bpf/bpf_helpers.h>

#define MAX_FRAMES 256   /* a record holds up to MAX_FRAMES - 1 */

struct walk_conf {
	unsigned long long tstate;
	long long tstate_cframe, cframe_current_frame, frame_previous, frame_code, frame_instr;
};

struct walk_rec {
	unsigned long long n;
	unsigned long long frame[MAX_FRAMES][2];   /* code, instruction pointer */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, int);
	__type(value, struct walk_conf);
} conf SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, int);
	__type(value, struct walk_rec);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} records SEC(".maps");

SEC("perf_event")
int walk(struct bpf_perf_event_data *ctx)
{
	int zero = 0;
	struct walk_conf *c = bpf_map_lookup_elem(&conf, &zero);
	struct walk_rec *r = bpf_map_lookup_elem(&scratch, &zero);
	if (!c || !r)
		return 0;
	unsigned long long cframe = 0, f = 0;
	if (bpf_probe_read_user(&cframe, 8, (void *)(c->tstate + c->tstate_cframe)) ||
	    bpf_probe_read_user(&f, 8, (void *)(cframe + c->cframe_current_frame)))
		return 0;
	r->n = 0;
	/* a frame's three fields in one read of the 64 bytes from the lowest of them */
	long long lo = c->frame_code;
	if (c->frame_previous < lo)
		lo = c->frame_previous;
	if (c->frame_instr < lo)
		lo = c->frame_instr;
	unsigned int kc = (unsigned int)(c->frame_code - lo) / 8 & 7, kp = (unsigned int)(c->frame_previous - lo) / 8 & 7,
		     ki = (unsigned int)(c->frame_instr - lo) / 8 & 7;
	for (int i = 0; i < MAX_FRAMES - 1 && f; i++) {
		unsigned long long w[8];
		if (bpf_probe_read_user(w, sizeof w, (void *)(f + lo)))
			break;
		r->frame[i & (MAX_FRAMES - 1)][0] = w[kc];
		r->frame[i & (MAX_FRAMES - 1)][1] = w[ki];
		r->n = i + 1;
		f = w[kp];
	}
	bpf_ringbuf_output(&records, r, 8 + (r->n & (MAX_FRAMES - 1)) * 16, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
