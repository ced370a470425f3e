/* avro_view.c -- a decoded value read by field name, with the reader
 * schema's defaults, into the model's fields.
 *
 * The decoder reads a message with its writer schema into a libavro-c
 * generic value; the model takes its fields from it by name ([Avro schema
 * resolution]): a field the writer lacks takes the default of the reader's
 * field, a field without one is an INVALID_EVENT naming it.
 *
 * DESIGN: a value is seen as Avro's JSON encoding would show it, the shape
 * the codec's getters have always judged: a union is its branch, except
 * that a record branch is an object {"RecordName": record}; a record or a
 * map is an object of names to values; string, bytes, fixed and enum
 * symbols are strings; int and long are integers.  A getter asks for a kind
 * (a string, a long, ...) and names the field and record when the writer's
 * value is of another kind.  Nothing is allocated but the strings the model
 * keeps (and a services array). */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>
#include <jansson.h>

#include "daemon/avro_codec.h"
#include "daemon/avro_internal.h"

#define SYMBOL_MAX 64                   /* longer than any symbol of the model's enums */

int mcd_avro_fail(struct mcd_avro_error *err, const char *code, const char *fmt, ...) {
        va_list ap;

        if (!err)
                return -EBADMSG;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
        return -EBADMSG;
}

/* ------------------------------------------------------------ views -- */

/* What a value is, as its JSON form would be. */
enum view_kind { VK_NULL, VK_BOOL, VK_INT, VK_REAL, VK_STRING, VK_ARRAY, VK_OBJECT };

/* One value, the writer's (v) or the reader's default (j). */
struct view {
        enum view_kind kind;
        json_t *j;                      /* the reader's default, or NULL: the writer's v */
        struct mcd_avro_obj obj;        /* VK_OBJECT, VK_ARRAY: the value (obj.v), union branches followed */
        const char *s;                  /* VK_STRING: bytes (not always NUL-terminated) */
        size_t len;                     /* VK_STRING: their number */
        int64_t i;                      /* VK_INT */
        bool b;                         /* VK_BOOL */
};

/* The writer's value v seen as its JSON form.  0, or -EIO when libavro-c
 * cannot give what its own value holds. */
static int view_avro(const avro_value_t *in, struct view *x) {
        avro_value_t v = *in, branch;
        const void *bytes = NULL;
        const char *s = NULL;
        size_t size = 0;
        int32_t i32;
        int e, b;

        memset(x, 0, sizeof(*x));
        if (avro_value_get_type(&v) == AVRO_UNION) {
                avro_schema_t bs;

                if (avro_value_get_current_branch(&v, &branch) != 0)
                        return -EIO;
                v = branch;
                bs = mcd_avro_deref(avro_value_get_schema(&v));
                if (bs && avro_typeof(bs) == AVRO_RECORD) {
                        x->kind = VK_OBJECT;
                        x->obj = (struct mcd_avro_obj){ .v = v, .branch = avro_schema_name(bs) };
                        return 0;
                }
        }
        x->obj.v = v;
        switch (avro_value_get_type(&v)) {
        case AVRO_NULL:
                x->kind = VK_NULL;
                return 0;
        case AVRO_BOOLEAN:
                x->kind = VK_BOOL;
                if (avro_value_get_boolean(&v, &b))
                        return -EIO;
                x->b = b != 0;
                return 0;
        case AVRO_INT32:
                x->kind = VK_INT;
                if (avro_value_get_int(&v, &i32))
                        return -EIO;
                x->i = i32;
                return 0;
        case AVRO_INT64:
                x->kind = VK_INT;
                return avro_value_get_long(&v, &x->i) ? -EIO : 0;
        case AVRO_FLOAT:
        case AVRO_DOUBLE:
                x->kind = VK_REAL;
                return 0;
        case AVRO_STRING:
                /* size counts the NUL terminator libavro-c adds. */
                if (avro_value_get_string(&v, &s, &size) || !s || size == 0)
                        return -EIO;
                x->kind = VK_STRING;
                x->s = s;
                x->len = size - 1;
                return 0;
        case AVRO_BYTES:
        case AVRO_FIXED:
                if (avro_value_get_type(&v) == AVRO_BYTES ? avro_value_get_bytes(&v, &bytes, &size)
                                                           : avro_value_get_fixed(&v, &bytes, &size))
                        return -EIO;
                x->kind = VK_STRING;
                x->s = bytes ? bytes : "";
                x->len = bytes ? size : 0;
                return 0;
        case AVRO_ENUM:
                if (avro_value_get_enum(&v, &e) ||
                    !(s = avro_schema_enum_get(mcd_avro_deref(avro_value_get_schema(&v)), e)))
                        return -EIO;
                x->kind = VK_STRING;
                x->s = s;
                x->len = strlen(s);
                return 0;
        case AVRO_RECORD:
        case AVRO_MAP:
                x->kind = VK_OBJECT;
                return 0;
        case AVRO_ARRAY:
                x->kind = VK_ARRAY;
                return 0;
        case AVRO_UNION:
        case AVRO_LINK:
                break;
        }
        return -EIO;
}

