/* avro_value.c -- Avro bodies checked, and JSON onto libavro-c generic
 * values.
 *
 *   - A bounds-checked walk over an Avro body that rejects anything
 *     libavro-c should not be trusted with (huge lengths, bad indices, deep
 *     nesting, trailing bytes) before avro_value_read() sees it.
 *   - JSON onto a generic value of a writer schema, the writer's defaults
 *     filling the fields the JSON lacks (the encoders' path).
 *
 * In the JSON form of a value a union holding a record is {"RecordName": {...}}
 * (as in Avro's JSON encoding), any other union branch is the bare value.
 * Decoding reads values by field name without JSON (avro_view.c). */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>
#include <jansson.h>

#include "daemon/avro_codec.h"
#include "daemon/avro_internal.h"

/* ------------------------------------------- bounds-checked walk -- */


static int walk_fail(struct walk *w, const char *why) {
        w->why = why;
        return -EBADMSG;
}

static int walk_varint(struct walk *w, int max_bytes, int64_t *out) {
        uint64_t u = 0;

        for (int i = 0;; i++) {
                unsigned char b;

                if (i == max_bytes)
                        return walk_fail(w, "a variable-length integer is too long");
                if (w->p == w->end)
                        return walk_fail(w, "the value is truncated");
                b = *w->p++;
                if (i == 9 && b > 1)
                        return walk_fail(w, "a variable-length integer overflows 64 bits");
                u |= (uint64_t)(b & 0x7f) << (7 * i);
                if (!(b & 0x80))
                        break;
        }
        *out = (int64_t)((u >> 1) ^ (0 - (u & 1)));
        return 0;
}

int mcd_avro_walk_long(struct walk *w, int64_t *out) {
        return walk_varint(w, 10, out);
}

static int walk_skip(struct walk *w, int64_t n) {
        if (n < 0)
                return walk_fail(w, "a length is negative");
        if ((uint64_t)n > (uint64_t)(w->end - w->p))
                return walk_fail(w, "a length runs past the end of the value");
        w->p += n;
        return 0;
}


/* A float (4 bytes) or double (8), little-endian IEEE 754: notes in
 * w->nonfinite when it is NaN or infinite (all exponent bits set). */
static int walk_real(struct walk *w, int size) {
        const unsigned char *p = w->p;
        int r = walk_skip(w, size);

        if (r == 0 && (size == 4 ? (p[3] & 0x7f) == 0x7f && (p[2] & 0x80)
                                 : (p[7] & 0x7f) == 0x7f && (p[6] & 0xf0) == 0xf0))
                w->nonfinite = true;
        return r;
}

/* Array and map blocks: count, [byte size when count < 0], items. */
static int walk_blocks(struct walk *w, avro_schema_t item, bool map, int depth) {
        for (;;) {
                int64_t count, size = -1;
                const unsigned char *start;
                int r;

                if ((r = mcd_avro_walk_long(w, &count)) < 0)
                        return r;
                if (count == 0)
                        return 0;
                if (count < 0) {
                        if (count == INT64_MIN)
                                return walk_fail(w, "a block count is out of range");
                        count = -count;
                        if ((r = mcd_avro_walk_long(w, &size)) < 0)
                                return r;
                        if (size < 0 || (uint64_t)size > (uint64_t)(w->end - w->p))
                                return walk_fail(w, "a block size is negative or runs past the end");
                }
                if ((uint64_t)count > w->items_left)
                        return walk_fail(w, "a block count is larger than the value can hold");
                w->items_left -= (size_t)count;
                start = w->p;
                for (int64_t i = 0; i < count; i++) {
                        int64_t klen;

                        if (map && ((r = mcd_avro_walk_long(w, &klen)) < 0 || (r = walk_skip(w, klen)) < 0))
                                return r;
                        if ((r = mcd_avro_walk_value(w, item, depth + 1)) < 0)
                                return r;
                }
                if (size >= 0 && w->p - start != size)
                        return walk_fail(w, "a block size does not match its items");
        }
}

