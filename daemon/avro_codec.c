/* avro_codec.c -- the contract's Avro single-object encoding, on libavro-c.
 *
 * Four parts:
 *   1. Parsing Canonical Form and CRC-64-AVRO fingerprints (jansson over the
 *      schema text; libavro-c has neither).
 *   2. A registry of writer schemas indexed by fingerprint.
 *   3. A bounds-checked walk over an Avro body that rejects anything libavro-c
 *      should not be trusted with (huge lengths, bad indices, deep nesting,
 *      trailing bytes) before avro_value_read() sees it.
 *   4. Schema resolution by name: a value decoded with its writer schema is
 *      turned into JSON, the reader schema's defaults fill the fields the
 *      writer lacks, and the JSON is mapped onto the model by field name.
 *      Encoding goes the other way: model -> JSON -> generic value of the
 *      writer schema, with the writer's defaults for fields the model lacks.
 *      libavro-c's resolved reader is not used: it ignores defaults and
 *      crashes when the writer lacks a defaulted field.
 *
 * In the JSON form of a value a union holding a record is {"RecordName": {...}}
 * (as in Avro's JSON encoding), any other union branch is the bare value. */
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
#include "daemon/schemas_embedded.h"
#include "daemon/strbuf.h"

#define SOE_MAGIC0 0xC3
#define SOE_MAGIC1 0x01
#define SOE_HEADER_SIZE 10
#define MAX_DEPTH 128                   /* records, arrays and maps nested in a value; schema nesting */
#define MAX_ITEMS_SLACK 65536           /* array/map items allowed beyond one per byte */
#define RABIN_EMPTY UINT64_C(0xc15d213aa4d7a795)

struct schema_entry {
        enum mcd_avro_kind kind;
        int version;                    /* N of "<Name>.vN.avsc"; 0 when registered */
        uint64_t fp;
        const char *json;               /* the schema text */
        char *owned_json;               /* json, when it is ours to free */
        json_t *root;                   /* parsed schema text */
        json_t *records;                /* full name -> record definition (borrowed from root) */
        avro_schema_t schema;
        avro_value_iface_t *iface;
};

struct mcd_avro {
        struct schema_entry *v;
        size_t n, cap;
        size_t reader[MCD_AVRO__KIND_COUNT];    /* index in v */
};

static const char *const kind_names[MCD_AVRO__KIND_COUNT] = {
        [MCD_AVRO_RELATIONSHIP_EVENT] = "RelationshipEvent",
        [MCD_AVRO_SUBSCRIPTION_EVENT] = "SubscriptionEvent",
        [MCD_AVRO_OUTCOME] = "MultichannelOutcome",
};

static const char *const primitive_names[] = {
        "null", "boolean", "int", "long", "float", "double", "bytes", "string",
};

/* ------------------------------------------------------------ errors -- */

static int fail(struct mcd_avro_error *err, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int fail(struct mcd_avro_error *err, const char *code, const char *fmt, ...) {
        va_list ap;

        if (!err)
                return -EBADMSG;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
        return -EBADMSG;
}

/* ---------------------------------------------------- string builder -- */

/* A JSON string literal: only '"', '\\' and control characters escaped,
 * everything else as raw UTF-8 ([STRINGS] of the canonical form). */
static void sb_json_string(struct mcd_strbuf *b, const char *s) {
        mcd_sb_putn(b, "\"", 1);
        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;
                char esc[8];

                if (c == '"' || c == '\\') {
                        esc[0] = '\\';
                        esc[1] = (char)c;
                        mcd_sb_putn(b, esc, 2);
                } else if (c < 0x20) {
                        snprintf(esc, sizeof(esc), "\\u%04x", c);
                        mcd_sb_puts(b, esc);
                } else
                        mcd_sb_putn(b, s, 1);
        }
        mcd_sb_putn(b, "\"", 1);
}

/* ------------------------------------------------- names, namespaces -- */

static bool is_primitive(const char *s) {
        for (size_t i = 0; i < sizeof(primitive_names) / sizeof(primitive_names[0]); i++)
                if (strcmp(s, primitive_names[i]) == 0)
                        return true;
        return false;
}

static bool is_named_type(const char *t) {
        return strcmp(t, "record") == 0 || strcmp(t, "error") == 0 || strcmp(t, "enum") == 0 ||
               strcmp(t, "fixed") == 0;
}

/* Full name of `name` seen in namespace `ns` (NULL or "" for none). */
static char *full_name(const char *name, const char *ns) {
        size_t n;
        char *s;

        if (strchr(name, '.') || !ns || !*ns)
                return strdup(name);
        n = strlen(ns) + 1 + strlen(name) + 1;
        s = malloc(n);
        if (s)
                snprintf(s, n, "%s.%s", ns, name);
        return s;
}

/* The namespace part of a full name, as a heap string ("" for none). */
static char *namespace_of(const char *fullname) {
        const char *dot = strrchr(fullname, '.');

        return dot ? strndup(fullname, (size_t)(dot - fullname)) : strdup("");
}

static const char *short_name(const char *fullname) {
        const char *dot = strrchr(fullname, '.');

        return dot ? dot + 1 : fullname;
}

/* Full name of a named type definition in enclosing namespace ns. */
static char *definition_name(json_t *def, const char *ns) {
        const char *name = json_string_value(json_object_get(def, "name"));
        json_t *jns = json_object_get(def, "namespace");

        if (!name)
                return NULL;
        if (json_is_string(jns))
                ns = json_string_value(jns);
        return full_name(name, ns);
}

/* ------------------------------------------- Parsing Canonical Form -- */

struct pcf {
        struct mcd_strbuf out;
        json_t *defined;                /* full names already written out */
        int error;
};

static void pcf_schema(struct pcf *c, json_t *s, const char *ns, int depth);

static void pcf_reference(struct pcf *c, const char *name, const char *ns) {
        char *full;

        if (is_primitive(name)) {
                sb_json_string(&c->out, name);
                return;
        }
        full = full_name(name, ns);
        if (!full) {
                c->error = -ENOMEM;
                return;
        }
        /* A short name that is not defined in this namespace but is in the
         * null namespace refers to the latter. */
        if (!strchr(name, '.') && !json_object_get(c->defined, full) && json_object_get(c->defined, name))
                sb_json_string(&c->out, name);
        else
                sb_json_string(&c->out, full);
        free(full);
}

static void pcf_fields(struct pcf *c, json_t *fields, const char *ns, int depth) {
        size_t i;
        json_t *f;

        if (!json_is_array(fields)) {
                c->error = -EINVAL;
                return;
        }
        mcd_sb_puts(&c->out, ",\"fields\":[");
        json_array_foreach(fields, i, f) {
                const char *fname = json_string_value(json_object_get(f, "name"));

                if (!fname || !json_object_get(f, "type")) {
                        c->error = -EINVAL;
                        return;
                }
                mcd_sb_puts(&c->out, i ? ",{\"name\":" : "{\"name\":");
                sb_json_string(&c->out, fname);
                mcd_sb_puts(&c->out, ",\"type\":");
                pcf_schema(c, json_object_get(f, "type"), ns, depth + 1);
                mcd_sb_puts(&c->out, "}");
        }
        mcd_sb_puts(&c->out, "]");
}

static void pcf_symbols(struct pcf *c, json_t *symbols) {
        size_t i;
        json_t *sym;

        if (!json_is_array(symbols)) {
                c->error = -EINVAL;
                return;
        }
        mcd_sb_puts(&c->out, ",\"symbols\":[");
        json_array_foreach(symbols, i, sym) {
                if (!json_is_string(sym)) {
                        c->error = -EINVAL;
                        return;
                }
                if (i)
                        mcd_sb_puts(&c->out, ",");
                sb_json_string(&c->out, json_string_value(sym));
        }
        mcd_sb_puts(&c->out, "]");
}

