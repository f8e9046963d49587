/*
 * upstream.c — transfers to upstream APIs (see upstream.h): what a transfer
 * means whichever transport carries it (upstream_transport.h).
 *
 * An http:// endpoint's transfers go over cairn's own HTTP/1.1 client
 * (upstream_h1.c), an https:// one's over libcurl (upstream_curl.c). Both
 * hand this file the same things: "the request goes out now", the response
 * head line by line, body bytes. Here live the deadlines (the first byte of
 * the answer, then idleness between bytes: CURLOPT_TIMEOUT would cap the
 * whole transfer, which is wrong for a long stream), the response headers
 * and their limits, the check that the answer does not echo the gateway's
 * key, and back-pressure from the owner.
 */
#include "upstream.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "alloc.h"
#include "secret.h"
#include "upstream_transport.h"

const char *const CAIRN_UPSTREAM_ECONNECT = "upstream connection failed";
const char *const CAIRN_UPSTREAM_ECONNECT_TIMEOUT = "upstream connect timed out";
const char *const CAIRN_UPSTREAM_EFIRST_BYTE_TIMEOUT = "upstream first byte timed out";
const char *const CAIRN_UPSTREAM_EIDLE_TIMEOUT = "upstream went idle";
const char *const CAIRN_UPSTREAM_ETLS = "upstream TLS failure";
const char *const CAIRN_UPSTREAM_ECLOSED = "upstream closed the connection without an answer";
const char *const CAIRN_UPSTREAM_EPROTOCOL = "upstream sent a malformed or truncated answer";
const char *const CAIRN_UPSTREAM_ETOO_LARGE = "upstream answer too large";
const char *const CAIRN_UPSTREAM_EABORTED = "upstream transfer aborted";
const char *const CAIRN_UPSTREAM_EKEY_ECHO = "upstream answer contained the gateway's API key";

#define MAX_RESPONSE_HEADERS 100
/* A header store's first size (below): room for most answers, and under
 * 1 KiB, which glibc serves from its per-thread cache. */
#define FIRST_HEADER_SLOTS 16
#define FIRST_HEADER_TEXT  512

/* --- the client and its endpoints ----------------------------------------- */

struct cairn_upstream *cairn_upstream_new(struct event_base *base)
{
    struct cairn_upstream *up = cairn_calloc(1, sizeof(*up));
    up->base = base;
    up->h1 = cairn_h1_client_new(base);
    return up;
}

void cairn_upstream_free(struct cairn_upstream *up)
{
    if (up == NULL)
        return;
    cairn_curl_client_free(up->curl);
    cairn_h1_client_free(up->h1);
    free(up);
}

struct cairn_endpoint *cairn_endpoint_new(struct cairn_upstream *up,
                                          const struct cairn_upstream_config *cfg, char *err,
                                          size_t errlen)
{
    const char *key = cfg->api_key_env != NULL ? cairn_secret_env(cfg->api_key_env) : NULL;
    if (key != NULL && strpbrk(key, "\r\n") != NULL) {
        snprintf(err, errlen, "upstreams.%s: the variable %s holds a line break", cfg->name,
                 cfg->api_key_env);
        return NULL;
    }
    struct cairn_endpoint *ep = cairn_calloc(1, sizeof(*ep));
    ep->up = up;
    ep->cfg = cfg;
    ep->tls = strncmp(cfg->base_url, "https://", 8) == 0;
    if (!ep->tls && cairn_h1_endpoint_init(ep, err, errlen) < 0) {
        free(ep);
        return NULL;
    }
    /* libcurl (and OpenSSL under it) is set up in a worker only once an
     * https upstream is configured: an http-only worker never pays for it. */
    if (ep->tls && up != NULL && up->curl == NULL &&
        (up->curl = cairn_curl_client_new(up->base)) == NULL) {
        snprintf(err, errlen, "upstreams.%s: cannot set up libcurl", cfg->name);
        free(ep);
        return NULL;
    }
    if (key != NULL && key[0] != '\0') {
        size_t n = strlen(key) + sizeof("Authorization: Bearer ");
        ep->authorization = cairn_secret_alloc(n);
        snprintf(ep->authorization, n, "Authorization: Bearer %s", key);
        ep->key = ep->authorization + strlen("Authorization: Bearer ");
        ep->keylen = strlen(ep->key);
    }
    return ep;
}

void cairn_endpoint_free(struct cairn_endpoint *ep)
{
    if (ep == NULL)
        return;
    cairn_curl_endpoint_clear(ep);
    cairn_h1_endpoint_clear(ep);
    cairn_secret_free(ep->authorization);
    free(ep);
}

const char *cairn_endpoint_key(const struct cairn_endpoint *ep)
{
    return ep->key;
}

/* --- one transfer --------------------------------------------------------- */

