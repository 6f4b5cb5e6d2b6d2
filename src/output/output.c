/*
 * output.c - the table of output formats (names, file extensions, the messages record prints)
 * and output_write, which hands a profile to the writer of the chosen format.
 */
#include <strings.h>

#include "output.h"

struct format_info {
	const char *name;
	const char *ext;
	const char *wrote;
	const char *hint;
	int (*write)(const struct profile *, const struct output_opts *, FILE *, struct err *);
};

static const struct format_info format_table[FORMAT_COUNT] = {
	[FORMAT_FLAMEGRAPH] = { "flamegraph", "svg", "Wrote flamegraph data to '%s'.", NULL, write_flamegraph },
	[FORMAT_RAW] = { "raw", "txt", "Wrote raw flamegraph data to '%s'.",
		"You can use the flamegraph.pl script from https://github.com/brendangregg/flamegraph to generate a SVG",
		write_raw },
	[FORMAT_SPEEDSCOPE] = { "speedscope", "json", "Wrote speedscope file to '%s'.",
		"Visit https://www.speedscope.app/ to view", write_speedscope },
	[FORMAT_CHROMETRACE] = { "chrometrace", "json", "Wrote chrome trace to '%s'.",
		"Visit chrome://tracing or https://ui.perfetto.dev/ to view", write_chrometrace },
	[FORMAT_PPROF] = { "pprof", "pb.gz", "Wrote pprof profile to '%s'.",
		"View it with `go tool pprof -http=: FILE`, or send it to Pyroscope or Parca", write_pprof },
	[FORMAT_PSTATS] = { "pstats", "pstats", "Wrote pstats data to '%s'.",
		"Load it with python -m pstats FILE, or snakeviz FILE", write_pstats },
	[FORMAT_CALLGRIND] = { "callgrind", "callgrind", "Wrote callgrind data to '%s'.",
		"View it with kcachegrind or qcachegrind", write_callgrind },
};

int format_parse(const char *name)
{
	if (!name)
		return -1;
	for (int f = 0; f < FORMAT_COUNT; f++)
		if (format_table[f].name && strcasecmp(name, format_table[f].name) == 0)
			return f;
	return -1;
}

static const struct format_info *format_get(enum format f)
{
	return (unsigned)f < FORMAT_COUNT ? &format_table[f] : NULL;
}

const char *format_name(enum format f)
{
	const struct format_info *i = format_get(f);
	return i ? i->name : "unknown";
}

const char *format_extension(enum format f)
{
	const struct format_info *i = format_get(f);
	return i ? i->ext : "out";
}

const char *format_wrote_message(enum format f)
{
	const struct format_info *i = format_get(f);
	return i ? i->wrote : "Wrote '%s'.";
}

const char *format_hint(enum format f)
{
	const struct format_info *i = format_get(f);
	return i ? i->hint : NULL;
}

int output_write(enum format f, const struct profile *p, const struct output_opts *o, FILE *out, struct err *e)
{
	const struct format_info *i = format_get(f);
	if (!i)
		return err_set(e, E_ARG, "unknown output format %d", (int)f);
	if (!i->write)
		return err_set(e, E_ARG, "output format '%s' is not supported yet", i->name);
	struct output_opts def = { .full_filenames = false, .lineno = true };
	int rc = i->write(p, o ? o : &def, out, e);
	if (rc == 0 && (fflush(out) != 0 || ferror(out)))
		rc = err_set(e, E_IO, "writing %s output failed", i->name);
	return rc;
}