int mcd_avro_walk_value(struct walk *w, avro_schema_t s, int depth) {
        int64_t n;
        int r;

        switch (avro_typeof(s)) {
        case AVRO_NULL:
                return 0;
        case AVRO_BOOLEAN:
                if (w->p == w->end)
                        return walk_fail(w, "the value is truncated");
                if (*w->p > 1)
                        return walk_fail(w, "a boolean is neither 0 nor 1");
                w->p++;
                return 0;
        case AVRO_INT32:
                if ((r = walk_varint(w, 5, &n)) < 0)
                        return r;
                if (n < INT32_MIN || n > INT32_MAX)
                        return walk_fail(w, "an int is out of range");
                return 0;
        case AVRO_INT64:
                return mcd_avro_walk_long(w, &n);
        case AVRO_FLOAT:
        case AVRO_DOUBLE:
                return walk_real(w, avro_typeof(s) == AVRO_FLOAT ? 4 : 8);
        case AVRO_STRING:
        case AVRO_BYTES:
                if ((r = mcd_avro_walk_long(w, &n)) < 0)
                        return r;
                return walk_skip(w, n);
        case AVRO_FIXED:
                return walk_skip(w, avro_schema_fixed_size(s));
        case AVRO_ENUM:
                if ((r = mcd_avro_walk_long(w, &n)) < 0)
                        return r;
                if (n < 0 || n >= avro_schema_enum_number_of_symbols(s))
                        return walk_fail(w, "an enum index is out of range");
                return 0;
        case AVRO_UNION:
                if ((r = mcd_avro_walk_long(w, &n)) < 0)
                        return r;
                if (n < 0 || (uint64_t)n >= avro_schema_union_size(s))
                        return walk_fail(w, "a union branch index is out of range");
                return mcd_avro_walk_value(w, avro_schema_union_branch(s, (int)n), depth);
        case AVRO_RECORD:
                if (depth >= MAX_DEPTH)
                        return walk_fail(w, "the value nests too deeply");
                for (size_t i = 0; i < avro_schema_record_size(s); i++)
                        if ((r = mcd_avro_walk_value(w, avro_schema_record_field_get_by_index(s, (int)i), depth + 1)) < 0)
                                return r;
                return 0;
        case AVRO_ARRAY:
        case AVRO_MAP:
                if (depth >= MAX_DEPTH)
                        return walk_fail(w, "the value nests too deeply");
                if (avro_typeof(s) == AVRO_ARRAY)
                        return walk_blocks(w, avro_schema_array_items(s), false, depth);
                return walk_blocks(w, avro_schema_map_values(s), true, depth);
        case AVRO_LINK:
                return mcd_avro_walk_value(w, avro_schema_link_target(s), depth);
        }
        return walk_fail(w, "the writer schema has a type the codec does not know");
}

avro_schema_t mcd_avro_deref(avro_schema_t s) {
        while (s && avro_typeof(s) == AVRO_LINK)
                s = avro_schema_link_target(s);
        return s;
}

int mcd_avro_optional(avro_schema_t u, avro_type_t t, int *null_branch, int *value_branch) {
        int nb = -1, vb = -1;

        if (avro_typeof(u) != AVRO_UNION || avro_schema_union_size(u) != 2)
                return -EINVAL;
        for (int i = 0; i < 2; i++) {
                avro_type_t bt = avro_typeof(mcd_avro_deref(avro_schema_union_branch(u, i)));
                if (bt == AVRO_NULL)
                        nb = i;
                else if (bt == t)
                        vb = i;
        }
        if (nb < 0 || vb < 0)
                return -EINVAL;
        *null_branch = nb;
        *value_branch = vb;
        return 0;
}

/* ------------------------------------------- JSON -> generic value -- */

/* Record definition (JSON) of a record schema, looked up by full name, else
 * by unqualified name. */
static json_t *record_def(json_t *index, avro_schema_t s) {
        const char *name = avro_schema_name(s), *ns = avro_schema_namespace(s), *key;
        char *full;
        json_t *def, *x;

        if (!name)
                return NULL;
        full = mcd_avro_full_name(name, ns);
        def = full ? json_object_get(index, full) : NULL;
        free(full);
        if (def)
                return def;
        json_object_foreach(index, key, x)
                if (strcmp(mcd_avro_short_name(key), name) == 0)
                        return x;
        return NULL;
}

