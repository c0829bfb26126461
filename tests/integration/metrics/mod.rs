//! The metrics endpoint (`mpecho serve --metrics ADDR`), scraped over
//! loopback like Prometheus does, its output read by a real Prometheus
//! parser (Debian's `python3-prometheus-client`, run with /usr/bin/python3),
//! one file per topic:
//! - `exposition.rs`: the families, their values after a known sequence of
//!   connections, the histogram, agreement with the figures line;
//! - `http.rs`: what each kind of request gets (200, HEAD, 400, 404, 405,
//!   431);
//! - `scrapers.rs`: silent, slow, never-reading, flooding and oversized
//!   scrapers, while echo goes on;
//! - `lifecycle.rs`: binding, descriptors, shutdown.
//!
//! Helpers here send raw requests and parse what comes back; they never
//! sleep, and every read has the harness's timeout.

mod exposition;
mod http;
mod lifecycle;
mod scrapers;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use mpecho_testkit::{Server, connect_to, text};

/// The Content-Type of the text exposition format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The endpoint's deadline and connection bound (`src/server/metrics/`).
pub const DEADLINE_SECS: u64 = 2;
pub const MAX_CONNECTIONS: usize = 16;

/// Starts `mpecho serve ARGS --metrics 127.0.0.1:0` and returns it with
/// the metrics address it logged.
pub fn start(args: &[&str]) -> (Server, SocketAddr) {
    let mut all = args.to_vec();
    all.extend(["--metrics", "127.0.0.1:0"]);
    let server = Server::start(&all);
    let addr = server.metrics_addr();
    (server, addr)
}

/// An HTTP response, as read from a connection the server closed.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The value of header `name` (case-insensitive), if present once.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut found = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name));
        let first = found.next().map(|(_, v)| v.as_str());
        assert!(found.next().is_none(), "header {name} given twice");
        first
    }

    /// Asserts the headers every response has: `Content-Length` (equal to
    /// the body's, unless `head_only`) and `Connection: close`.
    pub fn assert_framed(&self, head_only: bool) -> usize {
        assert_eq!(self.header("Connection"), Some("close"));
        let length: usize = self
            .header("Content-Length")
            .and_then(|v| v.parse().ok())
            .expect("a numeric Content-Length");
        let expected = if head_only { 0 } else { length };
        assert_eq!(self.body.len(), expected, "body length");
        length
    }
}

/// Parses a whole response: status line, headers, body.
pub fn parse_response(bytes: &[u8]) -> Response {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {:?}", text(bytes)));
    let head = text(&bytes[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .map(|line| {
            let (name, value) = line
                .split_once(": ")
                .unwrap_or_else(|| panic!("bad header line {line:?}"));
            (name.to_string(), value.to_string())
        })
        .collect();
    Response {
        status,
        headers,
        body: bytes[end + 4..].to_vec(),
    }
}

/// Sends `raw` on a new connection and reads until the server closes it.
pub fn request(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut stream = connect_to(addr);
    stream.write_all(raw).expect("send the request");
    let mut all = Vec::new();
    stream
        .read_to_end(&mut all)
        .expect("read the response to the end");
    parse_response(&all)
}

/// `METHOD PATH HTTP/1.1` with the headers Prometheus sends.
pub fn request_for(method: &str, path: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Prometheus/2.42.0\r\n\
         Accept: text/plain;version=0.0.4;q=0.9,*/*;q=0.1\r\nAccept-Encoding: gzip\r\n\
         X-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n"
    )
    .into_bytes()
}

/// One sample as the parser read it.
#[derive(Debug)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// One metric family as the parser read it (a counter's name without
/// `_total`, as `prometheus_client` reports it).
#[derive(Debug)]
pub struct Family {
    pub name: String,
    pub kind: String,
    pub help: String,
    pub samples: Vec<Sample>,
}

/// A scrape: the text served and the families the parser read from it.
pub struct Scrape {
    pub text: String,
    pub families: Vec<Family>,
}

/// `prometheus_client`'s parser over standard input, the families out as
/// JSON.
const PARSER: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
json.dump([
    {"name": f.name, "type": f.type, "help": f.documentation,
     "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]}
    for f in text_string_to_metric_families(sys.stdin.read())
], sys.stdout)
"#;

/// The Python that sees Debian's packages (`python3` on PATH may be
/// another one).
const PYTHON: &str = "/usr/bin/python3";

impl Scrape {
    /// Parses `text` with the real parser; fails naming the package to
    /// install when it is missing.
    pub fn parse(text: String) -> Scrape {
        let mut child = Command::new(PYTHON)
            .args(["-c", PARSER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run {PYTHON}: {e}"));
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(text.as_bytes())
            .expect("send the exposition to the parser");
        let output = child.wait_with_output().expect("wait for the parser");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !stderr.contains("No module named 'prometheus_client'"),
            "the Prometheus parser is missing: apt-get install python3-prometheus-client \
             (.ci/run does)"
        );
        assert!(
            output.status.success(),
            "the Prometheus parser refused the exposition: {stderr}\n{text}"
        );
        let json: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("the parser's JSON");
        let families = json
            .as_array()
            .expect("a list of families")
            .iter()
            .map(Family::from_json)
            .collect();
        Scrape { text, families }
    }

    /// The value of the sample `name` with exactly `labels`; fails if there
    /// is none.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.families
            .iter()
            .flat_map(|f| &f.samples)
            .find(|s| s.name == name && s.labels == wanted)
            .map(|s| s.value)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?} in:\n{}", self.text))
    }

    /// The value of a sample that counts something: a whole number.
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let value = self.value(name, labels);
        assert!(
            value >= 0.0 && value.fract() == 0.0,
            "{name}{labels:?} = {value} is not a count"
        );
        value as u64
    }

    pub fn family(&self, name: &str) -> &Family {
        self.families
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no family {name} in:\n{}", self.text))
    }
}

impl Family {
    fn from_json(value: &serde_json::Value) -> Family {
        let string = |v: &serde_json::Value, key: &str| {
            v[key]
                .as_str()
                .unwrap_or_else(|| panic!("no {key} in {v}"))
                .to_string()
        };
        let samples = value["samples"]
            .as_array()
            .expect("samples")
            .iter()
            .map(|s| Sample {
                name: string(s, "name"),
                labels: s["labels"]
                    .as_object()
                    .expect("labels")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().expect("a label value").to_string()))
                    .collect(),
                value: s["value"].as_f64().expect("a numeric value"),
            })
            .collect();
        Family {
            name: string(value, "name"),
            kind: string(value, "type"),
            help: string(value, "help"),
            samples,
        }
    }
}

/// Scrapes `GET /metrics`, checks the response's framing and type, and
/// parses the body with the real parser.
pub fn scrape(addr: SocketAddr) -> Scrape {
    let response = request(addr, &request_for("GET", "/metrics"));
    assert_eq!(response.status, 200, "{}", text(&response.body));
    assert_eq!(response.header("Content-Type"), Some(CONTENT_TYPE));
    response.assert_framed(false);
    Scrape::parse(String::from_utf8(response.body).expect("the exposition is UTF-8"))
}
