/*
 * decimal.h — an unsigned number in decimal digits, for the hot paths
 * that write HTTP heads and labels (a formatted print costs more than the
 * rest of such a head together).
 */
#ifndef CAIRN_DECIMAL_H
#define CAIRN_DECIMAL_H

#include <stddef.h>
#include <stdint.h>

#define CAIRN_DECIMAL_MAX 20 /* digits of UINT64_MAX */

/** Write v's digits at the end of buf[0..CAIRN_DECIMAL_MAX) (no NUL).
 *  @return where they start; they run to buf + CAIRN_DECIMAL_MAX. */
static inline char *cairn_decimal(char buf[CAIRN_DECIMAL_MAX], uint64_t v)
{
    char *p = buf + CAIRN_DECIMAL_MAX;
    do
        *--p = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    return p;
}

#endif
