/* log.h -- logging: structured journald entries when running under journald,
 * plain lines on stderr otherwise.
 *
 * The level is a syslog priority (LOG_ERR .. LOG_DEBUG).  Each entry may
 * carry the fields operators filter on: CUSTOMER_ID, EVENT_ID, TOPIC,
 * PARTITION, OFFSET, ERROR_CODE. */
#ifndef MCD_LOG_H
#define MCD_LOG_H

#include <stdint.h>
#include <syslog.h>

struct mcd_log_fields {
        const char *customer_id;
        const char *event_id;
        const char *topic;
        int32_t partition;           /* -1: none */
        int64_t offset;              /* -1: none */
        const char *error_code;
};

#define MCD_LOG_NO_FIELDS ((struct mcd_log_fields){.partition = -1, .offset = -1})

/* The process-wide log threshold and sink: set once at start-up and on
 * reload.  The only global state of the daemon, as with syslog(3). */
void mcd_log_set_level(int level);
int mcd_log_get_level(void);
/* Parses "err", "warning", "notice", "info", "debug" (or 3..7); -EINVAL. */
int mcd_log_level_from_name(const char *s);
/* The name of a log threshold, as mcd_log_level_from_name reads it ("err",
 * ..., "debug"; beyond that range, the nearest).  This function can't fail. */
const char *mcd_log_level_name(int level);

void mcd_log_full(int level, const struct mcd_log_fields *f, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

#define mcd_log(level, ...) mcd_log_full(level, NULL, __VA_ARGS__)
#define log_error(...) mcd_log(LOG_ERR, __VA_ARGS__)
#define log_warning(...) mcd_log(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) mcd_log(LOG_NOTICE, __VA_ARGS__)
#define log_info(...) mcd_log(LOG_INFO, __VA_ARGS__)
#define log_debug(...) mcd_log(LOG_DEBUG, __VA_ARGS__)

#endif
