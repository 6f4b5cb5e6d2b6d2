/*
 * cli.h - the py-spy compatible command line parsed into one struct config.
 *   mixspy record [options] (--pid PID | -- python app.py ...)
 *   mixspy top    [options] (--pid PID | -- python app.py ...)
 *   mixspy dump   [options] --pid PID
 *   mixspy merge  -o OUT [--format F] IN...
 *   mixspy completions SHELL
 */
#ifndef MIXSPY_CLI_H
#define MIXSPY_CLI_H

#include <stdbool.h>
#include <sys/types.h>

#include "output/output.h"
#include "util/util.h"

enum command {
	CMD_NONE = 0,
	CMD_RECORD,
	CMD_TOP,
	CMD_DUMP,
	CMD_MERGE,
	CMD_COMPLETIONS,
	CMD_HELP,       /* help was printed; exit 0 */
	CMD_VERSION,
};

struct config {
	enum command cmd;
	pid_t pid;                /* 0 when launching */
	char **program;           /* argv to launch (NULL-terminated), or NULL */
	int rate;                 /* samples per second (default 100) */
	double duration;          /* seconds; 0 = unlimited */
	enum format format;
	const char *output;       /* NULL: default name */
	bool output_is_default;
	bool subprocesses;
	bool full_filenames;
	bool idle;
	bool gil;
	bool gil_split;           /* --gil-split: GIL state pseudo-frame at the root */
	bool native;
	bool nonblocking;
	bool bpf;                 /* --bpf: frames copied by the eBPF walk (kwalk.h) */
	bool function;            /* aggregate by function first line */
	bool nolineno;
	bool threads;
	bool hideprogress;
	bool capture;
	double delay;             /* top refresh (default 1.0) */
	int locals;               /* dump -l count */
	bool json;
	const char *shell;        /* completions */
	char **inputs;            /* merge inputs (NULL-terminated) */
	const char *title;        /* the whole mixspy command line */
	/* continuous profiling (record) */
	const char *upload;       /* --upload URL: Pyroscope-compatible /ingest endpoint */
	int interval;             /* --interval seconds per uploaded window (default 10) */
	int rotate;               /* --rotate seconds per time-stamped file; 0 = one file */
	const char *app_name;     /* --app-name (default: the program's name or pid) */
	char **tags;              /* --tag KEY=VALUE..., NULL-terminated, or NULL */
};

/* Parse argv. Returns 0, or E_ARG with a message (py-spy's wording where it has one). Help and
 * version requests print and set cmd to CMD_HELP / CMD_VERSION. */
int cli_parse(struct config *c, int argc, char **argv, struct err *e);
void cli_free(struct config *c);
/* Print a completion script for bash, zsh or fish. */
int cli_completions(const char *shell, struct err *e);

#define MIXSPY_VERSION "0.1.0"

#endif
