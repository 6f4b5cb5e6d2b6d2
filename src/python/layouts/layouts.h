/*
 * layouts.h - the built-in per-version layout tables, one per supported CPython minor version.
 * Each is defined in its generated pyXY.c; code outside src/python/layouts/ uses py_layout_for()
 * (layout.h) instead of naming them.
 */
#ifndef MIXSPY_PY_LAYOUTS_H
#define MIXSPY_PY_LAYOUTS_H

#include "../layout.h"

extern const struct py_layout py_layout_2_7;
extern const struct py_layout py_layout_3_6;
extern const struct py_layout py_layout_3_7;
extern const struct py_layout py_layout_3_8;
extern const struct py_layout py_layout_3_9;
extern const struct py_layout py_layout_3_10;
extern const struct py_layout py_layout_3_11;
extern const struct py_layout py_layout_3_12;
extern const struct py_layout py_layout_3_13;
extern const struct py_layout py_layout_3_14;

#endif