static void pcf_named(struct pcf *c, json_t *s, const char *type, const char *ns, int depth) {
        char *full = definition_name(s, ns), *inner_ns = NULL;
        char size[32];

        if (!full) {
                c->error = json_is_string(json_object_get(s, "name")) ? -ENOMEM : -EINVAL;
                return;
        }
        if (json_object_get(c->defined, full)) {
                /* Defined earlier: a repeat is written as a reference. */
                sb_json_string(&c->out, full);
                free(full);
                return;
        }
        if (json_object_set_new(c->defined, full, json_true()) < 0) {
                c->error = -ENOMEM;
                free(full);
                return;
        }
        mcd_sb_puts(&c->out, "{\"name\":");
        sb_json_string(&c->out, full);
        mcd_sb_puts(&c->out, ",\"type\":");
        sb_json_string(&c->out, type);
        if (strcmp(type, "enum") == 0)
                pcf_symbols(c, json_object_get(s, "symbols"));
        else if (strcmp(type, "fixed") == 0) {
                json_t *jsize = json_object_get(s, "size");

                if (!json_is_integer(jsize) || json_integer_value(jsize) < 0) {
                        c->error = -EINVAL;
                } else {
                        snprintf(size, sizeof(size), ",\"size\":%lld", (long long)json_integer_value(jsize));
                        mcd_sb_puts(&c->out, size);
                }
        } else {
                inner_ns = namespace_of(full);
                if (!inner_ns)
                        c->error = -ENOMEM;
                else
                        pcf_fields(c, json_object_get(s, "fields"), inner_ns, depth);
        }
        mcd_sb_puts(&c->out, "}");
        free(inner_ns);
        free(full);
}

static void pcf_object(struct pcf *c, json_t *s, const char *ns, int depth) {
        json_t *jtype = json_object_get(s, "type");
        const char *type = json_string_value(jtype);

        if (!type) {
                /* {"type": {...}} or {"type": [...]}: the inner schema. */
                if (json_is_object(jtype) || json_is_array(jtype))
                        pcf_schema(c, jtype, ns, depth + 1);
                else
                        c->error = -EINVAL;
                return;
        }
        if (is_primitive(type))
                sb_json_string(&c->out, type);
        else if (is_named_type(type))
                pcf_named(c, s, type, ns, depth);
        else if (strcmp(type, "array") == 0 || strcmp(type, "map") == 0) {
                bool array = type[0] == 'a';
                json_t *sub = json_object_get(s, array ? "items" : "values");

                if (!sub) {
                        c->error = -EINVAL;
                        return;
                }
                mcd_sb_puts(&c->out, array ? "{\"type\":\"array\",\"items\":" : "{\"type\":\"map\",\"values\":");
                pcf_schema(c, sub, ns, depth + 1);
                mcd_sb_puts(&c->out, "}");
        } else
                pcf_reference(c, type, ns);
}

static void pcf_schema(struct pcf *c, json_t *s, const char *ns, int depth) {
        if (c->error)
                return;
        if (depth > MAX_DEPTH) {
                c->error = -EINVAL;
                return;
        }
        if (json_is_string(s))
                pcf_reference(c, json_string_value(s), ns);
        else if (json_is_array(s)) {
                size_t i;
                json_t *branch;

                mcd_sb_puts(&c->out, "[");
                json_array_foreach(s, i, branch) {
                        if (i)
                                mcd_sb_puts(&c->out, ",");
                        pcf_schema(c, branch, ns, depth + 1);
                }
                mcd_sb_puts(&c->out, "]");
        } else if (json_is_object(s))
                pcf_object(c, s, ns, depth);
        else
                c->error = -EINVAL;
}

static char *canonical_form_of(json_t *root, int *err) {
        struct pcf c = { .defined = json_object() };

        if (!c.defined) {
                *err = -ENOMEM;
                return NULL;
        }
        pcf_schema(&c, root, "", 0);
        json_decref(c.defined);
        if (!c.error && (c.out.oom || !c.out.p))
                c.error = -ENOMEM;
        if (c.error) {
                free(c.out.p);
                *err = c.error;
                return NULL;
        }
        *err = 0;
        return c.out.p;
}

char *mcd_avro_canonical_form(const char *schema_json, int *err) {
        json_t *root;
        char *s;
        int dummy;

        if (!err)
                err = &dummy;
        if (!schema_json) {
                *err = -EINVAL;
                return NULL;
        }
        root = json_loads(schema_json, JSON_DECODE_ANY, NULL);
        if (!root) {
                *err = -EINVAL;
                return NULL;
        }
        s = canonical_form_of(root, err);
        json_decref(root);
        return s;
}

uint64_t mcd_avro_crc64(const void *buf, size_t len) {
        const unsigned char *p = buf;
        uint64_t fp = RABIN_EMPTY;

        for (size_t i = 0; i < len; i++) {
                fp ^= p[i];
                for (int j = 0; j < 8; j++)
                        fp = (fp >> 1) ^ (RABIN_EMPTY & (0 - (fp & 1)));
        }
        return fp;
}

int mcd_avro_fingerprint(const char *schema_json, uint64_t *fp) {
        int r;
        char *pcf = mcd_avro_canonical_form(schema_json, &r);

        if (!pcf)
                return r;
        *fp = mcd_avro_crc64(pcf, strlen(pcf));
        free(pcf);
        return 0;
}

/* ------------------------------------------------- schema registry -- */

/* Indexes every record definition of a schema by full name. */
static int index_records(json_t *s, const char *ns, json_t *index, int depth) {
        const char *type;
        json_t *x;
        size_t i;
        int r = 0;

        if (depth > MAX_DEPTH)
                return -EINVAL;
        if (json_is_array(s)) {
                json_array_foreach(s, i, x)
                        if ((r = index_records(x, ns, index, depth + 1)) < 0)
                                return r;
                return 0;
        }
        if (!json_is_object(s))
                return 0;
        x = json_object_get(s, "type");
        type = json_string_value(x);
        if (!type)
                return index_records(x, ns, index, depth + 1);
        if (strcmp(type, "array") == 0)
                return index_records(json_object_get(s, "items"), ns, index, depth + 1);
        if (strcmp(type, "map") == 0)
                return index_records(json_object_get(s, "values"), ns, index, depth + 1);
        if (strcmp(type, "record") == 0 || strcmp(type, "error") == 0) {
                char *full = definition_name(s, ns), *inner = NULL;
                json_t *f;

                if (!full)
                        return -EINVAL;
                inner = namespace_of(full);
                if (!inner || json_object_set(index, full, s) < 0)
                        r = -ENOMEM;
                json_array_foreach(json_object_get(s, "fields"), i, f) {
                        if (r < 0)
                                break;
                        r = index_records(json_object_get(f, "type"), inner, index, depth + 1);
                }
                free(inner);
                free(full);
        }
        return r;
}

static void entry_clear(struct schema_entry *e) {
        if (e->iface)
                avro_value_iface_decref(e->iface);
        if (e->schema)
                avro_schema_decref(e->schema);
        json_decref(e->records);
        json_decref(e->root);
        free(e->owned_json);
        memset(e, 0, sizeof(*e));
}

/* Parses a record schema into e (json is borrowed unless owned_json is set
 * by the caller afterwards).  0, -EINVAL or -ENOMEM. */
static int entry_init(struct schema_entry *e, const char *json) {
        char *pcf;
        int r;

        memset(e, 0, sizeof(*e));
        e->json = json;
        e->root = json_loads(json, 0, NULL);
        if (!e->root || !json_is_object(e->root))
                goto invalid;
        pcf = canonical_form_of(e->root, &r);
        if (!pcf)
                goto fail;
        e->fp = mcd_avro_crc64(pcf, strlen(pcf));
        free(pcf);
        e->records = json_object();
        if (!e->records) {
                r = -ENOMEM;
                goto fail;
        }
        if ((r = index_records(e->root, "", e->records, 0)) < 0)
                goto fail;
        if (avro_schema_from_json_length(json, strlen(json), &e->schema) != 0) {
                e->schema = NULL;
                goto invalid;
        }
        if (avro_typeof(e->schema) != AVRO_RECORD)
                goto invalid;
        e->iface = avro_generic_class_from_schema(e->schema);
        if (!e->iface) {
                r = -ENOMEM;
                goto fail;
        }
        return 0;
invalid:
        r = -EINVAL;
fail:
        entry_clear(e);
        return r;
}

static struct schema_entry *find_entry(struct mcd_avro *a, uint64_t fp) {
        for (size_t i = 0; i < a->n; i++)
                if (a->v[i].fp == fp)
                        return &a->v[i];
        return NULL;
}

