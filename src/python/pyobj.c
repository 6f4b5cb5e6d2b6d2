/*
 * pyobj.c - Python objects read from the target (see pyobj.h): strings, bytes, type names, ints,
 * floats, tuples, lists, sets, dicts of every layout, instance attributes, and py-spy's value reprs
 * for `dump --locals`.
 */
#include "pyobj.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void utf8_put(struct strbuf *sb, uint32_t c)
{
	char b[4];
	if (c < 0x80) {
		sb_addc(sb, (char)c);
	} else if (c < 0x800) {
		b[0] = (char)(0xc0 | (c >> 6));
		b[1] = (char)(0x80 | (c & 0x3f));
		sb_add(sb, b, 2);
	} else if (c < 0x10000) {
		if (c >= 0xd800 && c <= 0xdfff)
			c = 0xfffd;   /* lone surrogates can't be UTF-8 */
		b[0] = (char)(0xe0 | (c >> 12));
		b[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		b[2] = (char)(0x80 | (c & 0x3f));
		sb_add(sb, b, 3);
	} else if (c < 0x110000) {
		b[0] = (char)(0xf0 | (c >> 18));
		b[1] = (char)(0x80 | ((c >> 12) & 0x3f));
		b[2] = (char)(0x80 | ((c >> 6) & 0x3f));
		b[3] = (char)(0x80 | (c & 0x3f));
		sb_add(sb, b, 4);
	} else {
		sb_adds(sb, "\xef\xbf\xbd");
	}
}

static int decode_units(struct strbuf *sb, const uint8_t *data, size_t n, int kind)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t c;
		if (kind == 1)
			c = data[i];
		else if (kind == 2)
			c = (uint32_t)data[2 * i] | (uint32_t)data[2 * i + 1] << 8;
		else
			memcpy(&c, data + 4 * i, 4);
		utf8_put(sb, c);
	}
	return 0;
}

static int read_py2_str(struct py_reader *r, uint64_t addr, struct strbuf *sb)
{
	int64_t size;
	if (target_read(r->t, addr + (uint64_t)r->L->var_ob_size, &size, 8))
		return E_READ;
	if (size < 0 || size > PYOBJ_MAX_STR)
		return E_READ;
	char buf[PYOBJ_MAX_STR];
	if (size && target_read(r->t, addr + (uint64_t)r->L->py2_str_sval, buf, (size_t)size))
		return E_READ;
	sb_add(sb, buf, (size_t)size);
	return 0;
}

static int read_py2_unicode(struct py_reader *r, uint64_t addr, struct strbuf *sb)
{
	int64_t len;
	uint64_t data;
	if (target_read(r->t, addr + (uint64_t)r->L->py2_unicode_length, &len, 8) ||
	    target_read(r->t, addr + (uint64_t)r->L->py2_unicode_str, &data, 8))
		return E_READ;
	if (len < 0 || len > PYOBJ_MAX_STR)
		return E_READ;
	uint8_t *buf = xmalloc((size_t)len * 4 + 1);
	int rc = len ? target_read(r->t, data, buf, (size_t)len * 4) : 0;
	if (!rc)
		decode_units(sb, buf, (size_t)len, 4);   /* the pyenv 2.7 build is UCS4 */
	free(buf);
	return rc ? E_READ : 0;
}

int pyobj_read_str(struct py_reader *r, uint64_t addr, struct strbuf *sb)
{
	const struct py_layout *L = r->L;
	if (!addr)
		return E_READ;
	if (L->strings == PYSTR_PY2) {
		uint64_t type;
		if (target_read(r->t, addr + (uint64_t)L->ob_type, &type, 8))
			return E_READ;
		if (r->type_unicode && type == r->type_unicode)
			return read_py2_unicode(r, addr, sb);
		return read_py2_str(r, addr, sb);
	}
	int64_t length;
	uint32_t state;
	if (target_read(r->t, addr + (uint64_t)L->unicode_length, &length, 8) ||
	    target_read(r->t, addr + (uint64_t)L->unicode_state, &state, 4))
		return E_READ;
	if (length < 0 || length > PYOBJ_MAX_STR)
		return E_READ;
	int kind = (state >> 2) & 7;
	bool compact = (state >> 5) & 1, ascii = (state >> 6) & 1;
	if (kind != 1 && kind != 2 && kind != 4)
		return E_READ;
	if (ascii && kind != 1)
		return E_READ;
	uint64_t data;
	if (compact && ascii)
		data = addr + (uint64_t)L->unicode_ascii_data;
	else if (compact)
		data = addr + (uint64_t)L->unicode_compact_data;
	else if (target_read(r->t, addr + (uint64_t)L->unicode_legacy_data, &data, 8))
		return E_READ;
	size_t nbytes = (size_t)length * (size_t)kind;
	uint8_t stackbuf[1024];
	uint8_t *buf = nbytes <= sizeof stackbuf ? stackbuf : xmalloc(nbytes);
	int rc = nbytes ? target_read(r->t, data, buf, nbytes) : 0;
	if (!rc) {
		if (kind == 1 && ascii) {
			for (size_t i = 0; i < nbytes; i++)
				if (buf[i] >= 0x80)
					rc = E_READ;   /* an "ascii" string with high bytes is garbage */
			if (!rc)
				sb_add(sb, buf, nbytes);
		} else {
			decode_units(sb, buf, (size_t)length, kind);
		}
	}
	if (buf != stackbuf)
		free(buf);
	return rc ? E_READ : 0;
}

