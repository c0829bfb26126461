//! The line client: `mpecho client [HOST] [PORT]` (DESIGN §8).
//!
//! Reads standard input line by line, sends each non-empty line with its
//! newline, and prints exactly the bytes that come back, reading until the
//! whole echo has arrived however long the line. Messages go to standard
//! error only, so standard output carries nothing but the echo. It never
//! panics on what the user or the network does: a closed stdout ends the
//! session quietly (status 0), a refused or closed connection is explained
//! (status 1).

use std::io::{self, BufRead, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::ExitCode;

use crate::cli::ClientArgs;
use crate::net;

/// Entry point for `mpecho client`.
pub fn main(args: ClientArgs) -> ExitCode {
    let mut stream = match connect(&args.host, args.port) {
        Ok(stream) => stream,
        Err(message) => {
            eprintln!("mpecho client: {message}");
            return ExitCode::FAILURE;
        }
    };
    match session(&mut stream, io::stdin().lock(), io::stdout().lock()) {
        Ok(()) => {
            let _ = stream.shutdown(Shutdown::Write);
            ExitCode::SUCCESS
        }
        Err(SessionError::StdoutClosed) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mpecho client: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Connects to the first address of `host` that accepts.
fn connect(host: &str, port: u16) -> Result<TcpStream, String> {
    let addrs = net::resolve(host, port)?;
    let mut last_error = None;
    for addr in addrs {
        match TcpStream::connect(addr) {
            Ok(stream) => return Ok(stream),
            Err(e) => last_error = Some((addr, e)),
        }
    }
    Err(match last_error {
        Some((addr, e)) if e.kind() == io::ErrorKind::ConnectionRefused => format!(
            "could not connect to {addr}: connection refused (is `mpecho serve` running on that port?)"
        ),
        Some((addr, e)) => format!("could not connect to {addr}: {e}"),
        None => format!("{host} has no address to connect to"),
    })
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("could not read standard input: {0}")]
    Stdin(io::Error),
    #[error("could not send to the server: {0}")]
    Send(io::Error),
    #[error(
        "the server closed the connection after echoing {got} of {sent} bytes \
         (it may be at its worker limit, or shutting down)"
    )]
    Closed { got: usize, sent: usize },
    #[error(
        "the server closed the connection before the line could be sent \
         (it may be at its worker limit, or shutting down)"
    )]
    ClosedBeforeSend,
    #[error("could not receive from the server: {0}")]
    Receive(io::Error),
    #[error("standard output was closed")]
    StdoutClosed,
    #[error("could not write to standard output: {0}")]
    Stdout(io::Error),
}

/// Sends each line of `input` and copies its echo to `output`, until `END`
/// or end of input.
fn session(
    stream: &mut TcpStream,
    mut input: impl BufRead,
    mut output: impl Write,
) -> Result<(), SessionError> {
    let mut line = Vec::new();
    let mut echo = Vec::new();
    loop {
        line.clear();
        if input
            .read_until(b'\n', &mut line)
            .map_err(SessionError::Stdin)?
            == 0
        {
            return Ok(());
        }
        let text = trim_line_end(&line);
        if text.is_empty() {
            continue;
        }
        if text == b"END" {
            return Ok(());
        }
        if !line.ends_with(b"\n") {
            line.push(b'\n');
        }
        stream.write_all(&line).map_err(send_error)?;
        echo.resize(line.len(), 0);
        read_echo(stream, &mut echo)?;
        output
            .write_all(&echo)
            .and_then(|()| output.flush())
            .map_err(|e| {
                if e.kind() == io::ErrorKind::BrokenPipe {
                    SessionError::StdoutClosed
                } else {
                    SessionError::Stdout(e)
                }
            })?;
    }
}

/// Fills `echo` completely from the server.
fn read_echo(stream: &mut TcpStream, echo: &mut [u8]) -> Result<(), SessionError> {
    let mut got = 0;
    while got < echo.len() {
        match stream.read(&mut echo[got..]) {
            Ok(0) => {
                return Err(SessionError::Closed {
                    got,
                    sent: echo.len(),
                });
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                return Err(SessionError::Closed {
                    got,
                    sent: echo.len(),
                });
            }
            Err(e) => return Err(SessionError::Receive(e)),
        }
    }
    Ok(())
}

fn send_error(e: io::Error) -> SessionError {
    match e.kind() {
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => {
            SessionError::ClosedBeforeSend
        }
        _ => SessionError::Send(e),
    }
}

/// The line without its `\n` or `\r\n`.
fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}
