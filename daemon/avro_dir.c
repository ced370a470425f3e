/* avro_dir.c -- writer schemas from a folder (`schemas.dir`), so that a
 * producer's newer schema version is read without a rebuild.
 *
 * A folder is read whole and validated before any codec sees it: every
 * `<Kind>.v<N>.avsc` file in it (Kind one of RelationshipEvent,
 * SubscriptionEvent, MultichannelOutcome) must be a record schema of that
 * name; any other name ending in .avsc is an error, files not ending in
 * .avsc are ignored.  The first bad file makes the whole read fail with a
 * sentence naming it, so a daemon keeps the set it has.  A set is then given
 * to each codec (one per thread): it replaces the writers the codec took from
 * a folder before; the embedded schemas, and the reader schemas with them,
 * never change.  A file whose fingerprint the codec already knows (the
 * installed copies of the embedded versions) adds nothing. */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <avro.h>
#include <jansson.h>

#include "daemon/avro_codec.h"
#include "daemon/avro_internal.h"
#include "daemon/strbuf.h"

#define MAX_SCHEMA_FILE (1024 * 1024)   /* bytes; a schema is a few KiB */

struct dir_schema {
        enum mcd_avro_kind kind;
        char *file;                     /* name in the folder */
        char *json;                     /* its text */
};

struct mcd_avro_dir {
        struct dir_schema *v;           /* sorted by file name */
        size_t n;
        bool missing;                   /* the folder does not exist */
};

void mcd_avro_dir_free(struct mcd_avro_dir *d) {
        if (!d)
                return;
        for (size_t i = 0; i < d->n; i++) {
                free(d->v[i].file);
                free(d->v[i].json);
        }
        free(d->v);
        free(d);
}

size_t mcd_avro_dir_count(const struct mcd_avro_dir *d) {
        return d ? d->n : 0;
}

bool mcd_avro_dir_missing(const struct mcd_avro_dir *d) {
        return d && d->missing;
}

/* The whole of a regular file, NUL-terminated.  0 or negative errno. */
static int read_text(const char *path, char **out) {
        struct stat st;
        FILE *f = fopen(path, "re");
        char *buf = NULL;
        int r = 0;

        if (!f)
                return -errno;
        if (fstat(fileno(f), &st) < 0)
                r = -errno;
        else if (!S_ISREG(st.st_mode))
                r = -EISDIR;
        else if (st.st_size > MAX_SCHEMA_FILE)
                r = -EFBIG;
        else if (!(buf = malloc((size_t)st.st_size + 1)))
                r = -ENOMEM;
        else if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
                r = -EIO;
        fclose(f);
        if (r < 0) {
                free(buf);
                return r;
        }
        buf[st.st_size] = '\0';
        *out = buf;
        return 0;
}

/* Checks one schema file's text against its name.  0, or -EINVAL with why
 * set (naming the file). */
static int check_schema(const char *file, enum mcd_avro_kind kind, const char *json, char *why, size_t whylen) {
        struct schema_entry e;
        json_error_t jerr;
        json_t *root = json_loads(json, 0, &jerr);
        const char *name;
        int r;

        if (!root)
                return mcd_say(why, whylen, -EINVAL, "%s: not JSON: line %d: %s", file, jerr.line, jerr.text);
        name = json_string_value(json_object_get(root, "name"));
        if (!json_is_object(root) || !json_is_string(json_object_get(root, "type")) ||
            strcmp(json_string_value(json_object_get(root, "type")), "record") != 0 || !name) {
                json_decref(root);
                return mcd_say(why, whylen, -EINVAL, "%s: not an Avro record schema", file);
        }
        if (strcmp(mcd_avro_short_name(name), mcd_avro_kind_names[kind]) != 0) {
                r = mcd_say(why, whylen, -EINVAL, "%s: the record is named %.80s, not %s as the file name says",
                             file, name, mcd_avro_kind_names[kind]);
                json_decref(root);
                return r;
        }
        json_decref(root);
        r = mcd_avro_entry_init(&e, json);
        if (r == -ENOMEM)
                return mcd_say(why, whylen, r, "%s: out of memory", file);
        if (r < 0)
                return mcd_say(why, whylen, -EINVAL, "%s: not a valid Avro schema (libavro-c or the "
                                "canonical form refuses it)", file);
        mcd_avro_entry_clear(&e);
        return 0;
}

