/* registry.h -- a Confluent Schema Registry client: the two REST calls the
 * daemon makes (a writer schema by id, registering the outcome schema under
 * a subject) and the cache of schemas fetched by id.
 *
 * Thread safety: one mcd_registry is shared by every decoding thread
 * (daemon/parallel.c).  Every function may be called from any thread at
 * once; the cache is guarded by a mutex that is never held across an HTTP
 * request (each request has its own curl handle), so a slow registry delays
 * only the threads that need a schema not yet cached. */
#ifndef MCD_REGISTRY_H
#define MCD_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

struct mcd_registry;

/* Media type of the registry's requests and answers. */
#define MCD_REGISTRY_MEDIA_TYPE "application/vnd.schemaregistry.v1+json"

/* Creates a client of the registry at base URL `url` (e.g.
 * "http://127.0.0.1:8081", no trailing path needed), with HTTP basic
 * authentication `basic_auth` ("user:password", or NULL).  timeout_ms bounds
 * each request (connection included); 0 means 5000.  0 or negative errno. */
int mcd_registry_new(const char *url, const char *basic_auth, long timeout_ms, struct mcd_registry **out);
/* Frees r and its cache (NULL accepted). */
void mcd_registry_free(struct mcd_registry *r);

/* The writer schema of `id` (GET /schemas/ids/{id}), from the cache or the
 * registry, as a heap copy of its JSON text in *json.  Returns 0; -ENOENT
 * when the registry answers 404 (no such id: not cached, asked again next
 * time); -EAGAIN when it is unreachable, times out or answers 5xx or 429
 * (try later; for one second after such a failure, ids not cached fail at
 * once with the same reason, without a request); -EPROTO for any other
 * answer.  On failure why[] is one sentence. */
int mcd_registry_schema(struct mcd_registry *r, uint32_t id, char **json, char *why, size_t whylen);

/* Registers `schema_json` under `subject` (POST /subjects/{subject}/versions)
 * and gives the id the registry returns (the same id for a schema it has
 * already).  Same returns as mcd_registry_schema. */
int mcd_registry_register(struct mcd_registry *r, const char *subject, const char *schema_json, uint32_t *id,
                          char *why, size_t whylen);

/* Number of schemas in the cache. */
size_t mcd_registry_cached(struct mcd_registry *r);

#endif
