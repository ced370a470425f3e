/* registry.c -- the Confluent Schema Registry's REST API, as the daemon uses
 * it, and the cache of writer schemas fetched by id.
 *
 * DESIGN: a schema id names one immutable schema, so a fetched schema is
 * cached for the client's life and never asked again; an id the registry
 * does not know (404) is not cached, so a schema registered later is found.
 * Requests are synchronous libcurl easy calls, each on its own handle with
 * connect and total timeouts; the cache's mutex is taken only to look up and
 * insert, never across a request (two threads missing the same id may both
 * fetch it; the second insert is dropped).  Failures are sorted for the
 * caller: -ENOENT (404), -EAGAIN (unreachable, timeout, 5xx, 429: retry
 * later), -EPROTO (anything else). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "daemon/registry.h"
#include "daemon/strbuf.h"

#define DEFAULT_TIMEOUT_MS 5000L
#define MAX_ANSWER (16L << 20)          /* an answer larger than this is refused */
#define FAIL_FAST_MS 1000               /* after a failure, schema fetches fail at once for this long */

struct cached {
        uint32_t id;                    /* schema id */
        char *json;                     /* its schema text */
};

struct mcd_registry {
        char *url;                      /* base URL, without trailing '/' */
        char *basic_auth;               /* "user:password" or NULL */
        long timeout_ms;                /* per request */
        pthread_mutex_t lock;           /* guards v, n, cap, down_until, down_why */
        struct cached *v;               /* the cache, unordered */
        size_t n, cap;
        int64_t down_until;             /* monotonic ms: until then fetches fail at once (-EAGAIN) */
        char down_why[512];             /* the failure that set down_until */
};

static int64_t mono_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init(void) {
        curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int mcd_registry_new(const char *url, const char *basic_auth, long timeout_ms, struct mcd_registry **out) {
        struct mcd_registry *r;
        size_t n;

        if (!url || !*url)
                return -EINVAL;
        pthread_once(&curl_once, curl_init);
        if (curl_init_result != CURLE_OK)
                return -EIO;
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->url = strdup(url);
        r->basic_auth = basic_auth && *basic_auth ? strdup(basic_auth) : NULL;
        if (!r->url || (basic_auth && *basic_auth && !r->basic_auth)) {
                free(r->url);
                free(r->basic_auth);
                free(r);
                return -ENOMEM;
        }
        n = strlen(r->url);
        while (n > 0 && r->url[n - 1] == '/')
                r->url[--n] = '\0';
        r->timeout_ms = timeout_ms > 0 ? timeout_ms : DEFAULT_TIMEOUT_MS;
        pthread_mutex_init(&r->lock, NULL);
        *out = r;
        return 0;
}

void mcd_registry_free(struct mcd_registry *r) {
        if (!r)
                return;
        for (size_t i = 0; i < r->n; i++)
                free(r->v[i].json);
        free(r->v);
        pthread_mutex_destroy(&r->lock);
        free(r->url);
        free(r->basic_auth);
        free(r);
}

size_t mcd_registry_cached(struct mcd_registry *r) {
        size_t n;

        pthread_mutex_lock(&r->lock);
        n = r->n;
        pthread_mutex_unlock(&r->lock);
        return n;
}

/* ------------------------------------------------------------- HTTP -- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx) {
        struct mcd_strbuf *b = ctx;
        size_t n = size * nmemb;

        if ((long)(b->len + n) > MAX_ANSWER)
                return 0;               /* aborts the transfer */
        mcd_sb_putn(b, data, n);
        return b->oom ? 0 : n;
}

/* One request: GET when body is NULL, else POST of body.  *status and the
 * answer's text (heap, NUL-terminated) on success; -EAGAIN with why[] when
 * the registry could not be reached or did not answer in time, -ENOMEM. */
static int request(struct mcd_registry *r, const char *path, const char *body, long *status, char **answer,
                   char *why, size_t whylen) {
        struct mcd_strbuf b = {0};
        struct curl_slist *h = NULL, *h2;
        char url[2048];
        CURLcode c;
        CURL *curl;
        int ret = 0;

        if ((size_t)snprintf(url, sizeof(url), "%s%s", r->url, path) >= sizeof(url))
                return mcd_say(why, whylen, -EINVAL, "The schema registry URL is too long.");
        curl = curl_easy_init();
        if (!curl)
                return -ENOMEM;
        h = curl_slist_append(h, "Accept: " MCD_REGISTRY_MEDIA_TYPE ", application/json");
        if (h && body && (h2 = curl_slist_append(h, "Content-Type: " MCD_REGISTRY_MEDIA_TYPE)))
                h = h2;
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);            /* threads: no SIGALRM */
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, r->timeout_ms);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, r->timeout_ms);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
        if (r->basic_auth) {
                curl_easy_setopt(curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
                curl_easy_setopt(curl, CURLOPT_USERPWD, r->basic_auth);
        }
        if (body) {
                curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
                curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        }
        c = curl_easy_perform(curl);
        if (c != CURLE_OK)
                ret = mcd_say(why, whylen, b.oom ? -ENOMEM : -EAGAIN, "The schema registry at %s did not answer: %s.",
                          r->url, curl_easy_strerror(c));
        else {
                curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
                mcd_sb_putn(&b, "", 0);
                *answer = b.p ? mcd_sb_take(&b) : strdup("");
                if (!*answer)
                        ret = -ENOMEM;
        }
        free(b.p);
        curl_slist_free_all(h);
        curl_easy_cleanup(curl);
        return ret;
}

/* Sorts a non-2xx status into the contract's errors; the registry's own
 * "message" is quoted when the answer has one. */
