/*
 * upstream.c — libcurl's multi interface on the worker's libevent base
 * (see upstream.h, and STYLE.md pattern A).
 *
 * curl tells us which sockets to watch (on_curl_socket) and when to wake it
 * (on_curl_timer); libevent calls back and we hand the readiness to
 * curl_multi_socket_action, then collect finished transfers. Two deadlines
 * curl does not offer in the form a proxy needs are ours: the first byte of
 * the answer, and idleness between body bytes (CURLOPT_TIMEOUT would cap
 * the whole transfer, which is wrong for a long stream). Timer expiry and
 * cancellation remove the easy handle from libevent callbacks, never from
 * inside a curl callback.
 */
#include "upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "alloc.h"
#include "log.h"
#include "secret.h"

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

#define MAX_RESPONSE_HEADERS      100
#define MAX_IDLE_EASY_HANDLES     64
#define MAX_IDLE_CONNECTIONS      64  /* per worker, every upstream together */
#define KEY_TAIL_MAX              256 /* longer keys are checked within each write only */
#define MAX_RESPONSE_HEADER_BYTES (64 * 1024)

struct cairn_upstream {
    struct event_base *base;
    CURLM *multi;
    struct event *timer; /* curl's own timeouts */
};

/* Easy handles carry per-endpoint options (CA file, connect timeout), so
 * each endpoint keeps its own idle ones; connections themselves live in
 * the multi handle's pool and are shared. */
struct cairn_endpoint {
    struct cairn_upstream *up; /* NULL for an endpoint that is only checked */
    const struct cairn_upstream_config *cfg;
    char *authorization; /* secret memory: "Authorization: Bearer …" or NULL; never logged */
    const char *key;     /* the key inside `authorization` */
    size_t keylen;
    CURL *idle[MAX_IDLE_EASY_HANDLES]; /* finished easy handles, for reuse */
    size_t nidle;
};

struct cairn_transfer {
    struct cairn_endpoint *ep;
    CURL *easy;
    struct curl_slist *headers; /* owned: request headers */
    struct curl_slist auth;     /* the endpoint's Authorization, linked last in `headers` */
    char *body;                 /* owned: POST body */
    struct event *deadline;     /* first byte, then idleness */
    const struct cairn_transfer_callbacks *cb;
    void *ctx;

    int status;                          /* of the header block being read */
    struct cairn_upstream_header *rhdrs; /* owned strings: response headers */
    size_t nrhdrs;
    size_t rhdr_bytes;
    bool request_sent;
    bool got_first_byte;
    bool head_done;
    char key_tail[KEY_TAIL_MAX]; /* last bytes of the body, for a key split across writes */
    size_t key_tail_len;
    bool paused;
    bool paused_data;  /* the bytes of the last write are coming again */
    bool clean_end;    /* curl completed it: its handle is fit for reuse */
    const char *error; /* why we stopped it from a curl callback */
};

/* --- the multi handle on libevent ---------------------------------------- */

static void transfer_free(struct cairn_transfer *t);

static const char *map_curl_error(const struct cairn_transfer *t, CURLcode rc)
{
    if (t->error != NULL)
        return t->error;
    switch (rc) {
    case CURLE_OK: return t->head_done ? NULL : CAIRN_UPSTREAM_EPROTOCOL;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT: return CAIRN_UPSTREAM_ECONNECT;
    case CURLE_OPERATION_TIMEDOUT:
        return t->got_first_byte ? CAIRN_UPSTREAM_EIDLE_TIMEOUT : CAIRN_UPSTREAM_ECONNECT_TIMEOUT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE: return CAIRN_UPSTREAM_ETLS;
    default: return CAIRN_UPSTREAM_EPROTOCOL;
    }
}

/* Finish a transfer: free it, then tell its owner (who may start another). */
static void transfer_finish(struct cairn_transfer *t, const char *errstr)
{
    void (*on_done)(void *, const char *) = t->cb->on_done;
    void *ctx = t->ctx;
    transfer_free(t);
    on_done(ctx, errstr);
}

static void check_multi_info(struct cairn_upstream *up)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(up->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct cairn_transfer *t = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        CURLcode rc = msg->data.result;
        t->clean_end = rc == CURLE_OK;
        transfer_finish(t, map_curl_error(t, rc));
    }
}

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    struct cairn_upstream *up = arg;
    int action =
        ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running = 0;
    curl_multi_socket_action(up->multi, fd, action, &running);
    check_multi_info(up);
}

