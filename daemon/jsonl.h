/* jsonl.h -- the replay format: input events and outcomes as JSON lines.
 *
 * One flat JSON object per event: the common fields, "type" naming the
 * payload record, then the payload's fields; timestamps as ISO-8601 UTC with
 * milliseconds.  Built on jansson. */
#ifndef MCD_JSONL_H
#define MCD_JSONL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "handlers/model.h"

/* The longest line read (its newline included); an event is a few hundred
 * bytes. */
#define MCD_JSONL_LINE_MAX (1 << 20)

/* Reads the next line of in into *line (grown as getline grows it,
 * NUL-terminated, NUL bytes kept), at most MCD_JSONL_LINE_MAX bytes of it:
 * a longer line is read to its end and *too_long set, its first bytes kept.
 * Returns its length (> 0), 0 at the end of in or on a read error
 * (ferror), or -ENOMEM. */
long mcd_jsonl_getline(char **line, size_t *cap, FILE *in, bool *too_long);

/* True when a line read (len bytes, as getline counts them) holds only
 * blanks: skipped.  A NUL byte is not a blank: such a line is parsed, and
 * refused.  This function can't fail. */
bool mcd_jsonl_blank(const char *line, size_t len);

/* Parses one line into ev.  Returns 0, or -EINVAL with a one-line English
 * reason in why[whylen] ("invalid JSON: ...", "unknown type \"X\"", "missing
 * field \"partner_id\"", "field \"cloud\" must be one of ...", "term_end is
 * required for a LICENSE_BASED subscription"). */
int mcd_jsonl_parse_event(const char *line, size_t len, struct mcd_event *ev, char *why, size_t whylen);

/* Formats an event as one JSON line (no newline); heap string or NULL. */
char *mcd_jsonl_format_event(const struct mcd_event *ev);

/* Formats an outcome as one JSON line (no newline), fields in the contract's
 * order, every field present; heap string or NULL. */
char *mcd_jsonl_format_outcome(const struct mcd_outcome *o);

#endif