int pyobj_read_bytes(struct py_reader *r, uint64_t addr, size_t max, uint8_t **out, size_t *len)
{
	const struct py_layout *L = r->L;
	int64_t size;
	if (target_read(r->t, addr + (uint64_t)L->var_ob_size, &size, 8))
		return E_READ;
	if (size < 0 || (uint64_t)size > max)
		return E_READ;
	uint64_t data = addr + (uint64_t)(L->strings == PYSTR_PY2 ? L->py2_str_sval : L->bytes_sval);
	uint8_t *buf = xmalloc((size_t)size + 1);
	if (size && target_read(r->t, data, buf, (size_t)size)) {
		free(buf);
		return E_READ;
	}
	*out = buf;
	*len = (size_t)size;
	return 0;
}

int pyobj_type_name(struct py_reader *r, uint64_t addr, struct strbuf *sb)
{
	uint64_t type, name;
	char buf[128];
	if (target_read(r->t, addr + (uint64_t)r->L->ob_type, &type, 8) ||
	    target_read(r->t, type + (uint64_t)r->L->type_name, &name, 8) ||
	    target_read_cstr(r->t, name, buf, sizeof buf))
		return E_READ;
	sb_adds(sb, buf);
	return 0;
}

/* ---- small helpers ------------------------------------------------------------------------- */

/* Fields that are the same in every version we support, and so are not in the layout tables. */
#define TYPE_BASICSIZE 32      /* PyTypeObject.tp_basicsize */
#define TYPE_ITEMSIZE 40       /* PyTypeObject.tp_itemsize */
#define SET_USED 24            /* PySetObject.used (2.7 and 3.x) */
#define NUMPY_SCALAR_VALUE 16  /* numpy scalars: obval right after PyObject_HEAD */

#define TPFLAGS_INLINE_VALUES (1ul << 2)   /* 3.13+ */
#define TPFLAGS_MANAGED_DICT (1ul << 4)    /* 3.11+ */

static bool at_least(const struct py_reader *r, int minor)
{
	return r->major == 3 && r->minor >= minor;
}

/* PyHeapTypeObject.ht_cached_keys (3.11+), the shared keys of managed-dict instances. Not in the
 * layout tables; from the headers: 872 in 3.11, 880 in 3.12-3.14. */
