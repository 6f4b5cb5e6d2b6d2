/*
 * commands.h - the porcelain: one entry point per mixspy command. Each returns 0 or a negative
 * E_* code with a message; *status is the exit status to use on success (record and top pass on
 * the launched program's exit status).
 */
#ifndef MIXSPY_COMMANDS_H
#define MIXSPY_COMMANDS_H

#include "cli.h"
#include "util/util.h"

int dump_run(const struct config *c, struct err *e);            /* src/dump.c */
int record_run(const struct config *c, int *status, struct err *e);  /* src/record.c */
int top_run(const struct config *c, int *status, struct err *e);     /* src/top.c */
int merge_run(const struct config *c, struct err *e);           /* src/merge_cmd.c */

#endif
