# layouts.mk - regenerate the per-version layout tables (src/python/layouts/pyXY.c) from the
# headers of every interpreter present; see src/python/layouts/README.
.PHONY: layouts
layouts:
	sh src/python/layouts/gen/gen.sh
