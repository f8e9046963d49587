/*
 * annotate_cli.h — `cairn annotate`: run the rule annotator over JSON Lines
 * so that operators can test rule changes offline on their own traffic.
 */
#ifndef CAIRN_ANNOTATE_CLI_H
#define CAIRN_ANNOTATE_CLI_H

#include <stdio.h>

#include "annotator.h"
#include "taxonomy.h"

/**
 * Read JSON Lines from `in` (each an object with an OpenAI "messages"
 * array; "id", of any JSON type, is copied; other fields are ignored) and
 * write one line per non-empty input line, in order:
 *   {"id":...,"markers":{"<wire name>":value,...}}
 * (integer tags as JSON numbers, the others as strings; no "id" when the
 * input has none), or {"id":...,"error":"..."} for a line that is not
 * valid JSON, has no messages array or is longer than 4 MiB (the loop is
 * cairn_jsonl_map's, jsonl.h).
 * @return 0 once `in` is read to the end, -1 on a read or write error.
 */
int cairn_annotate_stream(const struct cairn_annotator *a, const struct cairn_taxonomy *tx,
                          FILE *in, FILE *out);

struct event_base;
struct cairn_snapshot;

/**
 * `cairn annotate --model`: the annotator model of the snapshot's default
 * tenant over JSON Lines from `in`, `concurrency` calls at a time on
 * `base`; one line out per input, in order: {"id", "markers", "outcome"}
 * (ok, timeout, error, unparsable, breaker_open) or {"id", "error"}.
 * @return 0, or -1 when reading or writing failed.
 */
int cairn_annotate_model_stream(const struct cairn_snapshot *snap, struct event_base *base,
                                size_t concurrency, FILE *in, FILE *out);

#endif
