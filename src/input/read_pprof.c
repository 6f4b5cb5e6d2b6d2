/*
 * read_pprof.c - the reader of pprof profiles (perftools.profiles.Profile, gzipped or plain)
 * through protobuf-c. The count of a sample is its "samples"/"count" value (or a time value
 * divided by the period); each Location gives its Lines innermost first, inlined frames
 * included; a Location with a named Mapping is native code of that object. Sample labels
 * thread_id, thread_name and pid (as mixspy and py-spy write them) give the thread.
 *
 * Every id and string index in the file is checked: a bad one is an error, never a crash.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "input.h"
#include "profile.pb-c.h"

typedef Perftools__Profiles__Profile pp_profile;

static int pp_gunzip(const unsigned char *data, size_t len, struct strbuf *out, struct err *e)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	/* 15 + 32: zlib or gzip header, detected. */
	if (inflateInit2(&z, 15 + 32) != Z_OK)
		return err_set(e, E_INTERNAL, "zlib: inflateInit2 failed");
	unsigned char chunk[65536];
	size_t pos = 0;
	int zr = Z_OK, rc = 0;
	while (zr != Z_STREAM_END) {
		if (z.avail_in == 0 && pos < len) {
			size_t n = len - pos < (1u << 30) ? len - pos : (1u << 30);
			z.next_in = (Bytef *)(data + pos);
			z.avail_in = (uInt)n;
			pos += n;
		}
		z.next_out = chunk;
		z.avail_out = sizeof chunk;
		zr = inflate(&z, Z_NO_FLUSH);
		if (zr != Z_OK && zr != Z_STREAM_END) {
			rc = err_set(e, E_ARG, "not a valid gzip stream (zlib error %d)", zr);
			break;
		}
		size_t have = sizeof chunk - z.avail_out;
		if (out->len + have > INPUT_MAX_BYTES) {
			rc = err_set(e, E_ARG, "decompressed profile is larger than %zu bytes", INPUT_MAX_BYTES);
			break;
		}
		sb_add(out, chunk, have);
		if (zr == Z_OK && have == 0 && z.avail_in == 0 && pos >= len) {
			rc = err_set(e, E_ARG, "truncated gzip stream");
			break;
		}
	}
	inflateEnd(&z);
	return rc;
}

static const char *pp_str(const pp_profile *pr, int64_t i)
{
	return i >= 0 && (uint64_t)i < pr->n_string_table && pr->string_table[i] ? pr->string_table[i] : "";
}

/* id -> index + 1 of an array of messages with ids. */
static void pp_index_put(struct hmap *m, uint64_t id, size_t index)
{
	if (!hmap_get(m, id, NULL))
		hmap_put(m, id, index);
}

static bool pp_index_get(const struct hmap *m, uint64_t id, size_t *index)
{
	uint64_t v;
	if (!hmap_get(m, id, &v))
		return false;
	*index = (size_t)v;
	return true;
}

struct pp_reader {
	struct profile *p;
	const pp_profile *pr;
	struct hmap functions, mappings, locations;
	VEC(uint32_t) pool;     /* frame ids of every location, innermost first */
	size_t *loc_start;      /* per location: start in pool */
	size_t *loc_n;
};

static int pp_locations(struct pp_reader *r, struct err *e)
{
	const pp_profile *pr = r->pr;
	size_t nloc = pr->n_location;
	r->loc_start = xcalloc(nloc ? nloc : 1, sizeof(*r->loc_start));
	r->loc_n = xcalloc(nloc ? nloc : 1, sizeof(*r->loc_n));
	for (size_t i = 0; i < pr->n_function; i++)
		pp_index_put(&r->functions, pr->function[i]->id, i);
	for (size_t i = 0; i < pr->n_mapping; i++)
		pp_index_put(&r->mappings, pr->mapping[i]->id, i);
	for (size_t i = 0; i < nloc; i++) {
		const Perftools__Profiles__Location *loc = pr->location[i];
		pp_index_put(&r->locations, loc->id, i);
		const char *module = NULL;
		size_t mi;
		if (loc->mapping_id && pp_index_get(&r->mappings, loc->mapping_id, &mi)) {
			module = pp_str(pr, pr->mapping[mi]->filename);
		} else if (loc->mapping_id) {
			return err_set(e, E_ARG, "location %llu names an unknown mapping", (unsigned long long)loc->id);
		}
		r->loc_start[i] = r->pool.n;
		for (size_t l = 0; l < loc->n_line; l++) {
			size_t fi;
			if (!pp_index_get(&r->functions, loc->line[l]->function_id, &fi))
				return err_set(e, E_ARG, "location %llu names an unknown function",
					       (unsigned long long)loc->id);
			const Perftools__Profiles__Function *fn = pr->function[fi];
			int64_t line = loc->line[l]->line;
			struct frame f = input_frame(r->p, pp_str(pr, fn->name), pp_str(pr, fn->filename),
						     line > 0 && line < 0x7fffffff ? (int)line : 0, module, loc->address);
			vec_push(&r->pool, profile_frame_id(r->p, &f));
		}
		if (!loc->n_line) {
			/* Not symbolized: the address is all there is. */
			char name[32];
			snprintf(name, sizeof name, "0x%llx", (unsigned long long)loc->address);
			struct frame f = input_frame(r->p, name, "", 0, module, loc->address);
			vec_push(&r->pool, profile_frame_id(r->p, &f));
		}
		r->loc_n[i] = r->pool.n - r->loc_start[i];
	}
	return 0;
}

