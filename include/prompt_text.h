/*
 * prompt_text.h — the text of one chat message as the rule annotator reads
 * it: bounded in size, and split into prose (what language and instruction
 * rules look at) and code (what code-type rules look at).
 *
 * Fenced blocks (``` or ~~~, with their info string), and runs of lines that
 * look like code by the rules' "lines" patterns, go to the code; inline
 * `code` spans and URLs are dropped from the prose so that a language
 * identifier or a keyword rule never reads them as words.
 */
#ifndef CAIRN_PROMPT_TEXT_H
#define CAIRN_PROMPT_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "pattern.h"

#define PROMPT_INFO_MAX 24

struct prompt_text {
    char *prose; /* owned, NUL-terminated */
    size_t prose_len;
    char *code; /* owned, NUL-terminated; code lines joined by '\n' */
    size_t code_len;
    char info[PROMPT_INFO_MAX]; /* first fence's info word, lowercased, or "" */
    bool fenced;                /* a fenced block was seen */
    int code_lines;             /* lines that went to the code */
};

/**
 * Read message content (a string, or an array of parts of which only
 * {"type":"text"} parts count) as at most `head` bytes from its start and
 * `tail` bytes from its end, and split it. `lines` (may be NULL) finds
 * code-looking lines; a run of them needs `min_lines` to count as code.
 * @return false when the content has no text.
 */
bool cairn_prompt_text_read(struct prompt_text *pt, const cJSON *content, size_t head, size_t tail,
                            const struct cairn_pattern *lines, int min_lines,
                            struct cairn_match *md);
void cairn_prompt_text_free(struct prompt_text *pt);

#endif
