/*
 * upload.h - continuous profiling: send finished time windows of a recording to a
 * Pyroscope-compatible `/ingest` endpoint over plain HTTP/1.1, from a background thread.
 *
 * The sampling loop hands over a window's bytes with uploader_push, which never waits for the
 * network: it only takes a short lock to append to a bounded queue (when the queue is full the
 * oldest window is dropped and counted). The thread posts each window, retrying transient
 * failures (connection errors, timeouts, 408, 429, 5xx) with exponential backoff up to a fixed
 * number of attempts. uploader_finish drains what is left within a deadline and joins.
 */
#ifndef MIXSPY_UPLOAD_H
#define MIXSPY_UPLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/util.h"

struct upload_opts {
	const char *url;          /* http://host[:port][/prefix]; "/ingest" is appended */
	const char *app_name;     /* ".cpu" is appended unless present */
	char *const *tags;        /* "key=value" strings, NULL-terminated (may be NULL) */
	int rate;                 /* sampleRate */
	bool pprof;               /* body is gzipped pprof; otherwise folded text */
	int max_attempts;         /* per window; 0: default (5) */
	double backoff;           /* first retry delay in seconds; 0: default (0.5) */
	size_t queue_max;         /* windows waiting; 0: default (64) */
};

struct upload_stats {
	uint64_t queued;          /* windows handed over */
	uint64_t sent;            /* accepted by the server (2xx) */
	uint64_t failed;          /* gave up after the last attempt, or rejected (4xx) */
	uint64_t dropped;         /* pushed out of a full queue, or left when the deadline passed */
	uint64_t retries;
	char last_error[512];
};

struct uploader;

/* Check the URL, app name and tags (E_ARG with a message) and start the thread. */
int uploader_start(struct uploader **out, const struct upload_opts *o, struct err *e);
/* Queue one window [from, until) (Unix seconds). Takes ownership of body (malloc'd). */
void uploader_push(struct uploader *u, int64_t from, int64_t until, char *body, size_t len);
/* Send what is queued (giving up on what is left after `deadline` seconds), stop the thread,
 * fill *st and free u. */
void uploader_finish(struct uploader *u, double deadline, struct upload_stats *st);

/* Validation used by the command line: 0, or E_ARG with a message. */
int upload_check_url(const char *url, struct err *e);
int upload_check_tag(const char *tag, struct err *e);

#endif