static uint32_t pp_thread(struct pp_reader *r, const Perftools__Profiles__Sample *s)
{
	const char *tid = NULL, *tname = NULL;
	int pid = 0;
	for (size_t i = 0; i < s->n_label; i++) {
		const char *key = pp_str(r->pr, s->label[i]->key);
		if (!strcmp(key, "thread_id"))
			tid = s->label[i]->str ? pp_str(r->pr, s->label[i]->str) : NULL;
		else if (!strcmp(key, "thread_name"))
			tname = pp_str(r->pr, s->label[i]->str);
		else if (!strcmp(key, "pid") && s->label[i]->num > 0 && s->label[i]->num < 0x7fffffff)
			pid = (int)s->label[i]->num;
	}
	if (tid)
		return input_thread(r->p, pid, tid, tname);
	return profile_thread_id(r->p, pid, 0, 0, tname && *tname ? intern(r->p->strs, tname) : NULL);
}

/* Which value is the sample count, and what to divide it by (a time value over the period). */
static size_t pp_count_index(const pp_profile *pr, double *divide)
{
	*divide = 1;
	for (size_t i = 0; i < pr->n_sample_type; i++)
		if (!strcmp(pp_str(pr, pr->sample_type[i]->unit), "count"))
			return i;
	if (pr->period > 0 && pr->period_type && pr->n_sample_type &&
	    !strcmp(pp_str(pr, pr->sample_type[0]->unit), pp_str(pr, pr->period_type->unit)))
		*divide = (double)pr->period;
	return 0;
}

int input_read_pprof(struct profile *p, const unsigned char *data, size_t len, double time_offset,
		     struct input_info *info, struct err *e)
{
	struct strbuf plain;
	sb_init(&plain);
	if (len >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
		int rc = pp_gunzip(data, len, &plain, e);
		if (rc) {
			sb_free(&plain);
			return rc;
		}
		data = (const unsigned char *)plain.buf;
		len = plain.len;
	}
	pp_profile *pr = perftools__profiles__profile__unpack(NULL, len, data ? data : (const unsigned char *)"");
	sb_free(&plain);
	if (!pr)
		return err_set(e, E_ARG, "not a pprof profile (protobuf decoding failed)");

	struct pp_reader r = { .p = p, .pr = pr };
	hmap_init(&r.functions);
	hmap_init(&r.mappings);
	hmap_init(&r.locations);
	int rc = pp_locations(&r, e);

	if (pr->period_type && pr->period > 0 && !strcmp(pp_str(pr, pr->period_type->unit), "nanoseconds"))
		info->rate = (int)fmin(1e6, fmax(1, nearbyint(1e9 / (double)pr->period)));
	info->duration = pr->duration_nanos > 0 ? (double)pr->duration_nanos / 1e9 : 0;
	info->start_wall = pr->time_nanos > 0 ? (double)pr->time_nanos / 1e9 : 0;

	double divide;
	size_t vi = pp_count_index(pr, &divide);
	VEC(uint32_t) ids = { 0 };
	for (size_t s = 0; !rc && s < pr->n_sample; s++) {
		const Perftools__Profiles__Sample *smp = pr->sample[s];
		if (vi >= smp->n_value || smp->value[vi] <= 0)
			continue;
		uint64_t count = (uint64_t)nearbyint((double)smp->value[vi] / divide);
		if (!count)
			continue;
		/* Locations are leaf first and so are the lines in each: collect, then reverse. */
		ids.n = 0;
		for (size_t l = 0; l < smp->n_location_id; l++) {
			size_t li;
			if (!pp_index_get(&r.locations, smp->location_id[l], &li)) {
				rc = err_set(e, E_ARG, "sample %zu names an unknown location", s);
				break;
			}
			for (size_t k = 0; k < r.loc_n[li]; k++)
				vec_push(&ids, r.pool.v[r.loc_start[li] + k]);
		}
		if (rc)
			break;
		for (size_t a = 0, b = ids.n; a + 1 < b; a++, b--) {
			uint32_t x = ids.v[a];
			ids.v[a] = ids.v[b - 1];
			ids.v[b - 1] = x;
		}
		uint32_t stack = profile_stack_id(p, pp_thread(&r, smp), ids.v, ids.n);
		profile_add_stack_count(p, stack, count, time_offset);
		info->samples += count;
	}
	vec_free(&ids);
	vec_free(&r.pool);
	free(r.loc_start);
	free(r.loc_n);
	hmap_free(&r.functions);
	hmap_free(&r.mappings);
	hmap_free(&r.locations);
	perftools__profiles__profile__free_unpacked(pr, NULL);
	return rc;
}
