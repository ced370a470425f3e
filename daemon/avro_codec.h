/* avro_codec.h -- the contract's Avro single-object encoding.
 *
 * Values on every topic are 0xC3 0x01, the 8-byte little-endian CRC-64-AVRO
 * fingerprint of the writer schema's Parsing Canonical Form, then the Avro
 * binary body.  A codec knows every schema version the project ships (the
 * files under schemas/, embedded at build time) plus any registered at run
 * time, and resolves a writer schema against the reader schema by field name:
 * a field the reader lacks is skipped, a field the writer lacks takes the
 * reader's `default` (libavro-c ignores defaults, so the codec fills them).
 *
 * Ownership: buffers returned by the encoders are malloc'd and the caller's to
 * free(); decoded events / outcomes own their strings (mcd_event_clear /
 * mcd_outcome_clear). */
#ifndef MCD_AVRO_CODEC_H
#define MCD_AVRO_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "handlers/model.h"

struct mcd_avro;

/* Which envelope a schema (or a decoded value) is. */
enum mcd_avro_kind {
        MCD_AVRO_RELATIONSHIP_EVENT,
        MCD_AVRO_SUBSCRIPTION_EVENT,
        MCD_AVRO_OUTCOME,
        MCD_AVRO__KIND_COUNT
};

/* Why a message could not be decoded: the dead-letter `error` header. */
#define MCD_DLQ_BAD_MAGIC          "BAD_MAGIC"          /* not 0xC3 0x01, or shorter than the header */
#define MCD_DLQ_UNKNOWN_SCHEMA     "UNKNOWN_SCHEMA"     /* fingerprint of no known writer schema */
#define MCD_DLQ_WRONG_TOPIC        "WRONG_TOPIC"        /* a known schema, but not this topic's envelope */
#define MCD_DLQ_CORRUPT_AVRO       "CORRUPT_AVRO"       /* truncated, trailing bytes, bad union index, bad enum... */
#define MCD_DLQ_INVALID_EVENT      "INVALID_EVENT"      /* decodes, but a field required for its case is missing */
#define MCD_DLQ_KEY_MISMATCH       "KEY_MISMATCH"       /* Kafka key differs from customer_id */
/* Not a dead letter: the schema registry could not be asked (unreachable,
 * timeout, 5xx); the message is to be decoded again later. */
#define MCD_DLQ_REGISTRY_UNAVAILABLE "REGISTRY_UNAVAILABLE"

struct mcd_avro_error {
        const char *code;            /* one of MCD_DLQ_* (static) */
        char message[256];           /* one English sentence */
};

struct mcd_registry;

/* Creates a codec with every embedded schema version.  0 or negative errno. */
int mcd_avro_new(struct mcd_avro **out);
void mcd_avro_free(struct mcd_avro *a);

/* Registers one more writer schema (JSON text) of the given kind, e.g. a
 * producer's newer version.  Returns 0, -EINVAL when it does not parse or is
 * not a record, -EEXIST when its fingerprint is already known. */
int mcd_avro_register(struct mcd_avro *a, enum mcd_avro_kind kind, const char *schema_json);

/* Writer schemas read from a folder (schemas.dir): avro_dir.c. */
struct mcd_avro_dir;

/* Reads and validates every <Kind>.v<N>.avsc file of folder `path` (other
 * .avsc names are errors, other files ignored).  A missing folder is an
 * empty set (mcd_avro_dir_missing) when missing_ok, else an error.  0, or a negative errno with
 * why[] set to one sentence naming the bad file. */
int mcd_avro_dir_read(const char *path, bool missing_ok, struct mcd_avro_dir **out, char *why, size_t whylen);
/* Number of schema files read. */
size_t mcd_avro_dir_count(const struct mcd_avro_dir *d);
/* Was the folder missing (read as empty with missing_ok)? */
bool mcd_avro_dir_missing(const struct mcd_avro_dir *d);
void mcd_avro_dir_free(struct mcd_avro_dir *d);
/* Gives a codec the writer schemas of d (NULL: none), replacing those of
 * the folder it was given before.  Reader schemas never change.  0 or
 * -ENOMEM (the codec then knows part of d). */
