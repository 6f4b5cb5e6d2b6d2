/*
 * pprof.c - the pprof format (perftools.profiles.Profile, gzipped protobuf) through protobuf-c:
 * sample types samples/count and cpu/nanoseconds, one Function per (name, file), one Location
 * per (function, line) for Python-level frames, and for native frames one Mapping per module with
 * Location.address set to the pc. Thread id and name ride along as sample labels.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common.h"
#include "profile.pb-c.h"

typedef Perftools__Profiles__Profile pp_profile;
typedef Perftools__Profiles__ValueType pp_value_type;
typedef Perftools__Profiles__Sample pp_sample;
typedef Perftools__Profiles__Label pp_label;
typedef Perftools__Profiles__Mapping pp_mapping;
typedef Perftools__Profiles__Location pp_location;
typedef Perftools__Profiles__Line pp_line;
typedef Perftools__Profiles__Function pp_function;

struct pp_builder {
	const struct profile *p;
	const struct output_opts *o;
	struct interner *names;          /* every string of the table, interned here */
	VEC(char *) strings;             /* the string table */
	struct hmap string_index;        /* interned pointer -> index */
	VEC(pp_function) functions;      /* id = index + 1 */
	struct hmap function_index;      /* name << 32 | file -> index */
	VEC(pp_mapping) mappings;
	struct hmap mapping_index;       /* filename string -> index */
	VEC(pp_location) locations;
	VEC(pp_line) lines;              /* one per location */
	struct hmap location_index;      /* function << 32 | line -> index (Python-level frames) */
	uint64_t *frame_location;        /* profile frame id -> location id */
};

static int64_t pp_string(struct pp_builder *b, const char *s)
{
	const char *k = intern(b->names, s ? s : "");
	uint64_t idx;
	if (hmap_get(&b->string_index, (uint64_t)(uintptr_t)k, &idx))
		return (int64_t)idx;
	idx = b->strings.n;
	vec_push(&b->strings, (char *)k);
	hmap_put(&b->string_index, (uint64_t)(uintptr_t)k, idx);
	return (int64_t)idx;
}

/* Same as pp_string for text that has to be made valid UTF-8 first (protobuf strings are). */
static int64_t pp_text(struct pp_builder *b, const char *s)
{
	struct strbuf sb;
	sb_init(&sb);
	out_add_utf8(&sb, s);
	int64_t idx = pp_string(b, sb.buf ? sb.buf : "");
	sb_free(&sb);
	return idx;
}

static uint64_t pp_function_id(struct pp_builder *b, const struct frame *f)
{
	int64_t name = pp_text(b, f->name ? f->name : "?");
	int64_t file = pp_text(b, f->file ? f->file : "");
	uint64_t key = ((uint64_t)name << 32) | (uint64_t)file, idx;
	if (hmap_get(&b->function_index, key, &idx))
		return idx + 1;
	pp_function fn = PERFTOOLS__PROFILES__FUNCTION__INIT;
	idx = b->functions.n;
	fn.id = idx + 1;
	fn.name = name;
	fn.system_name = name;
	fn.filename = file;
	vec_push(&b->functions, fn);
	hmap_put(&b->function_index, key, idx);
	return idx + 1;
}

static uint64_t pp_mapping_id(struct pp_builder *b, const char *module)
{
	int64_t file = pp_text(b, module);
	uint64_t idx;
	if (hmap_get(&b->mapping_index, (uint64_t)file, &idx))
		return idx + 1;
	pp_mapping m = PERFTOOLS__PROFILES__MAPPING__INIT;
	idx = b->mappings.n;
	m.id = idx + 1;
	m.filename = file;
	/* We symbolize before writing, so the server need not. */
	m.has_functions = true;
	m.has_filenames = true;
	m.has_line_numbers = true;
	vec_push(&b->mappings, m);
	hmap_put(&b->mapping_index, (uint64_t)file, idx);
	return idx + 1;
}

static uint64_t pp_new_location(struct pp_builder *b, uint64_t function, int64_t line, uint64_t mapping, uint64_t addr)
{
	pp_location loc = PERFTOOLS__PROFILES__LOCATION__INIT;
	pp_line ln = PERFTOOLS__PROFILES__LINE__INIT;
	loc.id = b->locations.n + 1;
	loc.mapping_id = mapping;
	loc.address = addr;
	ln.function_id = function;
	ln.line = line;
	vec_push(&b->locations, loc);
	vec_push(&b->lines, ln);
	return loc.id;
}