static int64_t heap_type_cached_keys(const struct py_reader *r)
{
	return r->minor == 11 ? 872 : 880;
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static void sb_truncate(struct strbuf *sb, size_t len)
{
	if (sb->buf && len <= sb->len) {
		sb->len = len;
		sb->buf[len] = 0;
	}
}

static int read_i64(struct py_reader *r, uint64_t addr, int64_t *v)
{
	return target_read(r->t, addr, v, 8) ? E_READ : 0;
}

int pyobj_type(struct py_reader *r, uint64_t addr, uint64_t *type)
{
	if (!addr || (addr & 7) || target_read_u64(r->t, addr + (uint64_t)r->L->ob_type, type) || !*type ||
	    (*type & 7))
		return E_READ;
	return 0;
}

int pyobj_type_flags(struct py_reader *r, uint64_t type, uint64_t *flags)
{
	return target_read_u64(r->t, type + (uint64_t)r->L->type_flags, flags) ? E_READ : 0;
}

/* ---- numbers ------------------------------------------------------------------------------- */

/* The digits of an int: sign (-1, 0, 1), digit count and up to 3 low digits (30 bits each). */
struct long_parts {
	int sign;
	uint64_t ndigits;
	uint32_t d[3];
};

static int read_long_parts(struct py_reader *r, uint64_t addr, struct long_parts *lp)
{
	const struct py_layout *L = r->L;
	int64_t head;
	memset(lp, 0, sizeof *lp);
	if (read_i64(r, addr + (uint64_t)L->long_size_or_tag, &head))
		return E_READ;
	if (at_least(r, 12)) {
		/* 3.12+: lv_tag = ndigits << 3 | sign bits (0 positive, 1 zero, 2 negative) */
		uint64_t tag = (uint64_t)head;
		int s = (int)(tag & 3);
		if (s == 3)
			return E_READ;
		lp->ndigits = tag >> 3;
		lp->sign = s == 1 ? 0 : s == 2 ? -1 : 1;
		if (lp->sign == 0)
			lp->ndigits = 0;
		else if (lp->ndigits == 0)
			return E_READ;
	} else {
		lp->sign = head < 0 ? -1 : head > 0 ? 1 : 0;
		lp->ndigits = head < 0 ? (uint64_t)(-(head + 1)) + 1 : (uint64_t)head;
	}
	if (lp->ndigits > (1u << 24))
		return E_READ;
	size_t want = lp->ndigits < 3 ? (size_t)lp->ndigits : 3;
	if (want && target_read(r->t, addr + (uint64_t)L->long_digits, lp->d, want * 4))
		return E_READ;
	for (size_t i = 0; i < want; i++)
		if (lp->d[i] >> 30)
			return E_READ;   /* digits are 30 bits: anything else is garbage */
	return 0;
}

int pyobj_read_long(struct py_reader *r, uint64_t addr, int64_t *value, bool *overflow)
{
	uint64_t type, flags;
	*overflow = false;
	if (pyobj_type(r, addr, &type) || pyobj_type_flags(r, type, &flags))
		return E_READ;
	if (r->major == 2 && (flags & PYOBJ_TPFLAGS_INT_SUBCLASS))
		return read_i64(r, addr + (uint64_t)r->L->py2_int_value, value);
	struct long_parts lp;
	if (read_long_parts(r, addr, &lp))
		return E_READ;
	unsigned __int128 mag = 0;
	if (lp.ndigits <= 3)
		for (size_t i = 0; i < lp.ndigits; i++)
			mag |= (unsigned __int128)lp.d[i] << (30 * i);
	unsigned __int128 limit = lp.sign < 0 ? (unsigned __int128)1 << 63 : ((unsigned __int128)1 << 63) - 1;
	if (lp.ndigits > 3 || mag > limit) {
		*overflow = true;
		*value = lp.sign < 0 ? -1 : 1;
		return 0;
	}
	*value = lp.sign < 0 ? (int64_t)(0 - (uint64_t)mag) : (int64_t)mag;
	return 0;
}

int pyobj_read_float(struct py_reader *r, uint64_t addr, double *value)
{
	return target_read(r->t, addr + (uint64_t)r->L->float_value, value, 8) ? E_READ : 0;
}

/* Rust's `{}` for floats: the shortest digits that read back to the same value, written out in
 * full (no exponent), "NaN", "inf", "-inf", "-0". */
void pyobj_format_double(struct strbuf *sb, double v, bool single)
{
	if (isnan(v)) {
		sb_adds(sb, "NaN");
		return;
	}
	if (signbit(v))
		sb_addc(sb, '-');
	v = fabs(v);
	if (isinf(v)) {
		sb_adds(sb, "inf");
		return;
	}
	if (v == 0) {
		sb_addc(sb, '0');
		return;
	}
	char buf[64];
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, sizeof buf, "%.*e", prec - 1, v);
		if (single ? strtof(buf, NULL) == (float)v : strtod(buf, NULL) == v)
			break;
	}
	char digits[32];
	int nd = 0;
	const char *p = buf;
	for (; *p && *p != 'e'; p++)
		if (isdigit((unsigned char)*p) && nd < (int)sizeof digits)
			digits[nd++] = *p;
	int exp = *p == 'e' ? atoi(p + 1) : 0;
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	int point = exp + 1;   /* digits before the decimal point */
	if (point <= 0) {
		sb_adds(sb, "0.");
		for (int i = 0; i < -point; i++)
			sb_addc(sb, '0');
		sb_add(sb, digits, (size_t)nd);
	} else if (point >= nd) {
		sb_add(sb, digits, (size_t)nd);
		for (int i = nd; i < point; i++)
			sb_addc(sb, '0');
	} else {
		sb_add(sb, digits, (size_t)point);
		sb_addc(sb, '.');
		sb_add(sb, digits + point, (size_t)(nd - point));
	}
}

/* ---- sequences and sets -------------------------------------------------------------------- */

