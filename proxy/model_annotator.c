/*
 * model_annotator.c — the annotator model's prompt, request and answer
 * (see model_annotator.h).
 *
 * The prompt is data (rules/annotator_prompt.txt) joined with the loaded
 * taxonomy once, at load time; its worked examples are read with the same
 * block reader as the model's answers, so an example that names a value
 * the taxonomy lacks is a load error rather than a lesson that every
 * answer then loses. The answer is read as hostile input: a bounded body,
 * strict JSON, one block, and only markers the taxonomy allows, each tag at
 * most once. Everything is a linear pass over bounded text.
 */
#include "model_annotator.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "alloc.h"
#include "chat_request.h"
#include "files.h"
#include "json_strict.h"
#include "utf8.h"

#define NAME_MAX_LEN 47 /* longest tag name read from a block */
#define ROLE_MAX_LEN 31 /* longest role label written to the conversation */

struct cairn_model_prompt {
    char *text; /* owned: the final system text */
    size_t len;
    unsigned char id[CAIRN_MODEL_PROMPT_ID_LEN];
};

/* ---- reading a block ----------------------------------------------------- */

enum item_kind { ITEM_END, ITEM_OK, ITEM_BAD };

/* One <name>value</name> of a block, or a stretch of other text. */
struct item {
    const char *at; /* where it starts */
    const char *name;
    size_t nlen;
    const char *value; /* trimmed of spaces and tabs */
    size_t vlen;
};

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

/*
 * The next item of a block body *pp..end, moving *pp past it. An item is
 * <name>value</name> with the same name, the value on one line and without
 * '<' or '>'; anything else is ITEM_BAD and is skipped to the end of its
 * line. Each byte is looked at a bounded number of times, whatever the
 * input.
 */
static enum item_kind next_item(const char **pp, const char *end, struct item *it)
{
    const char *p = *pp;
    while (p < end && is_space(*p))
        p++;
    it->at = p;
    if (p == end) {
        *pp = p;
        return ITEM_END;
    }
    if (*p == '<') {
        const char *name = p + 1, *q = p + 1;
        while (q < end && is_name_char(*q) && (size_t)(q - name) <= NAME_MAX_LEN)
            q++;
        size_t nlen = (size_t)(q - name);
        if (nlen > 0 && nlen <= NAME_MAX_LEN && q < end && *q == '>') {
            const char *value = ++q;
            while (q < end && *q != '<' && *q != '>' && *q != '\n')
                q++;
            if (q < end && *q == '<' && (size_t)(end - q) >= nlen + 3 && q[1] == '/' &&
                memcmp(q + 2, name, nlen) == 0 && q[2 + nlen] == '>') {
                const char *vend = q;
                while (value < vend && (*value == ' ' || *value == '\t'))
                    value++;
                while (vend > value && (vend[-1] == ' ' || vend[-1] == '\t'))
                    vend--;
                it->name = name;
                it->nlen = nlen;
                it->value = value;
                it->vlen = (size_t)(vend - value);
                *pp = q + 3 + nlen;
                return ITEM_OK;
            }
        }
    }
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    *pp = nl != NULL ? nl + 1 : end;
    return ITEM_BAD;
}

static int item_tag(const struct cairn_taxonomy *tx, const struct item *it)
{
    char name[NAME_MAX_LEN + 1];
    memcpy(name, it->name, it->nlen);
    name[it->nlen] = '\0';
    return cairn_taxonomy_find(tx, name);
}

/* A number as plain decimal digits, optionally signed and with a fraction:
 * the taxonomy's strtod would also take "0x64", "1e2" and "infinity". */
static bool plain_decimal(const char *v)
{
    size_t i = 0, digits = 0;
    if (v[i] == '-' || v[i] == '+')
        i++;
    while (v[i] >= '0' && v[i] <= '9')
        i++, digits++;
    if (v[i] == '.') {
        i++;
        size_t frac = 0;
        while (v[i] >= '0' && v[i] <= '9')
            i++, frac++;
        if (frac == 0)
            return false;
    }
    return digits > 0 && v[i] == '\0';
}

