/* store_claims.c -- who owns what in Redis: the meta key whose absence
 * means Redis lost the daemon's state, whether Redis may evict what it
 * holds, and each partition's owner generation, raised by a claim and
 * checked by every commit (fencing). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis.h>

#include "daemon/store.h"
#include "daemon/store_internal.h"

int mcd_store_init_meta(struct mcd_store *s, bool *created) {
        struct args a = {0};
        int64_t v = 0;
        int r;

        args_add_str(&a, "HSETNX");
        args_take(&a, store_key(s, "meta"));
        args_add_str(&a, "v");
        args_add_str(&a, "1");
        r = store_integer_command(s, &a, &v);
        if (r == 0 && created)
                *created = v == 1;
        return r;
}

int mcd_store_meta_exists(struct mcd_store *s, bool *exists) {
        struct args a = {0};
        int64_t v = 0;
        int r;

        args_add_str(&a, "EXISTS");
        args_take(&a, store_key(s, "meta"));
        r = store_integer_command(s, &a, &v);
        if (r == 0)
                *exists = v > 0;
        return r;
}

/* The value of `name` in CONFIG GET's reply of name/value pairs, or NULL. */
static const char *config_value(const redisReply *reply, const char *name) {
        for (size_t i = 0; i + 1 < reply->elements; i += 2)
                if (reply->element[i]->type == REDIS_REPLY_STRING && reply->element[i + 1]->type == REDIS_REPLY_STRING &&
                    strcmp(reply->element[i]->str, name) == 0)
                        return reply->element[i + 1]->str;
        return NULL;
}

int mcd_store_evicts(struct mcd_store *s, char *policy, size_t size) {
        const char *argv[] = {"CONFIG", "GET", "maxmemory*"};
        const size_t lens[] = {6, 3, 10};
        const char *max, *pol;
        redisReply *reply;
        int r = store_command_argv(s, 3, argv, lens, &reply);

        if (r < 0)
                return r;
        max = reply->type == REDIS_REPLY_ARRAY ? config_value(reply, "maxmemory") : NULL;
        pol = reply->type == REDIS_REPLY_ARRAY ? config_value(reply, "maxmemory-policy") : NULL;
        if (!max || !pol)
                r = -EOPNOTSUPP;        /* refused (a managed Redis renames CONFIG) */
        else if (strcmp(max, "0") != 0 && strncmp(pol, "allkeys-", 8) == 0)
                r = 1;
        if (pol)
                snprintf(policy, size, "%s", pol);
        freeReplyObject(reply);
        return r;
}

/* The next generation, and at least floor + 1: one round trip.  With
 * ARGV[2] > 0 (the generation the caller claimed the partition under
 * before), a generation above it means another instance claimed the
 * partition since: nothing is written, and its negation returned. */
static const char CLAIM_SCRIPT[] =
        "local ours = tonumber(ARGV[2])\n"
        "local g = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
        "if ours > 0 and g > ours then\n"
        "  return -g\n"
        "end\n"
        "g = g + 1\n"
        "if g <= tonumber(ARGV[1]) then\n"
        "  g = tonumber(ARGV[1]) + 1\n"
        "end\n"
        "redis.call('SET', KEYS[1], g)\n"
        "return g\n";

int mcd_store_claim(struct mcd_store *s, int32_t partition, int64_t floor, int64_t ours, int64_t *generation) {
        struct args a = {0};
        int64_t g = 0;
        int r;

        args_add_eval(&a, CLAIM_SCRIPT, 1);
        args_add_key(&a, s, "gen", partition);
        args_addf(&a, "%" PRId64, floor);
        args_addf(&a, "%" PRId64, ours > 0 ? ours : 0);
        r = store_integer_command(s, &a, &g);
        if (r < 0)
                return r;
        *generation = g < 0 ? -g : g;
        return g < 0 ? -ESTALE : 0;
}

int mcd_store_generation(struct mcd_store *s, int32_t partition, int64_t *generation) {
        struct args a = {0};
        redisReply *reply;
        int r;

        args_add_str(&a, "GET");
        args_add_key(&a, s, "gen", partition);
        r = store_command(s, &a, &reply);
        args_free(&a);
        if (r < 0)
                return r;
        if (reply->type == REDIS_REPLY_NIL)
                *generation = 0;
        else
                r = store_parse_int64(reply, generation);
        freeReplyObject(reply);
        return r;
}

int mcd_store_generations(struct mcd_store *s, const int32_t *partitions, size_t n, int64_t *generations) {
        struct args a = {0};
        redisReply *reply;
        int r;

        if (n == 0)
                return 0;
        args_add_str(&a, "MGET");
        for (size_t i = 0; i < n; i++)
                args_add_key(&a, s, "gen", partitions[i]);
        if ((r = store_array_command(s, &a, n, &reply)) < 0)
                return r;
        for (size_t i = 0; r == 0 && i < n; i++) {
                if (reply->element[i]->type == REDIS_REPLY_NIL)
                        generations[i] = 0;
                else
                        r = store_parse_int64(reply->element[i], &generations[i]);
        }
        freeReplyObject(reply);
        return r;
}