int pyobj_read_items(struct py_reader *r, uint64_t addr, size_t max, uint64_t **items, size_t *n)
{
	const struct py_layout *L = r->L;
	uint64_t type, flags, data;
	int64_t size;
	*items = NULL;
	*n = 0;
	if (pyobj_type(r, addr, &type) || pyobj_type_flags(r, type, &flags) ||
	    read_i64(r, addr + (uint64_t)L->var_ob_size, &size))
		return E_READ;
	if (size < 0 || (uint64_t)size > max || size > PYOBJ_MAX_ITEMS)
		return E_READ;
	if (flags & PYOBJ_TPFLAGS_TUPLE_SUBCLASS)
		data = addr + (uint64_t)L->tuple_items;
	else if (flags & PYOBJ_TPFLAGS_LIST_SUBCLASS) {
		if (target_read_u64(r->t, addr + (uint64_t)L->list_items, &data) || (size && !data))
			return E_READ;
	} else
		return E_READ;
	if (!size)
		return 0;
	uint64_t *v = xmalloc((size_t)size * 8);
	if (target_read(r->t, data, v, (size_t)size * 8)) {
		free(v);
		return E_READ;
	}
	*items = v;
	*n = (size_t)size;
	return 0;
}

int pyobj_set_size(struct py_reader *r, uint64_t addr, int64_t *n)
{
	if (read_i64(r, addr + SET_USED, n) || *n < 0 || *n > (int64_t)1 << 40)
		return E_READ;
	return 0;
}

/* ---- dicts --------------------------------------------------------------------------------- */

/* Set up iteration over a keys object (3.6+), with `values` the split-table value array or 0. */
static int dict_iter_keys(struct py_reader *r, uint64_t keys, uint64_t values, struct pyobj_dict_iter *it)
{
	const struct py_layout *L = r->L;
	int64_t nentries;
	if (!keys || (keys & 7) || read_i64(r, keys + (uint64_t)L->dictkeys_nentries, &nentries))
		return E_READ;
	if (nentries < 0 || nentries > PYOBJ_MAX_ITEMS)
		return E_READ;
	if (L->dictkeys_log2_index_bytes >= 0) {
		/* 3.11+: the index table is 1 << dk_log2_index_bytes bytes; dk_kind 0 is general
		 * entries (hash, key, value), 1 (unicode) and 2 (split) are (key, value). */
		uint8_t log2_size, log2_ib, kind;
		if (target_read(r->t, keys + (uint64_t)L->dictkeys_log2_size, &log2_size, 1) ||
		    target_read(r->t, keys + (uint64_t)L->dictkeys_log2_index_bytes, &log2_ib, 1) ||
		    target_read(r->t, keys + (uint64_t)L->dictkeys_kind, &kind, 1))
			return E_READ;
		if (log2_size > 30 || log2_ib > 33 || log2_ib < log2_size || kind > 2)
			return E_READ;
		it->entries = keys + (uint64_t)L->dictkeys_indices + ((uint64_t)1 << log2_ib);
		it->entry_size = (size_t)(kind == 0 ? L->dictkeyentry_size : L->dictunicodeentry_size);
		it->key_off = kind == 0 ? 8 : 0;
		it->value_off = kind == 0 ? 16 : 8;
	} else {
		/* 3.6-3.10: dk_size slots, indices of 1, 2, 4 or 8 bytes by dk_size */
		int64_t size;
		if (read_i64(r, keys + (uint64_t)L->dictkeys_size, &size))
			return E_READ;
		if (size < 1 || size > ((int64_t)1 << 30) || (size & (size - 1)))
			return E_READ;
		uint64_t ix = size <= 0xff ? 1 : size <= 0xffff ? 2 : size <= 0xffffffffll ? 4 : 8;
		it->entries = keys + (uint64_t)L->dictkeys_indices + (uint64_t)size * ix;
		it->entry_size = (size_t)L->dictkeyentry_size;
		it->key_off = 8;
		it->value_off = 16;
	}
	if (it->entry_size != 16 && it->entry_size != 24)
		return E_READ;
	it->values = values;
	it->n = (size_t)nentries;
	return 0;
}

