/* log.c -- logging: structured journald entries when stderr is connected to
 * the journal, plain lines on stderr otherwise.
 *
 * Whether stderr goes to the journal is decided as systemd documents it:
 * $JOURNAL_STREAM holds "DEVICE:INODE" of the stream systemd connected, and
 * it only counts if it still names stderr (a child whose stderr was
 * redirected inherits the variable but not the stream).  sd_journal_send()
 * returns 0 and drops the entry when no journald runs, so it is only used
 * in that case (and when journald's socket exists); if it fails the entry
 * goes to stderr instead. */
#define SD_JOURNAL_SUPPRESS_LOCATION 1 /* CODE_FILE= would always be log.c */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

#include "daemon/log.h"

enum sink { SINK_UNKNOWN, SINK_STDERR, SINK_JOURNAL };

#define MESSAGE_MAX 4096
#define FIELD_MAX 512
#define JOURNAL_SOCKET "/run/systemd/journal/socket"

/* The process-wide state log.h documents: threshold and sink.  Atomic
 * because librdkafka's threads log too. */
static struct {
        _Atomic int level;
        _Atomic int sink;
} log_state = {LOG_INFO, SINK_UNKNOWN};

static const char *const level_names[] = {
        [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert", [LOG_CRIT] = "crit",  [LOG_ERR] = "err",
        [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice", [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

void mcd_log_set_level(int level) {
        if (level < LOG_EMERG)
                level = LOG_EMERG;
        if (level > LOG_DEBUG)
                level = LOG_DEBUG;
        atomic_store(&log_state.level, level);
}

int mcd_log_get_level(void) {
        return atomic_load(&log_state.level);
}

const char *mcd_log_level_name(int level) {
        if (level < LOG_ERR)
                level = LOG_ERR;
        return level_names[level > LOG_DEBUG ? LOG_DEBUG : level];
}

int mcd_log_level_from_name(const char *s) {
        static const struct {
                const char *name;
                int level;
        } aliases[] = {{"error", LOG_ERR}, {"warn", LOG_WARNING}};

        if (!s)
                return -EINVAL;
        for (int i = LOG_ERR; i <= LOG_DEBUG; i++)
                if (strcasecmp(s, level_names[i]) == 0)
                        return i;
        for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
                if (strcasecmp(s, aliases[i].name) == 0)
                        return aliases[i].level;
        if (s[0] >= '0' + LOG_ERR && s[0] <= '0' + LOG_DEBUG && s[1] == '\0')
                return s[0] - '0';
        return -EINVAL;
}

/* ------------------------------------------------------------- sink */

static int stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;
        int n = 0;

        if (!e || sscanf(e, "%llu:%llu%n", &dev, &ino, &n) != 2 || e[n] != '\0')
                return 0;
        if (fstat(STDERR_FILENO, &st) < 0)
                return 0;
        if ((unsigned long long)st.st_dev != dev || (unsigned long long)st.st_ino != ino)
                return 0;
        /* A stale variable with no journald behind it: sd_journal_send()
         * would drop every entry without an error. */
        return stat(JOURNAL_SOCKET, &st) == 0 && S_ISSOCK(st.st_mode);
}

static enum sink log_sink(void) {
        int s = atomic_load(&log_state.sink);

        if (s == SINK_UNKNOWN) {
                s = stderr_is_journal() ? SINK_JOURNAL : SINK_STDERR;
                atomic_store(&log_state.sink, s);
        }
        return s;
}

/* ------------------------------------------------------------- journal */

struct journal_entry {
        struct iovec iov[9];
        int n;
        char buf[7][FIELD_MAX];
        int nbuf;
};

static void entry_add(struct journal_entry *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void entry_add(struct journal_entry *e, const char *fmt, ...) {
        char *b = e->buf[e->nbuf++];
        va_list ap;
        int len;

        va_start(ap, fmt);
        len = vsnprintf(b, FIELD_MAX, fmt, ap);
        va_end(ap);
        if (len < 0)
                len = 0;
        if (len >= FIELD_MAX)
                len = FIELD_MAX - 1;
        e->iov[e->n++] = (struct iovec){.iov_base = b, .iov_len = (size_t)len};
}

static int log_journal(int level, const struct mcd_log_fields *f, const char *msg, size_t msglen) {
        static const char message[] = "MESSAGE=";
        static const char ident[] = "SYSLOG_IDENTIFIER=multichanneld";
        char msgfield[sizeof(message) - 1 + MESSAGE_MAX];
        struct journal_entry e;

        e.n = 0;
        e.nbuf = 0;
        memcpy(msgfield, message, sizeof(message) - 1);
        memcpy(msgfield + sizeof(message) - 1, msg, msglen);
        e.iov[e.n++] = (struct iovec){.iov_base = msgfield, .iov_len = sizeof(message) - 1 + msglen};
        e.iov[e.n++] = (struct iovec){.iov_base = (char *)ident, .iov_len = sizeof(ident) - 1};
        entry_add(&e, "PRIORITY=%d", level);
        if (f) {
                if (f->customer_id)
                        entry_add(&e, "CUSTOMER_ID=%s", f->customer_id);
                if (f->event_id)
                        entry_add(&e, "EVENT_ID=%s", f->event_id);
                if (f->topic)
                        entry_add(&e, "TOPIC=%s", f->topic);
                if (f->partition >= 0)
                        entry_add(&e, "PARTITION=%" PRId32, f->partition);
                if (f->offset >= 0)
                        entry_add(&e, "OFFSET=%" PRId64, f->offset);
                if (f->error_code)
                        entry_add(&e, "ERROR_CODE=%s", f->error_code);
        }
        return sd_journal_sendv(e.iov, e.n);
}

/* ------------------------------------------------------------- stderr */

static void suffix_add(char *buf, size_t size, size_t *len, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static void suffix_add(char *buf, size_t size, size_t *len, const char *fmt, ...) {
        va_list ap;
        int n;

        if (*len >= size - 1)
                return;
        va_start(ap, fmt);
        n = vsnprintf(buf + *len, size - *len, fmt, ap);
        va_end(ap);
        if (n > 0)
                *len = *len + (size_t)n < size ? *len + (size_t)n : size - 1;
}

static void log_stderr(int level, const struct mcd_log_fields *f, const char *msg) {
        const char *name = level == LOG_ERR ? "error" : level_names[level];
        char fields[FIELD_MAX * 2] = "";
        size_t len = 0;

        if (f) {
                if (f->customer_id)
                        suffix_add(fields, sizeof(fields), &len, " customer_id=%s", f->customer_id);
                if (f->event_id)
                        suffix_add(fields, sizeof(fields), &len, " event_id=%s", f->event_id);
                if (f->topic)
                        suffix_add(fields, sizeof(fields), &len, " topic=%s", f->topic);
                if (f->partition >= 0)
                        suffix_add(fields, sizeof(fields), &len, " partition=%" PRId32, f->partition);
                if (f->offset >= 0)
                        suffix_add(fields, sizeof(fields), &len, " offset=%" PRId64, f->offset);
                if (f->error_code)
                        suffix_add(fields, sizeof(fields), &len, " error_code=%s", f->error_code);
        }
        /* One call, so that lines from several threads do not interleave. */
        if (len > 0)
                fprintf(stderr, "multichanneld[%ld]: %s: %s (%s)\n", (long)getpid(), name, msg, fields + 1);
        else
                fprintf(stderr, "multichanneld[%ld]: %s: %s\n", (long)getpid(), name, msg);
}

/* ------------------------------------------------------------- entry */

void mcd_log_full(int level, const struct mcd_log_fields *f, const char *fmt, ...) {
        char msg[MESSAGE_MAX];
        va_list ap;
        int len;
        int saved_errno = errno;

        if (level < LOG_EMERG)
                level = LOG_EMERG;
        if (level > LOG_DEBUG)
                level = LOG_DEBUG;
        if (level > atomic_load(&log_state.level))
                return;

        va_start(ap, fmt);
        len = vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (len < 0) {
                snprintf(msg, sizeof(msg), "(unformattable message: %s)", fmt);
                len = (int)strlen(msg);
        }
        if ((size_t)len >= sizeof(msg))
                len = (int)sizeof(msg) - 1;

        if (log_sink() != SINK_JOURNAL || log_journal(level, f, msg, (size_t)len) < 0)
                log_stderr(level, f, msg);
        errno = saved_errno;
}