static void on_timer_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct cairn_upstream *up = arg;
    int running = 0;
    curl_multi_socket_action(up->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_multi_info(up);
}

/* CURLMOPT_SOCKETFUNCTION: watch `s` as curl asks. `sockp` is our event. */
static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *sockp)
{
    (void)easy;
    struct cairn_upstream *up = userp;
    struct event *ev = sockp;
    if (what == CURL_POLL_REMOVE) {
        if (ev != NULL)
            event_free(ev);
        return 0;
    }
    short kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) |
                         ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
    if (ev == NULL) {
        ev = event_new(up->base, s, kind, on_socket_event, up);
        if (ev == NULL)
            return -1;
        curl_multi_assign(up->multi, s, ev);
    } else {
        event_del(ev);
        event_assign(ev, up->base, s, kind, on_socket_event, up);
    }
    event_add(ev, NULL);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: arm or disarm our single timer; never call curl. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct cairn_upstream *up = userp;
    if (timeout_ms < 0) {
        evtimer_del(up->timer);
        return 0;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(up->timer, &tv);
    return 0;
}

struct cairn_upstream *cairn_upstream_new(struct event_base *base, char *err, size_t errlen)
{
    static bool curl_ready;
    if (!curl_ready) {
        /* curl's buffers hold the Authorization header it sends: they are
         * wiped when curl frees them (secret.h). */
        if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, malloc, cairn_scrub_free, cairn_scrub_realloc,
                                 strdup, calloc) != CURLE_OK) {
            snprintf(err, errlen, "libcurl initialisation failed");
            return NULL;
        }
        curl_ready = true;
    }
    struct cairn_upstream *up = cairn_calloc(1, sizeof(*up));
    up->base = base;
    up->multi = curl_multi_init();
    up->timer = evtimer_new(base, on_timer_event, up);
    if (up->multi == NULL || up->timer == NULL) {
        snprintf(err, errlen, "cannot create the upstream client");
        cairn_upstream_free(up);
        return NULL;
    }
    curl_multi_setopt(up->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(up->multi, CURLMOPT_SOCKETDATA, up);
    curl_multi_setopt(up->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(up->multi, CURLMOPT_TIMERDATA, up);
    /* Idle upstream connections kept for reuse. libcurl's default, four
     * per transfer in progress, shrinks as transfers end, and closed
     * about one connection in twenty under a steady load: each costs a
     * connect (and a TLS handshake) on the next request. A fixed 64 covers
     * the concurrency one worker serves steadily; more would only keep,
     * after a burst, connections holding libcurl's buffers (a burst of
     * 500 left 256 open with a cap of 256: 1.2 MiB more per worker). */
    curl_multi_setopt(up->multi, CURLMOPT_MAXCONNECTS, (long)MAX_IDLE_CONNECTIONS);
    return up;
}

void cairn_upstream_free(struct cairn_upstream *up)
{
    if (up == NULL)
        return;
    if (up->multi != NULL)
        curl_multi_cleanup(up->multi);
    if (up->timer != NULL)
        event_free(up->timer);
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
    while (ep->nidle > 0)
        curl_easy_cleanup(ep->idle[--ep->nidle]);
    cairn_secret_free(ep->authorization);
    free(ep);
}

const char *cairn_endpoint_key(const struct cairn_endpoint *ep)
{
    return ep->key;
}

/* --- one transfer -------------------------------------------------------- */

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
        t->error =
            t->got_first_byte ? CAIRN_UPSTREAM_EIDLE_TIMEOUT : CAIRN_UPSTREAM_EFIRST_BYTE_TIMEOUT;
    transfer_finish(t, t->error);
}

/* CURLOPT_PREREQFUNCTION: connected (TLS included), the request goes out
 * now: from here the answer's first byte is due within the deadline.
 * libcurl calls this again when it wants to re-send the request on a new
 * connection because a reused one closed without an answer; the upstream
 * may have acted on the first copy (a paid completion), so that retry is
 * refused and the request fails instead. */
static int on_curl_prereq(void *arg, char *conn_primary_ip, char *conn_local_ip,
                          int conn_primary_port, int conn_local_port)
{
    (void)conn_primary_ip;
    (void)conn_local_ip;
    (void)conn_primary_port;
    (void)conn_local_port;
    struct cairn_transfer *t = arg;
    if (t->request_sent) {
        t->error = CAIRN_UPSTREAM_ECLOSED;
        return CURL_PREREQFUNC_ABORT;
    }
    t->request_sent = true;
    arm_deadline(t, t->ep->cfg->first_byte_timeout_ms);
    return CURL_PREREQFUNC_OK;
}

