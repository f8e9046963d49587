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
#include <stdint.h>

#include "config.h"

#define CAIRN_MAX_LISTEN 16 /* addresses per list (config.c allows as many) */

/**
 * Claim every address of `list` with a fixed port for this process: an
 * abstract Unix socket named after it, held in fds[0..list->n) (-1 for
 * port 0) until closed. SO_REUSEPORT would otherwise let a second cairn of
 * the same user bind the same port and silently take half of the traffic.
 * @return 0, or -1 with err when another process holds one.
 */
int cairn_listen_claim(const struct cairn_listen_list *list, int *fds, char *err, size_t errlen);

/**
 * Open `copies` listening sockets on every address of `list`; the first on
 * an address picks the port when it is 0, the others take the same one.
 * fds[c * list->n + i] is copy c on address i. Prints "cairn: <name>listening
 * on HOST:PORT" once per address (scripts and tests read it) unless `name`
 * is NULL.
 * @return 0, or -1 with err and nothing left open.
 */
int cairn_listen_open(const struct cairn_listen_list *list, unsigned copies, const char *name,
                      int *fds, char *err, size_t errlen);

/** The port a socket is bound to (0 on error). */
uint16_t cairn_listen_port(int fd);

/** Close fds[0..n) (-1 entries are skipped) and mark them -1. */
void cairn_listen_close(int *fds, size_t n);

#endif
