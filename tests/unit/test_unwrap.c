/*
 * test_unwrap.c — unit tests for include/unwrap.h: the model's leading
 * <MARKER_LIST> block is removed from JSON answers and from SSE streams.
 *
 * cairn_unwrap_json: block removed, the content after it kept exactly,
 * the model's markers read, answers without a block unchanged, n=2.
 *
 * The SSE unwrapper is fed the upstream byte stream at every possible
 * split point (bytes [0,k) then [k,end), for every k) and one byte at a
 * time, for several event layouts of the same answer (one character per
 * event, a few multi-character events, the whole block in one event) and
 * for LF, CRLF and CR line endings. What the client gets is read back as
 * SSE: the concatenated delta contents must be exactly the answer without
 * the block, the markers must be read and reported once (the "cairn":
 * {"model_markers"} member of the event that completes the block), and the
 * rest (ids, finish_reason, usage, comments, [DONE]) must come through.
 * A stream that does not start with a block passes byte for byte and the
 * unwrapper steps aside after the first content; "<b>bold</b>" is not a
 * block; an unterminated block is released at finish_reason; an event
 * over 1 MiB without its terminating empty line is an error.
 */
#include "unit.h"

#include <event2/buffer.h>

#include <cjson/cJSON.h>

#include "marker_block.h"
#include "markers.h"
#include "taxonomy.h"
#include "unwrap.h"

#define TAXONOMY "rules/taxonomy.json"

struct fixture {
    struct cairn_taxonomy tx;
    struct cairn_marker_template t;
    struct cairn_marker_format f;
};

static void fixture_open(struct fixture *fx)
{
    char err[512] = "";
    memset(fx, 0, sizeof *fx);
    if (cairn_taxonomy_load(&fx->tx, TAXONOMY, err, sizeof err) != 0)
        fail_msg("%s: %s", TAXONOMY, err);
    fx->t.open = "<MARKER_LIST>";
    fx->t.close = "</MARKER_LIST>";
    fx->t.separator = "\n";
    fx->t.prefix = "\n\n";
    if (cairn_marker_format_init(&fx->f, &fx->tx, &fx->t, err, sizeof err) != 0)
        fail_msg("format: %s", err);
}

static void fixture_close(struct fixture *fx)
{
    cairn_taxonomy_free(&fx->tx);
}

/* --- whole answers ------------------------------------------------------------- */

static cJSON *completion(const char *const *contents, size_t n)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "id", "chatcmpl-1");
    cJSON_AddStringToObject(c, "object", "chat.completion");
    cJSON_AddNumberToObject(c, "created", 1700000000);
    cJSON_AddStringToObject(c, "model", "m");
    cJSON *choices = cJSON_AddArrayToObject(c, "choices");
    for (size_t i = 0; i < n; i++) {
        cJSON *ch = cJSON_CreateObject();
        cJSON_AddNumberToObject(ch, "index", (double)i);
        cJSON *msg = cJSON_AddObjectToObject(ch, "message");
        cJSON_AddStringToObject(msg, "role", "assistant");
        if (contents[i] != NULL)
            cJSON_AddStringToObject(msg, "content", contents[i]);
        else
            cJSON_AddNullToObject(msg, "content");
        cJSON_AddStringToObject(ch, "finish_reason", "stop");
        cJSON_AddItemToArray(choices, ch);
    }
    cJSON *usage = cJSON_AddObjectToObject(c, "usage");
    cJSON_AddNumberToObject(usage, "total_tokens", 42);
    return c;
}

static const char *content_of(const cJSON *c, int i)
{
    const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(c, "choices"), i);
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(ch, "message"), "content");
    return cJSON_IsString(content) ? content->valuestring : NULL;
}

struct json_row {
    const char *name;
    const char *in[2];
    size_t n;
    size_t found;
    const char *out[2];
    const char *markers; /* header form of the model markers */
};

#define BLOCK "<MARKER_LIST>\n<task>CodeFix</task>\n<lang>English</lang>\n</MARKER_LIST>"

static const struct json_row json_rows[] = {
    {"block then answer", {BLOCK "\n\nHello  world\n\n```go\nx := 1\n```\n"}, 1, 1,
     {"Hello  world\n\n```go\nx := 1\n```\n"}, "task=CodeFix; lang=English"},
    {"leading white space", {"\n  " BLOCK "Hi"}, 1, 1, {"Hi"}, "task=CodeFix; lang=English"},
    {"block only", {BLOCK "\n"}, 1, 1, {""}, "task=CodeFix; lang=English"},
    {"answer keeps its own markup", {BLOCK "\n<b>bold</b> and </MARKER_LIST> later"}, 1, 1,
     {"<b>bold</b> and </MARKER_LIST> later"}, "task=CodeFix; lang=English"},
    {"unknown tags ignored",
     {"<MARKER_LIST>\n<mood>happy</mood>\n<task>Nope</task>\n<domain>Code</domain>\n"
      "</MARKER_LIST>\nok"},
     1, 1, {"ok"}, "domain=Code"},
    {"no block", {"Hello <MARKER_LIST>\n<task>CodeFix</task>\n</MARKER_LIST>"}, 1, 0,
     {"Hello <MARKER_LIST>\n<task>CodeFix</task>\n</MARKER_LIST>"}, ""},
    {"unterminated block", {"<MARKER_LIST>\n<task>CodeFix</task>\nHello"}, 1, 0,
     {"<MARKER_LIST>\n<task>CodeFix</task>\nHello"}, ""},
    {"other tag first", {"<b>bold</b> text"}, 1, 0, {"<b>bold</b> text"}, ""},
    {"empty content", {""}, 1, 0, {""}, ""},
    {"null content", {NULL}, 1, 0, {NULL}, ""},
    {"n=2, both", {BLOCK "\n\nfirst", "<MARKER_LIST>\n<domain>Math</domain>\n</MARKER_LIST>second"},
     2, 2, {"first", "second"}, "task=CodeFix; domain=Math; lang=English"},
    {"n=2, second only", {"plain", "<MARKER_LIST><task>Rewrite</task></MARKER_LIST> x"}, 2, 1,
     {"plain", "x"}, "task=Rewrite"},
};

