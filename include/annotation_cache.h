/*
 * annotation_cache.h — a bounded LRU cache of annotator answers, keyed by a
 * digest of the conversation and of the annotator that answered.
 *
 * Calling the annotator model costs a round trip per request; the same
 * conversation (a retried request, a client that resends its history)
 * gets the same markers, so they are kept here. One cache per worker
 * process, used from its event loop only: no locks. Time is passed in by
 * the caller (monotonic microseconds); the cache never reads a clock.
 *
 * Values are opaque byte strings: the caller stores a compact serialisation
 * of its markers ("task=CodeFix\ndomain=Code"). The empty string is a value
 * like any other ("nothing applies"), distinct from a miss.
 */
#ifndef CAIRN_ANNOTATION_CACHE_H
#define CAIRN_ANNOTATION_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define CAIRN_ANNOTATION_KEY_LEN 32 /* a SHA-256 digest */

/**
 * What one entry is charged besides its key and its value: the entry's own
 * fields (three links, expiry, length: 40 bytes on LP64), the value's
 * terminating NUL, two bucket pointers of the hash table and 16 bytes for
 * the allocator's header and rounding. The table doubles when the entries
 * would outnumber its buckets and never shrinks, so at the peak number of
 * entries it holds fewer than two buckets per entry. A fixed, documented
 * figure rather than a measured one, so that a configured byte cap means
 * the same thing everywhere; a static assertion in annotation_cache.c
 * keeps it at or above the sum of those parts.
 */
#define CAIRN_ANNOTATION_CACHE_ENTRY_OVERHEAD 80

/**
 * The cost of one entry against the byte cap:
 * value length + CAIRN_ANNOTATION_KEY_LEN + CAIRN_ANNOTATION_CACHE_ENTRY_OVERHEAD.
 */
#define CAIRN_ANNOTATION_CACHE_ENTRY_BYTES(len)                                                    \
    ((size_t)(len) + CAIRN_ANNOTATION_KEY_LEN + CAIRN_ANNOTATION_CACHE_ENTRY_OVERHEAD)

struct cairn_annotation_cache;

struct cairn_annotation_cache_stats {
    uint64_t hits;        /* gets that returned a value */
    uint64_t misses;      /* gets that did not, expired entries included */
    uint64_t insertions;  /* puts that stored a value, replacements included */
    uint64_t evictions;   /* live entries dropped to make room for a put */
    uint64_t expirations; /* entries dropped because their TTL had passed */
    size_t entries;       /* entries held now (expired ones not yet found included) */
    size_t bytes;         /* their cost, CAIRN_ANNOTATION_CACHE_ENTRY_BYTES each */
};

/**
 * A new, empty cache.
 * @param max_entries  most entries held at once; 0 makes a cache that
 *                     stores nothing (every get is a miss)
 * @param max_bytes    most bytes held at once, counted per entry as
 *                     CAIRN_ANNOTATION_CACHE_ENTRY_BYTES; 0 stores nothing
 * @param ttl_us       how long an entry is served after its put, in
 *                     microseconds: an entry put at time t is a hit while
 *                     now < t + ttl_us and a miss from t + ttl_us on; a hit
 *                     does not extend it. 0 = entries never expire.
 */
struct cairn_annotation_cache *cairn_annotation_cache_new(size_t max_entries, size_t max_bytes,
                                                          uint64_t ttl_us);
void cairn_annotation_cache_free(struct cairn_annotation_cache *c);

/**
 * The cache key of a conversation for one annotator: SHA-256 over a framed,
 * normalised form of `messages`, so that conversations differing only in
 * white space share a key and any other difference gives another key.
 *
 * The hashed byte string is, in order:
 *   - the 16 bytes "cairn-annot-key1" (a version tag: a change to this
 *     format changes every key rather than colliding with old ones);
 *   - the 32 bytes of `annotator_id` (the caller's SHA-256 of the
 *     annotator's endpoint, model and prompt);
 *   - for each element of `messages`, in order:
 *       'M', then FIELD(role) — the "role" string, or empty when the
 *       element has none that is a string;
 *       then for its "content":
 *         a string:              'T', FIELD(normalised text);
 *         an array, per part, in order:
 *           a part whose "type" is "text" and whose "text" is a string:
 *                                'T', FIELD(normalised text);
 *           any other part (image_url, input_audio, …):
 *                                'P', FIELD(its "type" string, or empty);
 *         anything else (null, missing, another JSON type): nothing.
 *   where FIELD(s) is the length of s as 8 bytes big-endian, then s.
 * Every item is a tag and a length-prefixed field, so the string parses
 * back one way only: "ab"+"c" and "a"+"bc", or text moved from one message
 * to the next, give different strings. A string content and an array of
 * one text part with the same text give the same string on purpose (the
 * same conversation, sent two ways). Other members of a message (name,
 * tool_calls, tool_call_id) and non-text parts' payloads are not hashed.
 *
 * Normalised text: leading and trailing white space removed and every
 * inner run of white space replaced by one space (0x20), where white space
 * is the ASCII bytes space, \t, \n, \v, \f and \r. Nothing else changes:
 * no case folding, no Unicode normalisation, and other Unicode spaces
 * (U+00A0, U+3000, …) are ordinary characters. The text is read as
 * cJSON's NUL-terminated string. `messages` that is not an array (NULL
 * included) hashes as a conversation without messages.
 */
void cairn_annotation_cache_key(const cJSON *messages,
                                const unsigned char annotator_id[CAIRN_ANNOTATION_KEY_LEN],
                                unsigned char out[CAIRN_ANNOTATION_KEY_LEN]);

/**
 * Look `key` up at time `now_us`. A hit moves the entry to the
 * most-recently-used end; an entry whose TTL has passed is removed and
 * counts as a miss.
 * @param value  on a hit, the stored bytes, followed by a NUL that is not
 *               part of them; valid until the next call on this cache
 * @param len    on a hit, their length
 * @return true on a hit (value and len set), false on a miss (untouched)
 */
bool cairn_annotation_cache_get(struct cairn_annotation_cache *c,
                                const unsigned char key[CAIRN_ANNOTATION_KEY_LEN], uint64_t now_us,
                                const char **value, size_t *len);

/**
 * Store a copy of value[0..len) under `key` at time `now_us` (its TTL runs
 * from now), replacing any entry for the key, then drop entries from the
 * least-recently-used end until both caps hold with the new one in. An
 * entry that alone would exceed max_bytes (or any entry when max_entries
 * is 0) is not stored, and the key's old entry, if any, is removed all
 * the same: it is what the caller has just said is out of date.
 */
void cairn_annotation_cache_put(struct cairn_annotation_cache *c,
                                const unsigned char key[CAIRN_ANNOTATION_KEY_LEN],
                                const char *value, size_t len, uint64_t now_us);

/** Counters since cairn_annotation_cache_new, and the current size. */
void cairn_annotation_cache_stats(const struct cairn_annotation_cache *c,
                                  struct cairn_annotation_cache_stats *out);

#endif