/* Any byte from the upstream: the first-byte deadline becomes an idle one. */
static void saw_bytes(struct cairn_transfer *t)
{
    t->got_first_byte = true;
    if (!t->paused)
        arm_deadline(t, t->ep->cfg->idle_timeout_ms);
}

static void clear_response_headers(struct cairn_transfer *t)
{
    for (size_t i = 0; i < t->nrhdrs; i++)
        free((char *)t->rhdrs[i].name); /* name and value share one block */
    t->nrhdrs = 0;
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
    if (!body || ep->keylen > KEY_TAIL_MAX + 1)
        return false;
    size_t keep = ep->keylen - 1;
    char join[2 * KEY_TAIL_MAX];
    size_t head = len < keep ? len : keep;
    memcpy(join, t->key_tail, t->key_tail_len);
    memcpy(join + t->key_tail_len, data, head);
    bool found = memmem(join, t->key_tail_len + head, ep->key, ep->keylen) != NULL;
    /* The new tail: the last `keep` bytes of (old tail + data). */
    size_t total = t->key_tail_len + len;
    size_t from = total > keep ? total - keep : 0;
    char tail[KEY_TAIL_MAX];
    size_t n = 0;
    for (size_t i = from; i < total; i++)
        tail[n++] = i < t->key_tail_len ? t->key_tail[i] : data[i - t->key_tail_len];
    memcpy(t->key_tail, tail, n);
    t->key_tail_len = n;
    return found;
}

/* CURLOPT_HEADERFUNCTION: one line at a time, status line first. */
static size_t on_curl_header(char *data, size_t size, size_t nmemb, void *arg)
{
    struct cairn_transfer *t = arg;
    size_t len = size * nmemb;
    saw_bytes(t);
    if (echoes_key(t, data, len, false)) {
        t->error = CAIRN_UPSTREAM_EKEY_ECHO;
        return 0;
    }
    if (t->head_done)
        return len; /* trailers */
    while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
        len--;
    if (len == 0) { /* end of a header block */
        if (t->status >= 200) {
            t->head_done = true;
            t->cb->on_head(t->ctx, t->status, t->rhdrs, t->nrhdrs);
            clear_response_headers(t);
        }
        return size * nmemb;
    }
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) { /* a (new) status line */
        const char *sp = memchr(data, ' ', len);
        t->status = sp != NULL ? atoi(sp + 1) : 0;
        clear_response_headers(t);
        return size * nmemb;
    }
    t->rhdr_bytes += len;
    const char *colon = memchr(data, ':', len);
    if (colon == NULL || t->nrhdrs >= MAX_RESPONSE_HEADERS ||
        t->rhdr_bytes > MAX_RESPONSE_HEADER_BYTES) {
        t->error = CAIRN_UPSTREAM_EPROTOCOL;
        return 0;
    }
    if (t->rhdrs == NULL)
        t->rhdrs = cairn_calloc(MAX_RESPONSE_HEADERS, sizeof(*t->rhdrs));
    size_t nlen = (size_t)(colon - data);
    const char *v = colon + 1;
    while (v < data + len && (*v == ' ' || *v == '\t'))
        v++;
    char *block = cairn_malloc(len + 2);
    memcpy(block, data, nlen);
    block[nlen] = '\0';
    memcpy(block + nlen + 1, v, (size_t)(data + len - v));
    block[nlen + 1 + (data + len - v)] = '\0';
    t->rhdrs[t->nrhdrs].name = block;
    t->rhdrs[t->nrhdrs].value = block + nlen + 1;
    t->nrhdrs++;
    return size * nmemb;
}

/* CURLOPT_WRITEFUNCTION: body bytes to the owner, with back-pressure. */
static size_t on_curl_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct cairn_transfer *t = arg;
    size_t len = size * nmemb;
    saw_bytes(t);
    if (!t->paused_data && echoes_key(t, data, len, true)) {
        t->error = CAIRN_UPSTREAM_EKEY_ECHO;
        return 0;
    }
    int rc = t->cb->on_data(t->ctx, data, len);
    t->paused_data = rc > 0; /* the same bytes come again: checked already */
    if (rc == 0)
        return len;
    if (rc > 0) {
        t->paused = true;
        evtimer_del(t->deadline); /* a slow client is not an idle upstream */
        return CURL_WRITEFUNC_PAUSE;
    }
    t->error = CAIRN_UPSTREAM_EABORTED;
    return 0;
}

