/*
 * annotate_cli.c — `cairn annotate`: the rule annotator over JSON Lines
 * (see annotate_cli.h). The loop, and what becomes of a bad line, is
 * jsonl.c's; this file turns one conversation into its markers.
 */
#include "annotate_cli.h"

#include <stdlib.h>

#include "jsonl.h"
#include "marker_block.h"
#include "markers.h"

/* What a run annotates with. */
struct annotate_run {
    const struct cairn_annotator *a;
    const struct cairn_taxonomy *tx;
};

/* The markers of one input line (see cairn_jsonl_line_cb). */
static void on_annotate_line(void *ctx, const cJSON *in, cJSON *out)
{
    const struct annotate_run *run = ctx;
    const cJSON *messages =
        cJSON_IsObject(in) ? cJSON_GetObjectItemCaseSensitive(in, "messages") : NULL;
    if (!cJSON_IsArray(messages)) {
        cJSON_AddStringToObject(out, "error", "expected an object with a \"messages\" array");
    } else {
        struct cairn_markers m;
        cairn_markers_init(&m, run->tx);
        cairn_annotator_run(run->a, messages, &m);
        cairn_markers_to_json(&m, cJSON_AddObjectToObject(out, "markers"));
    }
}

int cairn_annotate_stream(const struct cairn_annotator *a, const struct cairn_taxonomy *tx,
                          FILE *in, FILE *out)
{
    struct annotate_run run = {.a = a, .tx = tx};
    return cairn_jsonl_map(in, out, on_annotate_line, &run);
}
