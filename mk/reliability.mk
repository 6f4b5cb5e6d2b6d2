# mk/reliability.mk - fuzzing, sanitizers and valgrind (issue 7).
#
#   make fuzz            build every libFuzzer target and run each for FUZZ_SECONDS (default 60);
#                        new inputs go to build/fuzz/corpus/NAME, crashes to build/fuzz/crash-NAME-*
#   make fuzz-corpus     replay tests/fuzz/corpus/NAME (seeds + kept regression inputs) once: fast,
#                        meant for `make test`
#   make fuzz-merge      minimise build/fuzz/corpus/NAME into tests/fuzz/corpus/NAME
#   make test-asan       mixspy and the unit tests built with ASan+UBSan into build-asan/, run the
#                        unit tests and the fault / bad-input integration tests with that binary
#   make test-valgrind   valgrind over the unit tests and `mixspy record --native -d 2` of the
#                        mixed workload (also with --bpf), then of the GIL contention workload
#                        (Python-only and --native)
#
# The fuzzers link the library objects they exercise, compiled again by clang with
# -fsanitize=fuzzer-no-link,address,undefined; the frame and object fuzzers link
# tests/fuzz/fake_target.o in place of src/target.o, so target memory is the fuzzer's input.

FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_BUILD := $(BUILD)/fuzz
FUZZ_NAMES := linetable pyobj frames cython elf procfs
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS = -O1 -g $(FUZZ_SAN) -Wall -Wextra -Werror -Wno-unused-parameter -std=gnu11 -D_GNU_SOURCE \
	-I. -Isrc -Itests/fuzz -I$(BUILD)/gen $(shell pkg-config --cflags libelf capstone 2>/dev/null)
FUZZ_LIBS = $(shell pkg-config --libs libelf capstone 2>/dev/null)

