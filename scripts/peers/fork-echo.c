/*
 * fork-echo: the textbook C fork server, one of the peers of
 * scripts/bench-peers.sh (compiled there with `cc -O2`).
 *
 * What it is: an accept loop on 127.0.0.1:PORT that forks one child per
 * connection; the child echoes with read/write until the client closes,
 * then exits; the parent reaps on SIGCHLD with waitpid(-1, WNOHANG) in a
 * loop (the handler only sets a flag and the loop reaps, as DESIGN §3
 * asks; an idle accept gives up every 100 ms so that no exit waits for the
 * next client). No exec: the child is a copy of this small program.
 *
 * Why it is a fair peer: it is what every Unix networking course writes
 * first, and what mpecho's issue 10 compares an exec'd worker with (fork
 * without exec is the cheapest way to get a process per connection). It
 * does nothing mpecho's master skips that would slow it: no logging, no
 * limits, no accounting, a 16 KiB buffer like mpecho's worker.
 *
 * What it must never do: listen anywhere but 127.0.0.1, leave a child
 * unreaped, or let a child keep the listening socket (closed in the child
 * at once). It runs until SIGTERM or SIGINT.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "peer.h"

/* The same echo buffer as mpecho's worker. */
#define BUFFER_SIZE (16 * 1024)

static volatile sig_atomic_t child_exited;

static void on_child(int sig) { (void)sig; child_exited = 1; }

static void reap(void)
{
	child_exited = 0;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

static void serve(int client)
{
	static char buf[BUFFER_SIZE];
	for (;;) {
		ssize_t n = read(client, buf, sizeof buf);
		if (n == 0)
			return;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(client, buf + off, (size_t)(n - off));
			if (w < 0) {
				if (errno == EINTR)
					continue;
				return;
			}
			off += w;
		}
	}
}

int main(int argc, char **argv)
{
	int listener = peer_start(argc, argv, SOCK_CLOEXEC);
	/* No SA_RESTART: accept returns EINTR so the loop reaps at once. */
	struct sigaction sa = { 0 };
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_child;
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* A SIGCHLD between the flag check and accept would leave its zombie
	 * until the next client: accept gives up after 100 ms without one, so
	 * an idle server still reaps within that (no cost per connection). */
	struct timeval wake = { .tv_sec = 0, .tv_usec = 100000 };
	setsockopt(listener, SOL_SOCKET, SO_RCVTIMEO, &wake, sizeof wake);

	while (!peer_stop) {
		if (child_exited)
			reap();
		int client = accept(listener, NULL, NULL);
		if (client < 0)
			continue; /* EINTR (a child exited, or a stop), EAGAIN (100 ms idle), a client gone */
		pid_t pid = fork();
		if (pid == 0) {
			close(listener);
			/* Accepted sockets inherit the listener's timeout: a
			 * client may stay idle as long as it likes. */
			struct timeval none = { 0 };
			setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
			signal(SIGCHLD, SIG_DFL);
			signal(SIGTERM, SIG_DFL);
			signal(SIGINT, SIG_DFL);
			serve(client);
			_exit(0);
		}
		/* On a failed fork the client is simply closed. */
		close(client);
	}
	close(listener);
	reap();
	return 0;
}
