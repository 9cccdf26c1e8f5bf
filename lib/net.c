#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errfmt.h"

int parse_port(const char *text)
{
    char *end;
    long v;

    /* strtol alone would take " 80" and "+80". */
    if (text == NULL || *text < '0' || *text > '9')
        return -1;
    errno = 0;
    v = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0 || v > 65535)
        return -1;
    return (int)v;
}

void addr_format(const struct sockaddr *sa, socklen_t len, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN];

    (void)len;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(out, outlen, "%s:%u", host, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(out, outlen, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else {
        snprintf(out, outlen, "family-%d", sa->sa_family);
    }
}

int local_addr_format(int fd, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    addr_format((struct sockaddr *)&ss, len, out, outlen);
    return 0;
}

static int resolve(const char *host, int port, int passive, struct addrinfo **res,
                   char *err, size_t errlen)
{
    struct addrinfo hints;
    char service[8];
    int rc;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    snprintf(service, sizeof service, "%d", port);
    if (passive && (host == NULL || *host == '\0')) {
        host = NULL;
        hints.ai_family = AF_INET; /* UNP's INADDR_ANY */
    }
    rc = getaddrinfo(host, service, &hints, res);
    if (rc != 0) {
        snprintf(err, errlen, "getaddrinfo(%s): %s", host ? host : "*",
                 gai_strerror(rc));
        return -1;
    }
    return 0;
}

int net_listen(const char *host, int port, int backlog, char *err, size_t errlen)
{
    struct addrinfo *res, *ai;
    char where[ADDR_TEXT_MAX];
    int fd = -1, on = 1;

    if (resolve(host, port, 1, &res, err, errlen) < 0)
        return -1;
    for (ai = res; ai; ai = ai->ai_next) {
        addr_format(ai->ai_addr, ai->ai_addrlen, where, sizeof where);
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err_fill(err, errlen, "socket", where, errno);
            continue;
        }
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0) {
            err_fill(err, errlen, "setsockopt SO_REUSEADDR", where, errno);
            goto next;
        }
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            err_fill(err, errlen, "bind", where, errno);
            goto next;
        }
        if (listen(fd, backlog) < 0) {
            err_fill(err, errlen, "listen", where, errno);
            goto next;
        }
        break;
next:
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

int net_connect(const char *host, int port, char *err, size_t errlen)
{
    struct addrinfo *res, *ai;
    char where[ADDR_TEXT_MAX];
    int fd = -1, saved = 0;

    if (resolve(host, port, 0, &res, err, errlen) < 0)
        return -1;
    for (ai = res; ai; ai = ai->ai_next) {
        addr_format(ai->ai_addr, ai->ai_addrlen, where, sizeof where);
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            err_fill(err, errlen, "socket", where, errno);
            continue;
        }
        /* connect() interrupted by a signal keeps going in the kernel; this
         * client installs no handlers, so EINTR is simply an error here. */
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        saved = errno;
        err_fill(err, errlen, "connect", where, errno);
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        errno = saved;
    return fd;
}
