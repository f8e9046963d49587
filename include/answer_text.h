/*
 * answer_text.h — a model's answer as the validators read it: where its
 * fenced code blocks are, its prose without code and markup (what language
 * identification reads), and its length counted as words, characters,
 * estimated tokens, sentences or paragraphs.
 *
 * cairn_answer_scan() maps the fences in one linear pass; every other
 * reading walks that map, so no validator takes code for prose or prose
 * for code. Each reading is itself one linear pass: these run on every
 * answer, on the gateway's event loop. What exactly each count counts is
 * written down in tests/validate/README.md and above each function in
 * answer_text.c.
 */
#ifndef CAIRN_ANSWER_TEXT_H
#define CAIRN_ANSWER_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "config.h"

#define CAIRN_FENCE_INFO    24 /* info word kept, NUL included */
#define CAIRN_FENCES_INLINE 16 /* fences held without allocating */

/* One fenced code block (``` or ~~~). A fence left open runs to the end of
 * the text (a truncated answer). Offsets are into the answer's text. */
struct cairn_fence {
    size_t open;                 /* start of the opening fence line */
    size_t body, body_end;       /* the content: the lines between the fences */
    size_t end;                  /* past the closing fence line, or the text's end */
    char info[CAIRN_FENCE_INFO]; /* first word of the info string, lowercased ("go",
                                    "c++"), or "" */
    bool closed;
};

struct cairn_answer {
    const char *text; /* not owned; valid UTF-8 (see cairn_utf8_valid) */
    size_t len;
    struct cairn_fence *fences; /* `inline_fences` or owned heap memory */
    size_t nfences, cap;
    struct cairn_fence inline_fences[CAIRN_FENCES_INLINE];
};

/* What the sentence counter needs from rules/validation.json "sentences":
 * the terminators, the closing quotes that may follow them, and the
 * abbreviations whose dot does not end a sentence. */
struct cairn_sentence_rules;

/** Load the "sentences" object `obj` (`path` names it in errors).
 *  @return NULL with `why` naming the key and the problem. */
struct cairn_sentence_rules *cairn_sentence_rules_load(const cJSON *obj, const char *path,
                                                       char *why, size_t whylen);
void cairn_sentence_rules_free(struct cairn_sentence_rules *r);

/** Map the fences of text[0..len) (valid UTF-8, which must outlive `a`). */
void cairn_answer_scan(struct cairn_answer *a, const char *text, size_t len);
void cairn_answer_free(struct cairn_answer *a);

/** The length of text[0..len) as `how` counts it: words, characters
 *  (non-white-space code points) or estimated tokens. */
size_t cairn_answer_length(const char *text, size_t len, enum cairn_counting how);

/** Sentences in the answer's prose before offset `upto` (the whole answer:
 *  its length), fenced code, headings and table rows left out. */
size_t cairn_answer_sentences(const struct cairn_answer *a, const struct cairn_sentence_rules *r,
                              size_t upto);

/** The length of a list item's marker at the start of s[0..len) (after
 *  its indentation) with the blanks after it: "- ", "* ", "• ", "1. ",
 *  "2) ", "(3) ", "a) ", "1、", "①"; 0 when the line is no list item. */
size_t cairn_answer_list_marker(const char *s, size_t len);

/** Paragraphs: blocks separated by blank lines that hold prose; a fenced
 *  block belongs to the paragraph around it and never counts alone (an
 *  answer that is only code is one paragraph). */
size_t cairn_answer_paragraphs(const struct cairn_answer *a);

/**
 * The answer's prose for language identification: fenced and indented
 * code, inline code, URLs, HTML/XML tags, link targets and Markdown markup
 * left out, written to out[0..cap) (NUL-terminated; at most cap - 1 bytes
 * of the answer's beginning are read into it). @return its length.
 */
size_t cairn_answer_prose(const struct cairn_answer *a, char *out, size_t cap);

/** Letters in s[0..len), weighed by what they tell a language identifier:
 *  a Han ideograph, kana or Hangul syllable counts 3, any other letter 1,
 *  digits, marks and punctuation nothing. */
size_t cairn_answer_letters(const char *s, size_t len);

#endif
