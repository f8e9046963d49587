/*
 * unwrap.c — strip the model's own marker block from answers (see
 * unwrap.h).
 *
 * Streams are cut into events (WHATWG SSE: an empty line ends an event;
 * lines end in CRLF, LF or CR). An event is rewritten only while some
 * choice is still at its start; the rest are relayed byte for byte, and
 * once every choice has passed its start the splitter steps aside.
 *
 * Per choice:  START ─(could still be "<MARKER_LIST>")─▶ hold
 *              START ─(cannot)─▶ PASS, releasing what was held
 *              START ─(open seen)─▶ BLOCK ─(close seen)─▶ AFTER ─(text)─▶ PASS
 * AFTER drops the white space that separated the block from the answer.
 */
#include "unwrap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "alloc.h"
#include "json_strict.h"
#include "sse.h"

#define MAX_CHOICES 128
#define MAX_HELD    8192 /* a block longer than this is not a block */

enum choice_state { CH_START, CH_BLOCK, CH_AFTER, CH_PASS };

struct choice {
    enum choice_state state;
    char *held; /* owned: content not yet released */
    size_t nheld;
    size_t space; /* leading white space of `held` already seen */
};

struct cairn_sse_unwrap {
    const struct cairn_marker_format *f;
    struct cairn_markers *model;
    size_t nchoices;
    struct choice choices[MAX_CHOICES];
    struct cairn_sse_splitter split;
    struct evbuffer *out; /* where the event being handled goes */
    cJSON *shell;         /* owned: id, object, created, model of the last
                             chunk, for chunks cairn has to write itself */
    bool done;
};

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static size_t skip_space(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && is_space(s[i]))
        i++;
    return i;
}

/* --- whole answers --------------------------------------------------------- */

size_t cairn_unwrap_json(const struct cairn_marker_format *f, cJSON *completion,
                         struct cairn_markers *model)
{
    size_t found = 0, dropped = 0;
    cJSON *choice;
    cJSON_ArrayForEach(choice, cJSON_GetObjectItemCaseSensitive(completion, "choices"))
    {
        cJSON *msg = cJSON_GetObjectItemCaseSensitive(choice, "message");
        cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
        if (!cJSON_IsString(content))
            continue;
        size_t end;
        const char *text = content->valuestring;
        if (cairn_marker_block_parse(f, text, strlen(text), &end, model, CAIRN_SRC_MODEL,
                                     &dropped) == 1) {
            char *rest = cairn_strdup(text + end);
            cJSON_SetValuestring(content, rest);
            free(rest);
            found++;
        }
    }
    return found;
}

/* --- streams ---------------------------------------------------------------- */

struct cairn_sse_unwrap *cairn_sse_unwrap_new(const struct cairn_marker_format *f, size_t nchoices,
                                              struct cairn_markers *model)
{
    struct cairn_sse_unwrap *u = cairn_calloc(1, sizeof(*u));
    u->f = f;
    u->model = model;
    u->nchoices = nchoices == 0 ? 1 : nchoices > MAX_CHOICES ? MAX_CHOICES : nchoices;
    return u;
}

void cairn_sse_unwrap_free(struct cairn_sse_unwrap *u)
{
    if (u == NULL)
        return;
    for (size_t i = 0; i < MAX_CHOICES; i++)
        free(u->choices[i].held);
    cairn_sse_splitter_free(&u->split);
    cJSON_Delete(u->shell);
    free(u);
}

bool cairn_sse_unwrap_done(const struct cairn_sse_unwrap *u)
{
    return u->done;
}

static void hold(struct choice *c, const char *s, size_t n)
{
    c->held = cairn_realloc(c->held, c->nheld + n + 1);
    memcpy(c->held + c->nheld, s, n);
    c->nheld += n;
    c->held[c->nheld] = '\0';
}

struct text_out {
    char *p;
    size_t n;
};

static void out_add(struct text_out *o, const char *s, size_t n)
{
    o->p = cairn_realloc(o->p, o->n + n + 1);
    memcpy(o->p + o->n, s, n);
    o->n += n;
    o->p[o->n] = '\0';
}

/* Release what is held from offset `from` into out, and pass from now on. */
static void release(struct choice *c, size_t from, struct text_out *out)
{
    if (from < c->nheld)
        out_add(out, c->held + from, c->nheld - from);
    free(c->held);
    c->held = NULL;
    c->nheld = c->space = 0;
    c->state = CH_PASS;
}

/*
 * Run one content delta of a choice through its state machine; what the
 * client may see now is appended to `out`. @return true when this delta
 * completed a block (the event reports the model's markers).
 */