/* Moves e into the registry.  0, -EEXIST or -ENOMEM (e is cleared on error). */
static int add_entry(struct mcd_avro *a, struct schema_entry *e) {
        if (find_entry(a, e->fp)) {
                entry_clear(e);
                return -EEXIST;
        }
        if (a->n == a->cap) {
                size_t cap = a->cap ? a->cap * 2 : 8;
                struct schema_entry *v = realloc(a->v, cap * sizeof(*v));

                if (!v) {
                        entry_clear(e);
                        return -ENOMEM;
                }
                a->v = v;
                a->cap = cap;
        }
        a->v[a->n++] = *e;
        return 0;
}

/* "RelationshipEvent.v3.avsc" -> kind and 3.  0 or -EINVAL. */
static int parse_file_name(const char *name, enum mcd_avro_kind *kind, int *version) {
        const char *v = strstr(name, ".v");
        char *end;
        long n;

        if (!v)
                return -EINVAL;
        n = strtol(v + 2, &end, 10);
        if (end == v + 2 || strcmp(end, ".avsc") != 0 || n < 1 || n > INT_MAX)
                return -EINVAL;
        for (int k = 0; k < MCD_AVRO__KIND_COUNT; k++)
                if (strlen(kind_names[k]) == (size_t)(v - name) &&
                    strncmp(name, kind_names[k], (size_t)(v - name)) == 0) {
                        *kind = (enum mcd_avro_kind)k;
                        *version = (int)n;
                        return 0;
                }
        return -EINVAL;
}

static int add_embedded(struct mcd_avro *a, const struct mcd_schema_file *f, int best[]) {
        struct schema_entry e;
        enum mcd_avro_kind kind;
        int version, r;

        if ((r = parse_file_name(f->name, &kind, &version)) < 0)
                return r;
        if ((r = entry_init(&e, f->json)) < 0)
                return r;
        e.kind = kind;
        e.version = version;
        if ((r = add_entry(a, &e)) < 0)
                return r;
        if (version > best[kind]) {
                best[kind] = version;
                a->reader[kind] = a->n - 1;
        }
        return 0;
}

int mcd_avro_new(struct mcd_avro **out) {
        struct mcd_avro *a = calloc(1, sizeof(*a));
        int best[MCD_AVRO__KIND_COUNT] = { 0 };
        int r;

        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < mcd_n_schema_files; i++)
                if ((r = add_embedded(a, &mcd_schema_files[i], best)) < 0)
                        goto fail;
        for (int k = 0; k < MCD_AVRO__KIND_COUNT; k++)
                if (best[k] == 0) {
                        r = -ENOENT;
                        goto fail;
                }
        *out = a;
        return 0;
fail:
        mcd_avro_free(a);
        return r;
}

void mcd_avro_free(struct mcd_avro *a) {
        if (!a)
                return;
        for (size_t i = 0; i < a->n; i++)
                entry_clear(&a->v[i]);
        free(a->v);
        free(a);
}

int mcd_avro_register(struct mcd_avro *a, enum mcd_avro_kind kind, const char *schema_json) {
        struct schema_entry e;
        char *copy;
        int r;

        if (!a || !schema_json || (unsigned)kind >= MCD_AVRO__KIND_COUNT)
                return -EINVAL;
        copy = strdup(schema_json);
        if (!copy)
                return -ENOMEM;
        if ((r = entry_init(&e, copy)) < 0) {
                free(copy);
                return r;
        }
        e.owned_json = copy;
        e.kind = kind;
        return add_entry(a, &e);
}

const char *mcd_avro_reader_schema(const struct mcd_avro *a, enum mcd_avro_kind kind) {
        if (!a || (unsigned)kind >= MCD_AVRO__KIND_COUNT)
                return NULL;
        return a->v[a->reader[kind]].json;
}

/* ------------------------------------------- bounds-checked walk -- */

/* Walks an Avro body with its writer schema, checking every length, count
 * and index against the bytes that remain, so that libavro-c is only ever
 * given a well-formed body. */
struct walk {
        const unsigned char *p, *end;
        size_t items_left;              /* array/map items we still accept */
        const char *why;                /* set on failure */
};

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

static int walk_long(struct walk *w, int64_t *out) {
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

static int walk_value(struct walk *w, avro_schema_t s, int depth);

/* Array and map blocks: count, [byte size when count < 0], items. */
static int walk_blocks(struct walk *w, avro_schema_t item, bool map, int depth) {
        for (;;) {
                int64_t count, size = -1;
                const unsigned char *start;
                int r;

                if ((r = walk_long(w, &count)) < 0)
                        return r;
                if (count == 0)
                        return 0;
                if (count < 0) {
                        if (count == INT64_MIN)
                                return walk_fail(w, "a block count is out of range");
                        count = -count;
                        if ((r = walk_long(w, &size)) < 0)
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

                        if (map && ((r = walk_long(w, &klen)) < 0 || (r = walk_skip(w, klen)) < 0))
                                return r;
                        if ((r = walk_value(w, item, depth + 1)) < 0)
                                return r;
                }
                if (size >= 0 && w->p - start != size)
                        return walk_fail(w, "a block size does not match its items");
        }
}

static int walk_value(struct walk *w, avro_schema_t s, int depth) {
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
                return walk_long(w, &n);
        case AVRO_FLOAT:
                return walk_skip(w, 4);
        case AVRO_DOUBLE:
                return walk_skip(w, 8);
        case AVRO_STRING:
        case AVRO_BYTES:
                if ((r = walk_long(w, &n)) < 0)
                        return r;
                return walk_skip(w, n);
        case AVRO_FIXED:
                return walk_skip(w, avro_schema_fixed_size(s));
        case AVRO_ENUM:
                if ((r = walk_long(w, &n)) < 0)
                        return r;
                if (n < 0 || n >= avro_schema_enum_number_of_symbols(s))
                        return walk_fail(w, "an enum index is out of range");
                return 0;
        case AVRO_UNION:
                if ((r = walk_long(w, &n)) < 0)
                        return r;
                if (n < 0 || (uint64_t)n >= avro_schema_union_size(s))
                        return walk_fail(w, "a union branch index is out of range");
                return walk_value(w, avro_schema_union_branch(s, (int)n), depth);
        case AVRO_RECORD:
                if (depth >= MAX_DEPTH)
                        return walk_fail(w, "the value nests too deeply");
                for (size_t i = 0; i < avro_schema_record_size(s); i++)
                        if ((r = walk_value(w, avro_schema_record_field_get_by_index(s, (int)i), depth + 1)) < 0)
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
                return walk_value(w, avro_schema_link_target(s), depth);
        }
        return walk_fail(w, "the writer schema has a type the codec does not know");
}

/* ------------------------------------------- generic value -> JSON -- */

static avro_schema_t deref(avro_schema_t s) {
        while (s && avro_typeof(s) == AVRO_LINK)
                s = avro_schema_link_target(s);
        return s;
}

static json_t *value_to_json(avro_value_t *v, int depth);

/* A record or a map: an object of field names (keys) to values. */
static json_t *record_to_json(avro_value_t *v, int depth) {
        json_t *obj = json_object();
        size_t n = 0;

        if (!obj || avro_value_get_size(v, &n) != 0)
                goto fail;
        for (size_t i = 0; i < n; i++) {
                avro_value_t child;
                const char *name = NULL;
                json_t *j;

                if (avro_value_get_by_index(v, i, &child, &name) != 0 || !name)
                        goto fail;
                j = value_to_json(&child, depth + 1);
                if (!j || json_object_set_new_nocheck(obj, name, j) < 0)
                        goto fail;
        }
        return obj;
fail:
        json_decref(obj);
        return NULL;
}

static json_t *array_to_json(avro_value_t *v, int depth) {
        json_t *arr = json_array();
        size_t n = 0;

        if (!arr || avro_value_get_size(v, &n) != 0)
                goto fail;
        for (size_t i = 0; i < n; i++) {
                avro_value_t child;

                if (avro_value_get_by_index(v, i, &child, NULL) != 0 ||
                    json_array_append_new(arr, value_to_json(&child, depth + 1)) < 0)
                        goto fail;
        }
        return arr;
fail:
        json_decref(arr);
        return NULL;
}

