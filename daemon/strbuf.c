/* strbuf.c -- a growable string; see strbuf.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/strbuf.h"

void mcd_sb_putn(struct mcd_strbuf *b, const char *s, size_t n) {
        if (b->oom)
                return;
        if (b->len + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 256;
                char *p;

                while (b->len + n + 1 > cap)
                        cap *= 2;
                p = realloc(b->p, cap);
                if (!p) {
                        b->oom = true;
                        return;
                }
                b->p = p;
                b->cap = cap;
        }
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
}

void mcd_sb_puts(struct mcd_strbuf *b, const char *s) {
        mcd_sb_putn(b, s, strlen(s));
}

void mcd_sb_printf(struct mcd_strbuf *b, const char *fmt, ...) {
        char small[64];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(small, sizeof(small), fmt, ap);
        va_end(ap);
        if (n < 0) {
                b->oom = true;
                return;
        }
        if ((size_t)n < sizeof(small)) {
                mcd_sb_putn(b, small, (size_t)n);
                return;
        }
        char *big = malloc((size_t)n + 1);
        if (!big) {
                b->oom = true;
                return;
        }
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        mcd_sb_putn(b, big, (size_t)n);
        free(big);
}

void mcd_sb_json_string(struct mcd_strbuf *b, const char *s) {
        const char *run;

        if (!s) {
                mcd_sb_putn(b, "null", 4);
                return;
        }
        mcd_sb_putn(b, "\"", 1);
        for (run = s; *s; s++) {
                unsigned char c = (unsigned char)*s;
                const char *esc = NULL;
                char hex[8];

                switch (c) {
                case '"': esc = "\\\""; break;
                case '\\': esc = "\\\\"; break;
                case '\b': esc = "\\b"; break;
                case '\f': esc = "\\f"; break;
                case '\n': esc = "\\n"; break;
                case '\r': esc = "\\r"; break;
                case '\t': esc = "\\t"; break;
                default:
                        if (c < 0x20) {
                                snprintf(hex, sizeof(hex), "\\u%04X", c);
                                esc = hex;
                        }
                }
                if (!esc)
                        continue;
                mcd_sb_putn(b, run, (size_t)(s - run));
                mcd_sb_puts(b, esc);
                run = s + 1;
        }
        mcd_sb_putn(b, run, (size_t)(s - run));
        mcd_sb_putn(b, "\"", 1);
}

char *mcd_sb_take(struct mcd_strbuf *b) {
        char *p = b->oom ? NULL : b->p;

        if (b->oom)
                free(b->p);
        else if (!p)
                p = strdup("");
        *b = (struct mcd_strbuf){0};
        return p;
}

int mcd_say(char *why, size_t whylen, int r, const char *fmt, ...) {
        va_list ap;

        if (why && whylen) {
                va_start(ap, fmt);
                vsnprintf(why, whylen, fmt, ap);
                va_end(ap);
        }
        return r;
}
