# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_mpecho_bench_global_optspecs
    string join \n h/help V/version
end

function __fish_mpecho_bench_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_mpecho_bench_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_mpecho_bench_using_subcommand
    set -l cmd (__fish_mpecho_bench_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c mpecho-bench -n "__fish_mpecho_bench_needs_command" -s h -l help -d 'Print help'
complete -c mpecho-bench -n "__fish_mpecho_bench_needs_command" -s V -l version -d 'Print version'
complete -c mpecho-bench -n "__fish_mpecho_bench_needs_command" -f -a "churn" -d 'N concurrent loops of connect, send SIZE bytes, read them back, close: connections per second, latency per connection'
complete -c mpecho-bench -n "__fish_mpecho_bench_needs_command" -f -a "steady" -d 'N persistent connections doing request/response echo of SIZE bytes, one request outstanding each: round trips per second'
complete -c mpecho-bench -n "__fish_mpecho_bench_needs_command" -f -a "hold" -d 'Open N connections, verify an echo on each, hold them for the duration, verify again: survivors, connect times, time to open'
complete -c mpecho-bench -n "__fish_mpecho_bench_needs_command" -f -a "spawn-probe" -d 'Measure what starting a static glibc program costs here: mpecho\'s own spawn (clone + exec, as for its workers) and wait of a `return 0` program, with 1 and then 2 in flight. A reference, not a ceiling: see churn --expect-close for that'
complete -c mpecho-bench -n "__fish_mpecho_bench_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand churn" -l target -d 'The echo server to load, as HOST:PORT (IPv6 as [::1]:PORT)' -r
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand churn" -s c -l connections -d 'Connections (concurrent loops for churn, persistent connections for steady, connections held for hold)' -r
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand churn" -l size -d 'Bytes per request; each request\'s payload is unique to its connection and sequence number, and its echo is checked byte for byte' -r
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand churn" -l duration -d 'Seconds to run (for hold: to hold the connections); fractions allowed' -r
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand churn" -l timeout -d 'Seconds a connect or an echo may take before it counts as a timeout error' -r
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand churn" -l json -d 'Print the report as one JSON object on standard output'
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand churn" -l expect-close -d 'Send nothing: each connection is complete when the server closes it with nothing sent (an orderly close, EOF); any byte that comes back is an error. For measuring a server\'s ceiling against workers that do nothing (`mpecho serve --do-nothing-workers`); --size is then unused'
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand churn" -s h -l help -d 'Print help'
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand steady" -l target -d 'The echo server to load, as HOST:PORT (IPv6 as [::1]:PORT)' -r
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand steady" -s c -l connections -d 'Connections (concurrent loops for churn, persistent connections for steady, connections held for hold)' -r
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand steady" -l size -d 'Bytes per request; each request\'s payload is unique to its connection and sequence number, and its echo is checked byte for byte' -r
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand steady" -l duration -d 'Seconds to run (for hold: to hold the connections); fractions allowed' -r
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand steady" -l timeout -d 'Seconds a connect or an echo may take before it counts as a timeout error' -r
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand steady" -l json -d 'Print the report as one JSON object on standard output'
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand steady" -s h -l help -d 'Print help'
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand hold" -l target -d 'The echo server to load, as HOST:PORT (IPv6 as [::1]:PORT)' -r
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand hold" -s c -l connections -d 'Connections (concurrent loops for churn, persistent connections for steady, connections held for hold)' -r
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand hold" -l size -d 'Bytes per request; each request\'s payload is unique to its connection and sequence number, and its echo is checked byte for byte' -r
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand hold" -l duration -d 'Seconds to run (for hold: to hold the connections); fractions allowed' -r
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand hold" -l timeout -d 'Seconds a connect or an echo may take before it counts as a timeout error' -r
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand hold" -l json -d 'Print the report as one JSON object on standard output'
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand hold" -s h -l help -d 'Print help'
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand spawn-probe" -l duration -d 'Seconds each round (1 in flight, then 2) runs; fractions allowed' -r
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand spawn-probe" -l json -d 'Print the report as one JSON object on standard output'
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand spawn-probe" -s h -l help -d 'Print help'
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand help; and not __fish_seen_subcommand_from churn steady hold spawn-probe help" -f -a "churn" -d 'N concurrent loops of connect, send SIZE bytes, read them back, close: connections per second, latency per connection'
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand help; and not __fish_seen_subcommand_from churn steady hold spawn-probe help" -f -a "steady" -d 'N persistent connections doing request/response echo of SIZE bytes, one request outstanding each: round trips per second'
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand help; and not __fish_seen_subcommand_from churn steady hold spawn-probe help" -f -a "hold" -d 'Open N connections, verify an echo on each, hold them for the duration, verify again: survivors, connect times, time to open'
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand help; and not __fish_seen_subcommand_from churn steady hold spawn-probe help" -f -a "spawn-probe" -d 'Measure what starting a static glibc program costs here: mpecho\'s own spawn (clone + exec, as for its workers) and wait of a `return 0` program, with 1 and then 2 in flight. A reference, not a ceiling: see churn --expect-close for that'
complete -c mpecho-bench -n "__fish_mpecho_bench_using_subcommand help; and not __fish_seen_subcommand_from churn steady hold spawn-probe help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