static uint64_t pp_location_id(struct pp_builder *b, const struct frame *f)
{
	uint64_t function = pp_function_id(b, f);
	int64_t line = b->o->lineno && f->line > 0 ? f->line : 0;
	if (f->kind == FRAME_NATIVE && f->module && *f->module)
		return pp_new_location(b, function, line, pp_mapping_id(b, f->module), f->addr);
	uint64_t key = (function << 32) | (uint32_t)line, idx;
	if (hmap_get(&b->location_index, key, &idx))
		return idx;
	uint64_t id = pp_new_location(b, function, line, 0, 0);
	hmap_put(&b->location_index, key, id);
	return id;
}

static void pp_builder_free(struct pp_builder *b)
{
	interner_free(b->names);
	vec_free(&b->strings);
	hmap_free(&b->string_index);
	vec_free(&b->functions);
	hmap_free(&b->function_index);
	vec_free(&b->mappings);
	hmap_free(&b->mapping_index);
	vec_free(&b->locations);
	vec_free(&b->lines);
	hmap_free(&b->location_index);
	free(b->frame_location);
}

/* Pointers to each element of an array of n structs of the given size. */
static void **pp_pointers(void *base, size_t n, size_t size)
{
	void **v = xmalloc((n ? n : 1) * sizeof(*v));
	for (size_t i = 0; i < n; i++)
		v[i] = (char *)base + i * size;
	return v;
}

static int pp_gzip_write(const uint8_t *data, size_t len, FILE *out, struct err *e)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	/* windowBits 15 + 16 asks zlib for a gzip wrapper. */
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return err_set(e, E_INTERNAL, "zlib: deflateInit2 failed");
	uint8_t chunk[16384];
	int rc = 0, zr;
	z.next_in = (Bytef *)data;
	z.avail_in = (uInt)len;
	do {
		z.next_out = chunk;
		z.avail_out = sizeof(chunk);
		zr = deflate(&z, Z_FINISH);
		if (zr == Z_STREAM_ERROR) {
			rc = err_set(e, E_INTERNAL, "zlib: deflate failed");
			break;
		}
		size_t have = sizeof(chunk) - z.avail_out;
		if (have && fwrite(chunk, 1, have, out) != have) {
			rc = err_set(e, E_IO, "writing pprof output failed");
			break;
		}
	} while (zr != Z_STREAM_END);
	deflateEnd(&z);
	return rc;
}

