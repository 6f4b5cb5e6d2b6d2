/*
 * read_speedscope.c - the reader of speedscope JSON (sampled profiles, as py-spy and mixspy
 * write them, and as other sampled exporters do). Each profile is one thread; its name
 * "[Process P ]Thread T \"name\"" gives pid, thread id and name when it has that shape.
 *
 * Weights are times: the rate is inferred as the smallest whole rate that makes every weight a
 * whole number of samples (1/rate is the weight of a single sample, which every real run has).
 * Weights of unit "none" are sample counts already.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "input.h"
#include "json.h"

#define SS_MAX_RATE 1000000

static double ss_unit_scale(const char *unit, bool *counts)
{
	*counts = false;
	if (!unit || !strcmp(unit, "seconds"))
		return 1.0;
	if (!strcmp(unit, "milliseconds"))
		return 1e-3;
	if (!strcmp(unit, "microseconds"))
		return 1e-6;
	if (!strcmp(unit, "nanoseconds"))
		return 1e-9;
	*counts = true;   /* "none", "bytes": plain weights */
	return 1.0;
}

static bool ss_whole(double x)
{
	double r = nearbyint(x);
	return fabs(x - r) <= 1e-6 * (r > 1 ? r : 1) + 1e-6;
}

/* The smallest rate (1..SS_MAX_RATE) that makes every timed weight whole; 0 when none are timed. */
static int ss_infer_rate(const struct json_doc *d, uint32_t profiles)
{
	double wmin = 0;
	for (uint32_t pr = json_first(d, profiles); pr != JSON_NONE; pr = json_next(d, pr)) {
		bool counts;
		double scale = ss_unit_scale(json_str(d, json_get(d, pr, "unit")), &counts);
		if (counts)
			continue;
		for (uint32_t w = json_first(d, json_get(d, pr, "weights")); w != JSON_NONE; w = json_next(d, w)) {
			double v = json_num(d, w, 0) * scale;
			if (v > 0 && (wmin == 0 || v < wmin))
				wmin = v;
		}
	}
	if (!(wmin > 0))
		return 0;
	for (int k = 1; k <= 64; k++) {
		double r = nearbyint(k / wmin);
		if (r < 1 || r > SS_MAX_RATE)
			break;
		bool ok = true;
		for (uint32_t pr = json_first(d, profiles); ok && pr != JSON_NONE; pr = json_next(d, pr)) {
			bool counts;
			double scale = ss_unit_scale(json_str(d, json_get(d, pr, "unit")), &counts);
			if (counts)
				continue;
			for (uint32_t w = json_first(d, json_get(d, pr, "weights")); ok && w != JSON_NONE;
			     w = json_next(d, w))
				ok = ss_whole(json_num(d, w, 0) * scale * r);
		}
		if (ok)
			return (int)r;
	}
	double r = nearbyint(1 / wmin);
	return r < 1 ? 1 : r > SS_MAX_RATE ? SS_MAX_RATE : (int)r;
}

/* "[Process P ]Thread T \"name\"" -> thread; any other name is a thread of its own. */
static uint32_t ss_thread(struct profile *p, const char *name, uint32_t index)
{
	int pid = 0;
	const char *s = name ? name : "";
	if (!strncmp(s, "Process ", 8)) {
		char *end;
		long v = strtol(s + 8, &end, 10);
		if (end != s + 8 && *end == ' ' && v > 0 && v < 0x7fffffff) {
			pid = (int)v;
			s = end + 1;
		}
	}
	if (!strncmp(s, "Thread ", 7)) {
		const char *tid = s + 7, *sp = strchr(tid, ' ');
		size_t n = sp ? (size_t)(sp - tid) : strlen(tid);
		if (n > 0 && n < 32) {
			char buf[32];
			memcpy(buf, tid, n);
			buf[n] = '\0';
			const char *tname = NULL;
			char *copy = NULL;
			if (sp && sp[1] == '"') {
				size_t m = strlen(sp + 2);
				if (m && sp[2 + m - 1] == '"') {
					copy = xstrndup(sp + 2, m - 1);
					tname = copy;
				}
			}
			uint32_t id = input_thread(p, pid, buf, tname);
			free(copy);
			return id;
		}
	}
	/* Not our shape: a thread per profile, named as the profile. */
	return profile_thread_id(p, pid, (uint64_t)index + 1, 0, *s ? intern(p->strs, name) : NULL);
}

