/*
 * fake_target.h - a target process made of one memory image, for the fuzzers. Linking
 * fake_target.o instead of src/target.o gives every reader in src/python/ a target whose memory
 * is the fuzzer's input, placed at FAKE_BASE; any read outside it fails as a real one would.
 */
#ifndef MIXSPY_FAKE_TARGET_H
#define MIXSPY_FAKE_TARGET_H

#include <stddef.h>
#include <stdint.h>

#include "target.h"

#define FAKE_BASE 0x10000ull

/* Make t a fake target whose memory is [FAKE_BASE, FAKE_BASE + len) = data. */
void fake_target_init(struct target *t, const uint8_t *data, size_t len);
void fake_target_free(struct target *t);

#endif
