//! The `mpecho` executable: parse the command line, dispatch, exit.

use std::ffi::OsString;
use std::process::ExitCode;

use mpecho::cli::{self, Command};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    // Workers are started once per connection: dispatch before clap builds
    // its parser, so their start-up costs only what they need (DESIGN §11).
    if args.get(1).is_some_and(|a| a == "worker") {
        return mpecho::worker::main(&args[2..]);
    }
    let cli = match cli::parse(args) {
        Ok(cli) => cli,
        Err(status) => return status,
    };
    match cli.command {
        Command::Serve(args) => mpecho::server::main(args),
        Command::Client(args) => mpecho::client::main(args),
        Command::ChatServer(args) => mpecho::chat::server::main(args),
        Command::Chat(args) => mpecho::chat::client::main(args),
        Command::Bench(args) => mpecho::bench::main(args),
        Command::Worker => mpecho::worker::main(&[]),
    }
}
