/*
 * listen.h — listening sockets, opened by the master before it forks.
 *
 * Each worker gets its own socket on every public address: the sockets of
 * one address share its port with SO_REUSEPORT, and the kernel spreads new
 * connections across them. The master keeps every socket open, so the
 * connections queued on a worker that dies wait for its successor instead
 * of being refused.
 */
#ifndef CAIRN_LISTEN_H
#define CAIRN_LISTEN_H

#include <stddef.h>

#include "config.h"

#define CAIRN_MAX_LISTEN 16 /* addresses per list (config.c allows as many) */

/**
 * Open `copies` listening sockets on every address of `list`; the first on
 * an address picks the port when it is 0, the others take the same one.
 * fds[c * list->n + i] is copy c on address i. Prints "cairn: <name>listening
 * on HOST:PORT" once per address (scripts and tests read it).
 * @return 0, or -1 with err and nothing left open.
 */
int cairn_listen_open(const struct cairn_listen_list *list, unsigned copies, const char *name,
                      int *fds, char *err, size_t errlen);

/** Close fds[0..n) (-1 entries are skipped) and mark them -1. */
void cairn_listen_close(int *fds, size_t n);

#endif