/* The canonical spelling of an item's value for `tag`. @return 0, or -1
 * with `err` saying why. */
static int item_value(const struct cairn_taxonomy *tx, int tag, const struct item *it,
                      char out[CAIRN_MARKER_VALUE_MAX], char *err, size_t errlen)
{
    char value[CAIRN_MARKER_VALUE_MAX];
    const struct cairn_tag *t = &tx->tags[tag];
    if (it->vlen == 0) {
        snprintf(err, errlen, "<%s> has no value", t->name);
        return -1;
    }
    if (it->vlen >= sizeof(value)) {
        snprintf(err, errlen, "the value of <%s> is longer than %d bytes", t->name,
                 CAIRN_MARKER_VALUE_MAX - 1);
        return -1;
    }
    memcpy(value, it->value, it->vlen);
    value[it->vlen] = '\0';
    if (t->type != CAIRN_TAG_ENUM && !plain_decimal(value)) {
        snprintf(err, errlen, "the value of <%s> is not a plain decimal number", t->name);
        return -1;
    }
    return cairn_taxonomy_canonical(tx, tag, value, out, err, errlen);
}

/* ---- the prompt ---------------------------------------------------------- */

static size_t line_of(const char *text, const char *at)
{
    size_t line = 1;
    for (const char *p = text; p < at; p++)
        line += *p == '\n';
    return line;
}

/* The placeholder's replacement: one line per tag. */
static void put_taxonomy(const struct cairn_taxonomy *tx, struct cairn_buf *b)
{
    for (size_t i = 0; i < tx->ntags; i++) {
        const struct cairn_tag *t = &tx->tags[i];
        char line[160];
        snprintf(line, sizeof(line), "%s- <%s>: ", i > 0 ? "\n" : "", t->name);
        cairn_buf_puts(b, line);
        if (t->type == CAIRN_TAG_ENUM) {
            cairn_buf_puts(b, "one of ");
            for (size_t j = 0; j < t->nvalues; j++) {
                if (j > 0)
                    cairn_buf_puts(b, ", ");
                cairn_buf_puts(b, t->values[j]);
            }
            continue;
        }
        snprintf(line, sizeof(line),
                 "%s from %.15g to %.15g, only as an upper limit stated in "
                 "the conversation",
                 t->type == CAIRN_TAG_INT ? "an integer" : "a number", t->min, t->max);
        cairn_buf_puts(b, line);
    }
}

/*
 * The example block that starts at `open` in the template, written to `b`
 * with wire names and canonical values; *next is set past its close.
 * @return 0, or -1 with `err` naming the line.
 */
static int put_example(const struct cairn_taxonomy *tx, const char *path, const char *text,
                       const char *open, const char *end, struct cairn_buf *b, const char **next,
                       char *err, size_t errlen)
{
    const size_t olen = strlen(CAIRN_MODEL_BLOCK_OPEN), clen = strlen(CAIRN_MODEL_BLOCK_CLOSE);
    const char *body = open + olen;
    const char *close = memmem(body, (size_t)(end - body), CAIRN_MODEL_BLOCK_CLOSE, clen);
    if (close == NULL) {
        snprintf(err, errlen, "%s line %zu: %s does not close", path, line_of(text, open),
                 CAIRN_MODEL_BLOCK_OPEN);
        return -1;
    }
    bool seen[CAIRN_MAX_TAGS] = {false};
    struct item it;
    const char *p = body;
    cairn_buf_puts(b, CAIRN_MODEL_BLOCK_OPEN "\n");
    for (enum item_kind k; (k = next_item(&p, close, &it)) != ITEM_END;) {
        if (k == ITEM_BAD) {
            const char *eol = memchr(it.at, '\n', (size_t)(close - it.at));
            size_t n = (size_t)((eol != NULL ? eol : close) - it.at);
            snprintf(err, errlen, "%s line %zu: \"%.*s\" is not a <tag>value</tag> line", path,
                     line_of(text, it.at), (int)(n < 40 ? n : 40), it.at);
            return -1;
        }
        int tag = item_tag(tx, &it);
        if (tag < 0)
            continue; /* a tag the deployment dropped */
        char value[CAIRN_MARKER_VALUE_MAX], why[160];
        if (seen[tag]) {
            snprintf(err, errlen, "%s line %zu: <%.*s> is given twice in one block", path,
                     line_of(text, it.at), (int)it.nlen, it.name);
            return -1;
        }
        seen[tag] = true;
        if (item_value(tx, tag, &it, value, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "%s line %zu: %s", path, line_of(text, it.at), why);
            return -1;
        }
        const char *name = tx->tags[tag].name;
        cairn_buf_puts(b, "<");
        cairn_buf_puts(b, name);
        cairn_buf_puts(b, ">");
        cairn_buf_puts(b, value);
        cairn_buf_puts(b, "</");
        cairn_buf_puts(b, name);
        cairn_buf_puts(b, ">\n");
    }
    cairn_buf_puts(b, CAIRN_MODEL_BLOCK_CLOSE);
    *next = close + clen;
    return 0;
}

