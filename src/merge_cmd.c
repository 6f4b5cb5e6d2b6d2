/*
 * merge_cmd.c - `mixspy merge -o OUT [--format F] [--rate R] IN...`: read saved profiles (raw,
 * speedscope or pprof, told apart by content) into one profile and write it in any output format.
 * Sample counts add up exactly: stacks are matched frame by frame and their counts summed.
 *
 * The merged rate is the first input's that records one (pprof, speedscope), else --rate; raw
 * inputs, which record none, are taken at that rate. Timelines follow one another in input order.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "input/input.h"
#include "output/output.h"
#include "profile.h"

int merge_run(const struct config *c, struct err *e)
{
	struct interner *strs = interner_new();
	struct profile p;
	profile_init(&p, strs, c->rate);
	p.title = intern(strs, c->title ? c->title : "mixspy merge");
	int rc = 0, rate = 0;
	double offset = 0, start = 0;
	size_t ninputs = 0;
	for (char **in = c->inputs; in && *in; in++, ninputs++) {
		struct input_info info;
		rc = input_read_file(&p, *in, offset, &info, e);
		if (rc)
			break;
		if (!rate && info.rate > 0)
			rate = info.rate;
		if (info.start_wall > 0 && (start == 0 || info.start_wall < start))
			start = info.start_wall;
		double span = info.duration > 0 ? info.duration
			      : (double)info.samples / (info.rate > 0 ? info.rate : c->rate > 0 ? c->rate : 100);
		offset += span;
		fprintf(stderr, "mixspy> Read %s profile '%s': %llu samples\n", input_format_name(info.format), *in,
			(unsigned long long)info.samples);
	}
	if (!rc) {
		if (rate > 0)
			p.rate = rate;
		p.start_wall = start;
		p.duration = offset;
		bool existed = path_exists(c->output);
		FILE *out = fopen(c->output, "wb");
		if (!out) {
			rc = err_set(e, E_IO, "Failed to create output file '%s': %s", c->output, strerror(errno));
		} else {
			struct output_opts oo = { .full_filenames = c->full_filenames, .lineno = !c->nolineno };
			rc = output_write(c->format, &p, &oo, out, e);
			if (fclose(out) != 0 && !rc)
				rc = err_set(e, E_IO, "Failed to write '%s': %s", c->output, strerror(errno));
			if (rc) {
				remove_new_output(c->output, existed);
			} else {
				fprintf(stderr, "mixspy> Merged %zu profiles. ", ninputs);
				fprintf(stderr, format_wrote_message(c->format), c->output);
				fprintf(stderr, " Samples: %llu\n", (unsigned long long)p.samples);
			}
		}
	}
	profile_free(&p);
	interner_free(strs);
	return rc;
}
