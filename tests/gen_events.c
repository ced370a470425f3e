/* gen_events.c -- a deterministic random stream of input events as JSON
 * lines, for the property test, the crash tests and the benchmark.
 *
 * usage: gen_events [-s SEED] [-n EVENTS] [-c CUSTOMERS] [-t relationships|subscriptions]
 *                   [-T START_MS] [-H HOT_EVENTS]
 *
 * The mix follows a customer's life: requests, acceptances, subscriptions
 * reported, switches, CSP subscriptions, cancellations, term ends, removals;
 * with wrong partners, unknown subscriptions, repeated events, the other cloud and
 * slightly out-of-order timestamps thrown in.  Timestamps advance with the
 * stream.  With -t only events of that topic are printed (the same stream,
 * filtered), so the two topics can be produced separately.
 *
 * -H N prints instead a hot customer's stream (customer "cust-hot"): N
 * distinct events a second apart, each the cancellation of a subscription
 * never reported (rejected SUBSCRIPTION_UNKNOWN), the input that once made a
 * customer's state grow without bound. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/jsonl.h"

static uint64_t rng_state;

static uint64_t rnd(void) {       /* xorshift64* */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * 2685821657736338717ULL;
}

static unsigned pick(unsigned n) {
        return (unsigned)(rnd() % n);
}

static int hot_stream(unsigned long seed, unsigned long n, mcd_time_t t) {
        char eid[64], sid[64];

        for (unsigned long i = 0; i < n; i++) {
                struct mcd_event ev = {
                        .type = MCD_EV_SUBSCRIPTION_CANCELLED,
                        .event_id = eid,
                        .occurred_at = t + (mcd_time_t)i * 1000,
                        .customer_id = (char *)"cust-hot",
                        .cloud = MCD_CLOUD_COMMERCIAL,
                        .subscription_id = sid,
                        .scope = MCD_SCOPE_ENTIRE_SUBSCRIPTION,
                };
                char *line;
                snprintf(eid, sizeof(eid), "hot-%lu-%lu", seed, i);
                snprintf(sid, sizeof(sid), "never-reported-%lu", i);
                line = mcd_jsonl_format_event(&ev);
                if (!line)
                        return 1;
                puts(line);
                free(line);
        }
        return 0;
}

