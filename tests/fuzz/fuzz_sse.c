/*
 * fuzz_sse.c — Server-Sent Events as cairn reads them: the event splitter
 * (include/sse.h), the stream unwrapper that removes a model's leading
 * <MARKER_LIST> block from an SSE answer, and cairn_unwrap_json on a whole
 * completion (include/unwrap.h), with the taxonomy of rules/.
 *
 * Input: one byte (the stream's number of choices), eight cut seeds
 * (fuzz.h), then an upstream byte stream. Splitter: the events must be the
 * same, in the same order, and the bytes left pending the same, whether
 * the stream arrives whole or in pieces; each event's data lies inside it.
 * Unwrapper: what the client gets (feed, then finish) and the markers read
 * must not depend on where the pieces were cut. Then the bytes, taken as
 * a whole answer, go through cairn_unwrap_json twice: as the content of a
 * one-choice completion, and (when they are JSON) as the completion
 * itself.
 */
#include <string.h>

#include <event2/buffer.h>

#include "fuzz.h"
#include "marker_block.h"
#include "markers.h"
#include "sse.h"
#include "taxonomy.h"
#include "unwrap.h"

static struct cairn_taxonomy tx;
static struct cairn_marker_template tmpl = {
    .open = "<MARKER_LIST>", .close = "</MARKER_LIST>", .separator = "\n", .prefix = "\n\n"};
static struct cairn_marker_format fmt;

static void setup(void)
{
    static bool done;
    char err[512];
    if (done)
        return;
    if (cairn_taxonomy_load(&tx, "rules/taxonomy.json", err, sizeof(err)) < 0 ||
        cairn_marker_format_init(&fmt, &tx, &tmpl, err, sizeof(err)) < 0) {
        fprintf(stderr, "fuzz_sse: %s (run from the repository root)\n", err);
        exit(1);
    }
    done = true;
}

/* The events of a stream, as one buffer: "<len>:<raw event>" each. */
static bool on_event(void *ctx, const char *ev, size_t len, size_t rawlen)
{
    struct evbuffer *log = ctx;
    FUZZ_CHECK(len <= rawlen);
    const char *data = NULL;
    size_t dlen = 0;
    if (cairn_sse_event_data(ev, len, &data, &dlen) == 1) {
        FUZZ_CHECK(data >= ev && data + dlen <= ev + len);
        (void)cairn_sse_is_done(data, dlen);
    }
    evbuffer_add_printf(log, "%zu:", len);
    evbuffer_add(log, ev, rawlen);
    return true;
}

static bool same(struct evbuffer *a, struct evbuffer *b)
{
    size_t n = evbuffer_get_length(a);
    return n == evbuffer_get_length(b) &&
           (n == 0 || memcmp(evbuffer_pullup(a, -1), evbuffer_pullup(b, -1), n) == 0);
}

static void fuzz_split(const uint8_t *s, size_t n, struct fuzz_cuts *cuts)
{
    struct evbuffer *log[2] = {evbuffer_new(), evbuffer_new()};
    char *rest[2];
    size_t nrest[2];
    int rc[2] = {0, 0};
    for (int pass = 0; pass < 2; pass++) {
        struct cairn_sse_splitter sp = {0};
        for (size_t off = 0; off < n && rc[pass] == 0;) {
            size_t plen = pass == 0 ? n : fuzz_cuts_next(cuts, n - off);
            rc[pass] = cairn_sse_split(&sp, (const char *)s + off, plen, on_event, log[pass]);
            off += plen;
        }
        nrest[pass] = cairn_sse_take_pending(&sp, &rest[pass]);
        cairn_sse_splitter_free(&sp);
    }
    FUZZ_CHECK(rc[0] == rc[1]);
    if (rc[0] == 0) {
        FUZZ_CHECK(same(log[0], log[1]));
        FUZZ_CHECK(nrest[0] == nrest[1] &&
                   (nrest[0] == 0 || memcmp(rest[0], rest[1], nrest[0]) == 0));
        FUZZ_CHECK(evbuffer_get_length(log[0]) >= n - nrest[0]);
    }
    for (int i = 0; i < 2; i++) {
        free(rest[i]);
        evbuffer_free(log[i]);
    }
}