int input_read_speedscope(struct profile *p, const char *data, size_t len, double time_offset,
			  struct input_info *info, struct err *e)
{
	struct json_doc d;
	int rc = json_parse(&d, data, len, e);
	if (rc)
		return rc;
	uint32_t frames = json_get(&d, json_get(&d, 0, "shared"), "frames");
	uint32_t profiles = json_get(&d, 0, "profiles");
	if (json_type_of(&d, frames) != JSON_ARRAY || json_type_of(&d, profiles) != JSON_ARRAY) {
		json_free(&d);
		return err_set(e, E_ARG, "not a speedscope file (no shared.frames or profiles)");
	}

	uint32_t nframes = json_count(&d, frames);
	uint32_t *frame_id = xcalloc(nframes ? nframes : 1, sizeof(*frame_id));
	uint32_t i = 0;
	for (uint32_t f = json_first(&d, frames); f != JSON_NONE; f = json_next(&d, f), i++) {
		double line = json_num(&d, json_get(&d, f, "line"), 0);
		struct frame fr = input_frame(p, json_str(&d, json_get(&d, f, "name")),
					      json_str(&d, json_get(&d, f, "file")),
					      line > 0 && line < 0x7fffffff ? (int)line : 0, NULL, 0);
		frame_id[i] = profile_frame_id(p, &fr);
	}

	int rate = ss_infer_rate(&d, profiles);
	info->rate = rate;
	VEC(uint32_t) ids = { 0 };
	uint32_t index = 0;
	for (uint32_t pr = json_first(&d, profiles); !rc && pr != JSON_NONE; pr = json_next(&d, pr), index++) {
		const char *type = json_str(&d, json_get(&d, pr, "type"));
		if (!type || strcmp(type, "sampled") != 0) {
			rc = err_set(e, E_ARG, "profile %u is of type '%s'; only sampled profiles can be read", index,
				     type ? type : "?");
			break;
		}
		uint32_t samples = json_get(&d, pr, "samples"), weights = json_get(&d, pr, "weights");
		if (json_type_of(&d, samples) != JSON_ARRAY ||
		    (json_type_of(&d, weights) != JSON_ARRAY && json_type_of(&d, weights) != JSON_NULL) ||
		    (json_type_of(&d, weights) == JSON_ARRAY && json_count(&d, weights) != json_count(&d, samples))) {
			rc = err_set(e, E_ARG, "profile %u: samples and weights do not match", index);
			break;
		}
		bool counts;
		double scale = ss_unit_scale(json_str(&d, json_get(&d, pr, "unit")), &counts);
		if (json_type_of(&d, weights) != JSON_ARRAY)
			counts = true;   /* no weights: each sample counts once */
		uint32_t thread = ss_thread(p, json_str(&d, json_get(&d, pr, "name")), index);
		double t = 0;
		uint32_t w = json_first(&d, weights);
		for (uint32_t s = json_first(&d, samples); s != JSON_NONE; s = json_next(&d, s), w = json_next(&d, w)) {
			if (json_type_of(&d, s) != JSON_ARRAY) {
				rc = err_set(e, E_ARG, "profile %u: a sample is not an array of frame indexes", index);
				break;
			}
			ids.n = 0;
			for (uint32_t k = json_first(&d, s); k != JSON_NONE; k = json_next(&d, k)) {
				double fi = json_num(&d, k, -1);
				if (!(fi >= 0 && fi < nframes) || fi != floor(fi)) {
					rc = err_set(e, E_ARG, "profile %u: frame index out of range", index);
					break;
				}
				vec_push(&ids, frame_id[(uint32_t)fi]);
			}
			if (rc)
				break;
			double weight = w == JSON_NONE ? 1.0 : json_num(&d, w, -1);
			if (!(weight >= 0) || weight > 1e15) {
				rc = err_set(e, E_ARG, "profile %u: bad weight", index);
				break;
			}
			double seconds = counts ? 0 : weight * scale;
			double n = counts ? weight : seconds * (rate > 0 ? rate : 1);
			uint64_t count = (uint64_t)nearbyint(n);
			if (count) {
				uint32_t stack = profile_stack_id(p, thread, ids.v, ids.n);
				profile_add_stack_count(p, stack, count, time_offset + t);
				info->samples += count;
			}
			t += counts ? (rate > 0 ? (double)count / rate : 0) : seconds;
		}
		if (t > info->duration)
			info->duration = t;
	}
	vec_free(&ids);
	free(frame_id);
	json_free(&d);
	return rc;
}