/* Read the template file: bounded, valid UTF-8, no NUL. */
static char *read_template(const char *path, size_t *len, char *err, size_t errlen)
{
    size_t n, bad;
    char *text = cairn_read_file(path, CAIRN_MODEL_PROMPT_MAX, &n, err, errlen);
    if (text == NULL)
        return NULL;
    if (memchr(text, '\0', n) != NULL)
        snprintf(err, errlen, "%s: NUL byte at byte %zu", path,
                 (size_t)((char *)memchr(text, '\0', n) - text));
    else if ((bad = cairn_utf8_valid(text, n)) < n)
        snprintf(err, errlen, "%s: invalid UTF-8 at byte %zu", path, bad);
    else {
        *len = n;
        return text;
    }
    free(text);
    return NULL;
}

struct cairn_model_prompt *cairn_model_prompt_load(const struct cairn_taxonomy *tx,
                                                   const char *path, char *err, size_t errlen)
{
    size_t len;
    char *text = read_template(path, &len, err, errlen);
    if (text == NULL)
        return NULL;
    const char *end = text + len;
    const size_t plen = strlen(CAIRN_MODEL_PLACEHOLDER), olen = strlen(CAIRN_MODEL_BLOCK_OPEN);
    const char *ph = strstr(text, CAIRN_MODEL_PLACEHOLDER);
    if (ph == NULL || strstr(ph + plen, CAIRN_MODEL_PLACEHOLDER) != NULL) {
        snprintf(err, errlen, "%s: the placeholder %s must appear exactly once (%s)", path,
                 CAIRN_MODEL_PLACEHOLDER, ph == NULL ? "it is missing" : "it is repeated");
        free(text);
        return NULL;
    }
    struct cairn_buf b = {0};
    cairn_buf_put(&b, "", 0);
    for (const char *p = text; p < end;) {
        const char *open = memmem(p, (size_t)(end - p), CAIRN_MODEL_BLOCK_OPEN, olen);
        const char *at = ph >= p && (open == NULL || ph < open) ? ph : open;
        if (at == NULL) {
            cairn_buf_put(&b, p, (size_t)(end - p));
            break;
        }
        cairn_buf_put(&b, p, (size_t)(at - p));
        if (at == ph) {
            put_taxonomy(tx, &b);
            p = ph + plen;
        } else if (put_example(tx, path, text, open, end, &b, &p, err, errlen) < 0) {
            free(b.p);
            free(text);
            return NULL;
        }
    }
    free(text);
    struct cairn_model_prompt *pr = cairn_calloc(1, sizeof(*pr));
    pr->text = b.p;
    pr->len = b.len;
    SHA256((const unsigned char *)pr->text, pr->len, pr->id);
    return pr;
}

