/*
 * http_parser.c — strict HTTP/1.1 request heads and chunked bodies
 * (RFC 9110, RFC 9112). See http_parser.h for the contract.
 *
 * Two phases. Scanning runs over the bytes as they arrive, remembers how far
 * it got, and only looks for the end of the head, the line count and bare
 * LFs, so a head trickling in byte by byte costs linear time. Parsing runs
 * once on the complete head: it copies it, splits it into fields in place,
 * and applies the framing rules. Whenever the message could be read two
 * ways, it is rejected rather than interpreted.
 */
#include "http_parser.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "alloc.h"

/* RFC 9110 §5.6.2: token characters. */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* RFC 9110 §5.5: field-vchar (VCHAR / obs-text). */
static bool is_field_vchar(unsigned char c)
{
    return (c > 0x20 && c < 0x7f) || c >= 0x80;
}

static bool is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

void cairn_http_parser_init(struct cairn_http_parser *p, size_t max_head_bytes,
                            size_t max_head_lines)
{
    memset(p, 0, sizeof(*p));
    p->max_head_bytes = max_head_bytes;
    p->max_head_lines = max_head_lines;
}

void cairn_http_head_free(struct cairn_http_head *head)
{
    if (head->block != NULL)
        explicit_bzero(head->block, head->block_len);
    free(head->block);
    free(head->headers);
    memset(head, 0, sizeof(*head));
}

void cairn_http_head_wipe(struct cairn_http_head *head, const char *name)
{
    for (size_t i = 0; i < head->nheaders; i++) {
        struct cairn_http_header *h = &head->headers[i];
        if (strcasecmp(h->name, name) == 0) {
            explicit_bzero((char *)h->value, h->value_len);
            h->value_len = 0;
        }
    }
}

const struct cairn_http_header *cairn_http_head_find(const struct cairn_http_head *head,
                                                     const char *name)
{
    for (size_t i = 0; i < head->nheaders; i++)
        if (strcasecmp(head->headers[i].name, name) == 0)
            return &head->headers[i];
    return NULL;
}

/* Whether line[0, n) ends in " HTTP/" DIGIT "." DIGIT (RFC 9112 §2.3). */
static bool ends_in_version(const char *line, size_t n)
{
    static const char proto[] = " HTTP/";
    size_t k = sizeof(proto) - 1;
    if (n < k + 3)
        return false;
    const char *v = line + n - (k + 3);
    return memcmp(v, proto, k) == 0 && isdigit((unsigned char)v[k]) && v[k + 1] == '.' &&
           isdigit((unsigned char)v[k + 2]);
}

/*
 * Advance the scan over buf[p->scanned..len). @return the head length when
 * the empty line ending it has been seen, 0 when more bytes are needed, or
 * minus a status.
 */
static ssize_t scan_head(struct cairn_http_parser *p, const char *buf, size_t len,
                         const char **errstr)
{
    for (size_t i = p->scanned; i < len; i++) {
        if (i >= p->max_head_bytes) {
            *errstr = "request header block too large";
            return -431;
        }
        if (buf[i] != '\n') {
            /* RFC 9112 §2.2: a bare CR is invalid. Refuse it here rather
             * than wait for an LF that a CR-only client never sends. */
            if (i > 0 && buf[i - 1] == '\r') {
                *errstr = "bare CR in request head";
                return -400;
            }
            continue;
        }
        if (i == 0 || buf[i - 1] != '\r') {
            *errstr = "bare LF in request head";
            return -400;
        }
        size_t start = p->line_start; /* the line is buf[start, i - 1) */
        bool empty = (i - 1 == start);
        p->line_start = i + 1;
        if (empty && p->lines == 0) {
            /* RFC 9112 §2.2: ignore empty lines before the request line. */
            p->skipped = i + 1;
            continue;
        }
        if (empty) {
            p->scanned = i + 1;
            return (ssize_t)(i + 1);
        }
        /* A request line that does not end in " HTTP/d.d" (HTTP/0.9, or
         * not HTTP at all) is refused as soon as it ends: such a client
         * never sends the blank line that would end a head. */
        if (p->lines == 0 && !ends_in_version(buf + start, i - 1 - start)) {
            *errstr = "malformed request line";
            return -400;
        }
        if (++p->lines > p->max_head_lines + 1) { /* +1: the request line */
            *errstr = "too many header lines";
            return -431;
        }
    }
    p->scanned = len;
    return 0;
}