static void test_unwrap_json(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_open(&fx);
    rows_begin();
    for (size_t i = 0; i < NELEM(json_rows); i++) {
        const struct json_row *r = &json_rows[i];
        cJSON *c = completion(r->in, r->n);
        cJSON *before = cJSON_Duplicate(c, true);
        struct cairn_markers model;
        cairn_markers_init(&model, &fx.tx);
        size_t found = cairn_unwrap_json(&fx.f, c, &model);
        check(found == r->found, r->name, "found %zu, want %zu", found, r->found);
        for (size_t k = 0; k < r->n; k++) {
            const char *got = content_of(c, (int)k);
            check((got == NULL && r->out[k] == NULL) ||
                      (got != NULL && r->out[k] != NULL && strcmp(got, r->out[k]) == 0),
                  r->name, "choice %zu: \"%s\", want \"%s\"", k, got ? got : "(null)",
                  r->out[k] ? r->out[k] : "(null)");
        }
        char hdr[256];
        cairn_markers_format_header(&model, hdr, sizeof hdr);
        check(strcmp(hdr, r->markers) == 0, r->name, "model markers \"%s\", want \"%s\"", hdr,
              r->markers);
        /* Everything but the contents is unchanged. */
        for (size_t k = 0; k < r->n; k++) {
            cJSON *a = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(c, "choices"), (int)k),
                "message");
            cJSON *b = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(before, "choices"), (int)k),
                "message");
            cJSON_DeleteItemFromObjectCaseSensitive(a, "content");
            cJSON_DeleteItemFromObjectCaseSensitive(b, "content");
        }
        check(cJSON_Compare(c, before, true), r->name, "fields other than content changed");
        cJSON_Delete(before);
        cJSON_Delete(c);
    }
    /* Not a completion at all: nothing happens. */
    cJSON *odd = cJSON_Parse("{\"choices\":\"x\",\"error\":{}}");
    struct cairn_markers model;
    cairn_markers_init(&model, &fx.tx);
    check(cairn_unwrap_json(&fx.f, odd, &model) == 0, "odd", "found a block");
    cJSON_Delete(odd);
    fixture_close(&fx);
    rows_end();
}

/* --- streams: building and reading ------------------------------------------------ */

#define STREAM_CONTENT "<MARKER_LIST>\n<task>CodeFix</task>\n</MARKER_LIST>\n\nHello world"
#define STREAM_ANSWER "Hello world"

/* One chunk event: {"id",["object","created","model","system_fingerprint"],
 * "choices":[{index,delta{[role],[content]},finish_reason}] [,usage]};
 * `eol` ends lines. */
static void add_chunk(struct sbuf *b, const char *eol, int index, const char *role,
                      const char *content, const char *finish, bool usage)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "id", "chatcmpl-s1");
    if (role != NULL || finish != NULL) { /* the others kept short: many splits */
        cJSON_AddStringToObject(c, "object", "chat.completion.chunk");
        cJSON_AddNumberToObject(c, "created", 1700000000);
        cJSON_AddStringToObject(c, "model", "m");
        cJSON_AddStringToObject(c, "system_fingerprint", "fp_1");
    }
    cJSON *choices = cJSON_AddArrayToObject(c, "choices");
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddNumberToObject(ch, "index", index);
    cJSON *delta = cJSON_AddObjectToObject(ch, "delta");
    if (role != NULL)
        cJSON_AddStringToObject(delta, "role", role);
    if (content != NULL)
        cJSON_AddStringToObject(delta, "content", content);
    if (finish != NULL)
        cJSON_AddStringToObject(ch, "finish_reason", finish);
    else
        cJSON_AddNullToObject(ch, "finish_reason");
    cJSON_AddItemToArray(choices, ch);
    if (usage) {
        cJSON *u = cJSON_AddObjectToObject(c, "usage");
        cJSON_AddNumberToObject(u, "completion_tokens", 7);
    }
    char *text = cJSON_PrintUnformatted(c);
    sb_puts(b, "data: ");
    sb_puts(b, text);
    sb_puts(b, eol);
    sb_puts(b, eol);
    free(text);
    cJSON_Delete(c);
}

/* A whole upstream stream for one choice whose content arrives in
 * `pieces` (NULL-terminated). */