static int status_error(struct mcd_registry *r, long status, const char *answer, const char *what, char *why,
                        size_t whylen) {
        json_t *j = json_loads(answer, 0, NULL);
        const char *msg = json_string_value(json_object_get(j, "message"));
        int ret;

        if (status == 404)
                ret = -ENOENT;
        else if (status >= 500 || status == 429 || status == 408)
                ret = -EAGAIN;
        else
                ret = -EPROTO;
        mcd_say(why, whylen, ret, "The schema registry at %s answered %ld to %s%s%s.", r->url, status, what,
            msg ? ": " : "", msg ? msg : "");
        json_decref(j);
        return ret;
}

/* ------------------------------------------------------------ cache -- */

/* The cached schema of id, as a heap copy, or NULL (*oom set when out of
 * memory). */
static char *cache_get(struct mcd_registry *r, uint32_t id, bool *oom) {
        char *s = NULL;

        *oom = false;
        pthread_mutex_lock(&r->lock);
        for (size_t i = 0; i < r->n; i++)
                if (r->v[i].id == id) {
                        s = strdup(r->v[i].json);
                        *oom = !s;
                        break;
                }
        pthread_mutex_unlock(&r->lock);
        return s;
}

/* Adds id's schema to the cache unless present.  Out of memory: not cached. */
static void cache_put(struct mcd_registry *r, uint32_t id, const char *json) {
        pthread_mutex_lock(&r->lock);
        for (size_t i = 0; i < r->n; i++)
                if (r->v[i].id == id)
                        goto out;
        if (r->n == r->cap) {
                size_t cap = r->cap ? 2 * r->cap : 16;
                struct cached *v = realloc(r->v, cap * sizeof(*v));
                if (!v)
                        goto out;
                r->v = v;
                r->cap = cap;
        }
        r->v[r->n].json = strdup(json);
        if (r->v[r->n].json)
                r->v[r->n++].id = id;
out:
        pthread_mutex_unlock(&r->lock);
}

/* --------------------------------------------------------- the API -- */

int mcd_registry_schema(struct mcd_registry *r, uint32_t id, char **json, char *why, size_t whylen) {
        char path[64], what[80], *answer = NULL;
        const char *schema;
        long status = 0;
        json_t *j;
        bool oom;
        int ret = 0;

        if ((*json = cache_get(r, id, &oom)))
                return 0;
        if (oom)
                return -ENOMEM;
        /* A registry that just failed is not asked again at once: the
         * threads decoding a batch would each wait a timeout. */
        pthread_mutex_lock(&r->lock);
        if (mono_ms() < r->down_until)
                ret = mcd_say(why, whylen, -EAGAIN, "%s", r->down_why);
        pthread_mutex_unlock(&r->lock);
        if (ret < 0)
                return ret;
        snprintf(path, sizeof(path), "/schemas/ids/%" PRIu32, id);
        snprintf(what, sizeof(what), "GET %s", path);
        ret = request(r, path, NULL, &status, &answer, why, whylen);
        if (ret == 0 && status / 100 != 2) {
                ret = status_error(r, status, answer, what, why, whylen);
                free(answer);
        }
        if (ret == -EAGAIN) {
                pthread_mutex_lock(&r->lock);
                r->down_until = mono_ms() + FAIL_FAST_MS;
                snprintf(r->down_why, sizeof(r->down_why), "%s", why ? why : "the schema registry failed");
                pthread_mutex_unlock(&r->lock);
        }
        if (ret < 0)
                return ret;
        j = json_loads(answer, 0, NULL);
        free(answer);
        schema = json_string_value(json_object_get(j, "schema"));
        if (!schema)
                ret = mcd_say(why, whylen, -EPROTO, "The schema registry at %s answered %s with no \"schema\" string.",
                          r->url, what);
        else if (!(*json = strdup(schema)))
                ret = -ENOMEM;
        else
                cache_put(r, id, schema);
        json_decref(j);
        return ret;
}

int mcd_registry_register(struct mcd_registry *r, const char *subject, const char *schema_json, uint32_t *id,
                          char *why, size_t whylen) {
        char path[1024], what[1100], *answer = NULL, *body, *esc;
        long status = 0;
        json_int_t v;
        json_t *j;
        int ret;

        esc = curl_easy_escape(NULL, subject, 0);
        if (!esc)
                return -ENOMEM;
        ret = snprintf(path, sizeof(path), "/subjects/%s/versions", esc);
        curl_free(esc);
        if (ret < 0 || (size_t)ret >= sizeof(path))
                return mcd_say(why, whylen, -EINVAL, "The subject name \"%s\" is too long.", subject);
        snprintf(what, sizeof(what), "POST %s", path);
        j = json_pack("{ss}", "schema", schema_json);
        body = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (!body)
                return -ENOMEM;
        ret = request(r, path, body, &status, &answer, why, whylen);
        free(body);
        if (ret < 0)
                return ret;
        if (status / 100 != 2) {
                ret = status_error(r, status, answer, what, why, whylen);
                free(answer);
                return ret;
        }
        j = json_loads(answer, 0, NULL);
        free(answer);
        v = json_integer_value(json_object_get(j, "id"));
        if (!json_is_integer(json_object_get(j, "id")) || v < 0 || v > (json_int_t)UINT32_MAX)
                ret = mcd_say(why, whylen, -EPROTO, "The schema registry at %s answered %s with no valid \"id\".",
                          r->url, what);
        else {
                *id = (uint32_t)v;
                cache_put(r, *id, schema_json);
        }
        json_decref(j);
        return ret;
}
