# writers.mk - checks of the writers with the real clients (speedscope app in headless Chromium,
# jsonschema, go tool pprof, xmllint): good files must pass, corrupted copies must fail.
.PHONY: clients-selftest
clients-selftest: $(BUILD)/tests/test_output test-deps
	@sh tests/clients/setup.sh >/dev/null
	/usr/bin/python3 tests/clients/selftest.py $(BUILD)/tests/test_output
