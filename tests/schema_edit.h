/* schema_edit.h -- the shipped Avro schemas parsed with jansson and edited,
 * for the C tests of schema evolution and of the codec's plans. */
#ifndef MCD_TESTS_SCHEMA_EDIT_H
#define MCD_TESTS_SCHEMA_EDIT_H

#include <jansson.h>

#include "daemon/avro_codec.h"

/* The reader schema of `kind` in codec a, parsed (the caller decrefs). */
json_t *schema_reader_json(struct mcd_avro *a, enum mcd_avro_kind kind);
/* The field named `name` of record `rec` (borrowed), or NULL. */
json_t *schema_field(json_t *rec, const char *name);
/* Removes the field named `name` of record `rec`, if it has one. */
void schema_remove_field(json_t *rec, const char *name);
/* The record definition named `name` among the payload branches of
 * `schema` (borrowed), or NULL. */
json_t *schema_payload_record(json_t *schema, const char *name);

#endif