/* Split the request line at `line` (NUL-terminated, CR removed). */
static int parse_request_line(struct cairn_http_head *head, char *line, const char **errstr)
{
    char *sp1 = line;
    while (is_tchar((unsigned char)*sp1))
        sp1++;
    if (sp1 == line || *sp1 != ' ') {
        *errstr = "malformed request line";
        return -400;
    }
    char *target = sp1 + 1;
    char *sp2 = target;
    while (*sp2 > 0x20 && *sp2 < 0x7f)
        sp2++;
    if (sp2 == target || *sp2 != ' ') {
        *errstr = "malformed request line";
        return -400;
    }
    if (*target != '/') {
        *errstr = "request target must be in origin form";
        return -400;
    }
    const char *version = sp2 + 1;
    if (strncmp(version, "HTTP/", 5) != 0 || !isdigit((unsigned char)version[5]) ||
        version[6] != '.' || !isdigit((unsigned char)version[7]) || version[8] != '\0') {
        *errstr = "malformed HTTP version";
        return -400;
    }
    if (version[5] != '1') {
        *errstr = "HTTP version not supported";
        return -505;
    }
    *sp1 = '\0';
    *sp2 = '\0';
    head->method = line;
    head->method_len = (size_t)(sp1 - line);
    head->target = target;
    head->target_len = (size_t)(sp2 - target);
    /* RFC 9110 §2.5: a higher minor version is read as the highest we
     * implement. */
    head->minor_version = version[7] == '0' ? 0 : 1;
    return 0;
}

/* Split one header line (NUL-terminated, CR removed) into name and value. */
static int parse_header_line(char *line, struct cairn_http_header *h, const char **errstr)
{
    if (is_ows((unsigned char)*line)) {
        *errstr = "obsolete line folding";
        return -400;
    }
    char *colon = line;
    while (is_tchar((unsigned char)*colon))
        colon++;
    if (colon == line || *colon != ':') {
        *errstr = (colon != line && is_ows((unsigned char)*colon))
                      ? "whitespace between header name and colon"
                      : "malformed header name";
        return -400;
    }
    *colon = '\0';
    h->name = line;
    h->name_len = (size_t)(colon - line);

    char *value = colon + 1;
    while (is_ows((unsigned char)*value))
        value++;
    char *end = value;
    char *last = value; /* one past the last non-OWS character */
    for (; *end != '\0'; end++) {
        unsigned char c = (unsigned char)*end;
        if (is_field_vchar(c))
            last = end + 1;
        else if (!is_ows(c)) {
            *errstr = "invalid character in header value";
            return -400;
        }
    }
    *last = '\0';
    h->value = value;
    h->value_len = (size_t)(last - value);
    return 0;
}

bool cairn_http_field_valid(const char *name, const char *value)
{
    if (*name == '\0')
        return false;
    for (const char *p = name; *p != '\0'; p++)
        if (!is_tchar((unsigned char)*p))
            return false;
    for (const char *p = value; *p != '\0'; p++)
        if (!is_field_vchar((unsigned char)*p) && !is_ows((unsigned char)*p))
            return false;
    return true;
}

bool cairn_http_list_has_token(const char *value, const char *token)
{
    size_t tlen = strlen(token);
    const char *s = value;
    while (*s != '\0') {
        while (*s == ',' || is_ows((unsigned char)*s))
            s++;
        const char *e = s;
        while (*e != '\0' && *e != ',')
            e++;
        const char *t = e;
        while (t > s && is_ows((unsigned char)t[-1]))
            t--;
        if ((size_t)(t - s) == tlen && strncasecmp(s, token, tlen) == 0)
            return true;
        s = e;
    }
    return false;
}

static int parse_content_length(const char *v, uint64_t *out)
{
    uint64_t n = 0;
    if (*v == '\0')
        return -1;
    for (; *v != '\0'; v++) {
        if (!isdigit((unsigned char)*v))
            return -1;
        if (n > (UINT64_MAX - 9) / 10)
            return -1;
        n = n * 10 + (uint64_t)(*v - '0');
    }
    *out = n;
    return 0;
}

