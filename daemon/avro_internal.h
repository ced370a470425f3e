/* avro_internal.h -- what the codec's files share, and nothing outside the
 * codec includes: the single-object header, the registry's entries, and the
 * helpers one part of the codec lends another.
 *
 *   avro_schema.c   canonical form, fingerprints, the registry of schemas
 *   avro_value.c    the checked walk of a body; JSON -> generic value (encoding)
 *   avro_encode.c   events -> Avro; the one envelope (header) writer
 *   avro_outcome.c  outcomes -> Avro, by a plan made from the outcome schema
 *   avro_decode.c   Avro -> model: framing, reading, the model's fields by name
 *   avro_view.c     a read value by field name, with the reader's defaults
 *   avro_dir.c      writer schemas read from a folder (schemas.dir)
 *   avro_confluent.c  the Confluent wire format: schema ids and the registry */
#ifndef MCD_AVRO_INTERNAL_H
#define MCD_AVRO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <avro.h>
#include <jansson.h>

#include "daemon/avro_codec.h"

#define SOE_MAGIC0 0xC3
#define SOE_MAGIC1 0x01
#define SOE_HEADER_SIZE 10
#define CONFLUENT_MAGIC 0x00
#define CONFLUENT_HEADER_SIZE 5         /* 0x00, 4-byte big-endian schema id */
#define MAX_DEPTH 128                   /* records, arrays and maps nested in a value; schema nesting */
#define MAX_ITEMS_SLACK 65536           /* array/map items allowed beyond one per byte */

/* One writer schema the codec knows. */
struct schema_entry {
        enum mcd_avro_kind kind;
        int version;                    /* N of "<Name>.vN.avsc"; 0 when registered */
        uint64_t fp;                    /* CRC-64-AVRO of the canonical form */
        const char *json;               /* the schema text */
        char *owned_json;               /* json, when it is ours to free */
        json_t *root;                   /* parsed schema text */
        json_t *records;                /* full name -> record definition (borrowed from root) */
        avro_schema_t schema;           /* libavro-c's form */
        avro_value_iface_t *iface;      /* generic value class of schema */
        avro_value_t value;             /* of iface, reused by every decode (iface NULL until the first) */
        struct mcd_event_plan *event_plan;      /* events read straight from the body (avro_event.c), or NULL */
        int event_plan_state;           /* 0: not made yet; 1: made; -1: none (the general path reads) */
        bool from_dir;                  /* read from schemas.dir (avro_dir.c): replaced by the next read */
};

/* A Confluent schema id and the fingerprint of the schema it names. */
struct id_fp {
        uint32_t id;
        uint64_t fp;
};

struct mcd_outcome_plan;
struct mcd_event_plan;
struct mcd_avro {
        struct schema_entry *v;         /* every known schema */
        size_t n, cap;
        size_t reader[MCD_AVRO__KIND_COUNT];    /* index in v of each kind's reader schema */
        struct mcd_registry *registry;  /* borrowed: where Confluent ids are resolved, or NULL */
        struct id_fp *ids;              /* Confluent ids resolved so far */
        size_t n_ids, cap_ids;
        bool outcome_confluent;         /* frame outcomes with outcome_id (output.format confluent) */
        uint32_t outcome_id;            /* the registry's id of the outcome reader schema */
        avro_reader_t mem_reader;       /* memory reader reused by every decode, or NULL before the first */
        struct mcd_outcome_plan *outcome_plan;  /* of the outcome reader schema, NULL before the first outcome */
        unsigned char *obuf;            /* the last outcome encoded (avro_outcome.c), kept at its largest */
        size_t obuf_cap;
        bool no_plans;                  /* tests: events decoded by the general path only */
};

/* Envelope names by kind: "RelationshipEvent", ... */
extern const char *const mcd_avro_kind_names[MCD_AVRO__KIND_COUNT];

/* ---- avro_schema.c */

/* Full name of `name` seen in namespace `ns` (NULL or "" for none): heap
 * string, NULL when out of memory. */
char *mcd_avro_full_name(const char *name, const char *ns);
/* The last component of a full name (borrowed from it). */
const char *mcd_avro_short_name(const char *fullname);
/* Parses a record schema into e (json is borrowed unless owned_json is set
 * by the caller afterwards).  0, -EINVAL or -ENOMEM. */
