/* Socket set-up that reports instead of exiting (redis anet style). */
#ifndef FL_NET_H
#define FL_NET_H

#include <stddef.h>
#include <sys/socket.h>

/* Longest "[ipv6]:port" text, NUL included. */
#define ADDR_TEXT_MAX 64

/*
 * Socket, SO_REUSEADDR, bind to host:port (host NULL or "" = all IPv4
 * addresses; port 0 = ephemeral) and listen. Returns the descriptor, or -1
 * with err naming the failed call and the address.
 */
int net_listen(const char *host, int port, int backlog, char *err, size_t errlen);

/* Connect a TCP socket to host:port (numeric or resolvable). Returns the
 * descriptor, or -1 with err filled and errno set from the last attempt. */
int net_connect(const char *host, int port, char *err, size_t errlen);

/* "a.b.c.d:port" or "[v6]:port" for a socket address. */
void addr_format(const struct sockaddr *sa, socklen_t len, char *out, size_t outlen);

/* The local address of a socket, formatted; returns 0 or -1 with errno. */
int local_addr_format(int fd, char *out, size_t outlen);

/* Parse a port 0..65535; returns it, or -1 when text is not one. */
int parse_port(const char *text);

#endif