int write_pprof(const struct profile *p, const struct output_opts *o, FILE *out, struct err *e)
{
	struct pp_builder b = { .p = p, .o = o };
	b.names = interner_new();
	hmap_init(&b.string_index);
	hmap_init(&b.function_index);
	hmap_init(&b.mapping_index);
	hmap_init(&b.location_index);
	pp_string(&b, "");   /* string_table[0] must be "" */

	int64_t s_samples = pp_string(&b, "samples"), s_count = pp_string(&b, "count");
	int64_t s_cpu = pp_string(&b, "cpu"), s_ns = pp_string(&b, "nanoseconds");
	int64_t s_tid = pp_string(&b, "thread_id"), s_tname = pp_string(&b, "thread_name");
	int64_t s_pid = pp_string(&b, "pid");

	b.frame_location = xcalloc(p->frames.n ? p->frames.n : 1, sizeof(*b.frame_location));
	for (size_t i = 0; i < p->frames.n; i++)
		b.frame_location[i] = pp_location_id(&b, &p->frames.v[i]);

	/* Labels per thread: thread_id (py-spy's rule), thread_name when known, pid. */
	size_t nthreads = p->threads.n;
	pp_label *labels = xcalloc(nthreads * 3 + 1, sizeof(*labels));
	pp_label **label_ptrs = xcalloc(nthreads * 3 + 1, sizeof(*label_ptrs));
	size_t *nlabels = xcalloc(nthreads + 1, sizeof(*nlabels));
	struct strbuf sb;
	sb_init(&sb);
	for (size_t t = 0; t < nthreads; t++) {
		const struct profile_thread *th = &p->threads.v[t];
		pp_label *l = &labels[t * 3];
		size_t n = 0;
		pp_label init = PERFTOOLS__PROFILES__LABEL__INIT;
		sb_reset(&sb);
		out_thread_tid(&sb, th);
		l[n] = init;
		l[n].key = s_tid;
		l[n++].str = pp_string(&b, sb.buf);
		if (th->name) {
			l[n] = init;
			l[n].key = s_tname;
			l[n++].str = pp_text(&b, th->name);
		}
		l[n] = init;
		l[n].key = s_pid;
		l[n++].num = th->pid;
		for (size_t i = 0; i < n; i++)
			label_ptrs[t * 3 + i] = &l[i];
		nlabels[t] = n;
	}
	sb_free(&sb);

	/* One pprof sample per stack; location ids are leaf first. */
	int64_t period = p->rate > 0 ? (int64_t)(1e9 / p->rate) : 10000000;
	size_t nsamples = 0, nlocs = 0;
	for (size_t s = 0; s < p->stacks.n; s++)
		if (p->stacks.v[s].count) {
			nsamples++;
			nlocs += p->stacks.v[s].nframes;
		}
	pp_sample *samples = xcalloc(nsamples + 1, sizeof(*samples));
	uint64_t *loc_ids = xcalloc(nlocs + 1, sizeof(*loc_ids));
	int64_t *values = xcalloc(nsamples * 2 + 1, sizeof(*values));
	size_t k = 0, at = 0;
	for (size_t s = 0; s < p->stacks.n; s++) {
		const struct profile_stack *st = &p->stacks.v[s];
		if (!st->count)
			continue;
		pp_sample init = PERFTOOLS__PROFILES__SAMPLE__INIT;
		pp_sample *smp = &samples[k];
		*smp = init;
		smp->n_location_id = st->nframes;
		smp->location_id = &loc_ids[at];
		for (uint32_t i = 0; i < st->nframes; i++)
			loc_ids[at + i] = b.frame_location[st->frames[st->nframes - 1 - i]];
		at += st->nframes;
		values[2 * k] = (int64_t)st->count;
		values[2 * k + 1] = (int64_t)st->count * period;
		smp->n_value = 2;
		smp->value = &values[2 * k];
		if (st->thread < nthreads) {
			smp->n_label = nlabels[st->thread];
			smp->label = &label_ptrs[st->thread * 3];
		}
		k++;
	}

	pp_value_type vt[3] = {
		PERFTOOLS__PROFILES__VALUE_TYPE__INIT, PERFTOOLS__PROFILES__VALUE_TYPE__INIT,
		PERFTOOLS__PROFILES__VALUE_TYPE__INIT,
	};
	vt[0].type = s_samples;
	vt[0].unit = s_count;
	vt[1].type = s_cpu;
	vt[1].unit = s_ns;
	vt[2].type = s_cpu;
	vt[2].unit = s_ns;
	pp_value_type *vt_ptrs[2] = { &vt[0], &vt[1] };

	for (size_t i = 0; i < b.locations.n; i++) {
		b.locations.v[i].n_line = 1;
		b.locations.v[i].line = NULL;   /* set below, once lines stop moving */
	}
	pp_line **line_ptrs = (pp_line **)pp_pointers(b.lines.v, b.lines.n, sizeof(pp_line));
	for (size_t i = 0; i < b.locations.n; i++)
		b.locations.v[i].line = &line_ptrs[i];

	pp_profile prof = PERFTOOLS__PROFILES__PROFILE__INIT;
	prof.n_sample_type = 2;
	prof.sample_type = vt_ptrs;
	prof.n_sample = nsamples;
	pp_sample **sample_ptrs = (pp_sample **)pp_pointers(samples, nsamples, sizeof(pp_sample));
	prof.sample = sample_ptrs;
	prof.n_mapping = b.mappings.n;
	prof.mapping = (pp_mapping **)pp_pointers(b.mappings.v, b.mappings.n, sizeof(pp_mapping));
	prof.n_location = b.locations.n;
	prof.location = (pp_location **)pp_pointers(b.locations.v, b.locations.n, sizeof(pp_location));
	prof.n_function = b.functions.n;
	prof.function = (pp_function **)pp_pointers(b.functions.v, b.functions.n, sizeof(pp_function));
	prof.n_string_table = b.strings.n;
	prof.string_table = b.strings.v;
	prof.time_nanos = (int64_t)(p->start_wall * 1e9);
	prof.duration_nanos = (int64_t)(p->duration * 1e9);
	prof.period_type = &vt[2];
	prof.period = period;

	size_t len = perftools__profiles__profile__get_packed_size(&prof);
	uint8_t *buf = xmalloc(len ? len : 1);
	perftools__profiles__profile__pack(&prof, buf);
	int rc = pp_gzip_write(buf, len, out, e);

	free(buf);
	free(prof.mapping);
	free(prof.location);
	free(prof.function);
	free(sample_ptrs);
	free(line_ptrs);
	free(samples);
	free(loc_ids);
	free(values);
	free(labels);
	free(label_ptrs);
	free(nlabels);
	pp_builder_free(&b);
	return rc;
}
