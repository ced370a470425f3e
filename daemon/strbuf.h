/* strbuf.h -- a growable string, for writing JSON and other text without
 * a tree in between.  An allocation failure is sticky: the writes after it
 * do nothing and mcd_sb_take returns NULL. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct mcd_strbuf {
        char *p;             /* NUL-terminated once anything was written */
        size_t len, cap;
        bool oom;
};

void mcd_sb_putn(struct mcd_strbuf *b, const char *s, size_t n);
void mcd_sb_puts(struct mcd_strbuf *b, const char *s);
void mcd_sb_printf(struct mcd_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A JSON string literal escaped as jansson's json_dumps escapes it: '"',
 * '\\', \b \f \n \r \t by name, other control characters as \u00XX, the
 * rest (UTF-8 included) as is.  A NULL s writes null. */
void mcd_sb_json_string(struct mcd_strbuf *b, const char *s);

/* The string (the caller frees it), or NULL after an allocation failure;
 * the buffer is left empty either way. */
char *mcd_sb_take(struct mcd_strbuf *b);

/* Writes one sentence, formatted, into why[whylen] (nothing when why is
 * NULL) and returns r: for functions that return a negative errno and say
 * why in a caller's buffer. */
int mcd_say(char *why, size_t whylen, int r, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