static json_t *union_to_json(avro_value_t *v, int depth) {
        avro_value_t branch;
        avro_schema_t bs;
        json_t *inner, *wrap;

        if (avro_value_get_current_branch(v, &branch) != 0)
                return NULL;
        inner = value_to_json(&branch, depth);
        bs = deref(avro_value_get_schema(&branch));
        if (!inner || !bs || avro_typeof(bs) != AVRO_RECORD)
                return inner;
        wrap = json_object();
        if (!wrap || json_object_set_new_nocheck(wrap, avro_schema_name(bs), inner) < 0) {
                json_decref(wrap);
                return NULL;
        }
        return wrap;
}

static json_t *value_to_json(avro_value_t *v, int depth) {
        const char *s = NULL;
        const void *bytes = NULL;
        size_t size = 0;
        int32_t i32;
        int64_t i64;
        float f;
        double d;
        int b, e;

        if (depth > MAX_DEPTH)
                return NULL;            /* the walk has already refused this */
        switch (avro_value_get_type(v)) {
        case AVRO_NULL:
                return json_null();
        case AVRO_BOOLEAN:
                return avro_value_get_boolean(v, &b) ? NULL : json_boolean(b);
        case AVRO_INT32:
                return avro_value_get_int(v, &i32) ? NULL : json_integer(i32);
        case AVRO_INT64:
                return avro_value_get_long(v, &i64) ? NULL : json_integer(i64);
        case AVRO_FLOAT:
                return avro_value_get_float(v, &f) ? NULL : json_real(f);
        case AVRO_DOUBLE:
                return avro_value_get_double(v, &d) ? NULL : json_real(d);
        case AVRO_STRING:
                /* size counts the NUL terminator libavro-c adds. */
                if (avro_value_get_string(v, &s, &size) || !s || size == 0)
                        return NULL;
                return json_stringn_nocheck(s, size - 1);
        case AVRO_BYTES:
                if (avro_value_get_bytes(v, &bytes, &size))
                        return NULL;
                return json_stringn_nocheck(bytes ? bytes : "", size);
        case AVRO_FIXED:
                if (avro_value_get_fixed(v, &bytes, &size))
                        return NULL;
                return json_stringn_nocheck(bytes ? bytes : "", size);
        case AVRO_ENUM:
                if (avro_value_get_enum(v, &e))
                        return NULL;
                s = avro_schema_enum_get(deref(avro_value_get_schema(v)), e);
                return s ? json_string_nocheck(s) : NULL;
        case AVRO_RECORD:
                return record_to_json(v, depth);
        case AVRO_MAP:
                return record_to_json(v, depth);
        case AVRO_ARRAY:
                return array_to_json(v, depth);
        case AVRO_UNION:
                return union_to_json(v, depth);
        case AVRO_LINK:
                break;
        }
        return NULL;
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
        full = full_name(name, ns);
        def = full ? json_object_get(index, full) : NULL;
        free(full);
        if (def)
                return def;
        json_object_foreach(index, key, x)
                if (strcmp(short_name(key), name) == 0)
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
        avro_schema_t us = deref(avro_value_get_schema(v));
        size_t n = avro_schema_union_size(us);
        avro_value_t branch;

        /* {"RecordName": {...}} names a record branch. */
        if (json_is_object(j) && json_object_size(j) == 1) {
                const char *key = json_object_iter_key(json_object_iter(j));

                for (size_t i = 0; i < n; i++) {
                        avro_schema_t bs = deref(avro_schema_union_branch(us, (int)i));

                        if (avro_typeof(bs) == AVRO_RECORD &&
                            (strcmp(avro_schema_name(bs), key) == 0 ||
                             strcmp(avro_schema_name(bs), short_name(key)) == 0)) {
                                if (avro_value_set_branch(v, (int)i, &branch) != 0)
                                        return enc_fail(c, "cannot select union branch %s", key);
                                return json_to_value(c, json_object_get(j, key), &branch, depth + 1);
                        }
                }
        }
        for (size_t i = 0; i < n; i++)
                if (json_fits(j, deref(avro_schema_union_branch(us, (int)i)))) {
                        if (avro_value_set_branch(v, (int)i, &branch) != 0)
                                return enc_fail(c, "cannot select a union branch");
                        return json_to_value(c, j, &branch, depth + 1);
                }
        return enc_fail(c, "no branch of a union fits the value");
}

