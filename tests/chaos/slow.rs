//! The slow reader: a client that sends up to its total from a thread of
//! its own and reads only when the scenario says, checking what it reads.
//!
//! Its writer ends when the server ends the connection; the scenario waits
//! for it (`finish`) and fails if it stopped for any other reason.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::{self, JoinHandle};

use crate::clients::{Stop, open, stop};
use crate::payload::{check, fill};

/// A client that sends up to `total` bytes from a thread of its own and
/// reads only when told: the slow reader.
pub(crate) struct SlowClient {
    pub(crate) stream: TcpStream,
    pub(crate) id: u64,
    pub(crate) writer: Option<JoinHandle<(u64, Option<io::Error>)>>,
}

impl SlowClient {
    pub(crate) fn start(addr: SocketAddr, id: u64, total: u64) -> SlowClient {
        let stream = open(addr, None).expect("connect the slow client");
        let mut out = stream.try_clone().expect("clone the slow client's socket");
        let writer = thread::spawn(move || {
            let mut sent = 0u64;
            let mut data = vec![0u8; 256 * 1024];
            while sent < total {
                let n = data.len().min((total - sent) as usize);
                fill(id, sent, &mut data[..n]);
                let mut done = 0;
                while done < n {
                    match out.write(&data[done..n]) {
                        Ok(0) => return (sent, None),
                        Ok(k) => {
                            done += k;
                            sent += k as u64;
                        }
                        Err(e) => return (sent, Some(e)),
                    }
                }
            }
            (sent, None)
        });
        SlowClient {
            stream,
            id,
            writer: Some(writer),
        }
    }

    pub(crate) fn reader(&self) -> SlowReader {
        SlowReader {
            stream: self
                .stream
                .try_clone()
                .expect("clone the slow client's socket"),
            id: self.id,
            received: 0,
            fault: None,
            buf: vec![0; 64 * 1024],
            scratch: Vec::new(),
        }
    }

    /// Waits for the writer and returns how much it sent; it must have
    /// stopped because the server ended the connection.
    pub(crate) fn finish(mut self) -> u64 {
        let (sent, error) = self
            .writer
            .take()
            .expect("finished once")
            .join()
            .expect("the slow client's writer");
        if let Some(e) = error {
            assert!(
                matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
                "the slow client's writer stopped with {e} after {sent} bytes, not because the \
                 server closed the connection"
            );
        }
        sent
    }
}

/// The reading side of a slow client.
pub(crate) struct SlowReader {
    pub(crate) stream: TcpStream,
    pub(crate) id: u64,
    pub(crate) received: u64,
    pub(crate) fault: Option<String>,
    pub(crate) buf: Vec<u8>,
    pub(crate) scratch: Vec<u8>,
}

impl SlowReader {
    /// Reads and checks until `total` bytes in all, EOF or a reset.
    pub(crate) fn read_up_to(&mut self, total: u64) {
        while self.received < total && self.fault.is_none() {
            let want = ((total - self.received) as usize).min(self.buf.len());
            match self.stream.read(&mut self.buf[..want]) {
                Ok(0) => return,
                Ok(n) => {
                    if let Err(f) = check(self.id, self.received, &self.buf[..n], &mut self.scratch)
                    {
                        self.fault = Some(f);
                    }
                    self.received += n as u64;
                }
                Err(e) => {
                    if let Stop::Fault(f) = stop(e, "reading the echo") {
                        self.fault = Some(f);
                    }
                    return;
                }
            }
        }
    }
}
