/*
 * literals.h — the literal strings a rules pattern cannot match without:
 * read from the pattern as written, at load time, so that a list whose
 * every pattern needs one of a few words ("translate", "word") is not run
 * at all on a text that has none of them (pattern.c). A necessary
 * condition only: a text with one of the literals still goes to PCRE2,
 * which decides.
 *
 * Soundness: literals hold printable ASCII (searched caselessly, with the
 * Kelvin sign, the long s and the Turkish dotted and dotless i taken for
 * k, s and i as PCRE2's Unicode caseless matching takes them) and the
 * characters of scripts without case (CJK, kana, Hangul, Arabic, Hebrew,
 * Devanagari, Thai) byte for byte; a character of another script with
 * case only says "some Cyrillic character", "some Greek character" or
 * (accented Latin and the rest) "some non-ASCII character", and anything the reader is unsure of
 * makes it give up (no literals: the list always runs). tests/unit/test_literals.c checks the
 * extraction row by row and, differentially, that every shipped rule list finds the same matches
 * with and without it.
 *
 * Bounds: a literal also records what the pattern puts right next to it,
 * where that is certain from the pattern as written: a word boundary
 * (\b, or (?<!\w) / (?!\w) next to a word character) before or after it,
 * or a character that is never ASCII ("t" of "tòa"). The search takes a
 * place where the literal occurs only if the text there may have that:
 * \b is decided on ASCII neighbours as PCRE2_UCP decides it (letters,
 * digits and "_" are word characters; the text's start and end are not),
 * looking before the caller's start as PCRE2 does, and a non-ASCII
 * neighbour always passes (it may be a letter or not). So "\bw\b" is not
 * found in "words, why".
 */
#ifndef CAIRN_LITERALS_H
#define CAIRN_LITERALS_H

#include <stdbool.h>
#include <stddef.h>

struct cairn_literals;

/** The literals of one pattern as written (with {NUM}, {LANG}, {CODE}
 *  placeholders standing for any word), one of which every match
 *  contains; NULL when none can be shown. */
struct cairn_literals *cairn_literals_of(const char *pattern);

/** dst = dst and src together (every match of either needs one of dst). */
void cairn_literals_merge(struct cairn_literals *dst, const struct cairn_literals *src);

void cairn_literals_free(struct cairn_literals *l);

/** How many literals the set holds. */
size_t cairn_literals_count(const struct cairn_literals *l);

/** What the literals are written in: 0 none (NULL), 1 ASCII only, 2 other
 *  scripts only, 3 both. */
int cairn_literals_family(const struct cairn_literals *l);

/** Prepare the set for cairn_literals_any_in; call once it is complete
 *  (an unsealed set is taken to be in every text). */
void cairn_literals_seal(struct cairn_literals *l);

/** Whether s[start..len) contains one of the literals, caselessly as PCRE2
 *  compares ASCII letters, where its bounds may hold (s[start - 1] is
 *  looked at, as PCRE2 does for \b). The text is read once into an index kept for
 *  the next calls on the same content (the last few texts are kept, and
 *  found again by their bytes, never by the pointer alone), so that the
 *  many sets checked against one text cost a look-up per literal, not a
 *  pass over the text each. Not thread-safe: a process's rules are matched
 *  from its event loop only. */
bool cairn_literals_any_in(const struct cairn_literals *l, const char *s, size_t len, size_t start);

/** Drop the texts kept indexed (their copies are wiped) and give their
 *  memory back: a worker calls it once traffic pauses. */
void cairn_literals_forget(void);

/** "a|b|c" (lower case, sorted as extracted), for tests; "" for NULL. A
 *  literal's bounds are printed on their side: "\b" a word boundary, "~"
 *  a non-ASCII character ("\bt~" for "\btòa"). */
void cairn_literals_print(const struct cairn_literals *l, char *out, size_t outlen);

#endif
