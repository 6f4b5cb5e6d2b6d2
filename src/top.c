/*
 * top.c - `mixspy top` (placeholder until the live view lands).
 */
#include "commands.h"

int top_run(const struct config *c, int *status, struct err *e)
{
	(void)c;
	*status = 0;
	return err_set(e, E_ARG, "top is not available in this build yet");
}
