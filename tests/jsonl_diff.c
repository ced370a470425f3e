/* jsonl_diff.c -- compares replay output with a scenario's expected outcomes:
 * line by line, as JSON objects (key order ignored), every field but
 * "message", which must be a non-empty string in the actual output.
 * Usage: jsonl_diff EXPECTED ACTUAL; exit 0 when equal, 1 with the first
 * difference on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static json_t *load_lines(const char *path) {
        FILE *f = fopen(path, "re");
        json_t *arr = json_array();
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;

        if (!f) {
                perror(path);
                exit(2);
        }
        while ((n = getline(&line, &cap, f)) >= 0) {
                json_error_t e;
                json_t *o;
                if (line[strspn(line, " \t\r\n")] == '\0')
                        continue;
                o = json_loadb(line, (size_t)n, 0, &e);
                if (!o) {
                        fprintf(stderr, "%s: invalid JSON line: %s\n", path, e.text);
                        exit(2);
                }
                json_array_append_new(arr, o);
        }
        free(line);
        fclose(f);
        return arr;
}

int main(int argc, char **argv) {
        json_t *want, *got;
        size_t i;
        int rc = 0;

        if (argc != 3) {
                fprintf(stderr, "usage: jsonl_diff EXPECTED ACTUAL\n");
                return 2;
        }
        want = load_lines(argv[1]);
        got = load_lines(argv[2]);
        if (json_array_size(want) != json_array_size(got)) {
                fprintf(stderr, "expected %zu outcomes, got %zu\n", json_array_size(want), json_array_size(got));
                rc = 1;
        }
        for (i = 0; i < json_array_size(want) && i < json_array_size(got); i++) {
                json_t *w = json_array_get(want, i), *g = json_array_get(got, i);
                json_t *msg = json_object_get(g, "message");
                char *ws, *gs;

                if (!json_is_string(msg) || json_string_length(msg) == 0) {
                        fprintf(stderr, "outcome %zu: message missing or empty\n", i + 1);
                        rc = 1;
                }
                json_object_del(w, "message");
                json_object_del(g, "message");
                if (!json_equal(w, g)) {
                        ws = json_dumps(w, JSON_SORT_KEYS | JSON_COMPACT);
                        gs = json_dumps(g, JSON_SORT_KEYS | JSON_COMPACT);
                        fprintf(stderr, "outcome %zu differs:\n  want %s\n  got  %s\n", i + 1, ws, gs);
                        free(ws);
                        free(gs);
                        rc = 1;
                }
        }
        json_decref(want);
        json_decref(got);
        return rc;
}
