/*
 * upstream_curl.c — the https:// transport: libcurl's multi interface on
 * the worker's libevent base (STYLE.md pattern A, curl's hiperfifo).
 *
 * curl tells us which sockets to watch (on_curl_socket) and when to wake it
 * (on_curl_timer); libevent calls back and we hand the readiness to
 * curl_multi_socket_action, then collect finished transfers. What a
 * transfer means (deadlines, headers, the key check) is upstream.c's: the
 * curl callbacks pass it on. Transfers are removed from libevent callbacks,
 * never from inside a curl callback. The only file that touches libcurl.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "alloc.h"
#include "log.h"
#include "secret.h"
#include "upstream_transport.h"

struct cairn_curl_client {
    struct event_base *base;
    CURLM *multi;
    struct event *timer; /* curl's own timeouts */
};

/* --- the multi handle on libevent ----------------------------------------- */

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

static void check_multi_info(struct cairn_curl_client *c)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(c->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct cairn_transfer *t = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        CURLcode rc = msg->data.result;
        t->clean_end = rc == CURLE_OK;
        cairn_transfer_finish(t, map_curl_error(t, rc));
    }
}

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    struct cairn_curl_client *c = arg;
    int action =
        ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    int running = 0;
    curl_multi_socket_action(c->multi, fd, action, &running);
    check_multi_info(c);
}

static void on_timer_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct cairn_curl_client *c = arg;
    int running = 0;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_multi_info(c);
}

/* CURLMOPT_SOCKETFUNCTION: watch `s` as curl asks. `sockp` is our event. */
static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *sockp)
{
    (void)easy;
    struct cairn_curl_client *c = userp;
    struct event *ev = sockp;
    if (what == CURL_POLL_REMOVE) {
        if (ev != NULL)
            event_free(ev);
        return 0;
    }
    short kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) |
                         ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
    if (ev == NULL) {
        ev = event_new(c->base, s, kind, on_socket_event, c);
        if (ev == NULL)
            return -1;
        curl_multi_assign(c->multi, s, ev);
    } else {
        event_del(ev);
        event_assign(ev, c->base, s, kind, on_socket_event, c);
    }
    event_add(ev, NULL);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: arm or disarm our single timer; never call curl. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct cairn_curl_client *c = userp;
    if (timeout_ms < 0) {
        evtimer_del(c->timer);
        return 0;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
    return 0;
}

struct cairn_curl_client *cairn_curl_client_new(struct event_base *base)
{
    static bool curl_ready;
    if (!curl_ready) {
        /* curl's buffers hold the Authorization header it sends: they are
         * wiped when curl frees them (secret.h). */
        if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, malloc, cairn_scrub_free, cairn_scrub_realloc,
                                 strdup, calloc) != CURLE_OK)
            return NULL;
        curl_ready = true;
    }
    struct cairn_curl_client *c = cairn_calloc(1, sizeof(*c));
    c->base = base;
    c->multi = curl_multi_init();
    c->timer = evtimer_new(base, on_timer_event, c);
    if (c->multi == NULL || c->timer == NULL) {
        cairn_curl_client_free(c);
        return NULL;
    }
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    /* libcurl's default, four idle connections per transfer in progress,
     * shrinks as transfers end, and closed about one connection in twenty
     * under a steady load: each costs a connect and a TLS handshake on the
     * next request. */
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)CAIRN_UPSTREAM_MAX_IDLE);
    return c;
}

void cairn_curl_client_free(struct cairn_curl_client *c)
{
    if (c == NULL)
        return;
    if (c->multi != NULL)
        curl_multi_cleanup(c->multi);
    if (c->timer != NULL)
        event_free(c->timer);
    free(c);
}

void cairn_curl_endpoint_clear(struct cairn_endpoint *ep)
{
    while (ep->nidle_easy > 0)
        curl_easy_cleanup(ep->idle_easy[--ep->nidle_easy]);
}

/* --- one transfer --------------------------------------------------------- */

