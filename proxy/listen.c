/*
 * listen.c — listening sockets (see listen.h).
 */
#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define BACKLOG 511

/* A listening socket on `l` (port taken from `port` when it is not 0). */
static int open_one(const struct cairn_listen *l, uint16_t port, uint16_t *bound, char *err,
                    size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    memset(&ss, 0, sizeof(ss));
    bool v6 = strchr(l->host, ':') != NULL;
    if (v6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        inet_pton(AF_INET6, l->host, &s6->sin6_addr);
        sslen = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        inet_pton(AF_INET, l->host, &s4->sin_addr);
        sslen = sizeof(*s4);
    }
    int one = 1;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        (v6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
        bind(fd, (struct sockaddr *)&ss, sslen) < 0 || listen(fd, BACKLOG) < 0) {
        snprintf(err, errlen, "cannot listen on %s%s%s:%u: %s", v6 ? "[" : "", l->host,
                 v6 ? "]" : "", port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    sslen = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sslen);
    *bound = v6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

int cairn_listen_claim(const struct cairn_listen_list *list, int *fds, char *err, size_t errlen)
{
    for (size_t i = 0; i < list->n; i++)
        fds[i] = -1;
    for (size_t i = 0; i < list->n; i++) {
        const struct cairn_listen *l = &list->items[i];
        if (l->port == 0)
            continue; /* a port picked by the kernel is nobody else's */
        struct sockaddr_un un = {.sun_family = AF_UNIX};
        int n = snprintf(un.sun_path + 1, sizeof(un.sun_path) - 1, "cairn:%s:%u", l->host, l->port);
        fds[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[i] < 0 ||
            bind(fds[i], (struct sockaddr *)&un,
                 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)) < 0) {
            snprintf(err, errlen, "%s:%u is already served by another cairn: %s", l->host, l->port,
                     strerror(errno));
            cairn_listen_close(fds, list->n);
            return -1;
        }
    }
    return 0;
}

int cairn_listen_open(const struct cairn_listen_list *list, unsigned copies, const char *name,
                      int *fds, char *err, size_t errlen)
{
    size_t n = list->n;
    for (size_t k = 0; k < n * copies; k++)
        fds[k] = -1;
    for (size_t i = 0; i < n; i++) {
        const struct cairn_listen *l = &list->items[i];
        uint16_t port = l->port;
        for (unsigned c = 0; c < copies; c++) {
            fds[c * n + i] = open_one(l, port, &port, err, errlen);
            if (fds[c * n + i] < 0) {
                cairn_listen_close(fds, n * copies);
                return -1;
            }
        }
        bool v6 = strchr(l->host, ':') != NULL;
        if (name != NULL)
            fprintf(stderr,
                    v6 ? "cairn: %slistening on [%s]:%u\n" : "cairn: %slistening on %s:%u\n", name,
                    l->host, port);
    }
    return 0;
}

uint16_t cairn_listen_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0)
        return 0;
    return ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                    : ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

void cairn_listen_close(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}
