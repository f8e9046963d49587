/*
 * prompt_text.c — bound a message's text and split it into prose and code
 * (see prompt_text.h).
 *
 * Everything here is one linear pass over at most head + tail bytes, so a
 * message of several hundred kilobytes costs what its two ends cost. The
 * cut between the ends is a line break: a fence left open by the head is
 * closed there, and the tail is read as if it started fresh.
 */
#include "prompt_text.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "utf8.h"

/* Step back / forward to a UTF-8 character boundary. */
static size_t char_start(const char *s, size_t i, size_t len)
{
    while (i < len && i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
        i--;
    return i;
}

static size_t char_next(const char *s, size_t i, size_t len)
{
    while (i < len && ((unsigned char)s[i] & 0xC0) == 0x80)
        i++;
    return i;
}

/* The text parts of `content` in order; NULL-terminated into parts[]. */
static size_t text_parts(const cJSON *content, const char **parts, size_t *lens, size_t max)
{
    size_t n = 0;
    if (cJSON_IsString(content)) {
        parts[0] = content->valuestring;
        lens[0] = strlen(content->valuestring);
        return 1;
    }
    if (!cJSON_IsArray(content))
        return 0;
    for (const cJSON *p = content->child; p != NULL && n < max; p = p->next) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(p, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(p, "text");
        if (cJSON_IsString(type) && strcmp(type->valuestring, "text") == 0 &&
            cJSON_IsString(text)) {
            parts[n] = text->valuestring;
            lens[n++] = strlen(text->valuestring);
        }
    }
    return n;
}

/* At most head bytes from the start and tail bytes from the end of the
 * parts joined by '\n'. Pieces of 64 parts at most: a message with more is
 * not a prompt worth reading in full. */
static void gather(const cJSON *content, size_t head, size_t tail, struct cairn_buf *out)
{
    const char *parts[64];
    size_t lens[64];
    size_t n = text_parts(content, parts, lens, 64), total = 0;
    for (size_t i = 0; i < n; i++)
        total += lens[i] + (i > 0);
    bool cut = total > head + tail;
    size_t room = cut ? head : total;
    for (size_t i = 0; i < n && room > 0; i++) {
        if (i > 0) {
            cairn_buf_put(out, "\n", 1);
            room--;
        }
        size_t take = lens[i] < room ? lens[i] : char_start(parts[i], room, lens[i]);
        cairn_buf_put(out, parts[i], take);
        room -= take < room ? take : room;
        if (take < lens[i])
            break;
    }
    if (!cut)
        return;
    cairn_buf_put(out, "\n", 1);
    /* Walk back from the end to find where the tail starts. */
    size_t need = tail, first = n;
    while (first > 0 && need > 0) {
        first--;
        need -= lens[first] < need ? lens[first] : need;
    }
    size_t skip = 0;
    size_t sum = 0;
    for (size_t i = first; i < n; i++)
        sum += lens[i];
    if (sum > tail)
        skip = char_next(parts[first], sum - tail, lens[first]);
    for (size_t i = first; i < n; i++) {
        if (i > first)
            cairn_buf_put(out, "\n", 1);
        size_t from = i == first ? skip : 0;
        cairn_buf_put(out, parts[i] + from, lens[i] - from);
    }
}

/* Replace every byte that does not start a valid UTF-8 sequence with '?':
 * the patterns match without re-checking UTF-8 (see pattern.c). Request
 * bodies are checked already; this also covers any other caller. */
static void make_valid_utf8(char *p, size_t len)
{
    const unsigned char *s = (const unsigned char *)p;
    for (size_t i = 0; i < len;) {
        size_t n = cairn_utf8_sequence(s + i, len - i);
        if (n == 0) {
            p[i++] = '?';
            continue;
        }
        i += n;
    }
}

/* A fence line: up to 3 spaces, then 3+ backticks or tildes. @return the
 * fence length (0 if none) and its character. */
static size_t fence_at(const char *line, size_t len, char *ch)
{
    size_t i = 0;
    while (i < len && i < 3 && line[i] == ' ')
        i++;
    if (i >= len || (line[i] != '`' && line[i] != '~'))
        return 0;
    char c = line[i];
    size_t n = 0;
    while (i + n < len && line[i + n] == c)
        n++;
    if (n < 3)
        return 0;
    *ch = c;
    return n;
}

static void fence_info(struct prompt_text *pt, const char *line, size_t len, size_t fence)
{
    size_t i = 0;
    while (i < len && line[i] == ' ')
        i++;
    i += fence;
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    size_t k = 0;
    while (i < len && k + 1 < PROMPT_INFO_MAX && !isspace((unsigned char)line[i]) &&
           line[i] != '`' && line[i] != '{' && line[i] != ',')
        pt->info[k++] = (char)tolower((unsigned char)line[i++]);
    pt->info[k] = '\0';
}

/* Length of a markup tag at s[0..len) ("<task>", "</MARKER_LIST>", also
 * with full-width brackets U+FF1C/U+FF1E), or 0. Tags are not prose: they
 * would mislead the language identifier. */
static size_t tag_at(const char *s, size_t len)
{
    size_t open = s[0] == '<' ? 1 : (len >= 3 && memcmp(s, "\xEF\xBC\x9C", 3) == 0) ? 3 : 0;
    if (open == 0)
        return 0;
    size_t i = open + (open < len && s[open] == '/');
    size_t name = i;
    while (i < len && i - name < 40 && (isalnum((unsigned char)s[i]) || s[i] == '_'))
        i++;
    if (i == name)
        return 0;
    if (i < len && s[i] == '>')
        return i + 1;
    if (i + 3 <= len && memcmp(s + i, "\xEF\xBC\x9E", 3) == 0)
        return i + 3;
    return 0;
}

/* Prose of one line without inline code spans, URLs and markup tags. */
static void put_prose_line(struct cairn_buf *prose, const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        if (s[i] == '`') {
            const char *close = memchr(s + i + 1, '`', len - i - 1);
            if (close != NULL) {
                cairn_buf_put(prose, " ", 1);
                i = (size_t)(close - s) + 1;
                continue;
            }
        }
        if ((len - i > 7 && strncmp(s + i, "http://", 7) == 0) ||
            (len - i > 8 && strncmp(s + i, "https://", 8) == 0) ||
            (len - i > 4 && strncmp(s + i, "www.", 4) == 0 &&
             (i == 0 || isspace((unsigned char)s[i - 1])))) {
            while (i < len && !isspace((unsigned char)s[i]))
                i++;
            cairn_buf_put(prose, " ", 1);
            continue;
        }
        size_t tag = tag_at(s + i, len - i);
        if (tag > 0) {
            cairn_buf_put(prose, " ", 1);
            i += tag;
            continue;
        }
        size_t j = i + 1;
        while (j < len && s[j] != '`' && s[j] != 'h' && s[j] != 'w' && s[j] != '<' &&
               (unsigned char)s[j] != 0xEF)
            j++;
        cairn_buf_put(prose, s + i, j - i);
        i = j;
    }
    cairn_buf_put(prose, "\n", 1);
}

