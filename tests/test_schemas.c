/* test_schemas.c -- the shipped Avro schemas and the fingerprint machinery.
 *
 * Every embedded .avsc must parse with libavro-c and with our canonical-form
 * code; their canonical forms and CRC-64-AVRO fingerprints are printed as TAP
 * diagnostics (producers register these).  The canonical form and
 * fingerprint code is checked against the Avro specification's test vectors
 * (share/test/data/schema-tests.txt of the Avro project). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>

#include "daemon/avro_codec.h"
#include "daemon/schemas_embedded.h"
#include "tests/tap.h"

struct vector {
        const char *input;
        const char *canonical;
        int64_t fingerprint;            /* as the Avro test data spells it: signed */
};

static const struct vector vectors[] = {
        { "\"null\"", "\"null\"", INT64_C(7195948357588979594) },
        { "{\"type\":\"null\"}", "\"null\"", INT64_C(7195948357588979594) },
        { "\"boolean\"", "\"boolean\"", INT64_C(-6970731678124411036) },
        { "{\"type\":\"int\"}", "\"int\"", INT64_C(8247732601305521295) },
        { "\"long\"", "\"long\"", INT64_C(-3434872931120570953) },
        { "{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}", "\"long\"", INT64_C(-3434872931120570953) },
        { "\"string\"", "\"string\"", INT64_C(-8142146995180207161) },
        { "[  ]", "[]", INT64_C(-1241056759729112623) },
        { "[ \"int\" , {\"type\":\"boolean\"} ]", "[\"int\",\"boolean\"]", INT64_C(5392556393470105090) },
        { "{\"fields\":[], \"type\":\"record\", \"name\":\"foo\"}", "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}",
          INT64_C(-4824392279771201922) },
        { "{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"namespace\":\"x.y\"}",
          "{\"name\":\"x.y.foo\",\"type\":\"record\",\"fields\":[]}", INT64_C(5916914534497305771) },
        { "{\"fields\":[], \"type\":\"record\", \"name\":\"a.b.foo\", \"namespace\":\"x.y\"}",
          "{\"name\":\"a.b.foo\",\"type\":\"record\",\"fields\":[]}", INT64_C(-4616218487480524110) },
        { "{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"doc\":\"foo\", \"aliases\":[\"foo\",\"bar\"]}",
          "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}", INT64_C(-4824392279771201922) },
        { "{ \"fields\":[{\"type\":\"boolean\", \"aliases\":[], \"name\":\"f1\", \"default\":\"true\"},\n"
          "            {\"order\":\"descending\",\"name\":\"f2\",\"doc\":\"Hello\",\"type\":\"int\"}],\n"
          "  \"type\":\"record\", \"name\":\"foo\"\n}",
          "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[{\"name\":\"f1\",\"type\":\"boolean\"},"
          "{\"name\":\"f2\",\"type\":\"int\"}]}",
          INT64_C(-4860222112080293046) },
        { "{\"namespace\":\"x.y.z\", \"type\":\"enum\", \"name\":\"foo\", \"doc\":\"foo bar\", \"symbols\":[\"A1\", \"A2\"]}",
          "{\"name\":\"x.y.z.foo\",\"type\":\"enum\",\"symbols\":[\"A1\",\"A2\"]}", INT64_C(-4448647247586288245) },
        { "{\"namespace\":\"x.y.z\", \"type\":\"fixed\", \"name\":\"foo\", \"doc\":\"foo bar\", \"size\":32}",
          "{\"name\":\"x.y.z.foo\",\"type\":\"fixed\",\"size\":32}", INT64_C(-3064184465700546786) },
        { "{ \"items\":{\"type\":\"null\"}, \"type\":\"array\"}", "{\"type\":\"array\",\"items\":\"null\"}",
          INT64_C(-589620603366471059) },
        { "{ \"values\":\"string\", \"type\":\"map\"}", "{\"type\":\"map\",\"values\":\"string\"}",
          INT64_C(-8732877298790414990) },
        { "{\"name\":\"PigValue\",\"type\":\"record\",\n"
          "   \"fields\":[{\"name\":\"value\", \"type\":[\"null\", \"int\", \"long\", \"PigValue\"]}]}",
          "{\"name\":\"PigValue\",\"type\":\"record\",\"fields\":[{\"name\":\"value\",\"type\":[\"null\",\"int\",\"long\",\"PigValue\"]}]}",
          INT64_C(-1759257747318642341) },
};

