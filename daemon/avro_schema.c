/* avro_schema.c -- the codec's writer schemas: Parsing Canonical Form,
 * CRC-64-AVRO fingerprints, and the registry of schemas by fingerprint.
 *
 * libavro-c has neither the canonical form nor the fingerprint, so both are
 * computed here with jansson over the schema text.  The registry starts with
 * every schema version embedded at build time (schemas/, the newest version of
 * each kind being its reader schema) and takes more writers at run time
 * (mcd_avro_register).  Each entry keeps its text, its parsed JSON, an index
 * of its record definitions by full name (for defaults) and libavro-c's
 * schema and generic value class (for the body). */
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
#include "daemon/schemas_embedded.h"
#include "daemon/strbuf.h"

#define RABIN_EMPTY UINT64_C(0xc15d213aa4d7a795)

const char *const mcd_avro_kind_names[MCD_AVRO__KIND_COUNT] = {
        [MCD_AVRO_RELATIONSHIP_EVENT] = "RelationshipEvent",
        [MCD_AVRO_SUBSCRIPTION_EVENT] = "SubscriptionEvent",
        [MCD_AVRO_OUTCOME] = "MultichannelOutcome",
};

static const char *const primitive_names[] = {
        "null", "boolean", "int", "long", "float", "double", "bytes", "string",
};

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
char *mcd_avro_full_name(const char *name, const char *ns) {
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

const char *mcd_avro_short_name(const char *fullname) {
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
        return mcd_avro_full_name(name, ns);
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
        full = mcd_avro_full_name(name, ns);
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

void mcd_avro_entry_clear(struct schema_entry *e) {
        free(e->event_plan);
        if (e->value.iface)
                avro_value_decref(&e->value);
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
int mcd_avro_entry_init(struct schema_entry *e, const char *json) {
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
        mcd_avro_entry_clear(e);
        return r;
}

struct schema_entry *mcd_avro_find_entry(struct mcd_avro *a, uint64_t fp) {
        for (size_t i = 0; i < a->n; i++)
                if (a->v[i].fp == fp)
                        return &a->v[i];
        return NULL;
}

/* Moves e into the registry.  0, -EEXIST or -ENOMEM (e is cleared on error). */
static int add_entry(struct mcd_avro *a, struct schema_entry *e) {
        if (mcd_avro_find_entry(a, e->fp)) {
                mcd_avro_entry_clear(e);
                return -EEXIST;
        }
        if (a->n == a->cap) {
                size_t cap = a->cap ? a->cap * 2 : 8;
                struct schema_entry *v = realloc(a->v, cap * sizeof(*v));

                if (!v) {
                        mcd_avro_entry_clear(e);
                        return -ENOMEM;
                }
                a->v = v;
                a->cap = cap;
        }
        a->v[a->n++] = *e;
        return 0;
}

int mcd_avro_parse_file_name(const char *name, enum mcd_avro_kind *kind, int *version) {
        const char *v = strstr(name, ".v");
        char *end;
        long n;

        if (!v)
                return -EINVAL;
        n = strtol(v + 2, &end, 10);
        if (end == v + 2 || strcmp(end, ".avsc") != 0 || n < 1 || n > INT_MAX)
                return -EINVAL;
        for (int k = 0; k < MCD_AVRO__KIND_COUNT; k++)
                if (strlen(mcd_avro_kind_names[k]) == (size_t)(v - name) &&
                    strncmp(name, mcd_avro_kind_names[k], (size_t)(v - name)) == 0) {
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

        if ((r = mcd_avro_parse_file_name(f->name, &kind, &version)) < 0)
                return r;
        if ((r = mcd_avro_entry_init(&e, f->json)) < 0)
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
        free(a->outcome_plan);
        free(a->obuf);
        for (size_t i = 0; i < a->n; i++)
                mcd_avro_entry_clear(&a->v[i]);
        free(a->v);
        free(a->ids);
        if (a->mem_reader)
                avro_reader_free(a->mem_reader);
        free(a);
}

int mcd_avro_register(struct mcd_avro *a, enum mcd_avro_kind kind, const char *schema_json) {
        return mcd_avro_register_from(a, kind, schema_json, false);
}

int mcd_avro_register_from(struct mcd_avro *a, enum mcd_avro_kind kind, const char *schema_json, bool from_dir) {
        struct schema_entry e;
        char *copy;
        int r;

        if (!a || !schema_json || (unsigned)kind >= MCD_AVRO__KIND_COUNT)
                return -EINVAL;
        copy = strdup(schema_json);
        if (!copy)
                return -ENOMEM;
        if ((r = mcd_avro_entry_init(&e, copy)) < 0) {
                free(copy);
                return r;
        }
        e.owned_json = copy;
        e.kind = kind;
        e.from_dir = from_dir;
        return add_entry(a, &e);
}

const char *mcd_avro_reader_schema(const struct mcd_avro *a, enum mcd_avro_kind kind) {
        if (!a || (unsigned)kind >= MCD_AVRO__KIND_COUNT)
                return NULL;
        return a->v[a->reader[kind]].json;
}