/* A default of the reader schema (JSON) seen the same way. */
static void view_json(json_t *j, struct view *x) {
        memset(x, 0, sizeof(*x));
        x->j = j;
        if (json_is_null(j))
                x->kind = VK_NULL;
        else if (json_is_boolean(j))
                x->kind = VK_BOOL, x->b = json_is_true(j);
        else if (json_is_integer(j))
                x->kind = VK_INT, x->i = json_integer_value(j);
        else if (json_is_real(j))
                x->kind = VK_REAL;
        else if (json_is_string(j))
                x->kind = VK_STRING, x->s = json_string_value(j), x->len = json_string_length(j);
        else if (json_is_array(j))
                x->kind = VK_ARRAY;
        else
                x->kind = VK_OBJECT;
}

/* ---------------------------------------------------------- objects -- */

int mcd_avro_obj_of(const avro_value_t *v, struct mcd_avro_obj *o) {
        struct view x;

        if (view_avro(v, &x) < 0 || x.kind != VK_OBJECT)
                return -EINVAL;
        *o = x.obj;
        return 0;
}

bool mcd_avro_obj_get(const struct mcd_avro_obj *o, const char *name, avro_value_t *out) {
        if (o->branch) {
                if (strcmp(name, o->branch) != 0)
                        return false;
                *out = o->v;
                return true;
        }
        return avro_value_get_by_name(&o->v, name, out, NULL) == 0 && out->iface;
}

int mcd_avro_obj_only_member(const struct mcd_avro_obj *o, const char **name, struct mcd_avro_obj *member) {
        avro_value_t child;
        size_t n = 0;

        if (o->branch) {
                *name = o->branch;
                *member = (struct mcd_avro_obj){ .v = o->v };
                return 0;
        }
        if (avro_value_get_size(&o->v, &n) != 0 || n != 1 || avro_value_get_by_index(&o->v, 0, &child, name) != 0 ||
            !*name)
                return -EINVAL;
        return mcd_avro_obj_of(&child, member);
}

/* ---------------------------------------------------------- getters -- */

/* The reader's default of field `name` (first field so named that has
 * one), or NULL. */
static json_t *reader_default(json_t *reader_def, const char *name) {
        size_t i;
        json_t *f;

        json_array_foreach(json_object_get(reader_def, "fields"), i, f) {
                const char *n = json_string_value(json_object_get(f, "name"));
                json_t *def = json_object_get(f, "default");

                if (n && def && strcmp(n, name) == 0)
                        return def;
        }
        return NULL;
}

static int unreadable(struct mcd_avro_fields *f) {
        return mcd_avro_fail(f->err, MCD_DLQ_CORRUPT_AVRO, "The Avro body could not be converted: out of memory.");
}

/* Field `name`: the writer's value, else the reader's default.  0, or
 * -EBADMSG with the dead letter filled. */
static int get_field(struct mcd_avro_fields *f, const char *name, struct view *x) {
        avro_value_t child;
        json_t *def;

        if (mcd_avro_obj_get(&f->obj, name, &child))
                return view_avro(&child, x) < 0 ? unreadable(f) : 0;
        if ((def = reader_default(f->reader_def, name))) {
                view_json(def, x);
                return 0;
        }
        return mcd_avro_fail(f->err, MCD_DLQ_INVALID_EVENT,
                             "Field %s of %s is missing from the writer schema and has no default.", name, f->record);
}

static int type_error(struct mcd_avro_fields *f, const char *name, const char *want) {
        return mcd_avro_fail(f->err, MCD_DLQ_INVALID_EVENT, "Field %s of %s is not %s.", name, f->record, want);
}

/* Strict UTF-8 (RFC 3629: no overlongs, no surrogates, at most U+10FFFF):
 * Avro strings are UTF-8, and every string the daemon keeps must survive
 * JSON (state in Redis, the changelog, tail). */
