/* schemas_embedded.h -- the .avsc files of schemas/, embedded at build time
 * (schemas/embed.sh).  Each name is "<RecordName>.v<N>.avsc". */
#ifndef MCD_SCHEMAS_EMBEDDED_H
#define MCD_SCHEMAS_EMBEDDED_H

#include <stddef.h>

struct mcd_schema_file {
        const char *name;
        const char *json;
};

extern const struct mcd_schema_file mcd_schema_files[];
extern const size_t mcd_n_schema_files;

#endif
