/*
 * model_call.h — one chat completion that cairn sends on its own account
 * (the annotator model, the other arm of a shadowed request, a judge):
 * posted to an endpoint on the worker's loop, its answer buffered up to a
 * limit, and cut at a deadline of its own.
 *
 * Whatever happens — an answer with any status, a transport error, an
 * answer over the limit, the deadline — `done` runs exactly once, always
 * from the loop and never inside cairn_model_call_start, unless the call
 * is cancelled first. The call is gone once `done` returns.
 */
#ifndef CAIRN_MODEL_CALL_H
#define CAIRN_MODEL_CALL_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct cairn_endpoint;
struct cairn_model_call;

/* The deadline passed first (the other errors are upstream.h's). */
extern const char *const CAIRN_MODEL_CALL_ETIMEOUT;

/** `errstr` NULL: a complete answer of `status` in body[0..len) (NUL-
 *  terminated; it lives until the callback returns). Otherwise why there
 *  is none (status 0, body ""). */
typedef void (*cairn_model_call_done_fn)(void *ctx, const char *errstr, int status,
                                         const char *body, size_t len);

/**
 * POST `body` (malloc'd JSON of `len` bytes, taken over) to the endpoint's
 * "/chat/completions", with X-Request-Id `request_id`. An answer longer
 * than `max_answer` bytes ends the call with CAIRN_UPSTREAM_ETOO_LARGE.
 * @return the call in flight.
 */
struct cairn_model_call *cairn_model_call_start(struct event_base *base, struct cairn_endpoint *ep,
                                                const char *request_id, char *body, size_t len,
                                                size_t max_answer, int64_t deadline_ms,
                                                cairn_model_call_done_fn done, void *ctx);

/** Abandon a call in flight (NULL is fine); `done` does not run. Not from
 *  inside its own `done`. */
void cairn_model_call_cancel(struct cairn_model_call *c);

#endif
