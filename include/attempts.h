/*
 * attempts.h — the validation and retry budget of one chat request.
 *
 * Every complete answer is checked against the markers that were sent;
 * the best one so far is kept (fewest and smallest violations, the first
 * on a tie), and while the budget (attempts, deadline) allows and the best
 * still breaks a marker, another attempt is asked for: the same request
 * again ("resample"), or the conversation with the previous answer and an
 * instruction about what to change ("feedback"). Whatever happens, the
 * client gets the best answer, with the usage of all attempts summed.
 */
#ifndef CAIRN_ATTEMPTS_H
#define CAIRN_ATTEMPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "marking.h"
#include "markers.h"
#include "validate.h"

struct cairn_attempts;

/**
 * The budget of one request, or NULL when there is nothing to validate
 * (no validated marker was sent). `request` is the body as sent upstream
 * (taken over; NULL when cfg->attempts is 1: there is no other attempt to
 * build), `deadline_us` the monotonic time after which no attempt starts.
 */
struct cairn_attempts *cairn_attempts_new(const struct cairn_validator *v,
                                          const struct cairn_validation_config *cfg,
                                          const struct cairn_marking *mk,
                                          const struct cairn_markers *sent, cJSON *request,
                                          int json_depth, uint64_t deadline_us);
void cairn_attempts_free(struct cairn_attempts *a);

/**
 * A complete successful chat completion (the model's own block already
 * removed), taken over. @return true when another attempt should be made.
 */
bool cairn_attempts_add(struct cairn_attempts *a, cJSON *completion, uint64_t now_us);

/** Check a streamed answer's text (observe mode): one attempt, no retry. */
void cairn_attempts_add_text(struct cairn_attempts *a, const char *text, size_t len);

/** The body of the next attempt (malloc'd JSON, *len set). */
char *cairn_attempts_next_body(struct cairn_attempts *a, size_t *len);

/** The best completion, with the usage of every attempt summed; the
 *  caller owns it. NULL when no completion was added. */
cJSON *cairn_attempts_take_best(struct cairn_attempts *a);

/** Whether the completion added last is now the best one. */
bool cairn_attempts_last_is_best(const struct cairn_attempts *a);

size_t cairn_attempts_count(const struct cairn_attempts *a);

/** The violations of the best attempt (or of the streamed text). */
const struct cairn_violations *cairn_attempts_violations(const struct cairn_attempts *a);

/** "length_tokens, format" — the broken markers' keys — or "none". */
void cairn_attempts_violation_list(const struct cairn_attempts *a, char *out, size_t outlen);

/** The taxonomy tags the answers are checked on (bit i: tag i). */
uint32_t cairn_attempts_checked(const struct cairn_attempts *a);

/** {"attempts": N, "violations": [{"marker","expected","observed"}…]} added to `obj`. */
void cairn_attempts_report(const struct cairn_attempts *a, cJSON *obj);

#endif
