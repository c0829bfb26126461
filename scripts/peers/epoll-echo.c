/*
 * epoll-echo: a single-process event-loop echo server, one of the peers of
 * scripts/bench-peers.sh (compiled there with `cc -O2`).
 *
 * What it is: one process, one non-blocking listening socket on
 * 127.0.0.1:PORT and level-triggered epoll; each readable client is read
 * once (16 KiB at most) and what was read is written back. A client that
 * does not take the whole echo at once keeps the rest in its own bounded
 * buffer, and the loop stops reading from it (EPOLLOUT instead of EPOLLIN)
 * until it is written: memory per connection stays bounded however slowly
 * a client reads.
 *
 * Why it is a fair peer: it is the other classic answer to "many clients"
 * (DESIGN §1), with no process per connection at all, so it bounds what a
 * process-per-connection server can hope for in churn and in memory per
 * held connection. It does no logging, no limits, no accounting.
 *
 * What it must never do: listen anywhere but 127.0.0.1, block, or grow a
 * connection's memory beyond its one buffer. Runs until SIGTERM/SIGINT.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peer.h"

/* The same echo buffer as mpecho's worker, allocated per connection only
 * while an echo is pending (a client that reads everything at once never
 * needs one: the shared read buffer is used). */
#define BUFFER_SIZE (16 * 1024)
#define EVENTS 256

struct conn {
	int fd;
	size_t len, off; /* pending echo: buf[off..len) */
	char *buf;
};


static void drop(int ep, struct conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->buf);
	free(c);
}

/* Writes what is pending; 1 if all of it went, 0 if the socket is full, -1
 * on an error. */
static int flush(struct conn *c)
{
	while (c->off < c->len) {
		ssize_t w = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
		if (w < 0)
			return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
		c->off += (size_t)w;
	}
	c->off = c->len = 0;
	return 1;
}

static void on_readable(int ep, struct conn *c)
{
	static char buf[BUFFER_SIZE];
	ssize_t n = recv(c->fd, buf, sizeof buf, 0);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		drop(ep, c);
		return;
	}
	if (n < 0)
		return;
	ssize_t w = send(c->fd, buf, (size_t)n, MSG_NOSIGNAL);
	if (w == n)
		return;
	if (w < 0 && errno != EAGAIN && errno != EINTR) {
		drop(ep, c);
		return;
	}
	if (w < 0)
		w = 0;
	/* Keep the rest and wait until the client can take it. */
	if (!c->buf && !(c->buf = malloc(BUFFER_SIZE))) {
		drop(ep, c);
		return;
	}
	memcpy(c->buf, buf + w, (size_t)(n - w));
	c->off = 0;
	c->len = (size_t)(n - w);
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void on_writable(int ep, struct conn *c)
{
	int r = flush(c);
	if (r < 0) {
		drop(ep, c);
	} else if (r > 0) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
	}
}

int main(int argc, char **argv)
{
	int listener = peer_start(argc, argv, SOCK_NONBLOCK | SOCK_CLOEXEC);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	/* The listener is the one event whose data is NULL. */
	struct epoll_event lev = { .events = EPOLLIN, .data.ptr = NULL };
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, listener, &lev) < 0) {
		perror("epoll-echo: epoll");
		return 1;
	}
	struct epoll_event events[EVENTS];
	while (!peer_stop) {
		int n = epoll_wait(ep, events, EVENTS, -1);
		for (int i = 0; i < n; i++) {
			struct conn *c = events[i].data.ptr;
			if (!c) {
				/* Level-triggered: one accept per event, the rest next turn. */
				int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
				if (fd < 0)
					continue;
				c = calloc(1, sizeof *c);
				struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
				if (!c || (c->fd = fd, epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)) {
					close(fd);
					free(c);
				}
			} else if (events[i].events & EPOLLOUT) {
				on_writable(ep, c);
			} else {
				on_readable(ep, c);
			}
		}
	}
	return 0;
}
