/*
 * judge.h — pairwise judging of two answers to one conversation by a judge
 * model: the request cairn sends it, the strict reading of its one-word
 * reply, and the verdict of a position-swapped pair of replies.
 *
 * Models that judge pairs favour one position (usually the first), so each
 * pair is asked twice, the answers swapped, and only a preference that
 * survives the swap counts: both replies for the served answer is a win,
 * both for the other answer a loss, anything else a tie (MT-Bench's
 * "conservative" swap). Nothing here does I/O; shadow.c sends the
 * requests and hands the replies back.
 */
#ifndef CAIRN_JUDGE_H
#define CAIRN_JUDGE_H

#include <stddef.h>

#include <cjson/cJSON.h>

#define CAIRN_JUDGE_CONVERSATION_MAX (8 * 1024)  /* bytes of the conversation's end shown */
#define CAIRN_JUDGE_ANSWER_MAX       (16 * 1024) /* bytes of each answer's start shown */
#define CAIRN_JUDGE_MAX_TOKENS       8           /* "TIE" needs no more */
#define CAIRN_JUDGE_BODY_MAX         (64 * 1024) /* bytes of the judge's HTTP answer */

/* What one reply prefers, in the positions of its prompt. */
enum cairn_judge_pick { CAIRN_PICK_A, CAIRN_PICK_B, CAIRN_PICK_TIE, CAIRN_PICK_NONE };

/* Results, from the served answer's point of view; compared by pointer,
 * the text is the log value and the metric label. */
extern const char *const CAIRN_JUDGE_WIN;
extern const char *const CAIRN_JUDGE_LOSS;
extern const char *const CAIRN_JUDGE_TIE;

/**
 * The user turn of a judge request: the conversation (what
 * cairn_model_conversation renders, taken as it is: the caller bounds it)
 * and the two answers, each cut to its first CAIRN_JUDGE_ANSWER_MAX bytes
 * on a UTF-8 character boundary, with a note where it was cut.
 * @return a malloc'd NUL-terminated text of *len bytes.
 */
char *cairn_judge_prompt(const char *conversation, const char *a, const char *b, size_t *len);

/** The request body for the judge: its system instructions, the prompt
 *  above, at most CAIRN_JUDGE_MAX_TOKENS. malloc'd, *len set. */
char *cairn_judge_request(const char *model, const char *conversation, const char *a, const char *b,
                          size_t *len);

/** A reply text: "A", "B" or "TIE", in any case, with blanks around it and
 *  at most one '.' after it; anything else is CAIRN_PICK_NONE. */
enum cairn_judge_pick cairn_judge_parse(const char *text);

/** The judge's HTTP answer body[0..len) (a chat completion): its reply
 *  read as above; CAIRN_PICK_NONE for anything that is not one. */
enum cairn_judge_pick cairn_judge_read(const char *body, size_t len);

/** "A", "B", "TIE" or "none": the log's spelling of a pick. */
const char *cairn_judge_pick_name(enum cairn_judge_pick p);

/**
 * The verdict of a pair: `served_first` is the reply to the prompt with the
 * served answer as A, `served_second` the one with it as B. NULL when
 * either reply is CAIRN_PICK_NONE (no judgement).
 */
const char *cairn_judge_verdict(enum cairn_judge_pick served_first,
                                enum cairn_judge_pick served_second);

#endif