int mcd_avro_use_dir(struct mcd_avro *a, const struct mcd_avro_dir *d);

/* Parsing Canonical Form of a schema given as JSON text (heap string, or NULL
 * with -EINVAL / -ENOMEM in *err). */
char *mcd_avro_canonical_form(const char *schema_json, int *err);
/* CRC-64-AVRO (Rabin) of a byte string: the Avro specification's algorithm. */
uint64_t mcd_avro_crc64(const void *buf, size_t len);
/* Fingerprint of a schema given as JSON text: crc64 of its canonical form.
 * 0 or negative errno. */
int mcd_avro_fingerprint(const char *schema_json, uint64_t *fp);

/* The reader (current) schema of a kind, as JSON text (static). */
const char *mcd_avro_reader_schema(const struct mcd_avro *a, enum mcd_avro_kind kind);

/* The Confluent wire format (0x00, a 4-byte big-endian schema id, the body):
 * writer schemas named by id are fetched from registry r (registry.h,
 * borrowed: it must outlive the codec; NULL: such messages are dead letters
 * UNKNOWN_SCHEMA) and kept by the codec.  A codec is used by one thread at
 * a time; r may be shared by the codecs of several threads. */
void mcd_avro_use_registry(struct mcd_avro *a, struct mcd_registry *r);

/* Outcomes encoded from now on are framed in the Confluent wire format with
 * schema id `id` (the id the registry gave the outcome reader schema). */
void mcd_avro_frame_outcomes_confluent(struct mcd_avro *a, uint32_t id);

/* Decodes one input message, in either framing, by its first byte: 0xC3
 * single-object encoding, 0x00 the Confluent wire format.  `expected` is the
 * envelope of the topic it came from (RELATIONSHIP_EVENT or
 * SUBSCRIPTION_EVENT).  Validates the event (mcd_event_validate).  Returns
 * 0, -EBADMSG with *err filled (a dead letter), or -EAGAIN with err->code
 * MCD_DLQ_REGISTRY_UNAVAILABLE (the registry could not be asked: not a dead
 * letter, decode it again later).  The key check is the caller's (it has
 * the key). */
int mcd_avro_decode_event(struct mcd_avro *a, enum mcd_avro_kind expected, const void *buf,
                          size_t len, struct mcd_event *ev, struct mcd_avro_error *err);

/* Encodes with the current (reader) schema of the event's envelope. */
int mcd_avro_encode_event(struct mcd_avro *a, const struct mcd_event *ev, void **buf, size_t *len);

/* Encodes an event with an explicit writer schema (JSON text; registered or
 * not), for producers and tests of schema evolution: fields of the writer
 * that the event model does not have take the writer's default. */
int mcd_avro_encode_event_with(struct mcd_avro *a, const char *writer_schema_json,
                               const struct mcd_event *ev, void **buf, size_t *len);

/* As mcd_avro_encode_event_with (writer NULL: the reader schema of the
 * event's envelope), framed in the Confluent wire format with schema id
 * `id` (the id the registry gave that writer schema). */
int mcd_avro_encode_event_confluent(struct mcd_avro *a, const char *writer_schema_json, uint32_t id,
                                    const struct mcd_event *ev, void **buf, size_t *len);

/* Encodes an outcome with the reader schema, single-object encoded or, after
 * mcd_avro_frame_outcomes_confluent, in the Confluent wire format. */
int mcd_avro_encode_outcome(struct mcd_avro *a, const struct mcd_outcome *o, void **buf, size_t *len);
/* The same bytes, borrowed from a: good until the next outcome a encodes.
 * 0, -EINVAL (an outcome the schema cannot carry) or -ENOMEM. */
int mcd_avro_outcome_bytes(struct mcd_avro *a, const struct mcd_outcome *o, const void **buf, size_t *len);
/* Decodes an outcome in either framing (as mcd_avro_decode_event). */
int mcd_avro_decode_outcome(struct mcd_avro *a, const void *buf, size_t len, struct mcd_outcome *o,
                            struct mcd_avro_error *err);

#endif
