/* avro_confluent.c -- the Confluent wire format: a message is 0x00, the
 * 4-byte big-endian id its writer schema has in a Schema Registry, then the
 * Avro body.  This file turns an id into a writer schema the codec knows.
 *
 * DESIGN: the first message of an id asks the registry (registry.h, which
 * caches the text across the codecs of every thread); the schema is then
 * registered in this codec like any writer schema (by fingerprint, so that
 * resolution against the reader is the same code for both framings) and the
 * id remembered with its fingerprint.  Its envelope is read from the record
 * name.  Only an answer that the id does not exist makes a dead letter; a
 * registry that cannot be asked makes -EAGAIN, so that a good message is
 * never lost to an outage. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "daemon/avro_codec.h"
#include "daemon/avro_internal.h"
#include "daemon/registry.h"

static int fail(struct mcd_avro_error *err, int r, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static int fail(struct mcd_avro_error *err, int r, const char *code, const char *fmt, ...) {
        va_list ap;

        if (err) {
                err->code = code;
                va_start(ap, fmt);
                vsnprintf(err->message, sizeof(err->message), fmt, ap);
                va_end(ap);
        }
        return r;
}

void mcd_avro_use_registry(struct mcd_avro *a, struct mcd_registry *r) {
        a->registry = r;
}

void mcd_avro_frame_outcomes_confluent(struct mcd_avro *a, uint32_t id) {
        a->outcome_confluent = true;
        a->outcome_id = id;
}

/* The envelope a record schema is, by its unqualified name; -1 if none. */
static int kind_of_schema(const char *json) {
        json_t *j = json_loads(json, 0, NULL);
        const char *name = json_string_value(json_object_get(j, "name"));
        int kind = -1;

        for (int k = 0; name && k < MCD_AVRO__KIND_COUNT; k++)
                if (strcmp(mcd_avro_short_name(name), mcd_avro_kind_names[k]) == 0)
                        kind = k;
        json_decref(j);
        return kind;
}

/* Remembers that id names the schema of fingerprint fp.  0 or -ENOMEM. */
static int remember(struct mcd_avro *a, uint32_t id, uint64_t fp) {
        if (a->n_ids == a->cap_ids) {
                size_t cap = a->cap_ids ? 2 * a->cap_ids : 8;
                struct id_fp *v = realloc(a->ids, cap * sizeof(*v));
                if (!v)
                        return -ENOMEM;
                a->ids = v;
                a->cap_ids = cap;
        }
        a->ids[a->n_ids++] = (struct id_fp){.id = id, .fp = fp};
        return 0;
}

/* The entry id names in this codec, or NULL. */
static struct schema_entry *known(struct mcd_avro *a, uint32_t id) {
        for (size_t i = 0; i < a->n_ids; i++)
                if (a->ids[i].id == id)
                        return mcd_avro_find_entry(a, a->ids[i].fp);
        return NULL;
}

/* Asks the registry for id's schema and registers it in the codec. */
static int fetch(struct mcd_avro *a, uint32_t id, struct mcd_avro_error *err) {
        char why[512], *json = NULL;
        uint64_t fp;
        int kind, r;

        r = mcd_registry_schema(a->registry, id, &json, why, sizeof(why));
        if (r == -ENOENT)
                return fail(err, -EBADMSG, MCD_DLQ_UNKNOWN_SCHEMA,
                            "The schema registry has no schema id %" PRIu32 " (404).", id);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return fail(err, -EAGAIN, MCD_DLQ_REGISTRY_UNAVAILABLE, "%s", why);
        kind = kind_of_schema(json);
        if (kind < 0)
                r = fail(err, -EBADMSG, MCD_DLQ_UNKNOWN_SCHEMA,
                         "The schema id %" PRIu32 " of the registry is not a record this daemon reads.", id);
        else if ((r = mcd_avro_register(a, (enum mcd_avro_kind)kind, json)) < 0 && r != -EEXIST)
                r = r == -ENOMEM ? r
                                 : fail(err, -EBADMSG, MCD_DLQ_UNKNOWN_SCHEMA,
                                        "The schema id %" PRIu32 " of the registry is not a valid Avro record schema.",
                                        id);
        else if ((r = mcd_avro_fingerprint(json, &fp)) == 0)
                r = remember(a, id, fp);
        free(json);
        return r;
}

int mcd_avro_confluent_writer(struct mcd_avro *a, const unsigned char *p, size_t len,
                              struct schema_entry **e, struct mcd_avro_error *err) {
        uint32_t id;
        int r;

        if (len < CONFLUENT_HEADER_SIZE)
                return fail(err, -EBADMSG, MCD_DLQ_BAD_MAGIC,
                            "The message is %zu bytes long, shorter than the 5-byte Confluent wire-format header.",
                            len);
        id = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
        if ((*e = known(a, id)))
                return 0;
        if (!a->registry)
                return fail(err, -EBADMSG, MCD_DLQ_UNKNOWN_SCHEMA,
                            "The message is in the Confluent wire format (schema id %" PRIu32
                            ") but no schema_registry.url is configured.",
                            id);
        if ((r = fetch(a, id, err)) == -ENOMEM)
                return fail(err, -EAGAIN, MCD_DLQ_REGISTRY_UNAVAILABLE,
                            "Out of memory adding the schema id %" PRIu32 " of the registry.", id);
        if (r < 0)
                return r;
        if (!(*e = known(a, id)))
                return fail(err, -EBADMSG, MCD_DLQ_UNKNOWN_SCHEMA,
                            "The schema id %" PRIu32 " could not be added to the known schemas.", id);
        return 0;
}