/* Move runs of code-looking lines from `raw` to the code: a run is code-
 * looking lines with blank or indented lines between them, and counts when
 * it has min_lines code-looking lines. */
static void split_unfenced(struct prompt_text *pt, const struct cairn_buf *raw,
                           struct cairn_buf *prose, struct cairn_buf *code,
                           const struct cairn_pattern *lines, int min_lines, struct cairn_match *md)
{
    size_t nlines = 0;
    for (size_t i = 0; i < raw->len; i++)
        nlines += raw->p[i] == '\n';
    if (raw->len == 0)
        return;
    size_t *starts = cairn_malloc((nlines + 2) * sizeof(*starts));
    unsigned char *kind = cairn_calloc(nlines + 1, 1); /* 1 = looks like code */
    size_t k = 0;
    starts[k++] = 0;
    for (size_t i = 0; i < raw->len; i++)
        if (raw->p[i] == '\n')
            starts[k++] = i + 1;
    /* raw ends with '\n', so the last start is raw->len: k - 1 lines, line i
     * being starts[i] .. starts[i + 1] - 1 plus its '\n'. */
    size_t count = k - 1;

    if (lines != NULL) {
        size_t at = 0, line = 0;
        while (at < raw->len && cairn_pattern_find(lines, raw->p, raw->len, at, md)) {
            size_t pos = cairn_pattern_start(md);
            while (line + 1 < count && starts[line + 1] <= pos)
                line++;
            kind[line] = 1;
            at = starts[line + 1] > pos ? starts[line + 1] : pos + 1;
        }
    }
    for (size_t i = 0; i < count;) {
        if (!kind[i]) {
            put_prose_line(prose, raw->p + starts[i], starts[i + 1] - starts[i] - 1);
            i++;
            continue;
        }
        size_t j = i, hits = 0, last = i;
        for (; j < count; j++) {
            const char *l = raw->p + starts[j];
            size_t len = starts[j + 1] - starts[j];
            bool blank = true;
            for (size_t c = 0; c < len && blank; c++)
                blank = isspace((unsigned char)l[c]);
            bool indented = len > 1 && (l[0] == ' ' || l[0] == '\t');
            if (kind[j]) {
                hits++;
                last = j;
            } else if (!blank && !indented) {
                break;
            }
        }
        bool is_code = hits >= (size_t)min_lines;
        for (size_t m = i; m <= last; m++) {
            const char *l = raw->p + starts[m];
            size_t len = starts[m + 1] - starts[m];
            if (len > 0 && l[len - 1] == '\n')
                len--;
            if (is_code) {
                cairn_buf_put(code, l, len);
                cairn_buf_put(code, "\n", 1);
                pt->code_lines++;
            } else {
                put_prose_line(prose, l, len);
            }
        }
        i = last + 1;
    }
    free(starts);
    free(kind);
}

