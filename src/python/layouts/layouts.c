/*
 * layouts.c - py_layout_for(): picks the built-in layout table (the generated pyXY.c files
 * next to this one) for a CPython major.minor.
 */
#include <stddef.h>

#include "layouts.h"

static const struct py_layout *const known[] = {
	&py_layout_2_7,
	&py_layout_3_6,
	&py_layout_3_7,
	&py_layout_3_8,
	&py_layout_3_9,
	&py_layout_3_10,
	&py_layout_3_11,
	&py_layout_3_12,
	&py_layout_3_13,
	&py_layout_3_14,
};

const struct py_layout *py_layout_for(int major, int minor)
{
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (known[i]->major == major && known[i]->minor == minor)
			return known[i];
	return NULL;
}