int mcd_avro_entry_init(struct schema_entry *e, const char *json);
/* Frees what e holds and zeroes it. */
void mcd_avro_entry_clear(struct schema_entry *e);
/* "RelationshipEvent.v3.avsc" -> kind and 3.  0 or -EINVAL. */
int mcd_avro_parse_file_name(const char *name, enum mcd_avro_kind *kind, int *version);
/* mcd_avro_register, marking the entry as read from schemas.dir or not. */
int mcd_avro_register_from(struct mcd_avro *a, enum mcd_avro_kind kind, const char *schema_json, bool from_dir);
/* The entry of a fingerprint, or NULL. */
struct schema_entry *mcd_avro_find_entry(struct mcd_avro *a, uint64_t fp);

/* ---- avro_value.c */

/* Walks an Avro body with its writer schema, checking every length, count
 * and index against the bytes that remain, so that libavro-c is only ever
 * given a well-formed body. */
struct walk {
        const unsigned char *p, *end;   /* what remains of the body */
        size_t items_left;              /* array/map items we still accept */
        const char *why;                /* set on failure */
        bool nonfinite;                 /* a float or double is NaN or infinite */
};

/* Walks one value of schema s.  0, or -EBADMSG with w->why set. */
int mcd_avro_walk_value(struct walk *w, avro_schema_t s, int depth);
/* One zigzag varint (an int or a long) of w into *out.  0, or -EBADMSG with
 * w->why set (truncated, too long, overflowing 64 bits). */
int mcd_avro_walk_long(struct walk *w, int64_t *out);
/* s with links followed. */
avro_schema_t mcd_avro_deref(avro_schema_t s);
/* The branches of u when it is a union of null and one branch of type t,
 * in either order: 0 with *null_branch and *value_branch set, else -EINVAL
 * (neither is touched). */
int mcd_avro_optional(avro_schema_t u, avro_type_t t, int *null_branch, int *value_branch);
/* Sets generic value v from JSON j; `records` is the writer schema's record
 * index, whose defaults fill fields j lacks.  0 or -EINVAL / -ENOMEM. */
int mcd_avro_value_from_json(json_t *records, json_t *j, avro_value_t *v);

/* ---- avro_encode.c */

/* The one writer of the envelope's header, for events and outcomes alike:
 * 0xC3 0x01, e's fingerprint (8 bytes, little-endian) -- or, when
 * confluent_id is not NULL, 0x00 and *confluent_id (4 bytes, big-endian) --
 * at out (room for SOE_HEADER_SIZE).  Returns its size.  This function
 * can't fail. */
size_t mcd_avro_header_write(const struct schema_entry *e, const uint32_t *confluent_id, unsigned char *out);
/* The header, then value v (of e's schema) in Avro binary.  *buf is
 * malloc'd.  0, -ENOMEM or -EIO. */
int mcd_avro_frame_write(const struct schema_entry *e, const uint32_t *confluent_id, avro_value_t *v, void **buf,
                         size_t *len);

/* ---- avro_outcome.c */

/* The plan of outcome schema e: 0, -EINVAL (a field the plan has no value
 * for, a value of the model with no field, a type the value cannot be
 * written as) or -ENOMEM.  Freed with free(). */
int mcd_avro_outcome_plan_new(const struct schema_entry *e, struct mcd_outcome_plan **out);

/* ---- avro_decode.c */

/* The reader's record definition of a payload record, by unqualified
 * name, or NULL. */
json_t *mcd_avro_reader_record(const struct schema_entry *reader, const char *name);

/* ---- avro_event.c */

/* The plan reading events straight from a body of writer schema e (a
 * relationship or subscription event), for codec a (whose reader schema
 * must know each payload record the plan reads).  0, -EINVAL (no plan: a
 * field of the model missing from e, or of a type a plan cannot read) or
 * -ENOMEM.  Freed with free(). */
int mcd_avro_event_plan_new(struct mcd_avro *a, const struct schema_entry *e, struct mcd_event_plan **out);
/* Reads a walked (well-formed) body of n bytes into ev (zeroed), its
 * strings in one block (ev->strings, n + 1 bytes).  0;
 * -EAGAIN when the general path is to decode it (it names the fault:
 * mcd_avro_decode_event), or -ENOMEM; either way ev may hold strings, which
 * mcd_event_clear frees. */