static int record_from_json(struct enc *c, json_t *j, avro_value_t *v, int depth) {
        avro_schema_t rs = deref(avro_value_get_schema(v));
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
        avro_schema_t s = deref(avro_value_get_schema(v));

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

/* Writes value v (of schema entry e) as a single-object encoded buffer. */
static int encode_value(const struct schema_entry *e, avro_value_t *v, void **buf, size_t *len) {
        avro_writer_t w = NULL;
        unsigned char *out = NULL;
        size_t size = 0;
        int r = -ENOMEM;

        if (avro_value_sizeof(v, &size) != 0)
                goto done;
        out = malloc(SOE_HEADER_SIZE + size);
        if (!out)
                goto done;
        out[0] = SOE_MAGIC0;
        out[1] = SOE_MAGIC1;
        for (int i = 0; i < 8; i++)
                out[2 + i] = (unsigned char)(e->fp >> (8 * i));
        w = avro_writer_memory((const char *)out + SOE_HEADER_SIZE, (int64_t)size);
        if (!w || avro_value_write(w, v) != 0) {
                r = -EIO;
                goto done;
        }
        *buf = out;
        *len = SOE_HEADER_SIZE + size;
        out = NULL;
        r = 0;
done:
        if (w)
                avro_writer_free(w);
        free(out);
        return r;
}

/* Encodes JSON value j (a record) with schema entry e into a single-object
 * encoded buffer. */
static int encode_json(const struct schema_entry *e, json_t *j, void **buf, size_t *len) {
        struct enc c = { .records = e->records };
        avro_value_t v;
        int r;

        if (avro_generic_value_new(e->iface, &v) != 0)
                return -ENOMEM;
        r = json_to_value(&c, j, &v, 0);
        if (r == 0)
                r = encode_value(e, &v, buf, len);
        avro_value_decref(&v);
        return r;
}

/* ------------------------------------------------- model -> JSON -- */

static int put(json_t *obj, const char *key, json_t *val) {
        return val && json_object_set_new(obj, key, val) == 0 ? 0 : -ENOMEM;
}

static json_t *opt_string(const char *s) {
        return s ? json_string_nocheck(s) : json_null();
}

static json_t *req_string(const char *s) {
        return json_string_nocheck(s ? s : "");
}

static json_t *enum_symbol(const char *s) {
        return s ? json_string(s) : NULL;
}

static int event_payload_to_json(const struct mcd_event *ev, json_t *p) {
        int r = 0;

        switch (ev->type) {
        case MCD_EV_RELATIONSHIP_REQUESTED:
                r |= put(p, "partner_id", req_string(ev->partner_id));
                r |= put(p, "indirect_reseller_id", opt_string(ev->indirect_reseller_id));
                r |= put(p, "customer_is_csp_partner", json_boolean(ev->customer_is_csp_partner));
                break;
        case MCD_EV_RELATIONSHIP_ACCEPTED:
                r |= put(p, "partner_id", req_string(ev->partner_id));
                break;
        case MCD_EV_RELATIONSHIP_REMOVED:
                r |= put(p, "partner_id", req_string(ev->partner_id));
                r |= put(p, "reason", opt_string(ev->reason));
                break;
        case MCD_EV_SUBSCRIPTION_REPORTED:
                r |= put(p, "subscription_id", req_string(ev->subscription_id));
                r |= put(p, "offer_name", req_string(ev->offer_name));
                r |= put(p, "billing", enum_symbol(mcd_billing_name(ev->billing)));
                r |= put(p, "channel", enum_symbol(mcd_channel_name(ev->channel)));
                r |= put(p, "seller_partner_id", opt_string(ev->seller_partner_id));
                r |= put(p, "term_end", ev->has_term_end ? json_integer(ev->term_end) : json_null());
                break;
        case MCD_EV_SWITCH_REQUESTED:
                r |= put(p, "subscription_id", req_string(ev->subscription_id));
                r |= put(p, "target_partner_id", req_string(ev->target_partner_id));
                break;
        case MCD_EV_CSP_SUBSCRIPTION_CREATED:
                r |= put(p, "subscription_id", req_string(ev->subscription_id));
                r |= put(p, "csp_subscription_id", req_string(ev->csp_subscription_id));
                r |= put(p, "partner_id", req_string(ev->partner_id));
                break;
        case MCD_EV_SUBSCRIPTION_CANCELLED: {
                json_t *services = json_array();

                r |= put(p, "subscription_id", req_string(ev->subscription_id));
                r |= put(p, "scope", enum_symbol(mcd_scope_name(ev->scope)));
                for (size_t i = 0; services && i < ev->n_services; i++)
                        if (json_array_append_new(services, req_string(ev->services[i])) < 0)
                                r = -ENOMEM;
                r |= put(p, "services", services);
                break;
        }
        case MCD_EV_SUBSCRIPTION_TERM_ENDED:
                r |= put(p, "subscription_id", req_string(ev->subscription_id));
                break;
        default:
                return -EINVAL;
        }
        return r ? -EINVAL : 0;         /* an enum out of range, or no memory */
}

/* {"RecordName": payload} as the value of the envelope's payload field. */
static int put_payload(json_t *obj, const char *type_name, json_t *payload) {
        json_t *wrap;

        if (!payload || !type_name) {
                json_decref(payload);
                return -EINVAL;
        }
        wrap = json_object();
        if (!wrap || json_object_set_new(wrap, type_name, payload) < 0) {
                json_decref(wrap);
                return -ENOMEM;
        }
        return put(obj, "payload", wrap);
}

static int event_to_json(const struct mcd_event *ev, json_t **out) {
        json_t *obj = json_object(), *p = json_object();
        int r = 0;

        if (!obj || !p) {
                r = -ENOMEM;
                goto fail;
        }
        r |= put(obj, "event_id", req_string(ev->event_id));
        r |= put(obj, "occurred_at", json_integer(ev->occurred_at));
        r |= put(obj, "customer_id", req_string(ev->customer_id));
        r |= put(obj, "cloud", enum_symbol(mcd_cloud_name(ev->cloud)));
        if (r) {
                r = -EINVAL;
                goto fail;
        }
        if ((r = event_payload_to_json(ev, p)) < 0)
                goto fail;
        r = put_payload(obj, mcd_event_type_name(ev->type), p);
        p = NULL;
        if (r < 0)
                goto fail;
        *out = obj;
        return 0;
fail:
        json_decref(p);
        json_decref(obj);
        return r;
}

/* ------------------------------------------- outcome -> Avro value -- */

/* Outcomes are written straight into an Avro value of the outcome schema,
 * with no JSON in between: one is encoded for every outcome the batch path
 * makes.  Every field is set, so no default is needed.  Errors are -EINVAL
 * (a field missing from the schema, an enum symbol it does not have). */

static int field_of(avro_value_t *rec, const char *name, avro_value_t *f) {
        return avro_value_get_by_name(rec, name, f, NULL) == 0 ? 0 : -EINVAL;
}

static int set_string(avro_value_t *rec, const char *name, const char *s) {
        avro_value_t f;
        if (field_of(rec, name, &f) < 0)
                return -EINVAL;
        return avro_value_set_string(&f, s ? s : "") == 0 ? 0 : -ENOMEM;
}

static int set_long(avro_value_t *rec, const char *name, int64_t x) {
        avro_value_t f;
        return field_of(rec, name, &f) == 0 && avro_value_set_long(&f, x) == 0 ? 0 : -EINVAL;
}

static int set_boolean(avro_value_t *rec, const char *name, bool x) {
        avro_value_t f;
        return field_of(rec, name, &f) == 0 && avro_value_set_boolean(&f, x) == 0 ? 0 : -EINVAL;
}

static int set_enum(avro_value_t *rec, const char *name, const char *symbol) {
        avro_value_t f;
        int i;

        if (!symbol || field_of(rec, name, &f) < 0)
                return -EINVAL;
        i = avro_schema_enum_get_by_name(deref(avro_value_get_schema(&f)), symbol);
        return i >= 0 && avro_value_set_enum(&f, i) == 0 ? 0 : -EINVAL;
}

/* The branch of union u whose type is t (the first, as json_fits picks). */
static int branch_of_type(avro_value_t *u, avro_type_t t, avro_value_t *branch) {
        avro_schema_t us = deref(avro_value_get_schema(u));
        size_t n = avro_schema_union_size(us);

        for (size_t i = 0; i < n; i++)
                if (avro_typeof(deref(avro_schema_union_branch(us, (int)i))) == t)
                        return avro_value_set_branch(u, (int)i, branch) == 0 ? 0 : -EINVAL;
        return -EINVAL;
}

/* A ["null", "string"] field: null when s is NULL. */
static int set_optional_string(avro_value_t *rec, const char *name, const char *s) {
        avro_value_t u, b;

        if (field_of(rec, name, &u) < 0 || branch_of_type(&u, s ? AVRO_STRING : AVRO_NULL, &b) < 0)
                return -EINVAL;
        if (!s)
                return avro_value_set_null(&b) == 0 ? 0 : -EINVAL;
        return avro_value_set_string(&b, s) == 0 ? 0 : -ENOMEM;
}

/* Selects the record branch named `name` of the union field `field`. */
static int set_record_branch(avro_value_t *rec, const char *field, const char *name, avro_value_t *branch) {
        avro_value_t u;
        avro_schema_t us;
        size_t n;

        if (!name || field_of(rec, field, &u) < 0)
                return -EINVAL;
        us = deref(avro_value_get_schema(&u));
        n = avro_schema_union_size(us);
        for (size_t i = 0; i < n; i++) {
                avro_schema_t bs = deref(avro_schema_union_branch(us, (int)i));
                if (avro_typeof(bs) == AVRO_RECORD && strcmp(avro_schema_name(bs), name) == 0)
                        return avro_value_set_branch(&u, (int)i, branch) == 0 ? 0 : -EINVAL;
        }
        return -EINVAL;
}

static int outcome_payload_to_value(const struct mcd_outcome *o, avro_value_t *p) {
        int r = 0;

        switch (o->type) {
        case MCD_OUT_CUSTOMER_STATE_CHANGED:
                r |= set_enum(p, "from_state", mcd_customer_state_name(o->from_state));
                r |= set_enum(p, "to_state", mcd_customer_state_name(o->to_state));
                break;
        case MCD_OUT_RESALE_REJECTED:
                r |= set_string(p, "reason", o->reason);
                break;
        case MCD_OUT_RELATIONSHIP_REQUEST_REQUIRED:
                r |= set_enum(p, "billing", mcd_billing_name(o->billing));
                r |= set_enum(p, "channel", mcd_channel_name(o->channel));
                break;
        case MCD_OUT_MULTI_CHANNEL_SUPPORT_ENABLED:
                r |= set_enum(p, "billing", mcd_billing_name(o->billing));
                r |= set_enum(p, "channel", mcd_channel_name(o->channel));
                r |= set_enum(p, "next_action", mcd_next_action_name(o->next_action));
                break;
        case MCD_OUT_SWITCH_BLOCKED_UNTIL_TERM_END:
                r |= set_long(p, "term_end", o->term_end);
                r |= set_enum(p, "channel", mcd_channel_name(o->channel));
                break;
        case MCD_OUT_SWITCH_ALLOWED:
                r |= set_enum(p, "reason", mcd_switch_reason_name(o->switch_reason));
                break;
        case MCD_OUT_AZURE_CSP_SUBSCRIPTION_CREATED:
                r |= set_string(p, "csp_subscription_id", o->csp_subscription_id);
                r |= set_enum(p, "legacy_channel", mcd_channel_name(o->channel));
                r |= set_boolean(p, "coexists", o->coexists);
                break;
        case MCD_OUT_SUBSCRIPTION_MIGRATED:
                r |= set_optional_string(p, "csp_subscription_id", o->csp_subscription_id);
                break;
        case MCD_OUT_TRANSITION_REJECTED:
                r |= set_string(p, "reason", o->reason);
                r |= set_string(p, "rejected_event_type", o->rejected_event_type);
                break;
        default:
                return -EINVAL;
        }
        return r ? -EINVAL : 0;
}

static int outcome_to_value(const struct mcd_outcome *o, avro_value_t *v) {
        avro_value_t payload;
        int r = 0;

        r |= set_string(v, "event_id", o->event_id);
        r |= set_string(v, "caused_by", o->caused_by);
        r |= set_string(v, "customer_id", o->customer_id);
        r |= set_enum(v, "cloud", mcd_cloud_name(o->cloud));
        r |= set_long(v, "occurred_at", o->occurred_at);
        r |= set_optional_string(v, "partner_id", o->partner_id);
        r |= set_optional_string(v, "subscription_id", o->subscription_id);
        r |= set_enum(v, "customer_state", mcd_customer_state_name(o->customer_state));
        r |= set_string(v, "message", o->message);
        if (r)
                return -EINVAL;
        if (set_record_branch(v, "payload", mcd_outcome_type_name(o->type), &payload) < 0)
                return -EINVAL;
        return outcome_payload_to_value(o, &payload);
}

int mcd_avro_encode_event(struct mcd_avro *a, const struct mcd_event *ev, void **buf, size_t *len) {
        enum mcd_avro_kind kind;
        json_t *j;
        int r;

        if (!a || !ev || (unsigned)ev->type >= MCD_EV__COUNT)
                return -EINVAL;
        kind = mcd_event_is_relationship(ev->type) ? MCD_AVRO_RELATIONSHIP_EVENT : MCD_AVRO_SUBSCRIPTION_EVENT;
        if ((r = event_to_json(ev, &j)) < 0)
                return r;
        r = encode_json(&a->v[a->reader[kind]], j, buf, len);
        json_decref(j);
        return r;
}

int mcd_avro_encode_event_with(struct mcd_avro *a, const char *writer_schema_json,
                               const struct mcd_event *ev, void **buf, size_t *len) {
        struct schema_entry tmp, *e;
        uint64_t fp;
        json_t *j;
        int r;

        if (!a || !ev || !writer_schema_json)
                return -EINVAL;
        if ((r = mcd_avro_fingerprint(writer_schema_json, &fp)) < 0)
                return r;
        e = find_entry(a, fp);
        if (!e) {
                if ((r = entry_init(&tmp, writer_schema_json)) < 0)
                        return r;
                e = &tmp;
        }
        r = event_to_json(ev, &j);
        if (r == 0) {
                r = encode_json(e, j, buf, len);
                json_decref(j);
        }
        if (e == &tmp)
                entry_clear(&tmp);
        return r;
}

int mcd_avro_encode_outcome(struct mcd_avro *a, const struct mcd_outcome *o, void **buf, size_t *len) {
        const struct schema_entry *e;
        avro_value_t v;
        int r;

        if (!a || !o)
                return -EINVAL;
        e = &a->v[a->reader[MCD_AVRO_OUTCOME]];
        if (avro_generic_value_new(e->iface, &v) != 0)
                return -ENOMEM;
        r = outcome_to_value(o, &v);
        if (r == 0)
                r = encode_value(e, &v, buf, len);
        avro_value_decref(&v);
        return r;
}

/* ------------------------------------------------------- decoding -- */

/* Checks the header, finds the writer schema, checks the body and decodes it
 * into JSON.  On success *out is the envelope as JSON. */
static int decode_json(struct mcd_avro *a, enum mcd_avro_kind expected, const void *buf, size_t len,
                       json_t **out, struct mcd_avro_error *err) {
        const unsigned char *p = buf;
        const struct schema_entry *e;
        struct walk w;
        avro_reader_t reader;
        avro_value_t v;
        uint64_t fp = 0;
        int r;

        if (!p || len < SOE_HEADER_SIZE)
                return fail(err, MCD_DLQ_BAD_MAGIC,
                            "The message is %zu bytes long, shorter than the 10-byte Avro single-object header.",
                            len);
        if (p[0] != SOE_MAGIC0 || p[1] != SOE_MAGIC1)
                return fail(err, MCD_DLQ_BAD_MAGIC,
                            "The message starts with 0x%02X 0x%02X, not the Avro single-object marker 0xC3 0x01.",
                            p[0], p[1]);
        for (int i = 0; i < 8; i++)
                fp |= (uint64_t)p[2 + i] << (8 * i);
        e = find_entry(a, fp);
        if (!e)
                return fail(err, MCD_DLQ_UNKNOWN_SCHEMA,
                            "The writer schema fingerprint 0x%016llx is not a schema this daemon knows.",
                            (unsigned long long)fp);
        if (e->kind != expected)
                return fail(err, MCD_DLQ_WRONG_TOPIC, "The message is a %s, but this topic carries %s values.",
                            kind_names[e->kind], kind_names[expected]);

        w = (struct walk){ .p = p + SOE_HEADER_SIZE, .end = p + len, .items_left = len + MAX_ITEMS_SLACK };
        if (walk_value(&w, e->schema, 0) < 0)
                return fail(err, MCD_DLQ_CORRUPT_AVRO, "The Avro body is corrupt: %s.", w.why);
        if (w.p != w.end)
                return fail(err, MCD_DLQ_CORRUPT_AVRO, "The Avro body is corrupt: %zu byte%s follow%s the value.",
                            (size_t)(w.end - w.p), w.end - w.p == 1 ? "" : "s", w.end - w.p == 1 ? "s" : "");

        if (avro_generic_value_new(e->iface, &v) != 0)
                return fail(err, MCD_DLQ_CORRUPT_AVRO, "The Avro body could not be decoded: out of memory.");
        reader = avro_reader_memory((const char *)p + SOE_HEADER_SIZE, (int64_t)(len - SOE_HEADER_SIZE));
        if (!reader)
                r = fail(err, MCD_DLQ_CORRUPT_AVRO, "The Avro body could not be decoded: out of memory.");
        else if (avro_value_read(reader, &v) != 0)
                r = fail(err, MCD_DLQ_CORRUPT_AVRO, "The Avro body is corrupt: %s", avro_strerror());
        else if (!(*out = value_to_json(&v, 0)))
                r = fail(err, MCD_DLQ_CORRUPT_AVRO, "The Avro body could not be converted: out of memory.");
        else
                r = 0;
        if (reader)
                avro_reader_free(reader);
        avro_value_decref(&v);
        return r;
}

/* Splits {"RecordName": {...}} into its name and record. */
static int split_payload(json_t *env, const char *envelope, const char **name, json_t **payload,
                         struct mcd_avro_error *err) {
        json_t *p = json_object_get(env, "payload");

        if (!p)
                return fail(err, MCD_DLQ_INVALID_EVENT, "The %s has no payload field.", envelope);
        if (!json_is_object(p) || json_object_size(p) != 1 || !json_is_object(json_object_iter_value(json_object_iter(p))))
                return fail(err, MCD_DLQ_INVALID_EVENT, "The payload of the %s is not a record.", envelope);
        *name = json_object_iter_key(json_object_iter(p));
        *payload = json_object_iter_value(json_object_iter(p));
        return 0;
}

/* The reader's record definition of a payload record, by unqualified name. */
static json_t *reader_payload_def(const struct schema_entry *reader, const char *name) {
        const char *key;
        json_t *def;

        json_object_foreach(reader->records, key, def)
                if (strcmp(short_name(key), short_name(name)) == 0)
                        return def;
        return NULL;
}

/* Fills the fields the writer lacks from the reader's defaults ([Avro schema
 * resolution]).  Fields without a default stay missing: the getters below
 * report them. */
static int fill_defaults(json_t *obj, json_t *reader_def) {
        size_t i;
        json_t *f;

        json_array_foreach(json_object_get(reader_def, "fields"), i, f) {
                const char *name = json_string_value(json_object_get(f, "name"));
                json_t *def = json_object_get(f, "default");

                if (name && def && !json_object_get(obj, name) && json_object_set(obj, name, def) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* Typed field getters: each reports a missing or ill-typed field as an
 * INVALID_EVENT naming the field and its record. */
struct getter {
        json_t *obj;
        const char *record;
        struct mcd_avro_error *err;
};

static json_t *get_field(struct getter *g, const char *name) {
        json_t *j = json_object_get(g->obj, name);

        if (!j)
                fail(g->err, MCD_DLQ_INVALID_EVENT,
                     "Field %s of %s is missing from the writer schema and has no default.", name, g->record);
        return j;
}

static int type_error(struct getter *g, const char *name, const char *want) {
        return fail(g->err, MCD_DLQ_INVALID_EVENT, "Field %s of %s is not %s.", name, g->record, want);
}

/* A string, checked for embedded NUL bytes (the model's strings are C
 * strings), copied to *dst. */
/* Strict UTF-8 (RFC 3629: no overlongs, no surrogates, at most U+10FFFF):
 * Avro strings are UTF-8, and every string the daemon keeps must survive
 * JSON (state in Redis, the changelog, tail). */
static bool valid_utf8(const unsigned char *s, size_t n) {
        size_t i = 0;

        while (i < n) {
                unsigned c = s[i], len, cp;
                if (c < 0x80) {
                        i++;
                        continue;
                }
                if (c >= 0xC2 && c <= 0xDF)
                        len = 2, cp = c & 0x1F;
                else if (c >= 0xE0 && c <= 0xEF)
                        len = 3, cp = c & 0x0F;
                else if (c >= 0xF0 && c <= 0xF4)
                        len = 4, cp = c & 0x07;
                else
                        return false;
                if (n - i < len)
                        return false;
                for (unsigned k = 1; k < len; k++) {
                        if ((s[i + k] & 0xC0) != 0x80)
                                return false;
                        cp = (cp << 6) | (s[i + k] & 0x3F);
                }
                if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
                    (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
                        return false;
                i += len;
        }
        return true;
}

static int copy_string(struct getter *g, const char *name, json_t *j, char **dst) {
        if (strlen(json_string_value(j)) != json_string_length(j))
                return fail(g->err, MCD_DLQ_CORRUPT_AVRO, "Field %s of %s contains a NUL byte.", name, g->record);
        if (!valid_utf8((const unsigned char *)json_string_value(j), json_string_length(j)))
                return fail(g->err, MCD_DLQ_CORRUPT_AVRO, "Field %s of %s is not valid UTF-8.", name, g->record);
        *dst = strdup(json_string_value(j));
        if (!*dst)
                return fail(g->err, MCD_DLQ_CORRUPT_AVRO, "Out of memory decoding field %s of %s.", name, g->record);
        return 0;
}

static int get_string(struct getter *g, const char *name, bool nullable, char **dst) {
        json_t *j = get_field(g, name);

        if (!j)
                return -EBADMSG;
        if (json_is_null(j) && nullable) {
                *dst = NULL;
                return 0;
        }
        if (!json_is_string(j))
                return type_error(g, name, nullable ? "a string or null" : "a string");
        return copy_string(g, name, j, dst);
}

static int get_long(struct getter *g, const char *name, bool nullable, bool *has, int64_t *dst) {
        json_t *j = get_field(g, name);

        if (!j)
                return -EBADMSG;
        if (json_is_null(j) && nullable) {
                *has = false;
                *dst = 0;
                return 0;
        }
        if (!json_is_integer(j))
                return type_error(g, name, nullable ? "a long or null" : "a long");
        *has = true;
        *dst = json_integer_value(j);
        return 0;
}

static int get_time(struct getter *g, const char *name, mcd_time_t *dst) {
        bool has;

        return get_long(g, name, false, &has, dst);
}

static int get_bool(struct getter *g, const char *name, bool *dst) {
        json_t *j = get_field(g, name);

        if (!j)
                return -EBADMSG;
        if (!json_is_boolean(j))
                return type_error(g, name, "a boolean");
        *dst = json_is_true(j);
        return 0;
}

/* An enum field, by symbol name (so writer and reader symbol orders may
 * differ).  *dst is the model's value. */
static int get_enum(struct getter *g, const char *name, int (*from_name)(const char *), int *dst) {
        json_t *j = get_field(g, name);
        int v;

        if (!j)
                return -EBADMSG;
        if (!json_is_string(j))
                return type_error(g, name, "an enum symbol");
        v = from_name(json_string_value(j));
        if (v < 0)
                return fail(g->err, MCD_DLQ_INVALID_EVENT, "Field %s of %s has the unknown symbol %.60s.", name,
                            g->record, json_string_value(j));
        *dst = v;
        return 0;
}

static int get_string_array(struct getter *g, const char *name, char ***dst, size_t *n) {
        json_t *j = get_field(g, name), *x;
        size_t i;
        int r;

        if (!j)
                return -EBADMSG;
        if (!json_is_array(j))
                return type_error(g, name, "an array of strings");
        *n = 0;
        *dst = NULL;
        if (json_array_size(j) == 0)
                return 0;
        *dst = calloc(json_array_size(j), sizeof(**dst));
        if (!*dst)
                return fail(g->err, MCD_DLQ_CORRUPT_AVRO, "Out of memory decoding field %s of %s.", name, g->record);
        json_array_foreach(j, i, x) {
                if (!json_is_string(x))
                        return type_error(g, name, "an array of strings");
                if ((r = copy_string(g, name, x, &(*dst)[i])) < 0)
                        return r;
                (*n)++;
        }
        return 0;
}

#define GET_ENUM(g, name, from_name, dst)                                                         \
        ({                                                                                        \
                int v_ = 0, r_ = get_enum((g), (name), (from_name), &v_);                         \
                if (r_ == 0)                                                                      \
                        (dst) = v_;                                                               \
                r_;                                                                               \
        })

static int event_payload_from_json(struct getter *g, struct mcd_event *ev) {
        int r = 0;

        switch (ev->type) {
        case MCD_EV_RELATIONSHIP_REQUESTED:
                if ((r = get_string(g, "partner_id", false, &ev->partner_id)) < 0 ||
                    (r = get_string(g, "indirect_reseller_id", true, &ev->indirect_reseller_id)) < 0)
                        return r;
                return get_bool(g, "customer_is_csp_partner", &ev->customer_is_csp_partner);
        case MCD_EV_RELATIONSHIP_ACCEPTED:
                return get_string(g, "partner_id", false, &ev->partner_id);
        case MCD_EV_RELATIONSHIP_REMOVED:
                if ((r = get_string(g, "partner_id", false, &ev->partner_id)) < 0)
                        return r;
                return get_string(g, "reason", true, &ev->reason);
        case MCD_EV_SUBSCRIPTION_REPORTED:
                if ((r = get_string(g, "subscription_id", false, &ev->subscription_id)) < 0 ||
                    (r = get_string(g, "offer_name", false, &ev->offer_name)) < 0 ||
                    (r = GET_ENUM(g, "billing", mcd_billing_from_name, ev->billing)) < 0 ||
                    (r = GET_ENUM(g, "channel", mcd_channel_from_name, ev->channel)) < 0 ||
                    (r = get_string(g, "seller_partner_id", true, &ev->seller_partner_id)) < 0)
                        return r;
                return get_long(g, "term_end", true, &ev->has_term_end, &ev->term_end);
        case MCD_EV_SWITCH_REQUESTED:
                if ((r = get_string(g, "subscription_id", false, &ev->subscription_id)) < 0)
                        return r;
                return get_string(g, "target_partner_id", false, &ev->target_partner_id);
        case MCD_EV_CSP_SUBSCRIPTION_CREATED:
                if ((r = get_string(g, "subscription_id", false, &ev->subscription_id)) < 0 ||
                    (r = get_string(g, "csp_subscription_id", false, &ev->csp_subscription_id)) < 0)
                        return r;
                return get_string(g, "partner_id", false, &ev->partner_id);
        case MCD_EV_SUBSCRIPTION_CANCELLED:
                if ((r = get_string(g, "subscription_id", false, &ev->subscription_id)) < 0 ||
                    (r = GET_ENUM(g, "scope", mcd_scope_from_name, ev->scope)) < 0)
                        return r;
                return get_string_array(g, "services", &ev->services, &ev->n_services);
        case MCD_EV_SUBSCRIPTION_TERM_ENDED:
                return get_string(g, "subscription_id", false, &ev->subscription_id);
        default:
                return -EINVAL;
        }
}

/* The envelope and payload as JSON, with the reader's defaults filled in. */
struct decoded {
        json_t *env;
        json_t *payload;                /* borrowed from env */
        const char *type;               /* payload record name, borrowed */
};

static int decode_envelope(struct mcd_avro *a, enum mcd_avro_kind kind, const void *buf, size_t len,
                           struct decoded *d, struct mcd_avro_error *err) {
        const struct schema_entry *reader = &a->v[a->reader[kind]];
        json_t *pdef;
        int r;

        if ((r = decode_json(a, kind, buf, len, &d->env, err)) < 0)
                return r;
        if ((r = split_payload(d->env, kind_names[kind], &d->type, &d->payload, err)) < 0)
                return r;
        pdef = reader_payload_def(reader, d->type);
        if (!pdef)
                return fail(err, MCD_DLQ_INVALID_EVENT, "The %s carries the unknown payload record %.60s.",
                            kind_names[kind], d->type);
        if (fill_defaults(d->env, reader->root) < 0 || fill_defaults(d->payload, pdef) < 0)
                return fail(err, MCD_DLQ_CORRUPT_AVRO, "Out of memory decoding a %s.", kind_names[kind]);
        return 0;
}

static int event_from_json(struct decoded *d, enum mcd_avro_kind kind, struct mcd_event *ev,
                           struct mcd_avro_error *err) {
        struct getter env = { .obj = d->env, .record = kind_names[kind], .err = err };
        struct getter pay = { .obj = d->payload, .err = err };
        int t = mcd_event_type_from_name(short_name(d->type)), r;

        if (t < 0)
                return fail(err, MCD_DLQ_INVALID_EVENT, "The %s carries the unknown event type %.60s.",
                            kind_names[kind], d->type);
        if (mcd_event_is_relationship((enum mcd_event_type)t) != (kind == MCD_AVRO_RELATIONSHIP_EVENT))
                return fail(err, MCD_DLQ_INVALID_EVENT, "A %s cannot carry a %s payload.", kind_names[kind],
                            d->type);
        ev->type = (enum mcd_event_type)t;
        pay.record = mcd_event_type_name(ev->type);
        if ((r = get_string(&env, "event_id", false, &ev->event_id)) < 0 ||
            (r = get_time(&env, "occurred_at", &ev->occurred_at)) < 0 ||
            (r = get_string(&env, "customer_id", false, &ev->customer_id)) < 0 ||
            (r = GET_ENUM(&env, "cloud", mcd_cloud_from_name, ev->cloud)) < 0)
                return r;
        return event_payload_from_json(&pay, ev);
}

int mcd_avro_decode_event(struct mcd_avro *a, enum mcd_avro_kind expected, const void *buf, size_t len,
                          struct mcd_event *ev, struct mcd_avro_error *err) {
        struct decoded d = { 0 };
        struct mcd_event tmp = { 0 };
        const char *why = NULL;
        int r;

        if (!a || !ev || (expected != MCD_AVRO_RELATIONSHIP_EVENT && expected != MCD_AVRO_SUBSCRIPTION_EVENT))
                return -EINVAL;
        r = decode_envelope(a, expected, buf, len, &d, err);
        if (r == 0)
                r = event_from_json(&d, expected, &tmp, err);
        if (r == 0 && mcd_event_validate(&tmp, &why) < 0)
                r = fail(err, MCD_DLQ_INVALID_EVENT, "The %s is invalid: %s.", mcd_event_type_name(tmp.type),
                         why ? why : "a required field is missing");
        json_decref(d.env);
        if (r < 0) {
                mcd_event_clear(&tmp);
                return r;
        }
        *ev = tmp;
        return 0;
}

static int outcome_payload_from_json(struct getter *g, struct mcd_outcome *o) {
        int r = 0;

        switch (o->type) {
        case MCD_OUT_CUSTOMER_STATE_CHANGED:
                if ((r = GET_ENUM(g, "from_state", mcd_customer_state_from_name, o->from_state)) < 0)
                        return r;
                return GET_ENUM(g, "to_state", mcd_customer_state_from_name, o->to_state);
        case MCD_OUT_RESALE_REJECTED:
                return get_string(g, "reason", false, &o->reason);
        case MCD_OUT_RELATIONSHIP_REQUEST_REQUIRED:
                if ((r = GET_ENUM(g, "billing", mcd_billing_from_name, o->billing)) < 0)
                        return r;
                return GET_ENUM(g, "channel", mcd_channel_from_name, o->channel);
        case MCD_OUT_MULTI_CHANNEL_SUPPORT_ENABLED:
                if ((r = GET_ENUM(g, "billing", mcd_billing_from_name, o->billing)) < 0 ||
                    (r = GET_ENUM(g, "channel", mcd_channel_from_name, o->channel)) < 0)
                        return r;
                return GET_ENUM(g, "next_action", mcd_next_action_from_name, o->next_action);
        case MCD_OUT_SWITCH_BLOCKED_UNTIL_TERM_END:
                if ((r = get_time(g, "term_end", &o->term_end)) < 0)
                        return r;
                return GET_ENUM(g, "channel", mcd_channel_from_name, o->channel);
        case MCD_OUT_SWITCH_ALLOWED:
                return GET_ENUM(g, "reason", mcd_switch_reason_from_name, o->switch_reason);
        case MCD_OUT_AZURE_CSP_SUBSCRIPTION_CREATED:
                if ((r = get_string(g, "csp_subscription_id", false, &o->csp_subscription_id)) < 0 ||
                    (r = GET_ENUM(g, "legacy_channel", mcd_channel_from_name, o->channel)) < 0)
                        return r;
                return get_bool(g, "coexists", &o->coexists);
        case MCD_OUT_SUBSCRIPTION_MIGRATED:
                return get_string(g, "csp_subscription_id", true, &o->csp_subscription_id);
        case MCD_OUT_TRANSITION_REJECTED:
                if ((r = get_string(g, "reason", false, &o->reason)) < 0)
                        return r;
                return get_string(g, "rejected_event_type", false, &o->rejected_event_type);
        default:
                return -EINVAL;
        }
}

static int outcome_from_json(struct decoded *d, struct mcd_outcome *o, struct mcd_avro_error *err) {
        struct getter env = { .obj = d->env, .record = kind_names[MCD_AVRO_OUTCOME], .err = err };
        struct getter pay = { .obj = d->payload, .err = err };
        int t = mcd_outcome_type_from_name(short_name(d->type)), r;

        if (t < 0)
                return fail(err, MCD_DLQ_INVALID_EVENT, "The MultichannelOutcome carries the unknown type %.60s.",
                            d->type);
        o->type = (enum mcd_outcome_type)t;
        pay.record = mcd_outcome_type_name(o->type);
        if ((r = get_string(&env, "event_id", false, &o->event_id)) < 0 ||
            (r = get_string(&env, "caused_by", false, &o->caused_by)) < 0 ||
            (r = get_string(&env, "customer_id", false, &o->customer_id)) < 0 ||
            (r = GET_ENUM(&env, "cloud", mcd_cloud_from_name, o->cloud)) < 0 ||
            (r = get_time(&env, "occurred_at", &o->occurred_at)) < 0 ||
            (r = get_string(&env, "partner_id", true, &o->partner_id)) < 0 ||
            (r = get_string(&env, "subscription_id", true, &o->subscription_id)) < 0 ||
            (r = GET_ENUM(&env, "customer_state", mcd_customer_state_from_name, o->customer_state)) < 0 ||
            (r = get_string(&env, "message", false, &o->message)) < 0)
                return r;
        return outcome_payload_from_json(&pay, o);
}

int mcd_avro_decode_outcome(struct mcd_avro *a, const void *buf, size_t len, struct mcd_outcome *o,
                            struct mcd_avro_error *err) {
        struct decoded d = { 0 };
        struct mcd_outcome tmp = { 0 };
        int r;

        if (!a || !o)
                return -EINVAL;
        r = decode_envelope(a, MCD_AVRO_OUTCOME, buf, len, &d, err);
        if (r == 0)
                r = outcome_from_json(&d, &tmp, err);
        json_decref(d.env);
        if (r < 0) {
                mcd_outcome_clear(&tmp);
                return r;
        }
        *o = tmp;
        return 0;
}