static void test_crc64(void) {
        is_int(mcd_avro_crc64("", 0), UINT64_C(0xc15d213aa4d7a795), "crc64 of nothing is the EMPTY constant");
        is_int(mcd_avro_crc64("\"null\"", 6), UINT64_C(0x63dd24e7cc258f8a), "crc64 of \"null\" is 0x63dd24e7cc258f8a");
}

static void test_vectors(void) {
        for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
                const struct vector *v = &vectors[i];
                uint64_t fp = 0;
                int err = 0;
                char *pcf = mcd_avro_canonical_form(v->input, &err);

                is_str(pcf, v->canonical, "canonical form of spec vector %zu", i);
                is_int(mcd_avro_fingerprint(v->input, &fp), 0, "fingerprint of spec vector %zu computed", i);
                ok(fp == (uint64_t)v->fingerprint, "fingerprint of spec vector %zu is 0x%016llx", i,
                   (unsigned long long)(uint64_t)v->fingerprint);
                free(pcf);
        }
}

static void test_names(void) {
        /* Named types referenced by short name take the enclosing namespace;
         * a second definition of a name is written as a reference. */
        static const char in[] =
                "{\"type\":\"record\",\"name\":\"R\",\"namespace\":\"a.b\",\"fields\":["
                "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"X\"]}},"
                "{\"name\":\"f\",\"type\":\"E\"},"
                "{\"name\":\"g\",\"type\":{\"type\":\"record\",\"name\":\"c.S\",\"fields\":["
                "{\"name\":\"h\",\"type\":{\"type\":\"fixed\",\"name\":\"F\",\"size\":4}}]}},"
                "{\"name\":\"i\",\"type\":[\"null\",\"c.F\",{\"type\":\"map\",\"values\":\"a.b.E\"}]}]}";
        static const char want[] =
                "{\"name\":\"a.b.R\",\"type\":\"record\",\"fields\":["
                "{\"name\":\"e\",\"type\":{\"name\":\"a.b.E\",\"type\":\"enum\",\"symbols\":[\"X\"]}},"
                "{\"name\":\"f\",\"type\":\"a.b.E\"},"
                "{\"name\":\"g\",\"type\":{\"name\":\"c.S\",\"type\":\"record\",\"fields\":["
                "{\"name\":\"h\",\"type\":{\"name\":\"c.F\",\"type\":\"fixed\",\"size\":4}}]}},"
                "{\"name\":\"i\",\"type\":[\"null\",\"c.F\",{\"type\":\"map\",\"values\":\"a.b.E\"}]}]}";
        int err = 0;
        char *pcf = mcd_avro_canonical_form(in, &err);

        is_str(pcf, want, "namespaces: full names, inherited namespaces, references");
        free(pcf);

        pcf = mcd_avro_canonical_form("{\"type\":\"record\",\"name\":\"q\",\"doc\":\"\\u00e9\\n\",\"fields\":"
                                      "[{\"name\":\"\\u00e9t\\u00e9\",\"type\":\"string\"}]}",
                                      &err);
        is_str(pcf, "{\"name\":\"q\",\"type\":\"record\",\"fields\":[{\"name\":\"\xc3\xa9t\xc3\xa9\",\"type\":\"string\"}]}",
               "escaped characters become UTF-8");
        free(pcf);

        ok(mcd_avro_canonical_form("{not json", &err) == NULL && err == -EINVAL, "bad JSON is -EINVAL");
        ok(mcd_avro_canonical_form("{\"type\":\"record\",\"fields\":[]}", &err) == NULL && err == -EINVAL,
           "a record without a name is -EINVAL");
        ok(mcd_avro_canonical_form("42", &err) == NULL && err == -EINVAL, "a number is not a schema");
}

