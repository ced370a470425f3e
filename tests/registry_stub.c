/* registry_stub.c -- a stand-in for a Confluent Schema Registry, for the
 * tests: the real REST paths and media type, schemas kept in memory.
 *
 *   registry_stub PORT CONTROL_DIR
 *
 * Listens on 127.0.0.1:PORT (0: any free port) and writes the port it got to
 * CONTROL_DIR/port once it accepts connections.  It answers
 *
 *   GET  /schemas/ids/{id}           {"schema": "..."}, or 404 {"error_code": 40403, ...}
 *   POST /subjects/{s}/versions      {"id": N}: the same id for a schema text it has
 *   GET  /_stub/requests             how many requests it has served (text)
 *
 * with Content-Type application/vnd.schemaregistry.v1+json.  While the file
 * CONTROL_DIR/down exists every request is answered 503 (an outage the
 * tests switch on and off with touch and rm).  If CONTROL_DIR/basic_auth
 * exists, requests must carry those credentials ("user:password") or get 401.
 * Schemas are also kept as files CONTROL_DIR/schema.N (N from 0), read
 * again at start, so that a stub stopped and started again on its port (a
 * registry that was unreachable for a while) still knows every id.
 * Runs until SIGTERM or SIGINT. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>

#if MHD_VERSION < 0x00097002
typedef int mhd_result_t;
#else
typedef enum MHD_Result mhd_result_t;
#endif

#define MEDIA_TYPE "application/vnd.schemaregistry.v1+json"
#define MAX_BODY (4 << 20)
#define MAX_SCHEMAS 4096
#define FIRST_ID 100                    /* ids are not indexes: a test must not confuse them */

static const char *control_dir;
static char *schemas[MAX_SCHEMAS];      /* id FIRST_ID + i -> schema text */
static size_t n_schemas;
static unsigned long requests;
static volatile sig_atomic_t stop;

struct upload {
        char *p;                        /* POST body so far */
        size_t len;
};

static void on_signal(int sig) {
        (void)sig;
        stop = 1;
}

static int control_exists(const char *name) {
        char path[4096];

        snprintf(path, sizeof(path), "%s/%s", control_dir, name);
        return access(path, F_OK) == 0;
}

static mhd_result_t respond(struct MHD_Connection *c, unsigned status, const char *body) {
        struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(body), (void *)body,
                                                                    MHD_RESPMEM_MUST_COPY);
        mhd_result_t r;

        if (!resp)
                return MHD_NO;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, MEDIA_TYPE);
        r = MHD_queue_response(c, status, resp);
        MHD_destroy_response(resp);
        return r;
}

static mhd_result_t respond_error(struct MHD_Connection *c, unsigned status, int code, const char *message) {
        json_t *j = json_pack("{siss}", "error_code", code, "message", message);
        char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        mhd_result_t r = respond(c, status, s ? s : "{}");

        free(s);
        json_decref(j);
        return r;
}

static mhd_result_t get_schema(struct MHD_Connection *c, const char *idtext) {
        char *end;
        long id = strtol(idtext, &end, 10);
        json_t *j;
        char *s;
        mhd_result_t r;

        if (*idtext == '\0' || *end != '\0' || id < FIRST_ID || id >= FIRST_ID + (long)n_schemas)
                return respond_error(c, MHD_HTTP_NOT_FOUND, 40403, "Schema not found");
        j = json_pack("{ss}", "schema", schemas[id - FIRST_ID]);
        s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        r = s ? respond(c, MHD_HTTP_OK, s) : MHD_NO;
        free(s);
        json_decref(j);
        return r;
}

/* Keeps schema i as CONTROL_DIR/schema.i.  0 or -1. */
static int save_schema(size_t i) {
        char path[4096];
        FILE *f;

        snprintf(path, sizeof(path), "%s/schema.%zu", control_dir, i);
        if (!(f = fopen(path, "w")))
                return -1;
        fputs(schemas[i], f);
        return fclose(f) == 0 ? 0 : -1;
}

/* Reads the schemas kept by an earlier run. */
static void load_schemas(void) {
        char path[4096];
        FILE *f;

        while (n_schemas < MAX_SCHEMAS) {
                char *text = NULL;
                size_t cap = 0;
                ssize_t n;

                snprintf(path, sizeof(path), "%s/schema.%zu", control_dir, n_schemas);
                if (!(f = fopen(path, "r")))
                        return;
                n = getdelim(&text, &cap, '\0', f);
                fclose(f);
                if (n < 0) {
                        free(text);
                        return;
                }
                schemas[n_schemas++] = text;
        }
}