int pyobj_dict_iter_init(struct py_reader *r, uint64_t dict, struct pyobj_dict_iter *it)
{
	const struct py_layout *L = r->L;
	memset(it, 0, sizeof *it);
	if (!dict || (dict & 7))
		return E_READ;
	if (r->major == 2) {
		/* 2.7: ma_mask + 1 slots of (hash, key, value); dummies have a NULL value */
		int64_t mask;
		uint64_t table;
		if (read_i64(r, dict + (uint64_t)L->py2_dict_mask, &mask) ||
		    target_read_u64(r->t, dict + (uint64_t)L->py2_dict_table, &table))
			return E_READ;
		if (mask < 0 || mask >= 4 * PYOBJ_MAX_ITEMS || ((mask + 1) & mask) || !table)
			return E_READ;
		it->entries = table;
		it->entry_size = (size_t)L->dictkeyentry_size;
		it->key_off = 8;
		it->value_off = 16;
		it->n = (size_t)mask + 1;
		return 0;
	}
	if (L->dict_ma_keys < 0)
		return E_READ;
	uint64_t keys, values;
	if (target_read_u64(r->t, dict + (uint64_t)L->dict_ma_keys, &keys) ||
	    target_read_u64(r->t, dict + (uint64_t)L->dict_ma_values, &values))
		return E_READ;
	/* 3.13+: PyDictValues starts with 4 bytes of bookkeeping (padded to 8) before values[] */
	if (values && at_least(r, 13))
		values += 8;
	return dict_iter_keys(r, keys, values, it);
}

int pyobj_dict_iter_next(struct py_reader *r, struct pyobj_dict_iter *it, uint64_t *key, uint64_t *value)
{
	const size_t batch = sizeof it->buf / 24;
	while (it->i < it->n) {
		size_t i = it->i++;
		if (i < it->buf_first || i >= it->buf_first + it->buf_n) {
			size_t cnt = it->n - i < batch ? it->n - i : batch;
			if (target_read(r->t, it->entries + i * it->entry_size, it->buf, cnt * it->entry_size))
				return E_READ;
			it->buf_first = i;
			it->buf_n = cnt;
		}
		const uint8_t *e = it->buf + (i - it->buf_first) * it->entry_size;
		uint64_t k = get_u64(e + it->key_off), v;
		if (!k)
			continue;
		if (it->values) {
			if (target_read_u64(r->t, it->values + i * 8, &v))
				return E_READ;
		} else {
			v = get_u64(e + it->value_off);
		}
		if (!v)
			continue;   /* deleted entry (or 2.7 dummy) */
		if ((k & 7) || (v & 7))
			return E_READ;
		*key = k;
		*value = v;
		return 1;
	}
	return 0;
}

/* Is the object at addr a str equal to s? Compact ASCII strings are checked with one read. */
static int str_equals(struct py_reader *r, uint64_t addr, const char *s, size_t slen, bool *eq)
{
	const struct py_layout *L = r->L;
	*eq = false;
	if (L->strings == PYSTR_PEP393 && slen <= 256) {
		uint8_t buf[128 + 256];
		size_t hdr = (size_t)L->unicode_ascii_data;
		if (hdr <= 128 && !target_read(r->t, addr, buf, hdr + slen)) {
			int64_t length;
			uint32_t state;
			memcpy(&length, buf + L->unicode_length, 8);
			memcpy(&state, buf + L->unicode_state, 4);
			bool compact_ascii = ((state >> 5) & 1) && ((state >> 6) & 1) && ((state >> 2) & 7) == 1;
			if (compact_ascii) {
				*eq = length == (int64_t)slen && memcmp(buf + hdr, s, slen) == 0;
				return 0;
			}
		}
	}
	struct strbuf sb;
	sb_init(&sb);
	int rc = pyobj_read_str(r, addr, &sb);
	if (!rc)
		*eq = sb.len == slen && (slen == 0 || memcmp(sb.buf, s, slen) == 0);
	sb_free(&sb);
	return rc;
}

static int iter_find_str(struct py_reader *r, struct pyobj_dict_iter *it, const char *key, uint64_t *value)
{
	size_t klen = strlen(key);
	uint64_t k, v;
	int rc;
	*value = 0;
	while ((rc = pyobj_dict_iter_next(r, it, &k, &v)) == 1) {
		bool eq;
		if (str_equals(r, k, key, klen, &eq) == 0 && eq) {
			*value = v;
			return 0;
		}
	}
	return rc;
}

int pyobj_dict_get_str(struct py_reader *r, uint64_t dict, const char *key, uint64_t *value)
{
	struct pyobj_dict_iter it;
	*value = 0;
	int rc = pyobj_dict_iter_init(r, dict, &it);
	return rc ? rc : iter_find_str(r, &it, key, value);
}

/* ---- instance attributes ------------------------------------------------------------------- */

/* 3.11+ objects whose type has Py_TPFLAGS_MANAGED_DICT: a dict, or values laid out by the heap
 * type's shared keys. */