/* Apply RFC 9112 §6 framing and the connection options to a split head. */
static int apply_semantics(struct cairn_http_head *head, const char **errstr)
{
    size_t n_cl = 0, n_te = 0, n_host = 0;
    const struct cairn_http_header *cl = NULL, *te = NULL;

    head->keep_alive = head->minor_version == 1;
    for (size_t i = 0; i < head->nheaders; i++) {
        const struct cairn_http_header *h = &head->headers[i];
        if (strcasecmp(h->name, "content-length") == 0) {
            n_cl++;
            cl = h;
        } else if (strcasecmp(h->name, "transfer-encoding") == 0) {
            n_te++;
            te = h;
        } else if (strcasecmp(h->name, "host") == 0) {
            n_host++;
        } else if (strcasecmp(h->name, "connection") == 0) {
            if (cairn_http_list_has_token(h->value, "close"))
                head->keep_alive = false;
            else if (cairn_http_list_has_token(h->value, "keep-alive"))
                head->keep_alive = true;
        } else if (strcasecmp(h->name, "expect") == 0 && head->minor_version == 1) {
            head->expect_continue = strcasecmp(h->value, "100-continue") == 0;
        }
    }
    /* An explicit "close" wins over any "keep-alive" on another line. */
    for (size_t i = 0; i < head->nheaders; i++)
        if (strcasecmp(head->headers[i].name, "connection") == 0 &&
            cairn_http_list_has_token(head->headers[i].value, "close"))
            head->keep_alive = false;

    if (n_host > 1 || (n_host == 0 && head->minor_version == 1)) {
        *errstr = n_host ? "more than one Host header" : "missing Host header";
        return -400;
    }
    if (n_cl > 1) {
        *errstr = "more than one Content-Length";
        return -400;
    }
    if (n_te > 1) {
        *errstr = "more than one Transfer-Encoding";
        return -400;
    }
    if (cl != NULL && te != NULL) {
        *errstr = "both Content-Length and Transfer-Encoding";
        return -400;
    }
    if (te != NULL) {
        if (head->minor_version == 0) {
            *errstr = "Transfer-Encoding in an HTTP/1.0 request";
            return -400;
        }
        if (strcasecmp(te->value, "chunked") != 0) {
            *errstr = "unsupported Transfer-Encoding";
            return -501;
        }
        head->body = CAIRN_BODY_CHUNKED;
    } else if (cl != NULL) {
        if (parse_content_length(cl->value, &head->content_length) < 0) {
            *errstr = "invalid Content-Length";
            return -400;
        }
        head->body = CAIRN_BODY_LENGTH;
    } else {
        head->body = CAIRN_BODY_NONE;
    }
    return 0;
}

/* Parse the complete head buf[0..len) (len includes the final CRLF). */
static int parse_complete_head(struct cairn_http_head *head, const char *buf, size_t len,
                               size_t nlines, const char **errstr)
{
    memset(head, 0, sizeof(*head));
    head->block = cairn_strndup(buf, len);
    head->block_len = len;
    head->headers = cairn_calloc(nlines, sizeof(*head->headers));

    char *line = head->block;
    char *block_end = head->block + len;
    bool first = true;
    while (line < block_end) {
        char *cr = memchr(line, '\r', (size_t)(block_end - line));
        /* The scan guarantees every LF follows a CR; a CR not followed by
         * LF is a bare CR inside a line. */
        if (cr == NULL || cr + 1 >= block_end || cr[1] != '\n') {
            *errstr = "bare CR in request head";
            return -400;
        }
        if (cr == line) /* the empty line ending the head */
            break;
        *cr = '\0';
        if (memchr(line, '\0', (size_t)(cr - line)) != NULL) {
            *errstr = "NUL in request head";
            return -400;
        }
        int rc = first ? parse_request_line(head, line, errstr)
                       : parse_header_line(line, &head->headers[head->nheaders++], errstr);
        if (rc < 0)
            return rc;
        first = false;
        line = cr + 2;
    }
    return apply_semantics(head, errstr);
}

ssize_t cairn_http_parse_head(struct cairn_http_parser *p, const char *buf, size_t len,
                              struct cairn_http_head *head, const char **errstr)
{
    *errstr = NULL;
    ssize_t end = scan_head(p, buf, len, errstr);
    if (end <= 0)
        return end;
    int rc =
        parse_complete_head(head, buf + p->skipped, (size_t)end - p->skipped, p->lines, errstr);
    if (rc < 0) {
        cairn_http_head_free(head);
        return rc;
    }
    return end;
}

/* --- chunked bodies ------------------------------------------------------ */

enum {
    CH_SIZE,    /* hex digits of the chunk size */
    CH_SIZE_WS, /* whitespace after the size: only a ';' may follow */
    CH_EXT,     /* chunk extension, skipped up to CR */
    CH_SIZE_LF, /* LF ending the size line */
    CH_DATA,    /* chunk payload */
    CH_DATA_CR, /* CRLF after the payload */
    CH_DATA_LF,
    CH_TRAILER, /* start of a trailer line or of the final CRLF */
    CH_TRAILER_LINE,
    CH_TRAILER_LF,
    CH_FINAL_LF,
};

