/*
 * main.c - mixspy's entry point: parse the command line, run the command, and print the one line
 * an error deserves. Only main prints errors; everything below returns them as values.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "util/util.h"

static void print_error(const struct err *e)
{
	if (e->code == E_PERM) {
		if (geteuid() != 0) {
			fprintf(stderr, "Permission Denied: Try running again with elevated permissions by going "
					"'sudo env \"PATH=$PATH\" !!'\n");
		} else {
			fprintf(stderr, "Permission Denied: check /proc/sys/kernel/yama/ptrace_scope, and when running in a "
					"container, start it with the SYS_PTRACE capability (docker run --cap-add SYS_PTRACE)\n");
		}
		return;
	}
	if (e->code == E_ARG && strncmp(e->msg, "error:", 6) == 0) {
		fprintf(stderr, "%s\n", e->msg);
		return;
	}
	if (e->code == E_ARG) {
		fprintf(stderr, "%s\n", e->msg);
		return;
	}
	fprintf(stderr, "Error: %s\n", e->msg[0] ? e->msg : "failed");
}

int main(int argc, char **argv)
{
	struct config c;
	struct err e = { 0 };
	/* A closed pipe on stdout must not kill us before the profile is written. */
	signal(SIGPIPE, SIG_IGN);
	int rc = cli_parse(&c, argc, argv, &e);
	if (rc) {
		print_error(&e);
		cli_free(&c);
		/* clap's usage errors ("error: ...") exit 2; py-spy's own checks of flag combinations
		 * ("Can't get native stack traces with the --nonblocking option.") exit 1. */
		return strncmp(e.msg, "error:", 6) == 0 ? 2 : 1;
	}
	int status = 0;
	switch (c.cmd) {
	case CMD_HELP:
	case CMD_VERSION:
		break;
	case CMD_COMPLETIONS:
		rc = cli_completions(c.shell, &e);
		break;
	case CMD_DUMP:
		rc = dump_run(&c, &e);
		break;
	case CMD_RECORD:
		rc = record_run(&c, &status, &e);
		break;
	case CMD_TOP:
		rc = top_run(&c, &status, &e);
		break;
	case CMD_MERGE:
		rc = merge_run(&c, &e);
		break;
	default:
		rc = err_set(&e, E_ARG, "error: no command");
	}
	cli_free(&c);
	if (rc) {
		print_error(&e);
		return e.code == E_ARG ? 2 : 1;
	}
	return status;
}
