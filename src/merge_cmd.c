/*
 * merge_cmd.c - `mixspy merge` (placeholder until profile readers land).
 */
#include "commands.h"

int merge_run(const struct config *c, struct err *e)
{
	(void)c;
	return err_set(e, E_ARG, "merge is not available in this build yet");
}
