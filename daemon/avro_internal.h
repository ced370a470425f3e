/* avro_internal.h -- what the codec's files share, and nothing outside the
 * codec includes: the single-object header, the registry's entries, and the
 * helpers one part of the codec lends another.
 *
 *   avro_schema.c   canonical form, fingerprints, the registry of schemas
 *   avro_value.c    the checked walk of a body; generic value <-> JSON
 *   avro_encode.c   model -> Avro; the one envelope (header) writer
 *   avro_decode.c   Avro -> model, with the reader's defaults
 *   avro_dir.c      writer schemas read from a folder (schemas.dir) */
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
        bool from_dir;                  /* read from schemas.dir (avro_dir.c): replaced by the next read */
};

struct mcd_avro {
        struct schema_entry *v;         /* every known schema */
        size_t n, cap;
        size_t reader[MCD_AVRO__KIND_COUNT];    /* index in v of each kind's reader schema */
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
};

/* Walks one value of schema s.  0, or -EBADMSG with w->why set. */
int mcd_avro_walk_value(struct walk *w, avro_schema_t s, int depth);
/* s with links followed. */
avro_schema_t mcd_avro_deref(avro_schema_t s);
/* A generic value as JSON (new reference), NULL when out of memory. */
json_t *mcd_avro_value_to_json(avro_value_t *v, int depth);
/* Sets generic value v from JSON j; `records` is the writer schema's record
 * index, whose defaults fill fields j lacks.  0 or -EINVAL / -ENOMEM. */
int mcd_avro_value_from_json(json_t *records, json_t *j, avro_value_t *v);

/* ---- avro_encode.c */

/* The one writer of the single-object envelope, for events and outcomes
 * alike: 0xC3 0x01, e's fingerprint (8 bytes, little-endian), then value v
 * (of e's schema) in Avro binary.  *buf is malloc'd.  0, -ENOMEM or -EIO. */
int mcd_avro_frame_write(const struct schema_entry *e, avro_value_t *v, void **buf, size_t *len);

#endif
