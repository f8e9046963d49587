/*
 * http_parser.h — cairn's own strict HTTP/1.1 request parser (RFC 9112).
 *
 * Pure code: no I/O, no libevent state. The connection layer hands it the
 * bytes received so far; it answers "need more", "head complete after N
 * bytes" or "reject with status S". Anything a lenient parser would guess
 * about (duplicate or signed Content-Length, Transfer-Encoding on HTTP/1.0,
 * obsolete line folding, whitespace before the colon, NUL or bare CR/LF in a
 * field) is rejected, because two parsers guessing differently is exactly
 * what request smuggling exploits.
 */
#ifndef CAIRN_HTTP_PARSER_H
#define CAIRN_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct evbuffer;

struct cairn_http_header {
    const char *name; /* NUL-terminated, points into cairn_http_head.block */
    size_t name_len;
    const char *value; /* NUL-terminated, leading/trailing OWS removed */
    size_t value_len;
};

enum cairn_http_body {
    CAIRN_BODY_NONE,    /* no Content-Length, no Transfer-Encoding */
    CAIRN_BODY_LENGTH,  /* Content-Length: content_length bytes follow */
    CAIRN_BODY_CHUNKED, /* Transfer-Encoding: chunked */
};

/* A parsed request head. Every string points into `block`, which it owns. */
struct cairn_http_head {
    char *block; /* owned: a private copy of the head bytes */
    size_t block_len;
    const char *method;
    size_t method_len;
    const char *target; /* origin-form: starts with '/' */
    size_t target_len;
    int minor_version;                 /* 0 for HTTP/1.0, 1 for 1.1 and later 1.x */
    struct cairn_http_header *headers; /* owned */
    size_t nheaders;
    enum cairn_http_body body;
    uint64_t content_length; /* valid when body == CAIRN_BODY_LENGTH */
    bool keep_alive;         /* after the version default and Connection */
    bool expect_continue;    /* Expect: 100-continue */
};

/* Incremental state: lets a head trickling in byte by byte be scanned in
 * linear time. Zero it (or call cairn_http_parser_init) per request. */
struct cairn_http_parser {
    size_t max_head_bytes; /* head larger than this: 431 */
    size_t max_head_lines; /* more header lines than this: 431 */
    size_t scanned;        /* private: bytes already examined */
    size_t line_start;     /* private: offset of the line being scanned */
    size_t lines;          /* private: lines ended so far */
    size_t skipped;        /* private: leading empty lines (RFC 9112 §2.2) */
};

void cairn_http_parser_init(struct cairn_http_parser *p, size_t max_head_bytes,
                            size_t max_head_lines);

/**
 * Look for a complete request head at the start of buf[0..len).
 * @return >0: the head ends after that many bytes (`head` is filled and must
 *         be released with cairn_http_head_free); 0: incomplete, call again
 *         with more bytes (the same prefix plus what arrived); <0: minus the
 *         HTTP status to answer with before closing (400, 431, 501, 505),
 *         `*errstr` says why.
 */
ssize_t cairn_http_parse_head(struct cairn_http_parser *p, const char *buf, size_t len,
                              struct cairn_http_head *head, const char **errstr);

/** Release a head; its bytes are wiped first (they may hold credentials). */
void cairn_http_head_free(struct cairn_http_head *head);

/** Wipe the value of every header called `name` (any case), e.g. a
 *  credential once it has been checked: the header stays, its value is "". */
void cairn_http_head_wipe(struct cairn_http_head *head, const char *name);

/** Case-insensitive lookup of the first header called `name`, or NULL. */
const struct cairn_http_header *cairn_http_head_find(const struct cairn_http_head *head,
                                                     const char *name);

/** True when `name` is a token and `value` only field characters (RFC 9110
 *  §5.5): what may be written into a header line. */
bool cairn_http_field_valid(const char *name, const char *value);

/** True when the comma-separated header value holds `token` (any case),
 *  e.g. "close" in "Connection: keep-alive, Close". */
bool cairn_http_list_has_token(const char *value, const char *token);

/* Decoder for a chunked request body (RFC 9112 §7.1). Extensions are
 * skipped, trailers read and dropped. Zero it (or call _init) per body. */
struct cairn_chunked {
    uint64_t max_body;    /* decoded bytes allowed in total: past it, 413 */
    size_t max_line;      /* size line or trailer line longer than this: 400 */
    uint64_t total;       /* decoded bytes announced so far: counted at each size
                             line, so a chunk past max_body is refused unread */
    uint64_t remaining;   /* data bytes left in the current chunk */
    size_t line_len;      /* bytes of the current size/trailer line */
    size_t trailer_lines; /* trailer lines read */
    int state;            /* private */
    bool digits;          /* private: the size line has a digit */
    bool in_ext;          /* private: inside a chunk extension */
};

void cairn_chunked_init(struct cairn_chunked *c, uint64_t max_body, size_t max_line);

/**
 * Decode in[0..len), appending payload bytes to `out`.
 * @return bytes consumed (all of them unless the body ended earlier), or
 *         minus the HTTP status (400, 413) on error with `*errstr` set.
 *         `*done` becomes true once the last chunk and trailers are read;
 *         bytes after that point are not consumed (they are the next
 *         pipelined request).
 */
ssize_t cairn_chunked_decode(struct cairn_chunked *c, const char *in, size_t len,
                             struct evbuffer *out, bool *done, const char **errstr);

#endif