/* CURLOPT_PREREQFUNCTION: connected (TLS included), the request goes out
 * now. libcurl calls this again when it wants to re-send the request on a
 * new connection because a reused one closed without an answer; the
 * upstream may have acted on the first copy (a paid completion), so that
 * retry is refused and the request fails instead. */
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
    cairn_transfer_sending(t);
    return CURL_PREREQFUNC_OK;
}

/* CURLOPT_HEADERFUNCTION: one line at a time, status line first. */
static size_t on_curl_header(char *data, size_t size, size_t nmemb, void *arg)
{
    struct cairn_transfer *t = arg;
    size_t len = size * nmemb;
    size_t n = len;
    while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r'))
        n--;
    return cairn_transfer_head_line(t, data, n) == 0 ? len : 0;
}

/* CURLOPT_WRITEFUNCTION: body bytes to the owner, with back-pressure. */
static size_t on_curl_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct cairn_transfer *t = arg;
    size_t len = size * nmemb;
    int rc = cairn_transfer_body(t, data, len);
    return rc == 0 ? len : rc > 0 ? CURL_WRITEFUNC_PAUSE : 0;
}

/* An easy handle with the options every transfer shares. Handles are kept
 * when transfers end and reused: creating one allocates and sets up far
 * more than a transfer itself needs. */
static CURL *take_easy(struct cairn_endpoint *ep)
{
    if (ep->nidle_easy > 0)
        return ep->idle_easy[--ep->nidle_easy];
    CURL *e = curl_easy_init();
    if (e == NULL) {
        fprintf(stderr, "cairn: out of memory creating an upstream handle\n");
        abort();
    }
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
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
    if (ep->nidle_easy == CAIRN_UPSTREAM_MAX_IDLE) {
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
    ep->idle_easy[ep->nidle_easy++] = e;
}

void cairn_curl_start(struct cairn_transfer *t, const char *path, const char *const *headers)
{
    struct cairn_endpoint *ep = t->ep;
    struct cairn_curl_state *s = &t->curl;
    s->easy = take_easy(ep);

    size_t urllen = strlen(ep->cfg->base_url) + strlen(path) + 1;
    char *url = cairn_malloc(urllen);
    snprintf(url, urllen, "%s%s", ep->cfg->base_url, path);

    /* "Expect:" stops curl from waiting for 100-continue on large bodies. */
    s->headers = curl_slist_append(s->headers, "Expect:");
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        s->headers = curl_slist_append(s->headers, headers[i]);
    if (ep->authorization != NULL && s->headers != NULL) {
        /* Linked, not appended: curl_slist_append would copy the key into
         * the heap. cairn_curl_stop unlinks it before freeing the list. */
        struct curl_slist *last = s->headers;
        while (last->next != NULL)
            last = last->next;
        s->auth.data = ep->authorization;
        s->auth.next = NULL;
        last->next = &s->auth;
    }

    CURL *e = s->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, s->headers);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, t);
    if (t->body != NULL) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)t->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->body);
    }
    free(url); /* curl copied it */

    CURLMcode mc = curl_multi_add_handle(ep->up->curl->multi, e);
    if (mc != CURLM_OK) {
        cairn_log_msg("error", "curl_multi_add_handle: %s", curl_multi_strerror(mc));
        cairn_transfer_fail_soon(t, CAIRN_UPSTREAM_ECONNECT);
    }
}

void cairn_curl_resume(struct cairn_transfer *t)
{
    curl_easy_pause(t->curl.easy, CURLPAUSE_CONT);
}

void cairn_curl_stop(struct cairn_transfer *t)
{
    struct cairn_curl_state *s = &t->curl;
    curl_multi_remove_handle(t->ep->up->curl->multi, s->easy);
    /* A handle stopped midway (cancelled, timed out, paused) may hold
     * state for the transfer that is gone: only completed ones are kept. */
    if (t->clean_end)
        give_back_easy(t->ep, s->easy);
    else
        curl_easy_cleanup(s->easy);
    for (struct curl_slist *h = s->headers; h != NULL; h = h->next)
        if (h->next == &s->auth)
            h->next = NULL;
    curl_slist_free_all(s->headers);
}