void cairn_model_prompt_free(struct cairn_model_prompt *p)
{
    if (p == NULL)
        return;
    free(p->text);
    free(p);
}

const char *cairn_model_prompt_text(const struct cairn_model_prompt *p)
{
    return p->text;
}

void cairn_model_prompt_id(const struct cairn_model_prompt *p,
                           unsigned char out[CAIRN_MODEL_PROMPT_ID_LEN])
{
    memcpy(out, p->id, CAIRN_MODEL_PROMPT_ID_LEN);
}

/* ---- the request --------------------------------------------------------- */

/* The conversation as pieces of text that point into the messages (and
 * into the role labels), so that only the part kept is ever copied. */
struct piece {
    const char *s;
    size_t n;
};

struct pieces {
    struct piece *v;
    size_t n, cap, total;
};

static void piece_add(struct pieces *ps, const char *s, size_t n)
{
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? ps->cap * 2 : 32;
        ps->v = cairn_realloc(ps->v, ps->cap * sizeof(*ps->v));
    }
    ps->v[ps->n++] = (struct piece){s, n};
    ps->total += n;
}

/* "USER: " from "user": letters uppercased, anything unusual as '_'. */
static void role_label(const cJSON *role, char label[ROLE_MAX_LEN + 3])
{
    const char *r = cJSON_IsString(role) ? role->valuestring : "unknown";
    size_t i = 0;
    for (; r[i] != '\0' && i < ROLE_MAX_LEN; i++) {
        char c = r[i];
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        else if (!(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9'))
            c = '_';
        label[i] = c;
    }
    memcpy(label + i, ": ", 3);
}

/* The text of one message's content: a string, or its text parts. */
static size_t text_length(const cJSON *content)
{
    if (cJSON_IsString(content))
        return strlen(content->valuestring);
    size_t n = 0;
    if (!cJSON_IsArray(content))
        return 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, content)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (cJSON_IsString(type) && strcmp(type->valuestring, "text") == 0 && cJSON_IsString(text))
            n += strlen(text->valuestring);
    }
    return n;
}

static void add_text(struct pieces *ps, const cJSON *content)
{
    if (cJSON_IsString(content)) {
        piece_add(ps, content->valuestring, strlen(content->valuestring));
        return;
    }
    if (!cJSON_IsArray(content))
        return;
    bool first = true;
    const cJSON *part;
    cJSON_ArrayForEach(part, content)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") != 0 ||
            !cJSON_IsString(text))
            continue;
        if (!first)
            piece_add(ps, "\n", 1);
        piece_add(ps, text->valuestring, strlen(text->valuestring));
        first = false;
    }
}

/* The last `max` bytes of the pieces, starting on a character boundary. */
static char *join_tail(const struct pieces *ps, size_t max)
{
    size_t skip = ps->total > max ? ps->total - max : 0;
    struct cairn_buf b = {0};
    cairn_buf_put(&b, "", 0);
    for (size_t i = 0; i < ps->n; i++) {
        const struct piece *pc = &ps->v[i];
        if (pc->n <= skip) {
            skip -= pc->n;
            continue;
        }
        size_t from = skip;
        while (from < pc->n && ((unsigned char)pc->s[from] & 0xC0) == 0x80)
            from++;
        cairn_buf_put(&b, pc->s + from, pc->n - from);
        skip = 0;
    }
    return b.p;
}

char *cairn_model_conversation(const cJSON *messages, size_t max_bytes)
{
    const cJSON *list = cJSON_IsArray(messages) ? messages : NULL;
    int nmsg = list != NULL ? cJSON_GetArraySize(list) : 0;
    char(*labels)[ROLE_MAX_LEN + 3] = cairn_calloc(nmsg > 0 ? (size_t)nmsg : 1, sizeof(*labels));
    struct pieces ps = {0};
    int i = 0;
    const cJSON *msg;
    cJSON_ArrayForEach(msg, list)
    {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
        if (text_length(content) == 0) {
            i++;
            continue;
        }
        role_label(cJSON_GetObjectItemCaseSensitive(msg, "role"), labels[i]);
        if (ps.n > 0)
            piece_add(&ps, "\n\n", 2);
        piece_add(&ps, labels[i], strlen(labels[i]));
        add_text(&ps, content);
        i++;
    }
    char *conversation = join_tail(&ps, max_bytes);
    free(ps.v);
    free(labels);
    return conversation;
}