bool mcd_avro_valid_utf8(const unsigned char *s, size_t n) {
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

int mcd_avro_text_check(const void *s, size_t n, const char **fault) {
        if (memchr(s, '\0', n)) {
                *fault = "contains a NUL byte";
                return -EINVAL;
        }
        if (!mcd_avro_valid_utf8(s, n)) {
                *fault = "is not valid UTF-8";
                return -EINVAL;
        }
        return 0;
}

int mcd_avro_text_copy(const void *s, size_t n, char **dst, const char **fault) {
        int r = mcd_avro_text_check(s, n, fault);

        if (r < 0)
                return r;
        if (!(*dst = malloc(n + 1)))
                return -ENOMEM;
        memcpy(*dst, s, n);
        (*dst)[n] = '\0';
        return 0;
}

/* A string of field `name`, copied to *dst (mcd_avro_text_copy), or the
 * dead letter saying why not. */
static int copy_string(struct mcd_avro_fields *f, const char *name, const struct view *x, char **dst) {
        const char *fault = "";
        int r = mcd_avro_text_copy(x->s, x->len, dst, &fault);

        if (r == -ENOMEM)
                return mcd_avro_fail(f->err, MCD_DLQ_CORRUPT_AVRO, "Out of memory decoding field %s of %s.", name,
                                     f->record);
        if (r < 0)
                return mcd_avro_fail(f->err, MCD_DLQ_CORRUPT_AVRO, "Field %s of %s %s.", name, f->record, fault);
        return 0;
}

int mcd_avro_get_string(struct mcd_avro_fields *f, const char *name, bool nullable, char **dst) {
        struct view x;
        int r;

        if ((r = get_field(f, name, &x)) < 0)
                return r;
        if (x.kind == VK_NULL && nullable) {
                *dst = NULL;
                return 0;
        }
        if (x.kind != VK_STRING)
                return type_error(f, name, nullable ? "a string or null" : "a string");
        return copy_string(f, name, &x, dst);
}

int mcd_avro_get_long(struct mcd_avro_fields *f, const char *name, bool nullable, bool *has, int64_t *dst) {
        struct view x;
        int r;

        if ((r = get_field(f, name, &x)) < 0)
                return r;
        if (x.kind == VK_NULL && nullable) {
                *has = false;
                *dst = 0;
                return 0;
        }
        if (x.kind != VK_INT)
                return type_error(f, name, nullable ? "a long or null" : "a long");
        *has = true;
        *dst = x.i;
        return 0;
}

int mcd_avro_get_time(struct mcd_avro_fields *f, const char *name, mcd_time_t *dst) {
        bool has;

        return mcd_avro_get_long(f, name, false, &has, dst);
}

int mcd_avro_get_bool(struct mcd_avro_fields *f, const char *name, bool *dst) {
        struct view x;
        int r;

        if ((r = get_field(f, name, &x)) < 0)
                return r;
        if (x.kind != VK_BOOL)
                return type_error(f, name, "a boolean");
        *dst = x.b;
        return 0;
}

int mcd_avro_get_enum(struct mcd_avro_fields *f, const char *name, int (*from_name)(const char *), int *dst) {
        char sym[SYMBOL_MAX + 1];
        struct view x;
        size_t n;
        int r, v;

        if ((r = get_field(f, name, &x)) < 0)
                return r;
        if (x.kind != VK_STRING)
                return type_error(f, name, "an enum symbol");
        /* As a C string: up to its first NUL.  One longer than SYMBOL_MAX
         * is no symbol, and is shown cut, as always, at 60 bytes. */
        n = strnlen(x.s, x.len);
        memcpy(sym, x.s, n < SYMBOL_MAX ? n : SYMBOL_MAX);
        sym[n < SYMBOL_MAX ? n : SYMBOL_MAX] = '\0';
        v = n < SYMBOL_MAX ? from_name(sym) : -EINVAL;
        if (v < 0)
                return mcd_avro_fail(f->err, MCD_DLQ_INVALID_EVENT, "Field %s of %s has the unknown symbol %.60s.",
                                     name, f->record, sym);
        *dst = v;
        return 0;
}

/* Item i of an array view. */
static int array_item(struct mcd_avro_fields *f, const struct view *arr, size_t i, struct view *x) {
        avro_value_t child;

        if (arr->j) {
                view_json(json_array_get(arr->j, i), x);
                return 0;
        }
        if (avro_value_get_by_index(&arr->obj.v, i, &child, NULL) != 0 || view_avro(&child, x) < 0)
                return unreadable(f);
        return 0;
}

int mcd_avro_get_string_array(struct mcd_avro_fields *f, const char *name, char ***dst, size_t *n) {
        struct view x, item;
        size_t size = 0;
        int r;

        if ((r = get_field(f, name, &x)) < 0)
                return r;
        if (x.kind != VK_ARRAY)
                return type_error(f, name, "an array of strings");
        *n = 0;
        *dst = NULL;
        if (x.j)
                size = json_array_size(x.j);
        else if (avro_value_get_size(&x.obj.v, &size) != 0)
                return unreadable(f);
        if (size == 0)
                return 0;
        *dst = calloc(size, sizeof(**dst));
        if (!*dst)
                return mcd_avro_fail(f->err, MCD_DLQ_CORRUPT_AVRO, "Out of memory decoding field %s of %s.", name,
                                     f->record);
        for (size_t i = 0; i < size; i++) {
                if ((r = array_item(f, &x, i, &item)) < 0)
                        return r;
                if (item.kind != VK_STRING)
                        return type_error(f, name, "an array of strings");
                if ((r = copy_string(f, name, &item, &(*dst)[i])) < 0)
                        return r;
                (*n)++;
        }
        return 0;
}