int main(int argc, char **argv) {
        unsigned long n = 1000, customers = 100, seed = 1, hot = 0;
        const char *only = NULL;
        mcd_time_t t = 1767225600000LL;  /* 2026-01-01 */
        char eid[64], cid[64], pid[32], sid[32], csp[32], tgt[32], seller[32];
        char *prev = NULL;
        int c;

        while ((c = getopt(argc, argv, "s:n:c:t:T:H:")) != -1) {
                switch (c) {
                case 's': seed = strtoul(optarg, NULL, 10); break;
                case 'n': n = strtoul(optarg, NULL, 10); break;
                case 'c': customers = strtoul(optarg, NULL, 10); break;
                case 't': only = optarg; break;
                case 'T': t = strtoll(optarg, NULL, 10); break;
                case 'H': hot = strtoul(optarg, NULL, 10); break;
                default:
                        fprintf(stderr, "usage: gen_events [-s SEED] [-n EVENTS] [-c CUSTOMERS] [-t TOPIC] [-T START_MS] [-H HOT_EVENTS]\n");
                        return 2;
                }
        }
        if (hot)
                return hot_stream(seed, hot, t);
        if (customers == 0)
                customers = 1;
        rng_state = seed * 0x9E3779B97F4A7C15ULL + 1;
        for (unsigned long i = 0; i < n; i++) {
                struct mcd_event ev = {0};
                unsigned long cust = pick((unsigned)customers);
                unsigned roll = pick(100);
                char *line;

                t += pick(120000);
                snprintf(eid, sizeof(eid), "ev-%lu-%lu", seed, i);
                snprintf(cid, sizeof(cid), "cust-%06lu", cust);
                snprintf(pid, sizeof(pid), "partner-%u", pick(10) == 0 ? 2 : (unsigned)(cust % 2));
                snprintf(sid, sizeof(sid), "sub-%lu-%u", cust, pick(4));
                snprintf(csp, sizeof(csp), "csp-%lu", i);
                snprintf(tgt, sizeof(tgt), "partner-%u", pick(8) == 0 ? 2 : (unsigned)(cust % 2));
                snprintf(seller, sizeof(seller), "partner-%u", pick(3));
                if (prev && pick(50) == 0) {
                        puts(prev);     /* a producer's retry: the same event again */
                        continue;
                }
                ev.event_id = eid;
                ev.occurred_at = t - (pick(20) == 0 ? pick(600000) : 0);
                ev.customer_id = cid;
                ev.cloud = (cust % 7 == 3) ^ (pick(40) == 0) ? MCD_CLOUD_US_GOVERNMENT : MCD_CLOUD_COMMERCIAL;
                ev.partner_id = pid;
                ev.subscription_id = sid;
                if (roll < 12) {
                        ev.type = MCD_EV_RELATIONSHIP_REQUESTED;
                        ev.customer_is_csp_partner = pick(30) == 0;
                        ev.indirect_reseller_id = pick(3) == 0 ? "reseller-1" : NULL;
                } else if (roll < 24) {
                        ev.type = MCD_EV_RELATIONSHIP_ACCEPTED;
                } else if (roll < 28) {
                        ev.type = MCD_EV_RELATIONSHIP_REMOVED;
                        ev.reason = pick(2) ? "customer revoked admin rights" : NULL;
                } else if (roll < 50) {
                        ev.type = MCD_EV_SUBSCRIPTION_REPORTED;
                        ev.offer_name = "Offer";
                        ev.billing = pick(2) ? MCD_BILLING_LICENSE_BASED : MCD_BILLING_USAGE_BASED;
                        ev.channel = (enum mcd_channel)pick(MCD_CHANNEL__COUNT);
                        ev.seller_partner_id = ev.channel == MCD_CHANNEL_CSP ? seller : NULL;
                        ev.has_term_end = ev.billing == MCD_BILLING_LICENSE_BASED || pick(4) == 0;
                        ev.term_end = t + (mcd_time_t)pick(30 * 24) * 3600000 - 5 * 86400000LL;
                } else if (roll < 66) {
                        ev.type = MCD_EV_SWITCH_REQUESTED;
                        ev.target_partner_id = tgt;
                } else if (roll < 80) {
                        ev.type = MCD_EV_CSP_SUBSCRIPTION_CREATED;
                        ev.csp_subscription_id = csp;
                } else if (roll < 92) {
                        static char *services[] = {"vm-1", "sql-2"};
                        ev.type = MCD_EV_SUBSCRIPTION_CANCELLED;
                        ev.scope = pick(3) ? MCD_SCOPE_ENTIRE_SUBSCRIPTION : MCD_SCOPE_SOME_SERVICES;
                        ev.services = ev.scope == MCD_SCOPE_SOME_SERVICES ? services : NULL;
                        ev.n_services = ev.services ? 2 : 0;
                } else {
                        ev.type = MCD_EV_SUBSCRIPTION_TERM_ENDED;
                }
                if (ev.type <= MCD_EV_RELATIONSHIP_REMOVED)
                        ev.subscription_id = NULL;
                if (ev.type != MCD_EV_RELATIONSHIP_REQUESTED && ev.type != MCD_EV_RELATIONSHIP_ACCEPTED &&
                    ev.type != MCD_EV_RELATIONSHIP_REMOVED && ev.type != MCD_EV_CSP_SUBSCRIPTION_CREATED)
                        ev.partner_id = NULL;
                if (only && strcmp(only, mcd_event_is_relationship(ev.type) ? "relationships" : "subscriptions") != 0)
                        continue;
                line = mcd_jsonl_format_event(&ev);
                if (!line)
                        return 1;
                puts(line);
                free(prev);
                prev = line;
        }
        free(prev);
        return 0;
}