char *cairn_model_annotator_request(const struct cairn_model_prompt *p, const char *model,
                                    const cJSON *messages, size_t max_conversation_bytes,
                                    size_t *len)
{
    char *conversation = cairn_model_conversation(messages, max_conversation_bytes);
    char *out =
        cairn_chat_request_internal(model, p->text, conversation, CAIRN_MODEL_MAX_TOKENS, len);
    free(conversation);
    return out;
}

/* ---- the answer ---------------------------------------------------------- */

/* Find the block in text[0..len) and offer its markers (see the header). */
static enum cairn_model_outcome read_block(const struct cairn_taxonomy *tx, const char *text,
                                           size_t len, struct cairn_markers *out, size_t *dropped)
{
    const size_t olen = strlen(CAIRN_MODEL_BLOCK_OPEN), clen = strlen(CAIRN_MODEL_BLOCK_CLOSE);
    const char *open = memmem(text, len, CAIRN_MODEL_BLOCK_OPEN, olen);
    if (open == NULL)
        return CAIRN_MODEL_UNPARSABLE;
    const char *body = open + olen;
    const char *close = memmem(body, (size_t)(text + len - body), CAIRN_MODEL_BLOCK_CLOSE, clen);
    if (close == NULL)
        return CAIRN_MODEL_UNPARSABLE;

    /* First every item, so that a tag given twice is known before any of
     * its values is offered: the model contradicted itself, so neither. */
    size_t count[CAIRN_MAX_TAGS] = {0};
    bool valid[CAIRN_MAX_TAGS] = {false};
    char value[CAIRN_MAX_TAGS][CAIRN_MARKER_VALUE_MAX];
    size_t drops = 0;
    struct item it;
    const char *p = body;
    for (enum item_kind k; (k = next_item(&p, close, &it)) != ITEM_END;) {
        int tag = k == ITEM_OK ? item_tag(tx, &it) : -1;
        if (tag < 0) {
            drops++;
            continue;
        }
        char why[160];
        if (count[tag]++ == 0)
            valid[tag] = item_value(tx, tag, &it, value[tag], why, sizeof(why)) == 0;
    }
    for (size_t t = 0; t < tx->ntags; t++) {
        char why[160];
        if (count[t] == 0)
            continue;
        if (count[t] > 1 || !valid[t] ||
            cairn_markers_offer(out, (int)t, value[t], CAIRN_SRC_MODEL, why, sizeof(why)) < 0)
            drops += count[t];
    }
    *dropped = drops;
    return CAIRN_MODEL_OK;
}

enum cairn_model_outcome cairn_model_annotator_parse(const struct cairn_taxonomy *tx,
                                                     const char *body, size_t len,
                                                     struct cairn_markers *out, size_t *dropped)
{
    size_t ignored;
    if (dropped == NULL)
        dropped = &ignored;
    *dropped = 0;
    if (len > CAIRN_MODEL_BODY_MAX)
        return CAIRN_MODEL_UNPARSABLE;
    char why[256];
    cJSON *root = cairn_json_parse_strict(body, len, CAIRN_MODEL_BODY_DEPTH, why, sizeof(why));
    if (root == NULL)
        return CAIRN_MODEL_UNPARSABLE;
    const char *content = cJSON_IsObject(root) ? cairn_chat_completion_text(root) : NULL;
    enum cairn_model_outcome outcome = CAIRN_MODEL_UNPARSABLE;
    if (content != NULL)
        outcome = read_block(tx, content, strlen(content), out, dropped);
    cJSON_Delete(root);
    return outcome;
}