FUZZ_PY_SRC := src/python/python.c src/python/pyobj.c src/python/linetable.c src/python/debug_offsets.c \
	src/python/locals.c src/python/threadnames.c $(wildcard src/python/layouts/*.c)
FUZZ_UTIL_SRC := src/util/util.c
fuzz_objs = $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(1))

FUZZ_OBJ_linetable := $(call fuzz_objs,src/python/linetable.c)
FUZZ_OBJ_pyobj := $(call fuzz_objs,src/python/pyobj.c $(wildcard src/python/layouts/*.c) $(FUZZ_UTIL_SRC) tests/fuzz/fake_target.c)
FUZZ_OBJ_frames := $(call fuzz_objs,$(FUZZ_PY_SRC) $(FUZZ_UTIL_SRC) symbolize/elf.c tests/fuzz/fake_target.c)
FUZZ_OBJ_cython := $(call fuzz_objs,cython/cython.c $(FUZZ_UTIL_SRC))
FUZZ_OBJ_elf := $(call fuzz_objs,symbolize/elf.c $(FUZZ_UTIL_SRC))
FUZZ_OBJ_procfs := $(call fuzz_objs,$(FUZZ_UTIL_SRC) $(wildcard src/sudo.c))

FUZZ_BINS := $(patsubst %,$(FUZZ_BUILD)/fuzz_%,$(FUZZ_NAMES))

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

define fuzz_bin_rule
$(FUZZ_BUILD)/fuzz_$(1): tests/fuzz/fuzz_$(1).c $(FUZZ_OBJ_$(1))
	@mkdir -p $$(dir $$@)
	$$(FUZZ_CC) $$(FUZZ_CFLAGS) -fsanitize=fuzzer -MMD -MP -o $$@ $$< $$(FUZZ_OBJ_$(1)) $$(FUZZ_LIBS) -lm
endef
$(foreach n,$(FUZZ_NAMES),$(eval $(call fuzz_bin_rule,$(n))))

.PHONY: fuzz-build fuzz fuzz-corpus fuzz-merge test-asan test-valgrind
fuzz-build: $(FUZZ_BINS) fuzz-seeds

# Seeds kept elsewhere in the tree are staged into build/fuzz/seeds/NAME rather than copied into
# tests/fuzz/corpus (the Cython fixture is the unit tests' generated module).
FUZZ_SEED_FILES := cython:tests/unit/data/cypkg/cymini.c
.PHONY: fuzz-seeds
fuzz-seeds:
	@for pair in $(FUZZ_SEED_FILES); do n=$${pair%%:*}; f=$${pair#*:}; \
		mkdir -p $(FUZZ_BUILD)/seeds/$$n; cp $$f $(FUZZ_BUILD)/seeds/$$n/; done

# Each fuzzer in turn, bounded; stops at the first crash (the input is kept in build/fuzz/).
fuzz: fuzz-build
	@for n in $(FUZZ_NAMES); do \
		mkdir -p $(FUZZ_BUILD)/corpus/$$n tests/fuzz/corpus/$$n; \
		echo "fuzz_$$n: $(FUZZ_SECONDS) s"; \
		$(FUZZ_BUILD)/fuzz_$$n -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
			-max_len=65536 -print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/crash-$$n- \
			$(FUZZ_BUILD)/corpus/$$n tests/fuzz/corpus/$$n $$(ls -d $(FUZZ_BUILD)/seeds/$$n 2>/dev/null) \
			2>$(FUZZ_BUILD)/fuzz_$$n.log || \
			{ tail -40 $(FUZZ_BUILD)/fuzz_$$n.log; exit 1; }; \
		grep -E 'stat::number_of_executed_units|stat::new_units_added' $(FUZZ_BUILD)/fuzz_$$n.log; \
	done

# Replay the kept corpus (seeds and regression inputs): every input runs once.
fuzz-corpus: fuzz-build
	@for n in $(FUZZ_NAMES); do \
		[ -d tests/fuzz/corpus/$$n ] || continue; \
		$(FUZZ_BUILD)/fuzz_$$n -runs=0 -timeout=10 -artifact_prefix=$(FUZZ_BUILD)/replay-$$n- tests/fuzz/corpus/$$n \
			$$(ls -d $(FUZZ_BUILD)/seeds/$$n 2>/dev/null) \
			>$(FUZZ_BUILD)/replay_$$n.log 2>&1 || { tail -40 $(FUZZ_BUILD)/replay_$$n.log; exit 1; }; \
		echo "fuzz_$$n: replayed $$(ls tests/fuzz/corpus/$$n | wc -l) inputs"; \
	done

fuzz-merge: fuzz-build
	@for n in $(FUZZ_NAMES); do \
		mkdir -p tests/fuzz/corpus/$$n $(FUZZ_BUILD)/corpus/$$n; \
		$(FUZZ_BUILD)/fuzz_$$n -merge=1 -timeout=10 tests/fuzz/corpus/$$n $(FUZZ_BUILD)/corpus/$$n \
			>$(FUZZ_BUILD)/merge_$$n.log 2>&1 || { tail -20 $(FUZZ_BUILD)/merge_$$n.log; exit 1; }; \
	done

-include $(shell find $(FUZZ_BUILD) -type f -name '*.d' 2>/dev/null)

# ---- sanitizers -----------------------------------------------------------------------------
ASAN_BUILD := build-asan
ASAN_SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ASAN_UNIT := $(patsubst $(BUILD)/%,$(ASAN_BUILD)/%,$(UNIT_BIN))
ASAN_TESTS ?= test_faults.py test_badinput.py test_dump.py test_bpf.py

$(ASAN_BUILD)/mixspy: FORCE_ASAN
	@$(MAKE) --no-print-directory BUILD=$(ASAN_BUILD) SAN="$(ASAN_SAN)" \
		$(ASAN_BUILD)/src/main.o $(ASAN_BUILD)/libmixspy.a $(ASAN_UNIT)
	$(CC) $(ASAN_SAN) $(LDFLAGS) -o $@ $(ASAN_BUILD)/src/main.o $(ASAN_BUILD)/libmixspy.a $(LDLIBS)
.PHONY: FORCE_ASAN
FORCE_ASAN:

test-asan: $(ASAN_BUILD)/mixspy test-deps
	@fail=0; for t in $(ASAN_UNIT); do \
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		$$t || fail=1; done; [ $$fail -eq 0 ]
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		MIXSPY=$(CURDIR)/$(ASAN_BUILD)/mixspy MIXSPY_SANITIZED=1 PYTHONDONTWRITEBYTECODE=1 \
		/usr/bin/python3 -m pytest -n 2 -q -p no:cacheprovider --timeout=300 -rs \
		$(addprefix tests/integration/,$(ASAN_TESTS))

# ---- valgrind -------------------------------------------------------------------------------
VALGRIND := valgrind --error-exitcode=42 --leak-check=full --errors-for-leak-kinds=definite,indirect \
	--show-leak-kinds=definite,indirect --track-fds=no --quiet --suppressions=tests/valgrind.supp
VG_PY ?= /usr/bin/python3

test-valgrind: mixspy $(UNIT_BIN)
	@command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)"; exit 1; }
	@fail=0; for t in $(UNIT_BIN); do $(VALGRIND) $$t >/dev/null || { echo "valgrind: $$t failed"; fail=1; }; done; \
		[ $$fail -eq 0 ]
	@mkdir -p $(BUILD)/valgrind
	sh tests/native_ext/build.sh $(VG_PY) $(BUILD)/valgrind/ext >/dev/null
	$(VALGRIND) ./mixspy record --native -d 2 -r 50 --format raw -o $(BUILD)/valgrind/mixed.txt -- \
		$(VG_PY) tests/native_ext/mixed_native.py --ext $(BUILD)/valgrind/ext --seconds 4
	@test -s $(BUILD)/valgrind/mixed.txt
	@# threads asleep waiting for the GIL: read without a pause, together (Python-only and --native)
	$(VALGRIND) ./mixspy record -d 2 -r 50 --format raw -o $(BUILD)/valgrind/gil.txt -- \
		$(VG_PY) tests/native_ext/gil_contention.py --threads 4 --seconds 4
	$(VALGRIND) ./mixspy record --native --idle -d 2 -r 50 --format raw -o $(BUILD)/valgrind/gil-native.txt -- \
		$(VG_PY) tests/native_ext/gil_contention.py --threads 4 --seconds 4
	@# --bpf --native: the copy in the tick (eBPF), held and walked, registers and stack unwound
	$(VALGRIND) ./mixspy record --bpf --native -d 2 -r 50 --format raw -o $(BUILD)/valgrind/bpf.txt -- \
		$(VG_PY) tests/native_ext/mixed_native.py --ext $(BUILD)/valgrind/ext --seconds 4
	@test -s $(BUILD)/valgrind/bpf.txt
	@# threads that start as others end, on reused thread ids: names, thread states not yet born
	$(VALGRIND) ./mixspy record --threads -d 2 -r 50 --format raw -o $(BUILD)/valgrind/churn.txt -- \
		$(VG_PY) tests/native_ext/thread_churn.py --log $(BUILD)/valgrind/churn.log --seconds 4
	@test -s $(BUILD)/valgrind/gil.txt && test -s $(BUILD)/valgrind/gil-native.txt && \
		grep -q "job-" $(BUILD)/valgrind/churn.txt && echo "test-valgrind: clean"
