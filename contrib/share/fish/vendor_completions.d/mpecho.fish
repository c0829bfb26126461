# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_mpecho_global_optspecs
    string join \n h/help V/version
end

function __fish_mpecho_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_mpecho_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_mpecho_using_subcommand
    set -l cmd (__fish_mpecho_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c mpecho -n "__fish_mpecho_needs_command" -s h -l help -d 'Print help'
complete -c mpecho -n "__fish_mpecho_needs_command" -s V -l version -d 'Print version'
complete -c mpecho -n "__fish_mpecho_needs_command" -f -a "serve" -d 'Run the echo server: a master that accepts connections and starts one worker process per client'
complete -c mpecho -n "__fish_mpecho_needs_command" -f -a "client" -d 'Send standard input line by line to an echo server and print what comes back'
complete -c mpecho -n "__fish_mpecho_needs_command" -f -a "chat-server" -d 'Run the UDP chat relay: every datagram from a known client goes to every other known client, tagged with the sender\'s address'
complete -c mpecho -n "__fish_mpecho_needs_command" -f -a "chat" -d 'Join a chat relay: lines typed are sent, messages received are printed (END or end of input leaves)'
complete -c mpecho -n "__fish_mpecho_needs_command" -f -a "rules" -d 'Work with access-rules files (`--rules`): `mpecho rules check FILE`'
complete -c mpecho -n "__fish_mpecho_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c mpecho -n "__fish_mpecho_using_subcommand serve" -s l -l listen -d 'Address to listen on, as IP:PORT (IPv6 as [::1]:PORT); port 0 picks a free port, printed in the `listening on` line [default: 127.0.0.1:9190]. A socket passed by systemd (socket activation) wins over it, with a log line saying so' -r
complete -c mpecho -n "__fish_mpecho_using_subcommand serve" -l listen-fd-name -d 'Under socket activation, serve the passed socket of this name (LISTEN_FDNAMES: FileDescriptorName= in the .socket unit) instead of the first one' -r
complete -c mpecho -n "__fish_mpecho_using_subcommand serve" -l model -d 'How connections are served: `exec` starts the worker program for each (the production server); `fork` forks the master for each, the child serving it with the worker\'s code without exec (the textbook fork server); `prefork` keeps a pool of forked processes, each serving one connection at a time and then the next (Apache\'s prefork); `iterative` serves one client at a time in the master itself, the next waiting in the backlog (the first server of the original, for teaching and comparison)' -r -f -a "exec\t'A worker process per connection, the worker program exec\'d'
fork\t'A worker process per connection, forked without exec'
prefork\t'A pool of forked processes, each serving one connection at a time'
iterative\t'One client at a time, served by the master itself'"
complete -c mpecho -n "__fish_mpecho_using_subcommand serve" -s m -l max-workers -d 'Most workers (connections) served at once; a connection beyond it is accepted and closed at once, and counted as rejected [default: 10000; with --model iterative, 1]. With --model prefork, the most pool processes, idle or busy' -r
complete -c mpecho -n "__fish_mpecho_using_subcommand serve" -l on-full -d 'What to do with a new connection at the worker limit: `reject` accepts and closes it at once; `defer` leaves it waiting in the kernel\'s backlog until a worker exits' -r -f -a "reject\t''
defer\t''"
complete -c mpecho -n "__fish_mpecho_using_subcommand serve" -l max-per-ip -d 'Most connections served at once for one client address (IPv4-mapped IPv6 counts as its IPv4 address); 0 is no limit' -r
complete -c mpecho -n "__fish_mpecho_using_subcommand serve" -l log-file -d 'Append the log to this file instead of standard error (opened once, shared by the master and all workers)' -r -F
complete -c mpecho -n "__fish_mpecho_using_subcommand serve" -l monitor-interval -d 'Seconds between figures lines in the log; 0 turns them off (SIGUSR1 still writes one at once)' -r
complete -c mpecho -n "__fish_mpecho_using_subcommand serve" -l grace -d 'Seconds workers get to finish at shutdown before they are killed' -r
complete -c mpecho -n "__fish_mpecho_using_subcommand serve" -l backlog -d 'Length of the kernel\'s queue of connections not yet accepted' -r
complete -c mpecho -n "__fish_mpecho_using_subcommand serve" -l log-level -d 'Least severe level written to the log' -r -f -a "error\t''
warn\t''
info\t''
debug\t''
trace\t''"
complete -c mpecho -n "__fish_mpecho_using_subcommand serve" -l worker -d 'A worker executable to run for every connection instead of the mpecho-worker built into mpecho (opened once at start and checked; `--model exec` only)' -r -F
complete -c mpecho -n "__fish_mpecho_using_subcommand serve" -l user -d 'After binding and opening the log as root, become this user (its primary and supplementary groups too) before accepting anything' -r
complete -c mpecho -n "__fish_mpecho_using_subcommand serve" -l group -d 'With --user: the group to become instead of the user\'s primary one' -r
complete -c mpecho -n "__fish_mpecho_using_subcommand serve" -l idle-timeout -d 'Seconds a connection may stay idle (the client neither sends nor reads anything) before its worker closes it (for an --exec program, the master does, and sends the program SIGTERM); 0 turns it off. Quiet interactive clients are closed too' -r
complete -c mpecho -n "__fish_mpecho_using_subcommand serve" -l max-rate-per-ip -d 'At most N new connections per SECS seconds from one client address (`10/1`, `30/60s`; a burst of N at once is allowed): one over the rate is accepted and closed at once, and counted, while other addresses are served as usual. A rule\'s `max-rate-per-ip=` replaces it for its addresses' -r
complete -c mpecho -n "__fish_mpecho_using_subcommand serve" -l reject-message -d 'A last word written to every client turned away (by a limit, a rule, a rate, or a worker that could not start) just before it is closed, without ever waiting for it, as sshd and `tcpserver -B` do. `\\r`, `\\n`, `\\t` and `\\\\` are understood: \'busy, try later\\r\\n\'. At most 1024 bytes' -r
complete -c mpecho -n "__fish_mpecho_using_subcommand serve" -l rules -d 'Access rules: which client addresses are served, with which environment and per-address limits (see `mpecho rules check`). Read at start (a file that does not parse is refused) and again on SIGHUP (a bad file then keeps the rules in force)' -r -F
complete -c mpecho -n "__fish_mpecho_using_subcommand serve" -l min-spare -d 'With --model prefork: the fewest idle processes kept waiting for the next connections [default: 5, or --max-workers if lower]' -r
complete -c mpecho -n "__fish_mpecho_using_subcommand serve" -l max-spare -d 'With --model prefork: the most idle processes kept; more are stopped [default: 10, and at least --min-spare]' -r
complete -c mpecho -n "__fish_mpecho_using_subcommand serve" -l max-requests -d 'With --model prefork: connections one process serves before it is replaced by a fresh one; 0 is never [default: 0]' -r
complete -c mpecho -n "__fish_mpecho_using_subcommand serve" -l exec -d 'Run PROG with its ARGs for every connection instead of the built-in echo, the UCSPI (tcpserver, inetd) way: the connection on standard input and output, standard error inherited from mpecho, and PROTO, TCPREMOTEIP, TCPREMOTEPORT, TCPLOCALIP, TCPLOCALPORT and TCPCONNNUM in its environment. Everything after `--exec PROG` is PROG\'s arguments, so give mpecho\'s options first. PROG is looked up in PATH (at start, where it must be found and executable, and at each connection). With --exec the model is always exec' -r
complete -c mpecho -n "__fish_mpecho_using_subcommand serve" -l trusted-proxy -d 'With --proxy-protocol (and required by it): a balancer allowed to send PROXY headers, as an address or CIDR prefix (10.0.0.0/8, 2001:db8::/32); repeatable. A connection from any other address is closed at once, unread' -r
complete -c mpecho -n "__fish_mpecho_using_subcommand serve" -l proxy-timeout -d 'With --proxy-protocol: seconds a connection has to send its whole PROXY header before it is closed [default: 3]' -r
complete -c mpecho -n "__fish_mpecho_using_subcommand serve" -l metrics -d 'Serve Prometheus metrics at http://ADDR/metrics (IP:PORT, e.g. 127.0.0.1:9464; port 0 picks one, logged as `metrics on ADDR`). Off by default' -r
complete -c mpecho -n "__fish_mpecho_using_subcommand serve" -l do-nothing-workers -d 'Measuring only: every worker closes its connection and exits at once, echoing nothing (`mpecho-worker --do-nothing`). The master\'s whole path with no echo work, the ceiling of its churn (docs/BENCHMARKS.md); hidden, since it serves no one'
complete -c mpecho -n "__fish_mpecho_using_subcommand serve" -l proxy-protocol -d 'Every connection must begin with a PROXY protocol header (v1 or v2), sent by a load balancer named by --trusted-proxy: admission, the log and the worker\'s TCPREMOTEIP then use the client\'s address it carries. Never guessed: without this option no header is read'
complete -c mpecho -n "__fish_mpecho_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mpecho -n "__fish_mpecho_using_subcommand client" -s h -l help -d 'Print help'
complete -c mpecho -n "__fish_mpecho_using_subcommand chat-server" -s l -l listen -d 'Address to listen on, as IP:PORT (IPv6 as [::1]:PORT); port 0 picks a free port, printed in the `listening on` line' -r
complete -c mpecho -n "__fish_mpecho_using_subcommand chat-server" -l max-clients -d 'Most clients known at once; a newcomer beyond it gets `server full` and known clients are never evicted for it' -r
complete -c mpecho -n "__fish_mpecho_using_subcommand chat-server" -l idle-timeout -d 'Seconds a client may stay silent before it is forgotten (announced as `left`); 0 keeps clients until they send END' -r
complete -c mpecho -n "__fish_mpecho_using_subcommand chat-server" -l redis -d 'Share one room with other relays through Redis pub/sub, as redis://HOST:PORT[/DB]. Without Redis (down at start or later) the relay keeps relaying among its own clients and reconnects' -r
complete -c mpecho -n "__fish_mpecho_using_subcommand chat-server" -l room -d 'The room shared through --redis: relays in the same room hear each other\'s clients' -r
complete -c mpecho -n "__fish_mpecho_using_subcommand chat-server" -l log-file -d 'Append the log to this file instead of standard error' -r -F
complete -c mpecho -n "__fish_mpecho_using_subcommand chat-server" -l log-level -d 'Least severe level written to the log' -r -f -a "error\t''
warn\t''
info\t''
debug\t''
trace\t''"
complete -c mpecho -n "__fish_mpecho_using_subcommand chat-server" -s h -l help -d 'Print help'
complete -c mpecho -n "__fish_mpecho_using_subcommand chat" -s h -l help -d 'Print help'
complete -c mpecho -n "__fish_mpecho_using_subcommand rules; and not __fish_seen_subcommand_from check help" -s h -l help -d 'Print help'
complete -c mpecho -n "__fish_mpecho_using_subcommand rules; and not __fish_seen_subcommand_from check help" -f -a "check" -d 'Validate an access-rules file and print what each rule means: one line per network (line number, prefix, verdict, settings), then the default. Exit status 0 for a valid file, 1 for an invalid one (each problem on standard error as FILE:LINE: problem)'
complete -c mpecho -n "__fish_mpecho_using_subcommand rules; and not __fish_seen_subcommand_from check help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c mpecho -n "__fish_mpecho_using_subcommand rules; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help'
complete -c mpecho -n "__fish_mpecho_using_subcommand rules; and __fish_seen_subcommand_from help" -f -a "check" -d 'Validate an access-rules file and print what each rule means: one line per network (line number, prefix, verdict, settings), then the default. Exit status 0 for a valid file, 1 for an invalid one (each problem on standard error as FILE:LINE: problem)'
complete -c mpecho -n "__fish_mpecho_using_subcommand rules; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c mpecho -n "__fish_mpecho_using_subcommand help; and not __fish_seen_subcommand_from serve client chat-server chat rules help" -f -a "serve" -d 'Run the echo server: a master that accepts connections and starts one worker process per client'
complete -c mpecho -n "__fish_mpecho_using_subcommand help; and not __fish_seen_subcommand_from serve client chat-server chat rules help" -f -a "client" -d 'Send standard input line by line to an echo server and print what comes back'
complete -c mpecho -n "__fish_mpecho_using_subcommand help; and not __fish_seen_subcommand_from serve client chat-server chat rules help" -f -a "chat-server" -d 'Run the UDP chat relay: every datagram from a known client goes to every other known client, tagged with the sender\'s address'
complete -c mpecho -n "__fish_mpecho_using_subcommand help; and not __fish_seen_subcommand_from serve client chat-server chat rules help" -f -a "chat" -d 'Join a chat relay: lines typed are sent, messages received are printed (END or end of input leaves)'
complete -c mpecho -n "__fish_mpecho_using_subcommand help; and not __fish_seen_subcommand_from serve client chat-server chat rules help" -f -a "rules" -d 'Work with access-rules files (`--rules`): `mpecho rules check FILE`'
complete -c mpecho -n "__fish_mpecho_using_subcommand help; and not __fish_seen_subcommand_from serve client chat-server chat rules help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c mpecho -n "__fish_mpecho_using_subcommand help; and __fish_seen_subcommand_from rules" -f -a "check" -d 'Validate an access-rules file and print what each rule means: one line per network (line number, prefix, verdict, settings), then the default. Exit status 0 for a valid file, 1 for an invalid one (each problem on standard error as FILE:LINE: problem)'