/* An easy handle with the options every transfer shares. Handles are kept
 * when transfers end and reused: creating one allocates and sets up far
 * more than a transfer itself needs. */
static CURL *take_easy(struct cairn_endpoint *ep)
{
    if (ep->nidle > 0)
        return ep->idle[--ep->nidle];
    CURL *e = curl_easy_init();
    if (e == NULL) {
        fprintf(stderr, "cairn: out of memory creating an upstream handle\n");
        abort();
    }
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L); /* the path was vetted by the router */
    curl_easy_setopt(e, CURLOPT_PROXY, "");      /* never an environment proxy */
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)ep->cfg->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_curl_header);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_curl_prereq);
    if (ep->cfg->ca_file != NULL)
        curl_easy_setopt(e, CURLOPT_CAINFO, ep->cfg->ca_file);
    return e;
}

static void give_back_easy(struct cairn_endpoint *ep, CURL *e)
{
    if (ep->nidle == MAX_IDLE_EASY_HANDLES) {
        curl_easy_cleanup(e);
        return;
    }
    /* Drop pointers into the finished transfer before the handle idles. */
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L); /* also forgets POSTFIELDS */
    curl_easy_setopt(e, CURLOPT_PRIVATE, NULL);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, NULL);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, NULL);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, NULL);
    ep->idle[ep->nidle++] = e;
}

struct cairn_transfer *cairn_transfer_start(struct cairn_endpoint *ep, const char *path,
                                            const char *const *headers, char *body, size_t len,
                                            const struct cairn_transfer_callbacks *cb, void *ctx)
{
    struct cairn_transfer *t = cairn_calloc(1, sizeof(*t));
    struct cairn_upstream *up = ep->up;
    t->ep = ep;
    t->cb = cb;
    t->ctx = ctx;
    t->body = body;
    t->easy = take_easy(ep);
    t->deadline = evtimer_new(up->base, on_deadline, t);
    if (t->deadline == NULL) {
        fprintf(stderr, "cairn: out of memory starting an upstream transfer\n");
        abort();
    }

    size_t urllen = strlen(ep->cfg->base_url) + strlen(path) + 1;
    char *url = cairn_malloc(urllen);
    snprintf(url, urllen, "%s%s", ep->cfg->base_url, path);

    /* "Expect:" stops curl from waiting for 100-continue on large bodies. */
    t->headers = curl_slist_append(t->headers, "Expect:");
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        t->headers = curl_slist_append(t->headers, headers[i]);
    if (ep->authorization != NULL && t->headers != NULL) {
        /* Linked, not appended: curl_slist_append would copy the key into
         * the heap. transfer_free unlinks it before freeing the list. */
        struct curl_slist *last = t->headers;
        while (last->next != NULL)
            last = last->next;
        t->auth.data = ep->authorization;
        t->auth.next = NULL;
        last->next = &t->auth;
    }

    CURL *e = t->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, t);
    if (body != NULL) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    }
    free(url); /* curl copied it */

    CURLMcode mc = curl_multi_add_handle(up->multi, e);
    if (mc != CURLM_OK) {
        cairn_log_msg("error", "curl_multi_add_handle: %s", curl_multi_strerror(mc));
        t->error = CAIRN_UPSTREAM_ECONNECT;
        arm_deadline(t, 0); /* report from the loop, not inside the caller */
    }
    return t;
}

void cairn_transfer_resume(struct cairn_transfer *t)
{
    if (!t->paused)
        return;
    t->paused = false;
    arm_deadline(t, t->ep->cfg->idle_timeout_ms);
    curl_easy_pause(t->easy, CURLPAUSE_CONT);
}

static void transfer_free(struct cairn_transfer *t)
{
    curl_multi_remove_handle(t->ep->up->multi, t->easy);
    /* A handle stopped midway (cancelled, timed out, paused) may hold
     * state for the transfer that is gone: only completed ones are kept. */
    if (t->clean_end)
        give_back_easy(t->ep, t->easy);
    else
        curl_easy_cleanup(t->easy);
    for (struct curl_slist *h = t->headers; h != NULL; h = h->next)
        if (h->next == &t->auth)
            h->next = NULL;
    curl_slist_free_all(t->headers);
    event_free(t->deadline);
    clear_response_headers(t);
    free(t->rhdrs);
    free(t->body);
    free(t);
}

void cairn_transfer_cancel(struct cairn_transfer *t)
{
    if (t != NULL)
        transfer_free(t);
}