static int by_file(const void *a, const void *b) {
        return strcmp(((const struct dir_schema *)a)->file, ((const struct dir_schema *)b)->file);
}

/* Adds one folder entry to d when it is a schema file.  0 or negative errno
 * with why set. */
static int read_entry(struct mcd_avro_dir *d, const char *path, const char *file, char *why, size_t whylen) {
        struct dir_schema *v, s = {0};
        char *full = NULL;
        int version, r;
        size_t len = strlen(file);

        if (file[0] == '.' || len < 5 || strcmp(file + len - 5, ".avsc") != 0)
                return 0;
        if (mcd_avro_parse_file_name(file, &s.kind, &version) < 0)
                return mcd_say(why, whylen, -EINVAL,
                                "%s/%s: a schema file is named <Name>.v<N>.avsc, Name one of RelationshipEvent, "
                                "SubscriptionEvent, MultichannelOutcome", path, file);
        if (asprintf(&full, "%s/%s", path, file) < 0)
                return mcd_say(why, whylen, -ENOMEM, "out of memory");
        r = read_text(full, &s.json);
        if (r < 0)
                r = mcd_say(why, whylen, r, "%s: cannot read it: %s", full, strerror(-r));
        else
                r = check_schema(full, s.kind, s.json, why, whylen);
        free(full);
        if (r == 0 && !(s.file = strdup(file)))
                r = mcd_say(why, whylen, -ENOMEM, "out of memory");
        if (r == 0 && !(v = realloc(d->v, (d->n + 1) * sizeof(*v))))
                r = mcd_say(why, whylen, -ENOMEM, "out of memory");
        if (r < 0) {
                free(s.json);
                free(s.file);
                return r;
        }
        d->v = v;
        d->v[d->n++] = s;
        return 0;
}

int mcd_avro_dir_read(const char *path, bool missing_ok, struct mcd_avro_dir **out, char *why, size_t whylen) {
        struct mcd_avro_dir *d;
        struct dirent *de;
        DIR *dir;
        int r = 0;

        *out = NULL;
        if (!path || !*path)
                return mcd_say(why, whylen, -EINVAL, "schemas.dir is empty");
        d = calloc(1, sizeof(*d));
        if (!d)
                return mcd_say(why, whylen, -ENOMEM, "out of memory");
        dir = opendir(path);
        if (!dir) {
                r = -errno;
                if (r == -ENOENT && missing_ok) {
                        d->missing = true;
                        *out = d;
                        return 0;
                }
                mcd_avro_dir_free(d);
                return mcd_say(why, whylen, r, "schemas.dir %s: %s", path, strerror(-r));
        }
        while (r == 0 && (errno = 0, de = readdir(dir)))
                r = read_entry(d, path, de->d_name, why, whylen);
        if (r == 0 && errno)
                r = mcd_say(why, whylen, -errno, "schemas.dir %s: %s", path, strerror(errno));
        closedir(dir);
        if (r < 0) {
                mcd_avro_dir_free(d);
                return r;
        }
        if (d->n > 1)
                qsort(d->v, d->n, sizeof(*d->v), by_file);
        *out = d;
        return 0;
}

int mcd_avro_use_dir(struct mcd_avro *a, const struct mcd_avro_dir *d) {
        size_t k = 0;
        int r;

        if (!a)
                return -EINVAL;
        /* Drop the writers of the previous folder; the embedded entries (the
         * readers among them) come first and do not move. */
        for (size_t i = 0; i < a->n; i++) {
                if (a->v[i].from_dir)
                        mcd_avro_entry_clear(&a->v[i]);
                else
                        a->v[k++] = a->v[i];
        }
        a->n = k;
        for (size_t i = 0; d && i < d->n; i++) {
                r = mcd_avro_register_from(a, d->v[i].kind, d->v[i].json, true);
                if (r < 0 && r != -EEXIST)
                        return r;
        }
        return 0;
}
