//! The `mpecho-bench` executable: parse the command line, call one `run()`
//! for the scenario named, print its report, and own the exit status.
//!
//! Exit statuses: 0 the run completed with no error counted, 1 an error
//! was counted, the target could not be reached or the run could not be
//! carried out (one line on stderr says which), 2 bad usage (from
//! `cli::parse`). A closed standard output (`| head`) is not an error.
//!
//! Nothing here measures or renders: that is the library's, so that tests
//! reach the same code.

#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::process::ExitCode;

use mpecho_bench::cli::{self, Command, ProbeArgs};
use mpecho_bench::load;
use mpecho_bench::scenario::{NAME, Scenario, Settings};
use mpecho_bench::spawn_probe;

fn main() -> ExitCode {
    let cli = match cli::parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(status) => return status,
    };
    match cli.command {
        Command::Churn(args) => run_load(Scenario::Churn, &args.settings(), args.load.json),
        Command::Steady(args) => run_load(Scenario::Steady, &args.settings(), args.json),
        Command::Hold(args) => run_load(Scenario::Hold, &args.settings(), args.json),
        Command::SpawnProbe(args) => run_spawn_probe(&args),
    }
}

/// churn, steady or hold: the report on stdout, then 0 only if the target
/// was reached and no error of any kind was counted.
fn run_load(scenario: Scenario, settings: &Settings, json: bool) -> ExitCode {
    let finished = match load::run(scenario, settings) {
        Ok(finished) => finished,
        Err(e) => {
            eprintln!("{NAME} {}: {e}", scenario.name());
            return ExitCode::FAILURE;
        }
    };
    let report = finished.report(scenario, settings);
    print_stdout(&if json {
        report.to_json() + "\n"
    } else {
        report.to_human()
    });
    let errors = finished.errors();
    if let Some(reason) = finished.unreachable() {
        eprintln!("{NAME} {}: {reason}", scenario.name());
        ExitCode::FAILURE
    } else if errors > 0 {
        eprintln!(
            "{NAME} {}: {errors} errors counted (see the report)",
            scenario.name()
        );
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// spawn-probe: the report on stdout, then 0 only if every child exited
/// with status 0.
fn run_spawn_probe(args: &ProbeArgs) -> ExitCode {
    let probe = match spawn_probe::run(args.duration) {
        Ok(probe) => probe,
        Err(e) => {
            eprintln!("{NAME} spawn-probe: {e}");
            return ExitCode::FAILURE;
        }
    };
    print_stdout(&if args.json {
        probe.to_json() + "\n"
    } else {
        probe.to_human()
    });
    match probe.failures() {
        0 => ExitCode::SUCCESS,
        failures => {
            eprintln!("{NAME} spawn-probe: {failures} probe children did not exit with status 0");
            ExitCode::FAILURE
        }
    }
}

/// Writes the report; a closed standard output (`| head`) is not an error
/// worth a message.
fn print_stdout(text: &str) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush())
        && e.kind() != io::ErrorKind::BrokenPipe
    {
        eprintln!("{NAME}: could not write the report: {e}");
    }
}
