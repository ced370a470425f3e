/* metrics.h -- the Prometheus text endpoint (/metrics) and /healthz, served
 * by libmicrohttpd on a loopback address from its own thread.  The worker
 * hands it a copy of its figures after each batch. */
#ifndef MCD_METRICS_H
#define MCD_METRICS_H

#include "daemon/stats.h"

struct mcd_metrics;

/* Starts serving on "host:port" (e.g. "127.0.0.1:9464", "[::1]:9464").
 * 0 or negative errno (-EADDRINUSE, -EINVAL for a bad address). */
int mcd_metrics_start(const char *listen, struct mcd_metrics **out);

/* Replaces the figures served (copied under a lock). */
void mcd_metrics_update(struct mcd_metrics *m, const struct mcd_stats *s);

/* The Prometheus text exposition of s (heap string), as /metrics serves it. */
char *mcd_metrics_render(const struct mcd_stats *s);

void mcd_metrics_stop(struct mcd_metrics *m);

#endif
