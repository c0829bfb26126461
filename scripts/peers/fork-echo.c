/*
 * fork-echo: the textbook C fork server, one of the peers of
 * scripts/bench-peers.sh (compiled there with `cc -O2`).
 *
 * What it is: an accept loop on 127.0.0.1:PORT that forks one child per
 * connection; the child echoes with read/write until the client closes,
 * then exits; the parent reaps on SIGCHLD with waitpid(-1, WNOHANG) in a
 * loop (the handler only sets a flag and the loop reaps, as DESIGN §3
 * asks). No exec: the child is a copy of this small program.
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
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* The same echo buffer as mpecho's worker. */
#define BUFFER_SIZE (16 * 1024)

static volatile sig_atomic_t child_exited;
static volatile sig_atomic_t stop;

static void on_child(int sig) { (void)sig; child_exited = 1; }
static void on_stop(int sig) { (void)sig; stop = 1; }

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
	if (argc != 2) {
		fprintf(stderr, "usage: %s PORT\n", argv[0]);
		return 2;
	}
	char *end;
	long port = strtol(argv[1], &end, 10);
	if (*end || port < 1 || port > 65535) {
		fprintf(stderr, "%s: bad port %s\n", argv[0], argv[1]);
		return 2;
	}
	/* No SA_RESTART: accept returns EINTR so the loop reaps at once. */
	struct sigaction sa = { 0 };
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_child;
	sigaction(SIGCHLD, &sa, NULL);
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 ||
	    listen(listener, 1024) < 0) {
		perror("fork-echo: listen on 127.0.0.1");
		return 1;
	}
	while (!stop) {
		if (child_exited)
			reap();
		int client = accept(listener, NULL, NULL);
		if (client < 0)
			continue; /* EINTR (a child exited, or stop), or a client gone */
		pid_t pid = fork();
		if (pid == 0) {
			close(listener);
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
