# mixspy - one Makefile builds everything.
#   make            build ./mixspy (installs missing Debian packages first)
#   make test       unit tests, then integration tests against every interpreter present
#   make demo       profile a bundled workload into demo.svg
#   make bench      benchmarks (prints a table)
#   make bench-slowdown  the 100 Hz slowdowns alone, interleaved, with confidence intervals
#   make install    PREFIX=/usr/local DESTDIR=
#   make clean

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
BUILD := build

PKGS := libunwind-ptrace libunwind-generic libdw libelf capstone libprotobuf-c ncursesw zlib libbpf
CC ?= cc
WARN := -Wall -Wextra -Werror -Wno-unused-parameter
CFLAGS ?= -O2 -g
SAN ?=
ALL_CFLAGS = $(CFLAGS) $(SAN) $(WARN) -std=gnu11 -D_GNU_SOURCE -I. -Isrc -I$(BUILD)/gen \
	$(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm
LDFLAGS ?=

# Every .c under these folders is part of mixspy; main.c is the only one outside the library.
# (*.bpf.c are eBPF programs, built by clang into objects that mixspy carries: see kwalk_obj.S)
LIB_SRC := $(filter-out src/main.c %.bpf.c,$(wildcard src/*.c src/*/*.c src/*/*/*.c unwind/*.c symbolize/*.c cython/*.c))
GEN_SRC := $(BUILD)/gen/profile.pb-c.c
LIB_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRC)) $(BUILD)/gen/profile.pb-c.o $(BUILD)/src/kwalk_obj.o
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))

.PHONY: all deps test-deps test unit integration demo bench bench-slowdown install clean fuzz test-asan test-valgrind
all: mixspy

$(BUILD)/.deps-build: scripts/deps.sh
	@sh scripts/deps.sh build
	@mkdir -p $(BUILD) && touch $@
deps: $(BUILD)/.deps-build
test-deps:
	@sh scripts/deps.sh test

$(BUILD)/gen/profile.pb-c.c: src/output/profile.proto | $(BUILD)/.deps-build
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=src/output --c_out=$(BUILD)/gen src/output/profile.proto
$(BUILD)/gen/profile.pb-c.h: $(BUILD)/gen/profile.pb-c.c
$(BUILD)/gen/profile.pb-c.o: $(BUILD)/gen/profile.pb-c.c
	$(CC) $(CFLAGS) $(SAN) -I$(BUILD)/gen $(shell pkg-config --cflags libprotobuf-c) -c -o $@ $<

$(BUILD)/%.o: %.c $(BUILD)/gen/profile.pb-c.h | $(BUILD)/.deps-build
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

# the kernel half of --bpf's frame walk, linked in whole
$(BUILD)/src/kwalk.bpf.o: src/kwalk.bpf.c src/kwalk_abi.h | $(BUILD)/.deps-build
	@mkdir -p $(dir $@)
	clang -O2 -g -target bpf -mcpu=v3 -I/usr/include/$(shell $(CC) -print-multiarch) -Isrc -c -o $@ $<
$(BUILD)/src/kwalk_obj.o: src/kwalk_obj.S $(BUILD)/src/kwalk.bpf.o
	$(CC) -DKWALK_BPF_OBJ='"$(BUILD)/src/kwalk.bpf.o"' -c -o $@ $<

$(BUILD)/libmixspy.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

mixspy: $(BUILD)/src/main.o $(BUILD)/libmixspy.a
	$(CC) $(SAN) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libmixspy.a tests/unit/unit.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/unit -o $@ $< $(BUILD)/libmixspy.a $(LDFLAGS) $(LDLIBS)

unit: $(UNIT_BIN)
	@fail=0; for t in $(UNIT_BIN); do $$t || fail=1; done; exit $$fail

# Integration tests run with Debian's python3 (pytest); they build tests/native_ext for each
# interpreter they find and run interpreters in parallel.
integration: mixspy test-deps
	sh tests/run_integration.sh

test: test-deps mixspy unit fuzz-corpus integration

demo: mixspy
	sh scripts/demo.sh

bench: mixspy
	@sh scripts/deps.sh bench
	$(MAKE) $(BUILD)/bench/floor
	sh bench/run.sh

# the 100 Hz slowdowns alone, interleaved (sampling on and off every 0.1 s), 60 s per profiler
# and workload, each with a 95% confidence interval (~25 min)
bench-slowdown: mixspy
	@sh scripts/deps.sh bench
	$(MAKE) $(BUILD)/bench/floor
	sh bench/run.sh --slowdown

install: mixspy
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 755 mixspy $(DESTDIR)$(BINDIR)/mixspy
	[ ! -f docs/mixspy.1 ] || install -m 644 docs/mixspy.1 $(DESTDIR)$(MANDIR)/man1/mixspy.1

clean:
	rm -rf $(BUILD) mixspy demo.svg tests/native_ext/build

-include $(shell find $(BUILD) -path $(BUILD)/py314 -prune -o -type f -name '*.d' -print 2>/dev/null)
-include mk/*.mk