bool cairn_prompt_text_read(struct prompt_text *pt, const cJSON *content, size_t head, size_t tail,
                            const struct cairn_pattern *lines, int min_lines,
                            struct cairn_match *md)
{
    memset(pt, 0, sizeof(*pt));
    struct cairn_buf text = {0}, raw = {0}, prose = {0}, code = {0};
    gather(content, head, tail, &text);
    make_valid_utf8(text.p, text.len);
    if (text.len == 0) {
        free(text.p);
        return false;
    }
    size_t fence = 0;
    char fch = 0;
    for (size_t i = 0; i < text.len;) {
        const char *nl = memchr(text.p + i, '\n', text.len - i);
        size_t end = nl ? (size_t)(nl - text.p) : text.len;
        const char *line = text.p + i;
        size_t len = end - i;
        char c;
        size_t f = fence_at(line, len, &c);
        if (fence > 0) {
            if (f >= fence && c == fch) {
                fence = 0;
            } else {
                cairn_buf_put(&code, line, len);
                cairn_buf_put(&code, "\n", 1);
                pt->code_lines++;
            }
        } else if (f > 0) {
            fence = f;
            fch = c;
            if (!pt->fenced)
                fence_info(pt, line, len, f);
            pt->fenced = true;
        } else {
            cairn_buf_put(&raw, line, len);
            cairn_buf_put(&raw, "\n", 1);
        }
        i = end + 1;
    }
    split_unfenced(pt, &raw, &prose, &code, lines, min_lines, md);
    free(text.p);
    free(raw.p);
    pt->prose = prose.p ? prose.p : cairn_strdup("");
    pt->prose_len = prose.len;
    pt->code = code.p ? code.p : cairn_strdup("");
    pt->code_len = code.len;
    return true;
}

void cairn_prompt_text_free(struct prompt_text *pt)
{
    free(pt->prose);
    free(pt->code);
    memset(pt, 0, sizeof(*pt));
}