int mcd_avro_event_plan_read(const struct mcd_event_plan *p, const unsigned char *body, size_t n,
                             struct mcd_event *ev);

/* ---- avro_confluent.c */

/* The writer schema of a message in the Confluent wire format (p[0] is
 * 0x00): its entry, found by the id in the header, through the registry the
 * first time.  0; -EBADMSG with err filled (a dead letter: short header, no
 * registry configured, an id the registry does not know, a schema that is
 * none of ours); -EAGAIN with err->code MCD_DLQ_REGISTRY_UNAVAILABLE (not a
 * dead letter: try again later); -ENOMEM. */
int mcd_avro_confluent_writer(struct mcd_avro *a, const unsigned char *p, size_t len,
                              struct schema_entry **e, struct mcd_avro_error *err);

/* ---- avro_view.c */

/* Strict UTF-8 (RFC 3629: no overlongs, no surrogates, at most U+10FFFF). */
bool mcd_avro_valid_utf8(const unsigned char *s, size_t n);
/* 0 when the n bytes at s are text the model keeps (no NUL byte, valid
 * UTF-8), else -EINVAL with *fault saying why.  This function can't fail
 * otherwise. */
int mcd_avro_text_check(const void *s, size_t n, const char **fault);
/* The n bytes at s copied to *dst as a C string (malloc'd: the model owns
 * it) when they are one the model keeps: no NUL byte, valid UTF-8.  0;
 * -ENOMEM; -EINVAL with *fault the predicate of why not ("contains a NUL
 * byte", "is not valid UTF-8"). */
int mcd_avro_text_copy(const void *s, size_t n, char **dst, const char **fault);
/* Fills err (code, then the sentence made of fmt) and returns -EBADMSG. */
int mcd_avro_fail(struct mcd_avro_error *err, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* An object of a read value, as Avro's JSON encoding shows it: a record or a
 * map (names to values), or a union's record branch ({"RecordName": record}).
 * Borrowed from the value: good until the next read into it. */
struct mcd_avro_obj {
        avro_value_t v;                 /* the record or map; the record, for a branch */
        const char *branch;             /* the record's name when a union branch, else NULL */
};

/* v (a union's branch followed) as an object.  0, or -EINVAL when it is
 * none. */
int mcd_avro_obj_of(const avro_value_t *v, struct mcd_avro_obj *o);
/* Member `name` of o into *out: true, or false when o has none. */
bool mcd_avro_obj_get(const struct mcd_avro_obj *o, const char *name, avro_value_t *out);
/* The one member of o, itself an object, and its name.  0, or -EINVAL when
 * o has not exactly one member or it is no object. */
int mcd_avro_obj_only_member(const struct mcd_avro_obj *o, const char **name, struct mcd_avro_obj *member);

/* One record of the writer's value, read into the model's fields. */
struct mcd_avro_fields {
        struct mcd_avro_obj obj;        /* the writer's record */
        json_t *reader_def;             /* the reader's definition: defaults of the fields obj lacks */
        const char *record;             /* its name, in dead-letter sentences */
        struct mcd_avro_error *err;     /* filled on failure */
};

/* Typed getters of field `name`: the writer's value, else the reader's
 * default.  0, or -EBADMSG with err filled: INVALID_EVENT when the field is
 * missing without a default or of another kind (naming field and record),
 * CORRUPT_AVRO for a string with a NUL byte or invalid UTF-8.  Strings are
 * malloc'd copies (NULL for a null of a nullable field); get_long sets *has
 * false for a null; get_enum maps the symbol with from_name. */
int mcd_avro_get_string(struct mcd_avro_fields *f, const char *name, bool nullable, char **dst);
int mcd_avro_get_long(struct mcd_avro_fields *f, const char *name, bool nullable, bool *has, int64_t *dst);
int mcd_avro_get_time(struct mcd_avro_fields *f, const char *name, mcd_time_t *dst);
int mcd_avro_get_bool(struct mcd_avro_fields *f, const char *name, bool *dst);
int mcd_avro_get_enum(struct mcd_avro_fields *f, const char *name, int (*from_name)(const char *), int *dst);
/* An array of strings: *dst calloc'd (NULL when empty), *n the strings
 * copied so far, also on failure (mcd_event_clear frees them). */
int mcd_avro_get_string_array(struct mcd_avro_fields *f, const char *name, char ***dst, size_t *n);

#endif
