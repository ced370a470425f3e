/* state_codec.h -- a customer's state as stored: the value of P c:<id> in
 * Redis and the state inside a changelog record.
 *
 * Written in a compact, versioned binary form ("MCS" and a version byte,
 * then Avro-style zig-zag varints and length-prefixed strings); read in that
 * form or as the JSON that earlier versions stored (state_json.h), so a
 * Redis or a changelog written before carries over.  `multichanneld state`
 * prints the JSON form of whatever is stored.
 *
 * The largest state the contract's bounds allow (10,000 seen ids, 1,000
 * subscriptions, 100 parked events, identifiers of 128 bytes) encodes to
 * about 0.6 MB, under Kafka's default message.max.bytes of 1,000,000;
 * tests/test_store.c builds that worst case and checks it. */
#ifndef MCD_STATE_CODEC_H
#define MCD_STATE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "handlers/model.h"

#define MCD_STATE_MAGIC "MCS"
#define MCD_STATE_VERSION 2

/* Encodes c; *buf is a heap buffer of *len bytes.  0 or -ENOMEM. */
int mcd_state_encode(const struct mcd_customer *c, char **buf, size_t *len);

/* Decodes a stored state, binary or JSON, into c (initialised by the
 * callee).  0, -ENOMEM, or -EINVAL with why set (c is then empty). */
int mcd_state_decode(const char *buf, size_t len, struct mcd_customer *c, char *why, size_t whylen);

/* Is this the binary form (else JSON or garbage)?  This function can't fail. */
bool mcd_state_is_binary(const char *buf, size_t len);

/* A customer's changelog record: "MCC" 0x02, the input partition as 4
 * big-endian bytes, then the encoded state.  (Earlier versions wrote
 * {"partition":N,"state":{...}}, which rebuilds still read.) */
#define MCD_RECORD_MAGIC "MCC"
#define MCD_RECORD_HEADER_LEN 8

/* The record of an encoded state; *out is a heap buffer of *out_len bytes.
 * 0 or -ENOMEM. */
int mcd_state_record(int32_t partition, const char *state, size_t len, char **out, size_t *out_len);

/* The partition of a binary record, and where its state starts; -1 when buf
 * is not one.  This function can't fail. */
int32_t mcd_state_record_partition(const char *buf, size_t len, const char **state, size_t *state_len);

#endif