#define CH_MAX_TRAILER_LINES 100

void cairn_chunked_init(struct cairn_chunked *c, uint64_t max_body, size_t max_line)
{
    memset(c, 0, sizeof(*c));
    c->max_body = max_body;
    c->max_line = max_line;
    c->state = CH_SIZE;
}

static int hex_value(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = (unsigned char)tolower(ch);
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

static ssize_t chunk_error(const char **errstr, const char *why, int status)
{
    *errstr = why;
    return -status;
}

ssize_t cairn_chunked_decode(struct cairn_chunked *c, const char *in, size_t len,
                             struct evbuffer *out, bool *done, const char **errstr)
{
    size_t i = 0;
    *done = false;
    *errstr = NULL;
    while (i < len) {
        unsigned char ch = (unsigned char)in[i];
        if (c->state == CH_DATA) {
            size_t n = len - i;
            if (n > c->remaining)
                n = (size_t)c->remaining;
            evbuffer_add(out, in + i, n);
            c->remaining -= n;
            i += n;
            if (c->remaining == 0)
                c->state = CH_DATA_CR;
            continue;
        }
        i++;
        if (c->state == CH_SIZE || c->state == CH_SIZE_WS || c->state == CH_EXT ||
            c->state == CH_TRAILER_LINE) {
            if (++c->line_len > c->max_line)
                return chunk_error(errstr, "chunk size or trailer line too long", 400);
        }
        switch (c->state) {
        case CH_SIZE: {
            int v = hex_value(ch);
            if (v >= 0) {
                if (c->remaining > (UINT64_MAX >> 4))
                    return chunk_error(errstr, "chunk size overflows", 400);
                c->remaining = (c->remaining << 4) | (uint64_t)v;
                c->digits = true;
            } else if (!c->digits) {
                return chunk_error(errstr, "missing chunk size", 400);
            } else if (ch == '\r') {
                c->state = CH_SIZE_LF;
            } else if (ch == ';') {
                c->state = CH_EXT;
            } else if (is_ows(ch)) {
                c->state = CH_SIZE_WS;
            } else {
                return chunk_error(errstr, "invalid chunk size", 400);
            }
            break;
        }
        case CH_SIZE_WS:
            if (ch == ';')
                c->state = CH_EXT;
            else if (!is_ows(ch))
                return chunk_error(errstr, "invalid chunk size", 400);
            break;
        case CH_EXT:
            if (ch == '\r')
                c->state = CH_SIZE_LF;
            else if (!is_field_vchar(ch) && !is_ows(ch))
                return chunk_error(errstr, "invalid chunk extension", 400);
            break;
        case CH_SIZE_LF:
            if (ch != '\n')
                return chunk_error(errstr, "missing LF after chunk size", 400);
            if (c->remaining > c->max_body - c->total)
                return chunk_error(errstr, "request body too large", 413);
            c->total += c->remaining;
            c->line_len = 0;
            c->digits = false;
            c->state = c->remaining == 0 ? CH_TRAILER : CH_DATA;
            break;
        case CH_DATA_CR:
            if (ch != '\r')
                return chunk_error(errstr, "chunk data longer than its size", 400);
            c->state = CH_DATA_LF;
            break;
        case CH_DATA_LF:
            if (ch != '\n')
                return chunk_error(errstr, "missing LF after chunk data", 400);
            c->state = CH_SIZE;
            break;
        case CH_TRAILER:
            if (ch == '\r') {
                c->state = CH_FINAL_LF;
                break;
            }
            if (++c->trailer_lines > CH_MAX_TRAILER_LINES)
                return chunk_error(errstr, "too many trailer lines", 400);
            c->line_len = 1;
            c->state = CH_TRAILER_LINE;
            if (ch == '\n' || ch == '\0')
                return chunk_error(errstr, "invalid trailer line", 400);
            break;
        case CH_TRAILER_LINE:
            if (ch == '\r')
                c->state = CH_TRAILER_LF;
            else if (ch == '\n' || ch == '\0')
                return chunk_error(errstr, "invalid trailer line", 400);
            break;
        case CH_TRAILER_LF:
            if (ch != '\n')
                return chunk_error(errstr, "bare CR in trailer", 400);
            c->line_len = 0;
            c->state = CH_TRAILER;
            break;
        case CH_FINAL_LF:
            if (ch != '\n')
                return chunk_error(errstr, "missing final CRLF", 400);
            *done = true;
            return (ssize_t)i;
        default: return chunk_error(errstr, "chunked decoder in a bad state", 400);
        }
    }
    return (ssize_t)i;
}