static void arm_deadline(struct cairn_transfer *t, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(t->deadline, &tv);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct cairn_transfer *t = arg;
    if (t->error == NULL)
        t->error = !t->request_sent    ? CAIRN_UPSTREAM_ECONNECT_TIMEOUT
                   : t->got_first_byte ? CAIRN_UPSTREAM_EIDLE_TIMEOUT
                                       : CAIRN_UPSTREAM_EFIRST_BYTE_TIMEOUT;
    cairn_transfer_finish(t, t->error);
}

/*
 * An answer's response headers live in one block, `t->rhdrs` pointing at
 * its slots: the slots, then the names and values they point to. It starts
 * small and is replaced by one twice as large when either part is full,
 * within MAX_RESPONSE_HEADERS and CAIRN_UPSTREAM_MAX_HEADER_BYTES. One
 * allocation per answer, none per line, and none large: 1.6 KB of slots
 * allocated for every answer made glibc consolidate its fast bins each
 * time (a request of 1 KiB or more does), a few percent of a worker.
 */
struct header_store {
    size_t slots; /* capacity of hdr[] */
    size_t text;  /* capacity of the text after hdr[slots] */
    size_t used;  /* text bytes taken */
    struct cairn_upstream_header hdr[];
};

static struct header_store *store_of(const struct cairn_transfer *t)
{
    if (t->rhdrs == NULL)
        return NULL;
    return (struct header_store *)((char *)t->rhdrs - offsetof(struct header_store, hdr));
}

static char *store_text(struct header_store *s)
{
    return (char *)(s->hdr + s->slots);
}

/* A store with room for one more header of `need` text bytes. */
static struct header_store *store_room(struct cairn_transfer *t, size_t need)
{
    struct header_store *old = store_of(t);
    size_t slots = old != NULL ? old->slots : FIRST_HEADER_SLOTS;
    size_t text = old != NULL ? old->text : FIRST_HEADER_TEXT;
    size_t used = old != NULL ? old->used : 0;
    if (old != NULL && t->nrhdrs < slots && used + need <= text)
        return old;
    while (t->nrhdrs >= slots)
        slots *= 2;
    while (used + need > text)
        text *= 2;
    struct header_store *s = cairn_malloc(sizeof(*s) + slots * sizeof(s->hdr[0]) + text);
    s->slots = slots;
    s->text = text;
    s->used = used;
    if (old != NULL) { /* move the text, then point the slots into its copy */
        char *from = store_text(old), *to = store_text(s);
        memcpy(to, from, used);
        for (size_t i = 0; i < t->nrhdrs; i++) {
            s->hdr[i].name = to + (old->hdr[i].name - from);
            s->hdr[i].value = to + (old->hdr[i].value - from);
        }
        free(old);
    }
    t->rhdrs = s->hdr;
    return s;
}

static void clear_response_headers(struct cairn_transfer *t)
{
    struct header_store *s = store_of(t);
    if (s != NULL)
        s->used = 0;
    t->nrhdrs = 0;
}

static void transfer_free(struct cairn_transfer *t)
{
    if (t->ep->tls)
        cairn_curl_stop(t);
    else
        cairn_h1_stop(t);
    event_free(t->deadline);
    free(store_of(t));
    free(t->body);
    free(t);
}

struct cairn_transfer *cairn_transfer_start(struct cairn_endpoint *ep, const char *path,
                                            const char *const *headers, char *body, size_t len,
                                            const struct cairn_transfer_callbacks *cb, void *ctx)
{
    struct cairn_transfer *t = cairn_calloc(1, sizeof(*t));
    t->ep = ep;
    t->cb = cb;
    t->ctx = ctx;
    t->body = body;
    t->body_len = body != NULL ? len : 0;
    t->deadline = evtimer_new(ep->up->base, on_deadline, t);
    if (t->deadline == NULL) {
        fprintf(stderr, "cairn: out of memory starting an upstream transfer\n");
        abort();
    }
    /* Until the request goes out, the connect timeout (name lookup
     * included); the transports arm nothing themselves. */
    arm_deadline(t, ep->cfg->connect_timeout_ms);
    if (ep->tls)
        cairn_curl_start(t, path, headers);
    else
        cairn_h1_start(t, path, headers);
    return t;
}

void cairn_transfer_resume(struct cairn_transfer *t)
{
    if (!t->paused)
        return;
    t->paused = false;
    arm_deadline(t, t->ep->cfg->idle_timeout_ms);
    if (t->ep->tls)
        cairn_curl_resume(t);
    else
        cairn_h1_resume(t);
}

void cairn_transfer_cancel(struct cairn_transfer *t)
{
    if (t != NULL)
        transfer_free(t);
}

/* --- what the transports report ------------------------------------------- */

void cairn_transfer_finish(struct cairn_transfer *t, const char *errstr)
{
    void (*on_done)(void *, const char *) = t->cb->on_done;
    void *ctx = t->ctx;
    transfer_free(t);
    on_done(ctx, errstr);
}

void cairn_transfer_fail_soon(struct cairn_transfer *t, const char *errstr)
{
    t->error = errstr;
    arm_deadline(t, 0);
}