static char *build_stream(const char *const *pieces, const char *eol)
{
    struct sbuf b = {0};
    sb_puts(&b, "");
    add_chunk(&b, eol, 0, "assistant", "", NULL, false);
    for (size_t i = 0; pieces[i] != NULL; i++)
        add_chunk(&b, eol, 0, NULL, pieces[i], NULL, false);
    add_chunk(&b, eol, 0, NULL, NULL, "stop", true);
    sb_puts(&b, ": keep-alive");
    sb_puts(&b, eol);
    sb_puts(&b, eol);
    sb_puts(&b, "data: [DONE]");
    sb_puts(&b, eol);
    sb_puts(&b, eol);
    return b.p;
}

/* `content` one character per piece (a UTF-8 sequence stays whole: a
 * JSON string cannot hold half a character). */
static const char **per_char(const char *content)
{
    size_t n = strlen(content), k = 0;
    const char **pieces = calloc(n + 1, sizeof *pieces);
    assert_non_null(pieces);
    for (size_t i = 0; i < n;) {
        size_t l = 1;
        while (i + l < n && ((unsigned char)content[i + l] & 0xC0) == 0x80)
            l++;
        char *one = malloc(l + 1);
        assert_non_null(one);
        memcpy(one, content + i, l);
        one[l] = '\0';
        pieces[k++] = one;
        i += l;
    }
    return pieces;
}

static void free_pieces(const char **pieces)
{
    for (size_t i = 0; pieces[i] != NULL; i++)
        free((char *)pieces[i]);
    free(pieces);
}

/* What the client read, as SSE. */
struct seen {
    char *content[4];     /* concatenated delta contents per choice index */
    size_t chunks;        /* JSON chunk events */
    size_t reports;       /* events with "cairn": {"model_markers"} */
    char report_task[32]; /* model_markers.task of the (last) report */
    size_t bad_id;        /* chunks whose id is not chatcmpl-s1 */
    size_t finishes;      /* finish_reason "stop" seen */
    size_t usage;         /* chunks with usage.completion_tokens 7 */
    size_t done;          /* data: [DONE] */
    size_t comments;      /* ": keep-alive" */
    size_t unparsed;      /* data that is neither [DONE] nor JSON */
    bool tail;            /* bytes after the last complete event */
};

static void seen_free(struct seen *s)
{
    for (size_t i = 0; i < NELEM(s->content); i++)
        free(s->content[i]);
}

static void seen_event(struct seen *s, const char *ev, size_t len)
{
    /* Lines: CRLF, LF or CR. */
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && ev[e] != '\r' && ev[e] != '\n')
            e++;
        const char *line = ev + i;
        size_t n = e - i;
        if (n >= 1 && line[0] == ':')
            s->comments++;
        if (n > 5 && memcmp(line, "data:", 5) == 0) {
            const char *d = line + 5;
            size_t dn = n - 5;
            if (dn > 0 && *d == ' ')
                d++, dn--;
            if (dn == 6 && memcmp(d, "[DONE]", 6) == 0) {
                s->done++;
            } else {
                cJSON *c = cJSON_ParseWithLength(d, dn);
                if (c == NULL) {
                    s->unparsed++;
                } else {
                    s->chunks++;
                    const cJSON *id = cJSON_GetObjectItemCaseSensitive(c, "id");
                    if (!cJSON_IsString(id) || strcmp(id->valuestring, "chatcmpl-s1") != 0)
                        s->bad_id++;
                    const cJSON *ch;
                    cJSON_ArrayForEach(ch, cJSON_GetObjectItemCaseSensitive(c, "choices"))
                    {
                        int index = cJSON_GetObjectItemCaseSensitive(ch, "index")->valueint;
                        const cJSON *content = cJSON_GetObjectItemCaseSensitive(
                            cJSON_GetObjectItemCaseSensitive(ch, "delta"), "content");
                        if (cJSON_IsString(content) && index >= 0 && index < 4) {
                            struct sbuf b = {s->content[index],
                                             s->content[index] ? strlen(s->content[index]) : 0,
                                             s->content[index] ? strlen(s->content[index]) + 1 : 0};
                            sb_puts(&b, content->valuestring);
                            s->content[index] = b.p;
                        }
                        const cJSON *fin = cJSON_GetObjectItemCaseSensitive(ch, "finish_reason");
                        if (cJSON_IsString(fin) && strcmp(fin->valuestring, "stop") == 0)
                            s->finishes++;
                    }
                    const cJSON *u = cJSON_GetObjectItemCaseSensitive(c, "usage");
                    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(u, "completion_tokens");
                    if (cJSON_IsNumber(ct) && ct->valueint == 7)
                        s->usage++;
                    const cJSON *mm = cJSON_GetObjectItemCaseSensitive(
                        cJSON_GetObjectItemCaseSensitive(c, "cairn"), "model_markers");
                    if (cJSON_IsObject(mm)) {
                        s->reports++;
                        const cJSON *task = cJSON_GetObjectItemCaseSensitive(mm, "task");
                        snprintf(s->report_task, sizeof s->report_task, "%s",
                                 cJSON_IsString(task) ? task->valuestring : "");
                    }
                    cJSON_Delete(c);
                }
            }
        }
        i = e + (e + 1 < len && ev[e] == '\r' && ev[e + 1] == '\n' ? 2 : 1);
    }
}