static mhd_result_t post_version(struct MHD_Connection *c, const struct upload *u) {
        json_t *j = json_loadb(u->p ? u->p : "", u->len, 0, NULL);
        const char *schema = json_string_value(json_object_get(j, "schema"));
        json_t *parsed;
        char out[64];
        size_t i;

        parsed = schema ? json_loads(schema, 0, NULL) : NULL;
        if (!parsed) {
                json_decref(j);
                return respond_error(c, 422, 42201, "Invalid schema");
        }
        json_decref(parsed);
        for (i = 0; i < n_schemas; i++)
                if (strcmp(schemas[i], schema) == 0)
                        break;
        if (i == n_schemas) {
                if (n_schemas == MAX_SCHEMAS || !(schemas[n_schemas] = strdup(schema)) || save_schema(n_schemas) < 0) {
                        if (n_schemas < MAX_SCHEMAS) {
                                free(schemas[n_schemas]);
                                schemas[n_schemas] = NULL;
                        }
                        json_decref(j);
                        return respond_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, 50001, "Store full");
                }
                n_schemas++;
        }
        json_decref(j);
        snprintf(out, sizeof(out), "{\"id\":%zu}", FIRST_ID + i);
        return respond(c, MHD_HTTP_OK, out);
}

static int authorized(struct MHD_Connection *c) {
        char path[4096], want[256] = "", *user, *pass = NULL;
        FILE *f;
        int ok;

        snprintf(path, sizeof(path), "%s/basic_auth", control_dir);
        if (!(f = fopen(path, "r")))
                return 1;
        if (!fgets(want, sizeof(want), f))
                want[0] = '\0';
        fclose(f);
        want[strcspn(want, "\n")] = '\0';
        user = MHD_basic_auth_get_username_password(c, &pass);
        {
                char got[512];
                snprintf(got, sizeof(got), "%s:%s", user ? user : "", pass ? pass : "");
                ok = user && strcmp(got, want) == 0;
        }
        MHD_free(user);
        MHD_free(pass);
        return ok;
}

static mhd_result_t on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *data, size_t *size, void **state) {
        struct upload *u = *state;
        char subject[1024];
        int n = 0;

        (void)cls;
        (void)version;
        if (!u) {
                if (!(u = calloc(1, sizeof(*u))))
                        return MHD_NO;
                *state = u;
                return MHD_YES;
        }
        if (*size) {
                char *p;
                if (u->len + *size > MAX_BODY || !(p = realloc(u->p, u->len + *size + 1)))
                        return MHD_NO;
                memcpy(p + u->len, data, *size);
                u->p = p;
                u->len += *size;
                u->p[u->len] = '\0';
                *size = 0;
                return MHD_YES;
        }
        requests++;
        if (control_exists("down"))
                return respond_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, 50003, "Service unavailable (stub outage)");
        if (!authorized(c))
                return respond_error(c, MHD_HTTP_UNAUTHORIZED, 40101, "Unauthorized");
        if (strcmp(method, "GET") == 0 && strncmp(url, "/schemas/ids/", 13) == 0)
                return get_schema(c, url + 13);
        if (strcmp(method, "GET") == 0 && strcmp(url, "/_stub/requests") == 0) {
                char out[32];
                snprintf(out, sizeof(out), "%lu\n", requests);
                return respond(c, MHD_HTTP_OK, out);
        }
        if (strcmp(method, "POST") == 0 && sscanf(url, "/subjects/%1023[^/]/versions%n", subject, &n) == 1 &&
            url[n] == '\0')
                return post_version(c, u);
        return respond_error(c, MHD_HTTP_NOT_FOUND, 404, "HTTP 404 Not Found");
}

static void on_done(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode code) {
        struct upload *u = *state;

        (void)cls;
        (void)c;
        (void)code;
        if (u) {
                free(u->p);
                free(u);
                *state = NULL;
        }
}

int main(int argc, char **argv) {
        struct sockaddr_in sa = {.sin_family = AF_INET};
        const union MHD_DaemonInfo *info;
        struct MHD_Daemon *d;
        char path[4096], tmp[4200];
        FILE *f;

        if (argc != 3) {
                fprintf(stderr, "usage: registry_stub PORT CONTROL_DIR\n");
                return 2;
        }
        control_dir = argv[2];
        load_schemas();
        sa.sin_port = htons((unsigned short)atoi(argv[1]));
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, on_request, NULL,
                             MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED, on_done,
                             NULL, MHD_OPTION_END);
        if (!d) {
                fprintf(stderr, "registry_stub: cannot listen on 127.0.0.1:%s\n", argv[1]);
                return 1;
        }
        info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
        snprintf(path, sizeof(path), "%s/port", control_dir);
        snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        if (!info || !(f = fopen(tmp, "w")) || fprintf(f, "%u\n", (unsigned)info->port) < 0 || fclose(f) != 0 ||
            rename(tmp, path) != 0) {
                fprintf(stderr, "registry_stub: cannot write %s\n", path);
                MHD_stop_daemon(d);
                return 1;
        }
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
        while (!stop)
                pause();
        MHD_stop_daemon(d);
        for (size_t i = 0; i < n_schemas; i++)
                free(schemas[i]);
        return 0;
}