static bool feed_choice(struct cairn_sse_unwrap *u, struct choice *c, const char *s, size_t n,
                        struct text_out *out)
{
    const char *open = u->f->t->open;
    size_t olen = strlen(open);
    if (c->state == CH_PASS) {
        out_add(out, s, n);
        return false;
    }
    if (c->state == CH_AFTER) {
        size_t k = skip_space(s, n);
        if (k < n) {
            out_add(out, s + k, n - k);
            c->state = CH_PASS;
        }
        return false;
    }
    hold(c, s, n);
    if (c->nheld > MAX_HELD) {
        release(c, 0, out); /* too long to be (the start of) a block */
        return false;
    }
    if (c->state == CH_START) {
        /* Only the new bytes are scanned for white space. */
        c->space += skip_space(c->held + c->space, c->nheld - c->space);
        size_t k = c->space, have = c->nheld - k;
        size_t cmp = have < olen ? have : olen;
        if (strncasecmp(c->held + k, open, cmp) != 0) {
            release(c, 0, out); /* not a block: everything held is answer */
            return false;
        }
        if (have < olen)
            return false; /* could still be one */
        c->state = CH_BLOCK;
    }
    size_t end, dropped = 0;
    int rc = cairn_marker_block_parse(u->f, c->held, c->nheld, &end, u->model, CAIRN_SRC_MODEL,
                                      &dropped);
    if (rc == 1) {
        if (end < c->nheld) {
            release(c, end, out);
        } else {
            free(c->held);
            c->held = NULL;
            c->nheld = 0;
            c->state = CH_AFTER;
        }
        return true;
    }
    return false;
}

static bool all_passed(const struct cairn_sse_unwrap *u)
{
    for (size_t i = 0; i < u->nchoices; i++)
        if (u->choices[i].state != CH_PASS)
            return false;
    return true;
}

/* Rewrite one chunk object; @return true if it changed. */
static bool rewrite_chunk(struct cairn_sse_unwrap *u, cJSON *chunk)
{
    bool changed = false, reported = false;
    cJSON *choice;
    cJSON_ArrayForEach(choice, cJSON_GetObjectItemCaseSensitive(chunk, "choices"))
    {
        cJSON *index = cJSON_GetObjectItemCaseSensitive(choice, "index");
        double d = cJSON_IsNumber(index) ? index->valuedouble : index == NULL ? 0 : -1;
        if (d < 0 || d >= MAX_CHOICES)
            continue; /* not a choice this request asked for */
        struct choice *c = &u->choices[(size_t)d];
        if (c->state == CH_PASS)
            continue;
        cJSON *delta = cJSON_GetObjectItemCaseSensitive(choice, "delta");
        cJSON *content = cJSON_GetObjectItemCaseSensitive(delta, "content");
        cJSON *finish = cJSON_GetObjectItemCaseSensitive(choice, "finish_reason");
        struct text_out out = {0};
        out_add(&out, "", 0);
        if (cJSON_IsString(content))
            reported |= feed_choice(u, c, content->valuestring, strlen(content->valuestring), &out);
        if (finish != NULL && !cJSON_IsNull(finish) && c->state != CH_PASS) {
            /* The answer ends here: whatever is held is answer after all
             * (an unfinished block is shown as the model wrote it). */
            release(c, 0, &out);
        }
        /* Rewrite only what differs: content that passes at once keeps the
         * upstream's bytes. */
        if (cJSON_IsString(content) && strcmp(content->valuestring, out.p) != 0) {
            cJSON_SetValuestring(content, out.p);
            changed = true;
        } else if (!cJSON_IsString(content) && out.n > 0) {
            if (!cJSON_IsObject(delta)) {
                cJSON_DeleteItemFromObjectCaseSensitive(choice, "delta");
                delta = cJSON_AddObjectToObject(choice, "delta");
            }
            cJSON_DeleteItemFromObjectCaseSensitive(delta, "content"); /* a null one */
            cJSON_AddStringToObject(delta, "content", out.p);
            changed = true;
        }
        free(out.p);
    }
    if (reported) {
        cJSON_DeleteItemFromObjectCaseSensitive(chunk, "cairn");
        cJSON *ext = cJSON_AddObjectToObject(chunk, "cairn");
        cairn_markers_to_json(u->model, cJSON_AddObjectToObject(ext, "model_markers"));
        changed = true;
    }
    return changed;
}

/* Remember the chunk's identity, for the chunks cairn may have to write. */
static void keep_shell(struct cairn_sse_unwrap *u, const cJSON *chunk)
{
    static const char *const fields[] = {"id", "object", "created", "model"};
    cJSON_Delete(u->shell);
    u->shell = cJSON_CreateObject();
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(chunk, fields[i]);
        if (v != NULL)
            cJSON_AddItemToObject(u->shell, fields[i], cJSON_Duplicate(v, true));
    }
}

