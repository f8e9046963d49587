/*
 * secret.h — keeping secrets out of core dumps.
 *
 * A core file (or a `gcore` taken for a bug report) holds every page of
 * the process it is asked to: the environment strings, the heap, freed
 * blocks that still hold their old bytes. cairn holds two kinds of secret:
 * the upstream API keys it reads from the environment, and the client keys
 * that arrive in Authorization headers. This module gives the first a
 * home in pages marked MADV_DONTDUMP (and locked in memory where the
 * limit allows), and gives the libraries that copy the second through
 * their buffers (libevent, libcurl) a free() that wipes what it frees.
 */
#ifndef CAIRN_SECRET_H
#define CAIRN_SECRET_H

#include <stddef.h>

/**
 * The value of environment variable `name`, or NULL when it is not set.
 * The first call moves the value into dump-excluded memory and wipes it
 * from the environment (its bytes, then the entry), so a core holds no
 * copy; later calls, and processes forked afterwards, get it from there.
 * Called from the thread that loads configurations; the string lives until
 * the process exits.
 */
const char *cairn_secret_env(const char *name);

/**
 * Wipe the 64 KiB of stack below the caller's frame. A string function
 * reading the environment (getenv's strncmp) leaves 32 bytes of it in a
 * vector register, and the next lazy symbol binding in a shared library
 * saves the registers onto the stack, where the bytes outlive the call.
 * main calls this first: libraries read the environment before main.
 */
void cairn_secret_wipe_stack(void);

/** `n` zeroed bytes in pages left out of core dumps (aborts on failure).
 *  Release with cairn_secret_free, which wipes them. */
void *cairn_secret_alloc(size_t n);
void cairn_secret_free(void *p);

/** free() and realloc() that first wipe the block being released, for
 *  libraries whose buffers carry secrets: libevent's (set from main, before
 *  any other libevent call) and libcurl's (at its global initialisation). */
void cairn_scrub_free(void *p);
void *cairn_scrub_realloc(void *p, size_t n);

#endif
