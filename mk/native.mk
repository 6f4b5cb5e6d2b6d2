# native.mk - build rules for the native-stack parts: the unwind/symbolize test fixtures (a small C
# program compiled at -O0 and -O2 with -g) and the unwind micro-benchmark (`make unwind-bench`).

FIXTURE_SRC := $(wildcard tests/unit/fixtures/*.c)
FIXTURE_BIN := $(patsubst tests/unit/fixtures/%.c,$(BUILD)/tests/fixtures/%_O0,$(FIXTURE_SRC)) \
	$(patsubst tests/unit/fixtures/%.c,$(BUILD)/tests/fixtures/%_O2,$(FIXTURE_SRC))

$(BUILD)/tests/fixtures/%_O0: tests/unit/fixtures/%.c
	@mkdir -p $(dir $@)
	$(CC) -g -O0 -pthread -o $@ $<

$(BUILD)/tests/fixtures/%_O2: tests/unit/fixtures/%.c
	@mkdir -p $(dir $@)
	$(CC) -g -O2 -pthread -o $@ $<

# The unwind test runs the fixtures; they sit next to it.
$(BUILD)/tests/test_unwind: $(FIXTURE_BIN)

$(BUILD)/bench/unwind_bench: bench/unwind_bench.c $(BUILD)/libmixspy.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libmixspy.a $(LDFLAGS) $(LDLIBS)

# the pause's cost on this machine with nothing read (bench/bench.py prints it beside mixspy's)
$(BUILD)/bench/floor: bench/floor.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $<

.PHONY: unwind-bench
unwind-bench: $(BUILD)/bench/unwind_bench
	$(BUILD)/bench/unwind_bench