static void test_embedded(void) {
        ok(mcd_n_schema_files >= 3, "at least three schema files are embedded");
        for (size_t i = 0; i < mcd_n_schema_files; i++) {
                const struct mcd_schema_file *f = &mcd_schema_files[i];
                avro_schema_t schema = NULL, again = NULL;
                uint64_t fp = 0, fp2 = 0;
                int err = 0;
                char *pcf;

                ok(avro_schema_from_json_length(f->json, strlen(f->json), &schema) == 0,
                   "%s parses with libavro-c", f->name);
                if (schema) {
                        ok(avro_typeof(schema) == AVRO_RECORD, "%s is a record", f->name);
                        is_str(avro_schema_namespace(schema), "partnercenter.multichannel", "%s namespace", f->name);
                        ok(avro_schema_record_field_get(schema, "payload") != NULL, "%s has a payload", f->name);
                        avro_schema_decref(schema);
                }
                pcf = mcd_avro_canonical_form(f->json, &err);
                ok(pcf != NULL, "%s has a canonical form", f->name);
                if (!pcf)
                        continue;
                tap_diag("%s canonical form %s", f->name, pcf);
                is_int(mcd_avro_fingerprint(f->json, &fp), 0, "%s fingerprint computed", f->name);
                tap_diag("%s fingerprint 0x%016llx", f->name, (unsigned long long)fp);
                ok(strstr(pcf, "\"doc\"") == NULL && strstr(pcf, "\"default\"") == NULL &&
                   strstr(pcf, "logicalType") == NULL && strchr(pcf, ' ') == NULL,
                   "%s canonical form has no doc, default, logicalType or blanks", f->name);
                ok(strstr(pcf, "{\"name\":\"partnercenter.multichannel.Cloud\",\"type\":\"enum\"") != NULL,
                   "%s canonical form names Cloud in full", f->name);
                ok(avro_schema_from_json_length(pcf, strlen(pcf), &again) == 0,
                   "%s canonical form parses with libavro-c", f->name);
                if (again)
                        avro_schema_decref(again);
                is_int(mcd_avro_fingerprint(pcf, &fp2), 0, "%s canonical form fingerprinted", f->name);
                ok(fp == fp2, "%s: the canonical form of the canonical form is the same", f->name);
                free(pcf);
        }
}

static void test_codec_readers(void) {
        struct mcd_avro *a = NULL;
        static const char *const names[] = { "RelationshipEvent", "SubscriptionEvent", "MultichannelOutcome" };

        is_int(mcd_avro_new(&a), 0, "codec created from the embedded schemas");
        if (!a)
                return;
        for (int k = 0; k < MCD_AVRO__KIND_COUNT; k++) {
                const char *s = mcd_avro_reader_schema(a, (enum mcd_avro_kind)k);
                char want[64];

                snprintf(want, sizeof(want), "\"name\": \"%s\"", names[k]);
                ok(s && strstr(s, want), "reader schema of kind %d is %s", k, names[k]);
                is_int(mcd_avro_register(a, (enum mcd_avro_kind)k, s), -EEXIST,
                       "registering a shipped %s again is -EEXIST", names[k]);
        }
        is_int(mcd_avro_register(a, MCD_AVRO_OUTCOME, "\"string\""), -EINVAL, "a non-record schema is refused");
        is_int(mcd_avro_register(a, MCD_AVRO_OUTCOME, "{\"type\":"), -EINVAL, "bad JSON is refused");
        mcd_avro_free(a);
}

int main(void) {
        test_crc64();
        test_vectors();
        test_names();
        test_embedded();
        test_codec_readers();
        return tap_done();
}
