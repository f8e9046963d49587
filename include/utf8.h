/*
 * utf8.h — UTF-8 at the byte level, one definition for every reader of
 * text: the strict JSON parser, the prompt and answer readers and the
 * language identifier.
 *
 * Validity is RFC 3629's: no overlong forms, no surrogates (U+D800 to
 * U+DFFF), nothing past U+10FFFF. Decoding is for text that has been
 * checked already (a request body that passed json_strict.h, an answer cut
 * at its first invalid byte): it never fails and never reads past the end,
 * so a cut sequence at the end still only moves forward.
 */
#ifndef CAIRN_UTF8_H
#define CAIRN_UTF8_H

#include <stddef.h>

/** Length (1 to 4) of the valid UTF-8 sequence that starts s[0..n), or 0
 *  when none does; `n` is at least 1. */
size_t cairn_utf8_sequence(const unsigned char *s, size_t n);

/** The first byte of text[0..len) that does not start a valid UTF-8
 *  sequence, or `len` when all of it is valid. */
size_t cairn_utf8_valid(const char *text, size_t len);

/** Code point `cp` (at most U+10FFFF) as UTF-8 in b[0..4).
 *  @return its length, 1 to 4. */
size_t cairn_utf8_encode(unsigned cp, char b[4]);

/**
 * The code point at text[*i] (with *i < len), moving *i past it. A byte
 * that cannot start a sequence, or a sequence cut by `len`, moves one byte
 * and reads as U+FFFD. Inline: the text readers call it per character.
 */
static inline unsigned cairn_utf8_next(const char *text, size_t len, size_t *i)
{
    const unsigned char *s = (const unsigned char *)text;
    unsigned c = s[*i];
    size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (*i + n > len || (n > 1 && c < 0xC2)) {
        (*i)++;
        return 0xFFFD;
    }
    unsigned cp = n == 1 ? c : n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
    for (size_t k = 1; k < n; k++)
        cp = (cp << 6) | (s[*i + k] & 0x3F);
    *i += n;
    return cp;
}

#endif