static void fuzz_unwrap_stream(const uint8_t *s, size_t n, size_t nchoices, struct fuzz_cuts *cuts)
{
    struct evbuffer *out[2] = {evbuffer_new(), evbuffer_new()};
    struct cairn_markers model[2];
    int rc[2] = {0, 0};
    for (int pass = 0; pass < 2; pass++) {
        cairn_markers_init(&model[pass], &tx);
        struct cairn_sse_unwrap *u = cairn_sse_unwrap_new(&fmt, nchoices, &model[pass]);
        for (size_t off = 0; off < n && rc[pass] == 0;) {
            size_t plen = pass == 0 ? n : fuzz_cuts_next(cuts, n - off);
            char *piece = malloc(plen); /* exactly sized: over-reads are caught */
            if (piece == NULL)
                abort();
            memcpy(piece, s + off, plen);
            rc[pass] = cairn_sse_unwrap_feed(u, piece, plen, out[pass]);
            free(piece);
            off += plen;
        }
        if (rc[pass] == 0) {
            cairn_sse_unwrap_finish(u, out[pass]);
            FUZZ_CHECK(cairn_sse_unwrap_done(u));
        }
        cairn_sse_unwrap_free(u);
    }
    FUZZ_CHECK(rc[0] == rc[1]);
    if (rc[0] == 0) {
        FUZZ_CHECK(same(out[0], out[1]));
        FUZZ_CHECK(memcmp(model[0].source, model[1].source, sizeof(model[0].source)) == 0);
        for (size_t i = 0; i < tx.ntags; i++)
            FUZZ_CHECK(strcmp(model[0].value[i], model[1].value[i]) == 0);
    }
    evbuffer_free(out[0]);
    evbuffer_free(out[1]);
}

static void fuzz_unwrap_json(const uint8_t *s, size_t n)
{
    struct cairn_markers model;
    cairn_markers_init(&model, &tx);

    /* The bytes as a completion's content (cJSON strings are C strings). */
    char *text = malloc(n + 1);
    if (text == NULL)
        abort();
    memcpy(text, s, n);
    text[n] = '\0';
    cJSON *c = cJSON_CreateObject();
    cJSON *choice = cJSON_CreateObject();
    cJSON_AddStringToObject(cJSON_AddObjectToObject(choice, "message"), "content", text);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(c, "choices"), choice);
    size_t before = strlen(text);
    size_t found = cairn_unwrap_json(&fmt, c, &model);
    FUZZ_CHECK(found <= 1);
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(choice, "message"), "content");
    FUZZ_CHECK(cJSON_IsString(content));
    size_t after = strlen(content->valuestring);
    FUZZ_CHECK(found ? after < before : after == before);
    /* What is left is the end of the original text. */
    FUZZ_CHECK(memcmp(content->valuestring, text + (before - after), after) == 0);
    cJSON_Delete(c);

    /* The bytes as a completion. */
    cJSON *j = cJSON_ParseWithLength(text, n);
    if (j != NULL) {
        cairn_markers_init(&model, &tx);
        (void)cairn_unwrap_json(&fmt, j, &model);
        cJSON_Delete(j);
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    struct fuzz_in in = {data, size};
    size_t nchoices = 1 + fuzz_byte(&in) % 4;
    struct fuzz_cuts cuts;
    fuzz_cuts_init(&cuts, &in);
    fuzz_split(in.p, in.n, &cuts);
    fuzz_unwrap_stream(in.p, in.n, nchoices, &cuts);
    fuzz_unwrap_json(in.p, in.n);
    return 0;
}