/* Field `name` of a record definition, or NULL. */
static json_t *field_def(json_t *record, const char *name) {
        size_t i;
        json_t *f;

        json_array_foreach(json_object_get(record, "fields"), i, f) {
                const char *n = json_string_value(json_object_get(f, "name"));

                if (n && strcmp(n, name) == 0)
                        return f;
        }
        return NULL;
}

struct enc {
        json_t *records;                /* of the writer schema */
        char why[200];
};

static int enc_fail(struct enc *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int enc_fail(struct enc *c, const char *fmt, ...) {
        va_list ap;

        if (c->why[0])
                return -EINVAL;
        va_start(ap, fmt);
        vsnprintf(c->why, sizeof(c->why), fmt, ap);
        va_end(ap);
        return -EINVAL;
}

static int json_to_value(struct enc *c, json_t *j, avro_value_t *v, int depth);

/* Does JSON value j fit schema s (to choose a union branch)? */
static bool json_fits(json_t *j, avro_schema_t s) {
        switch (avro_typeof(s)) {
        case AVRO_NULL:
                return json_is_null(j);
        case AVRO_BOOLEAN:
                return json_is_boolean(j);
        case AVRO_INT32:
        case AVRO_INT64:
                return json_is_integer(j);
        case AVRO_FLOAT:
        case AVRO_DOUBLE:
                return json_is_number(j);
        case AVRO_STRING:
        case AVRO_BYTES:
        case AVRO_FIXED:
                return json_is_string(j);
        case AVRO_ENUM:
                return json_is_string(j) && avro_schema_enum_get_by_name(s, json_string_value(j)) >= 0;
        case AVRO_ARRAY:
                return json_is_array(j);
        case AVRO_RECORD:
        case AVRO_MAP:
                return json_is_object(j);
        case AVRO_UNION:
        case AVRO_LINK:
                break;
        }
        return false;
}

static int union_from_json(struct enc *c, json_t *j, avro_value_t *v, int depth) {
        avro_schema_t us = mcd_avro_deref(avro_value_get_schema(v));
        size_t n = avro_schema_union_size(us);
        avro_value_t branch;

        /* {"RecordName": {...}} names a record branch. */
        if (json_is_object(j) && json_object_size(j) == 1) {
                const char *key = json_object_iter_key(json_object_iter(j));

                for (size_t i = 0; i < n; i++) {
                        avro_schema_t bs = mcd_avro_deref(avro_schema_union_branch(us, (int)i));

                        if (avro_typeof(bs) == AVRO_RECORD &&
                            (strcmp(avro_schema_name(bs), key) == 0 ||
                             strcmp(avro_schema_name(bs), mcd_avro_short_name(key)) == 0)) {
                                if (avro_value_set_branch(v, (int)i, &branch) != 0)
                                        return enc_fail(c, "cannot select union branch %s", key);
                                return json_to_value(c, json_object_get(j, key), &branch, depth + 1);
                        }
                }
        }
        for (size_t i = 0; i < n; i++)
                if (json_fits(j, mcd_avro_deref(avro_schema_union_branch(us, (int)i)))) {
                        if (avro_value_set_branch(v, (int)i, &branch) != 0)
                                return enc_fail(c, "cannot select a union branch");
                        return json_to_value(c, j, &branch, depth + 1);
                }
        return enc_fail(c, "no branch of a union fits the value");
}

static int record_from_json(struct enc *c, json_t *j, avro_value_t *v, int depth) {
        avro_schema_t rs = mcd_avro_deref(avro_value_get_schema(v));
        json_t *def = record_def(c->records, rs);
        size_t n = 0;
        int r;

        if (!json_is_object(j))
                return enc_fail(c, "record %s needs an object", avro_schema_name(rs));
        if (avro_value_get_size(v, &n) != 0)
                return enc_fail(c, "cannot read record %s", avro_schema_name(rs));
        for (size_t i = 0; i < n; i++) {
                avro_value_t child;
                const char *fname = NULL;
                json_t *fj, *fd;

                if (avro_value_get_by_index(v, i, &child, &fname) != 0 || !fname)
                        return enc_fail(c, "cannot read record %s", avro_schema_name(rs));
                fj = json_object_get(j, fname);
                if (!fj) {
                        fd = def ? field_def(def, fname) : NULL;
                        fj = fd ? json_object_get(fd, "default") : NULL;
                }
                if (!fj)
                        return enc_fail(c, "field %s of %s has no value and no default", fname,
                                        avro_schema_name(rs));
                if ((r = json_to_value(c, fj, &child, depth + 1)) < 0)
                        return r;
        }
        return 0;
}

static int array_from_json(struct enc *c, json_t *j, avro_value_t *v, int depth) {
        size_t i;
        json_t *x;
        int r;

        if (!json_is_array(j))
                return enc_fail(c, "an array field needs an array");
        json_array_foreach(j, i, x) {
                avro_value_t child;

                if (avro_value_append(v, &child, NULL) != 0)
                        return -ENOMEM;
                if ((r = json_to_value(c, x, &child, depth + 1)) < 0)
                        return r;
        }
        return 0;
}

static int map_from_json(struct enc *c, json_t *j, avro_value_t *v, int depth) {
        const char *key;
        json_t *x;
        int r;

        if (!json_is_object(j))
                return enc_fail(c, "a map field needs an object");
        json_object_foreach(j, key, x) {
                avro_value_t child;

                if (avro_value_add(v, key, &child, NULL, NULL) != 0)
                        return -ENOMEM;
                if ((r = json_to_value(c, x, &child, depth + 1)) < 0)
                        return r;
        }
        return 0;
}

static int scalar_from_json(struct enc *c, json_t *j, avro_value_t *v, avro_schema_t s) {
        const char *type = avro_schema_type_name(s);

        if (!json_fits(j, s))
                return enc_fail(c, "a value does not fit Avro type %s", type ? type : "?");
        switch (avro_typeof(s)) {
        case AVRO_NULL:
                return avro_value_set_null(v) ? -EINVAL : 0;
        case AVRO_BOOLEAN:
                return avro_value_set_boolean(v, json_is_true(j)) ? -EINVAL : 0;
        case AVRO_INT32:
                if (json_integer_value(j) < INT32_MIN || json_integer_value(j) > INT32_MAX)
                        return enc_fail(c, "a value is out of range for an int");
                return avro_value_set_int(v, (int32_t)json_integer_value(j)) ? -EINVAL : 0;
        case AVRO_INT64:
                return avro_value_set_long(v, json_integer_value(j)) ? -EINVAL : 0;
        case AVRO_FLOAT:
                return avro_value_set_float(v, (float)json_number_value(j)) ? -EINVAL : 0;
        case AVRO_DOUBLE:
                return avro_value_set_double(v, json_number_value(j)) ? -EINVAL : 0;
        case AVRO_STRING:
                return avro_value_set_string_len(v, json_string_value(j), json_string_length(j) + 1) ? -ENOMEM : 0;
        case AVRO_BYTES:
                return avro_value_set_bytes(v, (void *)json_string_value(j), json_string_length(j)) ? -ENOMEM : 0;
        case AVRO_FIXED:
                if ((int64_t)json_string_length(j) != avro_schema_fixed_size(s))
                        return enc_fail(c, "a fixed value has the wrong size");
                return avro_value_set_fixed(v, (void *)json_string_value(j), json_string_length(j)) ? -EINVAL : 0;
        case AVRO_ENUM:
                return avro_value_set_enum(v, avro_schema_enum_get_by_name(s, json_string_value(j))) ? -EINVAL : 0;
        default:
                break;
        }
        return enc_fail(c, "unexpected Avro type %s", type ? type : "?");
}

static int json_to_value(struct enc *c, json_t *j, avro_value_t *v, int depth) {
        avro_schema_t s = mcd_avro_deref(avro_value_get_schema(v));

        if (depth > MAX_DEPTH)
                return enc_fail(c, "the value nests too deeply");
        switch (avro_typeof(s)) {
        case AVRO_UNION:
                return union_from_json(c, j, v, depth);
        case AVRO_RECORD:
                return record_from_json(c, j, v, depth);
        case AVRO_ARRAY:
                return array_from_json(c, j, v, depth);
        case AVRO_MAP:
                return map_from_json(c, j, v, depth);
        default:
                return scalar_from_json(c, j, v, s);
        }
}

int mcd_avro_value_from_json(json_t *records, json_t *j, avro_value_t *v) {
        struct enc c = { .records = records };

        return json_to_value(&c, j, v, 0);
}