static int managed_attr(struct py_reader *r, uint64_t obj, uint64_t type, uint64_t flags, const char *name,
			uint64_t *value)
{
	uint64_t word3, dict = 0, values = 0;
	size_t capacity = PYOBJ_MAX_ITEMS;
	if (obj < 64 || target_read_u64(r->t, obj - 24, &word3))
		return E_READ;
	if (r->minor == 11) {
		/* dict pointer at obj - 3 words, values pointer at obj - 4 words */
		dict = word3;
		if (!dict && target_read_u64(r->t, obj - 32, &values))
			return E_READ;
	} else if (r->minor == 12) {
		/* one word, tagged: bit 0 set means (values - 1) */
		if (word3 & 1)
			values = word3 + 1;
		else
			dict = word3;
	} else {
		/* 3.13+: the dict at obj - 3 words once materialized; before that the values sit
		 * inline after tp_basicsize: capacity, size, embedded, valid, then values[]. */
		dict = word3;
		if (!dict && (flags & TPFLAGS_INLINE_VALUES)) {
			int64_t basicsize;
			uint8_t head[4];
			if (read_i64(r, type + TYPE_BASICSIZE, &basicsize) || basicsize < 16 || basicsize > 4096 ||
			    target_read(r->t, obj + (uint64_t)basicsize, head, 4))
				return E_READ;
			if (head[3]) {
				values = obj + (uint64_t)basicsize + 8;
				capacity = head[0];
			}
		}
	}
	if (dict)
		return pyobj_dict_get_str(r, dict, name, value);
	if (!values)
		return 0;
	uint64_t keys;
	struct pyobj_dict_iter it;
	if (target_read_u64(r->t, type + (uint64_t)heap_type_cached_keys(r), &keys))
		return E_READ;
	memset(&it, 0, sizeof it);
	int rc = dict_iter_keys(r, keys, values, &it);
	if (rc)
		return rc;
	if (it.n > capacity)
		it.n = capacity;
	return iter_find_str(r, &it, name, value);
}

int pyobj_instance_attr(struct py_reader *r, uint64_t obj, const char *name, uint64_t *value)
{
	uint64_t type, flags, dict;
	int64_t dictoffset;
	*value = 0;
	if (pyobj_type(r, obj, &type) || pyobj_type_flags(r, type, &flags))
		return E_READ;
	if (at_least(r, 11) && (flags & TPFLAGS_MANAGED_DICT))
		return managed_attr(r, obj, type, flags, name, value);
	if (read_i64(r, type + (uint64_t)r->L->type_dictoffset, &dictoffset))
		return E_READ;
	if (dictoffset == 0)
		return 0;
	if (dictoffset < 0) {
		/* counted from the end of a variable-size object (as _PyObject_GetDictPtr) */
		int64_t basicsize, itemsize, size;
		if (read_i64(r, type + TYPE_BASICSIZE, &basicsize) || read_i64(r, type + TYPE_ITEMSIZE, &itemsize) ||
		    read_i64(r, obj + (uint64_t)r->L->var_ob_size, &size))
			return E_READ;
		if (size < -(1 << 24) || size > (1 << 24))   /* checked before the negation: INT64_MIN */
			return E_READ;
		if (size < 0)
			size = -size;
		if (basicsize < 0 || basicsize > 4096 || itemsize < 0 || itemsize > 64)
			return E_READ;
		int64_t total = (basicsize + size * itemsize + 7) & ~(int64_t)7;
		dictoffset += total;
	}
	if (dictoffset < 0 || dictoffset > (1 << 20))
		return E_READ;
	if (target_read_u64(r->t, obj + (uint64_t)dictoffset, &dict))
		return E_READ;
	if (!dict)
		return 0;
	return pyobj_dict_get_str(r, dict, name, value);
}

/* ---- reprs --------------------------------------------------------------------------------- */

static int repr_value(struct py_reader *r, uint64_t addr, long max, int depth, struct strbuf *sb);

/* Append s with invalid UTF-8 replaced by U+FFFD (2.7 str is bytes). */
static void add_utf8_clean(struct strbuf *sb, const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
		bool ok = len && i + len <= n;
		for (size_t j = 1; ok && j < len; j++)
			ok = ((unsigned char)s[i + j] >> 6) == 2;
		if (ok) {
			sb_add(sb, s + i, len);
			i += len;
		} else {
			sb_adds(sb, "\xef\xbf\xbd");
			i++;
		}
	}
}

