/*
 * lengths.h — explicit length instructions ("in under 150 words", "no more
 * than 3 sentences", "100字以内") and length words ("briefly", "in detail")
 * for the rule annotator: the length_tokens, length_sentences,
 * length_paragraphs and length_bucket markers, driven by rules/lengths.json.
 */
#ifndef CAIRN_LENGTHS_H
#define CAIRN_LENGTHS_H

#include <stddef.h>
#include <stdint.h>

#include "markers.h"
#include "pattern.h"
#include "taxonomy.h"

struct cairn_lengths;

/** Compile the rules in lengths.json's root object. @return NULL with
 *  `err` naming `file`, the key path and the problem. */
struct cairn_lengths *cairn_lengths_load(const struct cairn_taxonomy *tx, const cJSON *root,
                                         const char *file, char *err, size_t errlen);
void cairn_lengths_free(struct cairn_lengths *l);

/** Capture groups the match data must hold for these patterns. */
uint32_t cairn_lengths_groups(const struct cairn_lengths *l);

/** The number words {NUM} accepts (for the match context's lookup). */
const struct cairn_names *cairn_lengths_numbers(const struct cairn_lengths *l);

/**
 * Offer the length markers that texts[0..n) give: for each tag, the first
 * text (in order of authority: last user turn, then system prompt) with an
 * instruction decides. length_bucket comes from the token limit, else from
 * the sentence or paragraph limit (estimated tokens), else from length words.
 */
void cairn_lengths_run(const struct cairn_lengths *l, const char *const *texts, const size_t *lens,
                       size_t n, struct cairn_match *md, struct cairn_markers *out);

#endif