/* Read `out` as a sequence of SSE events. */
static void read_sse(const char *out, size_t len, struct seen *s)
{
    memset(s, 0, sizeof *s);
    size_t start = 0, line_start = 0;
    for (size_t i = 0; i < len; i++) {
        if (out[i] != '\r' && out[i] != '\n')
            continue;
        size_t next = i + (out[i] == '\r' && i + 1 < len && out[i + 1] == '\n' ? 2 : 1);
        if (i == line_start) { /* an empty line: the event ends */
            seen_event(s, out + start, i - start);
            start = next;
        }
        line_start = next;
        i = next - 1;
    }
    s->tail = start < len;
}

/* Feed `stream` to a new unwrapper in the pieces cut at `cuts` (offsets,
 * ascending, ending with len); the client's bytes go to *out. */
static int run_unwrap(const struct fixture *fx, const char *stream, size_t len,
                      const size_t *cuts, size_t ncuts, size_t nchoices,
                      struct cairn_markers *model, struct sbuf *out, bool *done_after)
{
    struct cairn_sse_unwrap *u = cairn_sse_unwrap_new(&fx->f, nchoices, model);
    struct evbuffer *eb = evbuffer_new();
    int rc = 0;
    assert_true(ncuts > 0 && cuts[ncuts - 1] == len);
    size_t at = 0;
    for (size_t i = 0; i < ncuts && rc == 0; i++) {
        /* Each piece in its own heap block: ASan sees any over-read. */
        char *piece = dup_exact(stream + at, cuts[i] - at);
        rc = cairn_sse_unwrap_feed(u, piece, cuts[i] - at, eb);
        free(piece);
        at = cuts[i];
    }
    if (done_after != NULL)
        *done_after = cairn_sse_unwrap_done(u);
    if (rc == 0)
        cairn_sse_unwrap_finish(u, eb); /* the stream ended, as the proxy does */
    size_t n = evbuffer_get_length(eb);
    out->len = 0;
    sb_putn(out, n ? (const char *)evbuffer_pullup(eb, -1) : "", n);
    evbuffer_free(eb);
    cairn_sse_unwrap_free(u);
    return rc;
}

/* Check what the client saw of a STREAM_CONTENT stream. */
static void check_unwrapped(const struct fixture *fx, const char *row, const struct sbuf *out,
                            const struct cairn_markers *model)
{
    (void)fx;
    struct seen s;
    read_sse(out->p, out->len, &s);
    const char *got = s.content[0] ? s.content[0] : "";
    check(strcmp(got, STREAM_ANSWER) == 0, row, "client content \"%s\", want \"%s\"", got,
          STREAM_ANSWER);
    const char *task = cairn_markers_get(model, "task");
    check(task != NULL && strcmp(task, "CodeFix") == 0, row, "model task %s",
          task ? task : "(none)");
    check(cairn_markers_count(model) == 1, row, "%zu model markers", cairn_markers_count(model));
    check(s.reports == 1 && strcmp(s.report_task, "CodeFix") == 0, row,
          "%zu model_markers reports (task \"%s\")", s.reports, s.report_task);
    check(s.bad_id == 0 && s.unparsed == 0, row, "%zu chunks with a wrong id, %zu unparsed",
          s.bad_id, s.unparsed);
    check(s.finishes == 1 && s.usage == 1, row, "finish_reason x%zu, usage x%zu", s.finishes,
          s.usage);
    check(s.done == 1 && s.comments == 1 && !s.tail, row, "[DONE] x%zu, comments x%zu, tail %d",
          s.done, s.comments, s.tail);
    seen_free(&s);
}

/* Every layout × line ending: every split point, and one byte at a time. */
static const char *const layout_multi[] = {
    "<MARKER_", "LIST>\n<ta", "sk>CodeFix</task>\n</MARKER", "_LIST>\n", "\nHello", " world", NULL};
static const char *const layout_block_then_text[] = {
    "<MARKER_LIST>\n<task>CodeFix</task>\n</MARKER_LIST>", "\n\n", "Hello world", NULL};
static const char *const layout_block_with_text[] = {
    "<MARKER_LIST>\n<task>CodeFix</task>\n</MARKER_LIST>\n\nHel", "lo", " world", NULL};
static const char *const layout_one[] = {STREAM_CONTENT, NULL};
static const char *const layout_close_split[] = {
    "<MARKER_LIST>\n<task>CodeFix</task>\n<", "/", "MARKER_LIST", ">", "\n", "\n", "H",
    "ello world", NULL};