static int repr_str(struct py_reader *r, uint64_t addr, long max, struct strbuf *sb)
{
	struct strbuf raw, esc;
	sb_init(&raw);
	sb_init(&esc);
	int rc = pyobj_read_str(r, addr, &raw);
	if (rc) {
		sb_free(&raw);
		sb_free(&esc);
		return rc;
	}
	/* py-spy's escaping, kept as is: ' becomes \" and a newline becomes \n */
	struct strbuf clean;
	sb_init(&clean);
	add_utf8_clean(&clean, raw.buf ? raw.buf : "", raw.len);
	for (size_t i = 0; i < clean.len; i++) {
		if (clean.buf[i] == '\'')
			sb_adds(&esc, "\\\"");
		else if (clean.buf[i] == '\n')
			sb_adds(&esc, "\\n");
		else
			sb_addc(&esc, clean.buf[i]);
	}
	sb_addc(sb, '"');
	if ((long)esc.len >= max - 5) {
		size_t cut = (size_t)(max - 5);
		while (cut > 0 && ((unsigned char)esc.buf[cut] >> 6) == 2)
			cut--;   /* keep whole UTF-8 characters */
		sb_add(sb, esc.buf, cut);
		sb_adds(sb, "...");
	} else if (esc.len) {
		sb_add(sb, esc.buf, esc.len);
	}
	sb_addc(sb, '"');
	sb_free(&raw);
	sb_free(&clean);
	sb_free(&esc);
	return 0;
}

/* list and tuple: "[a, b, ...]" with the budget shared among the items */
static int repr_items(struct py_reader *r, uint64_t addr, bool list, long max, int depth, struct strbuf *sb)
{
	uint64_t *items;
	size_t n;
	int rc = pyobj_read_items(r, addr, PYOBJ_MAX_ITEMS, &items, &n);
	if (rc)
		return rc;
	sb_addc(sb, list ? '[' : '(');
	long remaining = max - 2;
	for (size_t i = 0; i < n; i++) {
		if (i)
			sb_adds(sb, ", ");
		size_t start = sb->len;
		rc = repr_value(r, items[i], remaining, depth + 1, sb);
		if (rc)
			break;
		remaining -= (long)(sb->len - start) + 2;
		if (remaining <= 5) {
			sb_truncate(sb, start);
			sb_adds(sb, "...");
			break;
		}
	}
	free(items);
	if (!rc)
		sb_addc(sb, list ? ']' : ')');
	return rc;
}

static int repr_dict(struct py_reader *r, uint64_t addr, long max, int depth, struct strbuf *sb)
{
	struct pyobj_dict_iter it;
	int rc = pyobj_dict_iter_init(r, addr, &it);
	if (rc)
		return rc;
	sb_addc(sb, '{');
	long remaining = max - 2;
	uint64_t k, v;
	bool first = true;
	while ((rc = pyobj_dict_iter_next(r, &it, &k, &v)) == 1) {
		if (!first)
			sb_adds(sb, ", ");
		first = false;
		size_t start = sb->len;
		if ((rc = repr_value(r, k, remaining, depth + 1, sb)))
			return rc;
		size_t klen = sb->len - start;
		sb_adds(sb, ": ");
		size_t vstart = sb->len;
		if ((rc = repr_value(r, v, remaining, depth + 1, sb)))
			return rc;
		remaining -= (long)(klen + (sb->len - vstart)) + 4;
		if (remaining <= 5) {
			sb_truncate(sb, start);
			sb_adds(sb, "...");
			break;
		}
	}
	if (rc < 0)
		return rc;
	sb_addc(sb, '}');
	return 0;
}

/* numpy scalars by type name (py-spy #752); false when the name is not one of them. */
static bool repr_numpy(struct py_reader *r, uint64_t addr, const char *tname, struct strbuf *sb, int *rc)
{
	static const struct { const char *name; int size; bool is_signed, is_float; } kinds[] = {
		{ "numpy.bool", 1, false, false },
		{ "numpy.int8", 1, true, false }, { "numpy.int16", 2, true, false },
		{ "numpy.int32", 4, true, false }, { "numpy.int64", 8, true, false },
		{ "numpy.uint8", 1, false, false }, { "numpy.uint16", 2, false, false },
		{ "numpy.uint32", 4, false, false }, { "numpy.uint64", 8, false, false },
		{ "numpy.float32", 4, false, true }, { "numpy.float64", 8, false, true },
	};
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		if (strcmp(tname, kinds[i].name) != 0)
			continue;
		uint8_t b[8] = { 0 };
		*rc = target_read(r->t, addr + NUMPY_SCALAR_VALUE, b, (size_t)kinds[i].size) ? E_READ : 0;
		if (*rc)
			return true;
		if (i == 0) {
			sb_adds(sb, b[0] ? "true" : "false");   /* Rust's bool Display */
		} else if (kinds[i].is_float) {
			if (kinds[i].size == 4) {
				float f;
				memcpy(&f, b, 4);
				pyobj_format_double(sb, f, true);
			} else {
				double d;
				memcpy(&d, b, 8);
				pyobj_format_double(sb, d, false);
			}
		} else if (kinds[i].is_signed) {
			int64_t v = kinds[i].size == 1 ? (int8_t)b[0] : kinds[i].size == 2 ? (int16_t)(b[0] | b[1] << 8)
				  : 0;
			if (kinds[i].size == 4) {
				int32_t x;
				memcpy(&x, b, 4);
				v = x;
			} else if (kinds[i].size == 8) {
				memcpy(&v, b, 8);
			}
			sb_addf(sb, "%lld", (long long)v);
		} else {
			uint64_t v;
			memcpy(&v, b, 8);
			sb_addf(sb, "%llu", (unsigned long long)v);
		}
		return true;
	}
	return false;
}