/* Give up holding: every choice's held text goes out in a chunk of its
 * own, and the stream is relayed as it is from now on. Used when an event
 * cannot be read as a chunk, and at the end of the stream. */
static void release_all(struct cairn_sse_unwrap *u, struct evbuffer *out)
{
    for (size_t i = 0; i < MAX_CHOICES; i++) {
        struct choice *c = &u->choices[i];
        struct text_out text = {0};
        out_add(&text, "", 0);
        release(c, 0, &text);
        if (text.n > 0) {
            cJSON *chunk = u->shell ? cJSON_Duplicate(u->shell, true) : cJSON_CreateObject();
            cJSON *choice = cJSON_CreateObject();
            cJSON_AddNumberToObject(choice, "index", (double)i);
            cJSON_AddStringToObject(cJSON_AddObjectToObject(choice, "delta"), "content", text.p);
            cJSON_AddNullToObject(choice, "finish_reason");
            cJSON_AddItemToArray(cJSON_AddArrayToObject(chunk, "choices"), choice);
            size_t n;
            char *json = cairn_json_print(chunk, &n);
            evbuffer_add_printf(out, "data: %s\n\n", json);
            free(json);
            cJSON_Delete(chunk);
        }
        free(text.p);
    }
    u->done = true;
}

/* Handle one complete event ev[0..len) (ev[0..rawlen) with the empty line
 * that ends it): relay it as it is, or rewritten. */
static void handle_event(struct cairn_sse_unwrap *u, const char *ev, size_t len, size_t rawlen,
                         struct evbuffer *out)
{
    /* One "data:" line holding a JSON object is a chunk we may rewrite. */
    const char *data = NULL;
    size_t dlen = 0, ndata = cairn_sse_event_data(ev, len, &data, &dlen);
    if (ndata == 0) { /* a comment, or only id:/event:/retry: lines */
        evbuffer_add(out, ev, rawlen);
        return;
    }
    bool json = ndata == 1 && dlen > 0 && data[0] == '{';
    if (ndata == 1 && !json && !cairn_sse_is_done(data, dlen)) {
        evbuffer_add(out, ev, rawlen); /* some other event: not ours to read */
        return;
    }
    char why[64];
    cJSON *chunk = json ? cairn_json_parse_strict(data, dlen, 64, why, sizeof(why)) : NULL;
    if (chunk == NULL) {
        /* The end ([DONE]), or a chunk we cannot read (broken JSON, split
         * over several data lines): what is held goes out first, in order,
         * and the rest of the stream is relayed as it is. */
        release_all(u, out);
        evbuffer_add(out, ev, rawlen);
        return;
    }
    keep_shell(u, chunk);
    if (!rewrite_chunk(u, chunk)) {
        evbuffer_add(out, ev, rawlen);
        cJSON_Delete(chunk);
        return;
    }
    /* The event's other lines (id:, event:, retry:) stay as they were. */
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && ev[e] != '\n' && ev[e] != '\r')
            e++;
        if (!(e - i >= 5 && memcmp(ev + i, "data:", 5) == 0)) {
            evbuffer_add(out, ev + i, e - i);
            evbuffer_add(out, "\n", 1);
        }
        i = e + (e < len && ev[e] == '\r' && e + 1 < len && ev[e + 1] == '\n' ? 2 : 1);
    }
    size_t n;
    char *text = cairn_json_print(chunk, &n);
    evbuffer_add_printf(out, "data: %s\n\n", text);
    free(text);
    cJSON_Delete(chunk);
}

static bool on_event(void *ctx, const char *ev, size_t len, size_t rawlen)
{
    struct cairn_sse_unwrap *u = ctx;
    handle_event(u, ev, len, rawlen, u->out);
    if (u->done || all_passed(u))
        u->done = true;
    return !u->done; /* once done, the rest goes out untouched */
}

/* Release bytes the splitter still holds, as they are. */
static void flush_pending(struct cairn_sse_unwrap *u, struct evbuffer *out)
{
    char *rest;
    size_t n = cairn_sse_take_pending(&u->split, &rest);
    if (n > 0)
        evbuffer_add(out, rest, n);
    free(rest);
}

int cairn_sse_unwrap_feed(struct cairn_sse_unwrap *u, const char *data, size_t len,
                          struct evbuffer *out)
{
    if (u->done) {
        evbuffer_add(out, data, len);
        return 0;
    }
    u->out = out;
    int rc = cairn_sse_split(&u->split, data, len, on_event, u);
    if (u->done)
        flush_pending(u, out);
    return rc;
}

void cairn_sse_unwrap_finish(struct cairn_sse_unwrap *u, struct evbuffer *out)
{
    if (u->done)
        return;
    release_all(u, out);
    flush_pending(u, out);
}
