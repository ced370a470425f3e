/* schema_edit.c -- see schema_edit.h. */
#include <string.h>

#include "tests/schema_edit.h"

json_t *schema_reader_json(struct mcd_avro *a, enum mcd_avro_kind kind) {
        return json_loads(mcd_avro_reader_schema(a, kind), 0, NULL);
}

json_t *schema_field(json_t *rec, const char *name) {
        json_t *f;
        size_t i;

        json_array_foreach(json_object_get(rec, "fields"), i, f)
                if (json_is_string(json_object_get(f, "name")) &&
                    strcmp(json_string_value(json_object_get(f, "name")), name) == 0)
                        return f;
        return NULL;
}

void schema_remove_field(json_t *rec, const char *name) {
        json_t *f;
        size_t i;

        json_array_foreach(json_object_get(rec, "fields"), i, f)
                if (f == schema_field(rec, name)) {
                        json_array_remove(json_object_get(rec, "fields"), i);
                        return;
                }
}

json_t *schema_payload_record(json_t *schema, const char *name) {
        json_t *b;
        size_t i;

        json_array_foreach(json_object_get(schema_field(schema, "payload"), "type"), i, b)
                if (json_is_object(b) && json_is_string(json_object_get(b, "name")) &&
                    strcmp(json_string_value(json_object_get(b, "name")), name) == 0)
                        return b;
        return NULL;
}