static void add_int(struct strbuf *sb, const char *tname, int64_t v)
{
	if (strcmp(tname, "bool") == 0)
		sb_adds(sb, v > 0 ? "True" : "False");
	else
		sb_addf(sb, "%lld", (long long)v);
}

static int repr_value(struct py_reader *r, uint64_t addr, long max, int depth, struct strbuf *sb)
{
	if (max <= 5 || depth > PYOBJ_MAX_DEPTH || r->repr_nodes-- <= 0) {
		sb_adds(sb, "...");
		return 0;
	}
	uint64_t type, flags, name;
	char tname[128];
	if (pyobj_type(r, addr, &type) || pyobj_type_flags(r, type, &flags) ||
	    target_read_u64(r->t, type + (uint64_t)r->L->type_name, &name) ||
	    target_read_cstr(r->t, name, tname, sizeof tname))
		return E_READ;
	int rc = 0;
	if (r->major == 2 && (flags & PYOBJ_TPFLAGS_INT_SUBCLASS)) {
		int64_t v;
		if (read_i64(r, addr + (uint64_t)r->L->py2_int_value, &v))
			return E_READ;
		add_int(sb, tname, v);
	} else if (flags & PYOBJ_TPFLAGS_LONG_SUBCLASS) {
		/* as py-spy: more than two 30-bit digits is a "bigint" */
		struct long_parts lp;
		if (read_long_parts(r, addr, &lp))
			return E_READ;
		if (lp.ndigits > 2) {
			sb_adds(sb, lp.sign < 0 ? "-bigint" : "+bigint");
		} else {
			int64_t v = (int64_t)lp.d[0];
			if (lp.ndigits == 2)
				v |= (int64_t)lp.d[1] << 30;
			add_int(sb, tname, lp.sign < 0 ? -v : v);
		}
	} else if ((flags & PYOBJ_TPFLAGS_UNICODE_SUBCLASS) ||
		   (r->major == 2 && (flags & PYOBJ_TPFLAGS_BYTES_SUBCLASS))) {
		rc = repr_str(r, addr, max, sb);
	} else if (flags & PYOBJ_TPFLAGS_DICT_SUBCLASS) {
		if (at_least(r, 6))
			rc = repr_dict(r, addr, max, depth, sb);
		else
			sb_adds(sb, "dict");   /* py-spy doesn't iterate 2.7 dicts in reprs */
	} else if (flags & (PYOBJ_TPFLAGS_LIST_SUBCLASS | PYOBJ_TPFLAGS_TUPLE_SUBCLASS)) {
		rc = repr_items(r, addr, (flags & PYOBJ_TPFLAGS_LIST_SUBCLASS) != 0, max, depth, sb);
	} else if (repr_numpy(r, addr, tname, sb, &rc)) {
		/* done */
	} else if (strcmp(tname, "float") == 0) {
		double d;
		if (pyobj_read_float(r, addr, &d))
			return E_READ;
		pyobj_format_double(sb, d, false);
	} else if (strcmp(tname, "NoneType") == 0) {
		sb_adds(sb, "None");
	} else {
		sb_addf(sb, "<%s at 0x%llx>", tname, (unsigned long long)addr);
	}
	return rc;
}

int pyobj_repr(struct py_reader *r, uint64_t addr, size_t budget, struct strbuf *sb)
{
	size_t start = sb->len;
	long max = budget > (1u << 30) ? (long)(1u << 30) : (long)budget;
	r->repr_nodes = PYOBJ_MAX_REPR_NODES;
	int rc = repr_value(r, addr, max, 0, sb);
	if (rc) {
		sb_truncate(sb, start);
		return rc;
	}
	return 0;
}
