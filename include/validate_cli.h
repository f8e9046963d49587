/*
 * validate_cli.h — `cairn validate`: check answers against their markers
 * over JSON Lines, so that operators can measure the validators offline on
 * their own traffic (and tests/validate/accuracy.py on a labelled set).
 */
#ifndef CAIRN_VALIDATE_CLI_H
#define CAIRN_VALIDATE_CLI_H

#include <stddef.h>
#include <stdio.h>

#include "config.h"
#include "marker_block.h"
#include "taxonomy.h"
#include "validate.h"

/* What a run checks with. */
struct cairn_validate_cli {
    const struct cairn_validator *v;
    const struct cairn_taxonomy *tx;
    const struct cairn_marker_format *block; /* the model's leading block to strip, or NULL */
    struct cairn_validate_opts opts;
};

/**
 * Read JSON Lines from `in`, each {"id": any, "markers": {tag: value},
 * "response": "..."} (tags by key or wire name, values checked against the
 * taxonomy as pinned markers are; a leading marker block in the response
 * is removed first), and write one line per non-empty input line, in
 * order: {"id":...,"violations":[{"marker","expected","observed"},...]},
 * or {"id":...,"error":"..."} for a line that is not valid JSON, lacks a
 * field, names an unknown tag or value, or is longer than 4 MiB ("id" is
 * left out when the input has none; the loop is cairn_jsonl_map's,
 * jsonl.h).
 * @return 0 once `in` is read to the end, -1 on a read or write error.
 */
int cairn_validate_stream(const struct cairn_validate_cli *c, FILE *in, FILE *out);

/**
 * `cairn validate` on a loaded configuration: its rules directory, its
 * default policy's counting and tolerance (every tag with a validator is
 * checked), its JSON depth limit and its default upstream's marker block.
 * @return 0, 1 on a read or write error, or -1 with `err` when the rules
 *         cannot be loaded.
 */
int cairn_validate_cli_run(const struct cairn_config *cfg, FILE *in, FILE *out, char *err,
                           size_t errlen);

#endif