static void run_layout(const struct fixture *fx, const char *name, const char *const *pieces,
                       const char *eol_name, const char *eol)
{
    char *stream = build_stream(pieces, eol);
    size_t len = strlen(stream);
    struct sbuf out = {0};
    char row[160];
    /* Every split point k: [0,k) then [k,len). */
    for (size_t k = 0; k <= len; k++) {
        size_t cuts[2] = {k, len};
        struct cairn_markers model;
        cairn_markers_init(&model, &fx->tx);
        snprintf(row, sizeof row, "%s/%s/split at %zu", name, eol_name, k);
        int rc = run_unwrap(fx, stream, len, cuts, 2, 1, &model, &out, NULL);
        if (!check(rc == 0, row, "feed failed"))
            continue;
        size_t before = unit_failures;
        check_unwrapped(fx, row, &out, &model);
        if (unit_failures - before > 0 && unit_failures > 40) {
            fail_msg("[%s] stopping after 40 failures; client got:\n%s", row, out.p);
        }
    }
    /* One byte at a time. */
    size_t *cuts = malloc(len * sizeof *cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    struct cairn_markers model;
    cairn_markers_init(&model, &fx->tx);
    snprintf(row, sizeof row, "%s/%s/byte by byte", name, eol_name);
    if (check(run_unwrap(fx, stream, len, cuts, len, 1, &model, &out, NULL) == 0, row, "feed"))
        check_unwrapped(fx, row, &out, &model);
    free(cuts);
    free(out.p);
    free(stream);
}

static void test_sse_every_split(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_open(&fx);
    rows_begin();
    static const char *const eols[][2] = {{"LF", "\n"}, {"CRLF", "\r\n"}, {"CR", "\r"}};
    const char **chars = per_char(STREAM_CONTENT);
    for (size_t e = 0; e < NELEM(eols); e++) {
        run_layout(&fx, "1 char per event", chars, eols[e][0], eols[e][1]);
        run_layout(&fx, "multi-char events", layout_multi, eols[e][0], eols[e][1]);
        run_layout(&fx, "block, then text", layout_block_then_text, eols[e][0], eols[e][1]);
        run_layout(&fx, "block with text", layout_block_with_text, eols[e][0], eols[e][1]);
        run_layout(&fx, "one event", layout_one, eols[e][0], eols[e][1]);
        run_layout(&fx, "close split", layout_close_split, eols[e][0], eols[e][1]);
    }
    free_pieces(chars);
    fixture_close(&fx);
    rows_end();
}

/* Two choices interleaved, each with its own block, one char per event. */
static void test_sse_two_choices(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_open(&fx);
    rows_begin();
    static const char *const content[2] = {
        "<MARKER_LIST>\n<task>CodeFix</task>\n</MARKER_LIST>\n\nHello world",
        "<MARKER_LIST><lang>French</lang></MARKER_LIST> Bonjour"};
    struct sbuf b = {0};
    sb_puts(&b, "");
    add_chunk(&b, "\n", 0, "assistant", "", NULL, false);
    add_chunk(&b, "\n", 1, "assistant", "", NULL, false);
    size_t n0 = strlen(content[0]), n1 = strlen(content[1]);
    for (size_t i = 0; i < n0 || i < n1; i++) {
        for (int c = 0; c < 2; c++) {
            if (i < (c ? n1 : n0)) {
                char one[2] = {content[c][i], '\0'};
                add_chunk(&b, "\n", c, NULL, one, NULL, false);
            }
        }
    }
    add_chunk(&b, "\n", 0, NULL, NULL, "stop", false);
    add_chunk(&b, "\n", 1, NULL, NULL, "stop", true);
    sb_puts(&b, "data: [DONE]\n\n");
    struct sbuf out = {0};
    for (size_t k = 0; k <= b.len; k += 7) {
        size_t cuts[2] = {k, b.len};
        struct cairn_markers model;
        cairn_markers_init(&model, &fx.tx);
        char row[64];
        snprintf(row, sizeof row, "n=2, split at %zu", k);
        bool done = false;
        if (!check(run_unwrap(&fx, b.p, b.len, cuts, 2, 2, &model, &out, &done) == 0, row,
                   "feed"))
            continue;
        struct seen s;
        read_sse(out.p, out.len, &s);
        check(s.content[0] && strcmp(s.content[0], "Hello world") == 0, row, "choice 0 \"%s\"",
              s.content[0] ? s.content[0] : "");
        check(s.content[1] && strcmp(s.content[1], "Bonjour") == 0, row, "choice 1 \"%s\"",
              s.content[1] ? s.content[1] : "");
        const char *task = cairn_markers_get(&model, "task");
        const char *lang = cairn_markers_get(&model, "lang");
        check(task && strcmp(task, "CodeFix") == 0 && lang && strcmp(lang, "French") == 0, row,
              "model markers task=%s lang=%s", task ? task : "-", lang ? lang : "-");
        check(s.reports == 2, row, "%zu reports", s.reports);
        check(s.done == 1 && s.finishes == 2 && s.usage == 1, row, "done %zu finishes %zu",
              s.done, s.finishes);
        check(done, row, "not done at the end");
        seen_free(&s);
    }
    free(out.p);
    free(b.p);
    fixture_close(&fx);
    rows_end();
}

/* A stream that does not start with a block: byte for byte, at every
 * split point, and done after the first content. */
static void test_sse_no_block_passthrough(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_open(&fx);
    rows_begin();
    static const char *const pieces[] = {"Hel", "lo <MARKER_LIST>", "\n<task>CodeFix</task>",
                                         "\n</MARKER_LIST>", NULL};
    char *stream = build_stream(pieces, "\n");
    size_t len = strlen(stream);
    struct sbuf out = {0};
    for (size_t k = 0; k <= len; k++) {
        size_t cuts[2] = {k, len};
        struct cairn_markers model;
        cairn_markers_init(&model, &fx.tx);
        char row[64];
        snprintf(row, sizeof row, "split at %zu", k);
        if (!check(run_unwrap(&fx, stream, len, cuts, 2, 1, &model, &out, NULL) == 0, row, "feed"))
            continue;
        check(out.len == len && memcmp(out.p, stream, len) == 0, row,
              "changed:\n%s\nwant:\n%s", out.p, stream);
        check(cairn_markers_count(&model) == 0, row, "model markers read");
    }
    /* Event by event: done once the first content went past. */
    struct cairn_markers model;
    cairn_markers_init(&model, &fx.tx);
    struct cairn_sse_unwrap *u = cairn_sse_unwrap_new(&fx.f, 1, &model);
    struct evbuffer *eb = evbuffer_new();
    const char *first_end = strstr(stream, "\n\n") + 2; /* the role event */
    const char *second_end = strstr(first_end, "\n\n") + 2;
    check(cairn_sse_unwrap_feed(u, stream, (size_t)(first_end - stream), eb) == 0, "role", "feed");
    check(!cairn_sse_unwrap_done(u), "role", "done before any content");
    check(evbuffer_get_length(eb) == (size_t)(first_end - stream), "role",
          "the role event was held (%zu bytes out)", evbuffer_get_length(eb));
    check(cairn_sse_unwrap_feed(u, first_end, (size_t)(second_end - first_end), eb) == 0,
          "first content", "feed");
    check(cairn_sse_unwrap_done(u), "first content", "not done after \"Hel\"");
    check(evbuffer_get_length(eb) == (size_t)(second_end - stream), "first content",
          "%zu bytes out, want %zu", evbuffer_get_length(eb), (size_t)(second_end - stream));
    evbuffer_free(eb);
    cairn_sse_unwrap_free(u);
    free(out.p);
    free(stream);
    fixture_close(&fx);
    rows_end();
}

/* The same, with upstream JSON that is not in cJSON's compact form
 * (spaces after ':' and ',', as Python's json.dumps writes it, and
 * escaped non-ASCII): a stream without a block must still pass byte for
 * byte. */
static void test_sse_no_block_passthrough_spaced_json(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_open(&fx);
    rows_begin();
    static const char stream[] =
        "data: {\"id\": \"chatcmpl-s1\", \"choices\": [{\"index\": 0, \"delta\": {\"content\": "
        "\"H\\u00e9l\"}, \"finish_reason\": null}]}\n\n"
        "data: {\"id\": \"chatcmpl-s1\", \"choices\": [{\"index\": 0, \"delta\": {\"content\": "
        "\"lo\"}, \"finish_reason\": \"stop\"}]}\n\n"
        "data: [DONE]\n\n";
    size_t len = sizeof stream - 1, cuts[1] = {len};
    struct cairn_markers model;
    cairn_markers_init(&model, &fx.tx);
    struct sbuf out = {0};
    check(run_unwrap(&fx, stream, len, cuts, 1, 1, &model, &out, NULL) == 0, "spaced", "feed");
    check(out.len == len && memcmp(out.p, stream, len) == 0, "spaced",
          "a stream without a block was rewritten:\n%s\nwant:\n%s", out.p, stream);
    free(out.p);
    fixture_close(&fx);
    rows_end();
}

/* Content rows: what the client must see for a given content, one char per
 * event and in one event, at every split point of the byte stream. */
struct content_row {
    const char *name;
    const char *content;
    const char *want;
    const char *task; /* model task read, or NULL for none */
};

static const struct content_row content_rows[] = {
    {"leading white space then text", "\n \tHi there", "\n \tHi there", NULL},
    {"white space only", "  \n ", "  \n ", NULL},
    {"a tag that is not a block", "<b>bold</b> text", "<b>bold</b> text", NULL},
    {"a lone <", "< 3", "< 3", NULL},
    {"an open prefix then text", "<MARKER_LI but not quite", "<MARKER_LI but not quite", NULL},
    {"an open prefix, then finish", "<MARKER", "<MARKER", NULL},
    {"unterminated block, then finish", "<MARKER_LIST>\n<task>CodeFix</task>\nHello",
     "<MARKER_LIST>\n<task>CodeFix</task>\nHello", NULL},
    {"block only", "<MARKER_LIST>\n<task>CodeFix</task>\n</MARKER_LIST>\n\n", "", "CodeFix"},
    {"leading white space then block", "\n <MARKER_LIST><task>CodeFix</task></MARKER_LIST>Hi",
     "Hi", "CodeFix"},
    {"lower-case block", "<marker_list><task>codefix</task></marker_list>\nHi", "Hi", "CodeFix"},
    {"block then white space inside the answer",
     "<MARKER_LIST><task>CodeFix</task></MARKER_LIST>\n\nA\n\n  B  ", "A\n\n  B  ", "CodeFix"},
    {"non-ASCII answer", "<MARKER_LIST><lang>French</lang></MARKER_LIST>\nCafé ☕ 日本",
     "Café ☕ 日本", NULL},
};

static void test_sse_content_rows(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_open(&fx);
    rows_begin();
    for (size_t i = 0; i < NELEM(content_rows); i++) {
        const struct content_row *r = &content_rows[i];
        const char **chars = per_char(r->content);
        const char *whole[] = {r->content, NULL};
        for (int layout = 0; layout < 2; layout++) {
            char *stream = build_stream(layout ? whole : chars, "\n");
            size_t len = strlen(stream);
            struct sbuf out = {0};
            size_t fails_before = unit_failures;
            for (size_t k = 0; k <= len && unit_failures - fails_before < 3; k++) {
                size_t cuts[2] = {k, len};
                struct cairn_markers model;
                cairn_markers_init(&model, &fx.tx);
                char row[128];
                snprintf(row, sizeof row, "%s/%s/split at %zu", r->name,
                         layout ? "one event" : "1 char per event", k);
                bool done = false;
                if (!check(run_unwrap(&fx, stream, len, cuts, 2, 1, &model, &out, &done) == 0,
                           row, "feed"))
                    continue;
                struct seen s;
                read_sse(out.p, out.len, &s);
                const char *got = s.content[0] ? s.content[0] : "";
                check(strcmp(got, r->want) == 0, row, "client content \"%s\", want \"%s\"", got,
                      r->want);
                const char *task = cairn_markers_get(&model, "task");
                check((r->task == NULL && task == NULL) ||
                          (r->task != NULL && task != NULL && strcmp(task, r->task) == 0),
                      row, "model task %s, want %s", task ? task : "(none)",
                      r->task ? r->task : "(none)");
                check(s.done == 1 && s.finishes == 1 && s.bad_id == 0 && !s.tail, row,
                      "[DONE] x%zu, finish x%zu, bad ids %zu, tail %d", s.done, s.finishes,
                      s.bad_id, s.tail);
                check(done, row, "not done at the end of the stream");
                seen_free(&s);
            }
            free(out.p);
            free(stream);
        }
        free_pieces(chars);
    }
    fixture_close(&fx);
    rows_end();
}

/* A held event's non-JSON neighbours (comments, other event types) pass. */
static void test_sse_other_events_while_held(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_open(&fx);
    rows_begin();
    struct sbuf b = {0};
    sb_puts(&b, "");
    add_chunk(&b, "\n", 0, NULL, "<MARKER_LIST>", NULL, false);
    sb_puts(&b, ": ping\n\n");
    sb_puts(&b, "event: progress\ndata: not json\n\n");
    add_chunk(&b, "\n", 0, NULL, "<task>CodeFix</task></MARKER_LIST>", NULL, false);
    add_chunk(&b, "\n", 0, NULL, "Hi", NULL, false);
    add_chunk(&b, "\n", 0, NULL, NULL, "stop", false);
    sb_puts(&b, "data: [DONE]\n\n");
    size_t cuts[1] = {b.len};
    struct cairn_markers model;
    cairn_markers_init(&model, &fx.tx);
    struct sbuf out = {0};
    check(run_unwrap(&fx, b.p, b.len, cuts, 1, 1, &model, &out, NULL) == 0, "held", "feed");
    check(strstr(out.p, ": ping\n\n") != NULL, "held", "comment lost:\n%s", out.p);
    check(strstr(out.p, "event: progress\ndata: not json\n\n") != NULL, "held",
          "other event lost:\n%s", out.p);
    struct seen s;
    read_sse(out.p, out.len, &s);
    check(s.content[0] && strcmp(s.content[0], "Hi") == 0, "held", "content \"%s\"",
          s.content[0] ? s.content[0] : "");
    check(s.done == 1, "held", "[DONE] x%zu", s.done);
    seen_free(&s);
    free(out.p);
    free(b.p);
    fixture_close(&fx);
    rows_end();
}

/* An event that grows past 1 MiB without its empty line is an error;
 * one just under the limit is fine. */
static void test_sse_event_limit(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_open(&fx);
    rows_begin();
    struct cairn_markers model;
    cairn_markers_init(&model, &fx.tx);
    /* In one feed. */
    struct sbuf big = {0};
    sb_puts(&big, "data: ");
    sb_repeat(&big, "x", 1024 * 1024 + 10);
    struct cairn_sse_unwrap *u = cairn_sse_unwrap_new(&fx.f, 1, &model);
    struct evbuffer *eb = evbuffer_new();
    check(cairn_sse_unwrap_feed(u, big.p, big.len, eb) == -1, "one feed", "accepted");
    cairn_sse_unwrap_free(u);
    /* In 64 KiB pieces. */
    u = cairn_sse_unwrap_new(&fx.f, 1, &model);
    int rc = 0;
    for (size_t at = 0; at < big.len && rc == 0; at += 65536)
        rc = cairn_sse_unwrap_feed(u, big.p + at, big.len - at < 65536 ? big.len - at : 65536, eb);
    check(rc == -1, "pieces", "accepted");
    cairn_sse_unwrap_free(u);
    /* Lines, but never an empty one. */
    struct sbuf lines = {0};
    sb_repeat(&lines, "data: 0123456789abcdef0123456789abcdef\n", 30000);
    u = cairn_sse_unwrap_new(&fx.f, 1, &model);
    check(cairn_sse_unwrap_feed(u, lines.p, lines.len, eb) == -1, "lines", "accepted");
    cairn_sse_unwrap_free(u);
    /* A big but complete event before the first content is relayed. */
    struct sbuf ok = {0};
    sb_puts(&ok, ": ");
    sb_repeat(&ok, "y", 512 * 1024);
    sb_puts(&ok, "\n\n");
    u = cairn_sse_unwrap_new(&fx.f, 1, &model);
    evbuffer_drain(eb, evbuffer_get_length(eb));
    check(cairn_sse_unwrap_feed(u, ok.p, ok.len, eb) == 0, "512 KiB comment", "rejected");
    check(evbuffer_get_length(eb) == ok.len, "512 KiB comment", "%zu bytes out",
          evbuffer_get_length(eb));
    cairn_sse_unwrap_free(u);
    evbuffer_free(eb);
    free(big.p);
    free(lines.p);
    free(ok.p);
    fixture_close(&fx);
    rows_end();
}

/* A block too long to be one is given back as text. */
static void test_sse_overlong_block(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_open(&fx);
    rows_begin();
    struct sbuf content = {0};
    sb_puts(&content, "<MARKER_LIST>\n");
    sb_repeat(&content, "no close in sight. ", 1000);
    const char *pieces[] = {content.p, " tail", NULL};
    char *stream = build_stream(pieces, "\n");
    size_t cuts[1] = {strlen(stream)};
    struct cairn_markers model;
    cairn_markers_init(&model, &fx.tx);
    struct sbuf out = {0};
    bool done = false;
    check(run_unwrap(&fx, stream, strlen(stream), cuts, 1, 1, &model, &out, &done) == 0, "long",
          "feed");
    struct seen s;
    read_sse(out.p, out.len, &s);
    sb_puts(&content, " tail");
    check(s.content[0] && strcmp(s.content[0], content.p) == 0, "long", "content differs (%zu bytes)",
          s.content[0] ? strlen(s.content[0]) : 0);
    check(done, "long", "not done");
    seen_free(&s);
    free(out.p);
    free(stream);
    free(content.p);
    fixture_close(&fx);
    rows_end();
}

/* Found by review: leading white space was held without limit (and
 * rescanned on every delta); text held when the stream ended without a
 * final empty line was lost; a finish chunk whose content was null got a
 * second "content" key. */
static void test_sse_review_regressions(void **state)
{
    (void)state;
    struct fixture fx;
    fixture_open(&fx);
    rows_begin();
    struct cairn_markers model;
    struct sbuf b = {0}, out = {0};
    struct seen s;

    sb_puts(&b, "");
    for (int i = 0; i < 20000; i++)
        add_chunk(&b, "\n", 0, NULL, "\n\n\n\n", NULL, false);
    add_chunk(&b, "\n", 0, NULL, "Hi", NULL, false);
    add_chunk(&b, "\n", 0, NULL, NULL, "stop", false);
    size_t cuts[1] = {b.len};
    cairn_markers_init(&model, &fx.tx);
    check(run_unwrap(&fx, b.p, b.len, cuts, 1, 1, &model, &out, NULL) == 0, "newlines", "feed");
    read_sse(out.p, out.len, &s);
    check(s.content[0] != NULL && strlen(s.content[0]) == 80002 &&
              strcmp(s.content[0] + 80000, "Hi") == 0,
          "newlines", "content of %zu bytes", s.content[0] ? strlen(s.content[0]) : 0);
    seen_free(&s);

    b.len = 0;
    sb_puts(&b, "data: {\"id\":\"chatcmpl-s1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                "\"<MARK\"},\"finish_reason\":null}]}\n");
    cuts[0] = b.len;
    cairn_markers_init(&model, &fx.tx);
    check(run_unwrap(&fx, b.p, b.len, cuts, 1, 1, &model, &out, NULL) == 0, "no final line",
          "feed");
    check(out.p != NULL && strstr(out.p, "<MARK") != NULL, "no final line",
          "held text lost at the end: %s", out.p ? out.p : "");

    b.len = 0;
    add_chunk(&b, "\n", 0, NULL, "<", NULL, false);
    sb_puts(&b, "data: {\"id\":\"chatcmpl-s1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                "null},\"finish_reason\":\"stop\"}]}\n\n");
    cuts[0] = b.len;
    cairn_markers_init(&model, &fx.tx);
    check(run_unwrap(&fx, b.p, b.len, cuts, 1, 1, &model, &out, NULL) == 0, "null content",
          "feed");
    const char *last = out.p ? strstr(out.p, "\"stop\"") : NULL;
    const char *ev = last;
    while (ev != NULL && ev > out.p && !(ev[-1] == '\n' && strncmp(ev, "data:", 5) == 0))
        ev--;
    size_t keys = 0;
    for (const char *p = ev; p != NULL && p < last && (p = strstr(p, "\"content\"")) && p < last;
         p++)
        keys++;
    check(keys == 1, "null content", "%zu content keys in the finish chunk: %s", keys,
          out.p ? out.p : "");
    read_sse(out.p, out.len, &s);
    check(s.content[0] != NULL && strcmp(s.content[0], "<") == 0, "null content",
          "content \"%s\"", s.content[0] ? s.content[0] : "");
    seen_free(&s);

    free(out.p);
    free(b.p);
    fixture_close(&fx);
    rows_end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unwrap_json),
        cmocka_unit_test(test_sse_every_split),
        cmocka_unit_test(test_sse_two_choices),
        cmocka_unit_test(test_sse_no_block_passthrough),
        cmocka_unit_test(test_sse_no_block_passthrough_spaced_json),
        cmocka_unit_test(test_sse_content_rows),
        cmocka_unit_test(test_sse_other_events_while_held),
        cmocka_unit_test(test_sse_event_limit),
        cmocka_unit_test(test_sse_overlong_block),
        cmocka_unit_test(test_sse_review_regressions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
