/*
 * jsonl.h — the JSON Lines loop the offline commands share (`cairn
 * annotate`, `cairn validate`): one JSON value per input line in, one
 * JSON object per input line out, in order.
 *
 * These commands run over a day of traffic samples, so one bad line must
 * not end the run: a line that is too long or not strict JSON becomes an
 * {"error"} object on its own output line, and a line over the limit is
 * skipped to its end without being held in memory. What a good line turns
 * into is the caller's: a callback fills its output object.
 */
#ifndef CAIRN_JSONL_H
#define CAIRN_JSONL_H

#include <stdbool.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#define CAIRN_JSONL_MAX_LINE  (4u << 20)
#define CAIRN_JSONL_MAX_DEPTH 64

/**
 * Fill `out` for one input value: an object with members of the command's
 * own, or "error" (a string) when `in` cannot be used.
 * @param in   the line, parsed strictly; of any JSON type
 * @param out  an object that already holds a copy of the input's "id"
 *             when `in` is an object that has one
 */
typedef void (*cairn_jsonl_line_cb)(void *ctx, const cJSON *in, cJSON *out);

/**
 * Read `in` to its end and write one line to `out` per line that is not
 * blank (spaces and tabs only); "\r\n" ends a line as "\n" does. A line
 * longer than CAIRN_JSONL_MAX_LINE bytes, or one that is not strict JSON
 * (json_strict.h, nesting up to CAIRN_JSONL_MAX_DEPTH), is written as
 * {"error":"..."} without calling `on_line`.
 * @return 0 once `in` is read to the end, -1 on a read or write error.
 */
int cairn_jsonl_map(FILE *in, FILE *out, cairn_jsonl_line_cb on_line, void *ctx);

/* Reading lines one at a time, for a command that answers them out of
 * order and writes them back in order (cairn annotate --model). */
struct cairn_jsonl_reader {
    FILE *in;
    char *buf; /* owned */
    size_t cap;
};

/** The next non-blank line: *in its parsed value (NULL when the line is
 *  bad) and *out its result object, holding its "id", or an "error".
 *  @return false at the end of input. */
bool cairn_jsonl_next(struct cairn_jsonl_reader *r, cJSON **in, cJSON **out);

/** Write `obj` (taken) as one line. @return 0 or -1. */
int cairn_jsonl_write(FILE *out, cJSON *obj);

void cairn_jsonl_reader_free(struct cairn_jsonl_reader *r);

#endif
