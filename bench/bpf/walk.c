/*
 * walk.c - user half of the eBPF frame walk (walk.bpf.c), for `make bench`: how long a thread
 * stands still when its Python frames are read inside the kernel at a tick of its own CPU clock,
 * against mixspy's ptrace pause. Loads walk.bpf.o, attaches it to a CPU-clock perf event of one
 * thread (a tick every 1/RATE s of its CPU time), reads the records for SECONDS and prints
 *   samples N frames F run_us R
 * (records read, mean frames per record, mean run time of the program per tick in microseconds,
 * from the kernel's own count: kernel.bpf_stats_enabled is turned on for the run and restored).
 *
 *   walk OBJ TID TSTATE RATE SECONDS TSTATE_CFRAME CFRAME_CURRENT_FRAME FRAME_PREVIOUS FRAME_CODE FRAME_INSTR
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct walk_conf {
	unsigned long long tstate;
	long long tstate_cframe, cframe_current_frame, frame_previous, frame_code, frame_instr;
};

static long records, frames;

static int on_record(void *ctx, void *data, size_t len)
{
	(void)ctx;
	if (len >= 8) {
		records++;
		frames += (long)*(unsigned long long *)data;
	}
	return 0;
}

static int stats_enabled(int on)
{
	const char *path = "/proc/sys/kernel/bpf_stats_enabled";
	FILE *f = fopen(path, "r+");
	int was = -1;
	if (!f)
		return -1;
	if (fscanf(f, "%d", &was) != 1)
		was = -1;
	if (on >= 0) {
		rewind(f);
		fprintf(f, "%d\n", on);
	}
	fclose(f);
	return was;
}

int main(int argc, char **argv)
{
	if (argc != 11) {
		fprintf(stderr, "usage: walk OBJ TID TSTATE RATE SECONDS TSTATE_CFRAME CFRAME_CURRENT_FRAME "
				"FRAME_PREVIOUS FRAME_CODE FRAME_INSTR\n");
		return 2;
	}
	int tid = atoi(argv[2]), rate = atoi(argv[4]);
	double secs = atof(argv[5]);
	struct walk_conf c = { strtoull(argv[3], NULL, 0), atoll(argv[6]), atoll(argv[7]), atoll(argv[8]),
			       atoll(argv[9]), atoll(argv[10]) };
	if (tid <= 0 || rate <= 0 || secs <= 0 || !c.tstate) {
		fprintf(stderr, "walk: bad arguments\n");
		return 2;
	}
	libbpf_set_print(NULL);
	struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
	if (!obj || bpf_object__load(obj)) {
		fprintf(stderr, "walk: cannot load %s (eBPF not allowed here?)\n", argv[1]);
		return 1;
	}
	int zero = 0;
	struct bpf_program *prog = bpf_object__find_program_by_name(obj, "walk");
	if (!prog || bpf_map_update_elem(bpf_object__find_map_fd_by_name(obj, "conf"), &zero, &c, 0)) {
		fprintf(stderr, "walk: %s has no walk program or conf map\n", argv[1]);
		return 1;
	}
	struct perf_event_attr a;
	memset(&a, 0, sizeof a);
	a.size = sizeof a;
	a.type = PERF_TYPE_SOFTWARE;
	a.config = PERF_COUNT_SW_CPU_CLOCK;
	a.sample_period = 1000000000ull / (unsigned)rate;
	int fd = (int)syscall(SYS_perf_event_open, &a, tid, -1, -1, 0);
	if (fd < 0) {
		fprintf(stderr, "walk: perf_event_open on %d: %s\n", tid, strerror(errno));
		return 1;
	}
	int was = stats_enabled(1);
	struct bpf_link *link = bpf_program__attach_perf_event(prog, fd);
	struct ring_buffer *rb = ring_buffer__new(bpf_object__find_map_fd_by_name(obj, "records"), on_record, NULL, NULL);
	if (!link || !rb) {
		fprintf(stderr, "walk: cannot attach to %d\n", tid);
		stats_enabled(was);
		return 1;
	}
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		ring_buffer__poll(rb, 50);
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) * 1e-9 < secs);
	bpf_link__destroy(link);
	ring_buffer__poll(rb, 0);
	struct bpf_prog_info info;
	unsigned int len = sizeof info;
	memset(&info, 0, sizeof info);
	bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len);
	stats_enabled(was);
	printf("samples %ld frames %.1f run_us %.2f\n", records, records ? (double)frames / (double)records : 0.0,
	       info.run_cnt ? (double)info.run_time_ns / 1e3 / (double)info.run_cnt : 0.0);
	ring_buffer__free(rb);
	close(fd);
	bpf_object__close(obj);
	return records ? 0 : 1;
}