void cairn_transfer_sending(struct cairn_transfer *t)
{
    t->request_sent = true;
    arm_deadline(t, t->ep->cfg->first_byte_timeout_ms);
}

/* Any byte from the upstream: the first-byte deadline becomes an idle one. */
static void saw_bytes(struct cairn_transfer *t)
{
    t->got_first_byte = true;
    if (!t->paused)
        arm_deadline(t, t->ep->cfg->idle_timeout_ms);
}

/*
 * Some upstreams echo request headers back in error bodies (debug pages,
 * proxies that quote the failed request). An answer holding the gateway's
 * own key must never reach a client: the transfer fails instead. Body bytes
 * are checked across write boundaries through a short tail of the previous
 * write.
 */
static bool echoes_key(struct cairn_transfer *t, const char *data, size_t len, bool body)
{
    const struct cairn_endpoint *ep = t->ep;
    if (ep->keylen < 8) /* no key, or one too short to tell from text */
        return false;
    if (memmem(data, len, ep->key, ep->keylen) != NULL)
        return true;
    if (!body || ep->keylen > CAIRN_UPSTREAM_KEY_TAIL_MAX + 1)
        return false;
    size_t keep = ep->keylen - 1;
    char join[2 * CAIRN_UPSTREAM_KEY_TAIL_MAX];
    size_t head = len < keep ? len : keep;
    memcpy(join, t->key_tail, t->key_tail_len);
    memcpy(join + t->key_tail_len, data, head);
    bool found = memmem(join, t->key_tail_len + head, ep->key, ep->keylen) != NULL;
    /* The new tail: the last `keep` bytes of (old tail + data). */
    size_t total = t->key_tail_len + len;
    size_t from = total > keep ? total - keep : 0;
    char tail[CAIRN_UPSTREAM_KEY_TAIL_MAX];
    size_t n = 0;
    for (size_t i = from; i < total; i++)
        tail[n++] = i < t->key_tail_len ? t->key_tail[i] : data[i - t->key_tail_len];
    memcpy(t->key_tail, tail, n);
    t->key_tail_len = n;
    return found;
}

int cairn_transfer_head_line(struct cairn_transfer *t, const char *data, size_t len)
{
    saw_bytes(t);
    if (echoes_key(t, data, len, false)) {
        t->error = CAIRN_UPSTREAM_EKEY_ECHO;
        return -1;
    }
    if (t->head_done)
        return 0;   /* trailers */
    if (len == 0) { /* end of a header block; 1xx ones are skipped */
        if (t->status >= 200) {
            t->head_done = true;
            t->cb->on_head(t->ctx, t->status, t->rhdrs, t->nrhdrs);
            clear_response_headers(t);
        }
        return 0;
    }
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) { /* a (new) status line */
        /* "HTTP/x SSS ...": the digits after the first space (the line
         * is not NUL-terminated) */
        const char *sp = memchr(data, ' ', len);
        t->status = 0;
        for (size_t i = 1;
             sp != NULL && i <= 3 && sp + i < data + len && sp[i] >= '0' && sp[i] <= '9'; i++)
            t->status = t->status * 10 + (sp[i] - '0');
        clear_response_headers(t);
        return 0;
    }
    t->rhdr_bytes += len;
    const char *colon = memchr(data, ':', len);
    if (colon == NULL || t->nrhdrs >= MAX_RESPONSE_HEADERS ||
        t->rhdr_bytes > CAIRN_UPSTREAM_MAX_HEADER_BYTES) {
        t->error = CAIRN_UPSTREAM_EPROTOCOL;
        return -1;
    }
    size_t nlen = (size_t)(colon - data);
    const char *v = colon + 1;
    while (v < data + len && (*v == ' ' || *v == '\t'))
        v++;
    const char *vend = data + len;
    while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
        vend--;
    size_t vlen = (size_t)(vend - v);
    struct header_store *s = store_room(t, nlen + vlen + 2);
    char *name = store_text(s) + s->used;
    memcpy(name, data, nlen);
    name[nlen] = '\0';
    memcpy(name + nlen + 1, v, vlen);
    name[nlen + 1 + vlen] = '\0';
    s->used += nlen + vlen + 2;
    s->hdr[t->nrhdrs].name = name;
    s->hdr[t->nrhdrs].value = name + nlen + 1;
    t->nrhdrs++;
    return 0;
}

int cairn_transfer_body(struct cairn_transfer *t, const char *data, size_t len)
{
    saw_bytes(t);
    if (!t->paused_data && echoes_key(t, data, len, true)) {
        t->error = CAIRN_UPSTREAM_EKEY_ECHO;
        return -1;
    }
    int rc = t->cb->on_data(t->ctx, data, len);
    t->paused_data = rc > 0; /* the same bytes come again: checked already */
    if (rc == 0)
        return 0;
    if (rc > 0) {
        t->paused = true;
        evtimer_del(t->deadline); /* a slow client is not an idle upstream */
        return 1;
    }
    t->error = CAIRN_UPSTREAM_EABORTED;
    return -1;
}
