/*
 * peer.h: how the C peers of scripts/bench-peers.sh start, shared by both:
 * the port from the command line, SIGTERM and SIGINT as a stop flag, and a
 * listening socket on 127.0.0.1 with a backlog of 1024, as every server in
 * the comparison has.
 *
 * Header-only (static functions), so that each peer still builds from one
 * `cc -O2 PEER.c`. It must never listen anywhere but 127.0.0.1.
 */
#ifndef PEERS_PEER_H
#define PEERS_PEER_H

#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

/* Set by SIGTERM or SIGINT: the peer's loop ends. */
static volatile sig_atomic_t peer_stop;

static void peer_on_stop(int sig)
{
	(void)sig;
	peer_stop = 1;
}

/*
 * `PEER PORT`: catches SIGTERM and SIGINT (without SA_RESTART, so a blocked
 * accept or epoll_wait returns and the loop sees the flag), and returns a
 * listening socket on 127.0.0.1:PORT created with `flags`. Exits 2 on a bad
 * command line, 1 when it cannot listen, saying why.
 */
static int peer_start(int argc, char **argv, int flags)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s PORT\n", argv[0]);
		exit(2);
	}
	char *end;
	long port = strtol(argv[1], &end, 10);
	if (*end || port < 1 || port > 65535) {
		fprintf(stderr, "%s: bad port %s\n", argv[0], argv[1]);
		exit(2);
	}
	struct sigaction sa = { 0 };
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = peer_on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	int listener = socket(AF_INET, SOCK_STREAM | flags, 0);
	int one = 1;
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (listener < 0 || setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(listener, 1024) < 0) {
		fprintf(stderr, "%s: could not listen on 127.0.0.1:%ld: ", argv[0], port);
		perror(NULL);
		exit(1);
	}
	return listener;
}

#endif
