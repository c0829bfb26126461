//! The least of HTTP/1.x the metrics endpoint needs: collecting one request
//! head as it arrives in pieces ([`RequestBuffer`]), deciding the answer
//! ([`answer`]), and writing a response ([`write_response`]).
//!
//! It owns the request's bytes, in a fixed buffer of [`MAX_REQUEST`]
//! bytes allocated once per connection slot, and nothing else. It must
//! never do I/O (the endpoint reads and writes, non-blocking), never
//! allocate per byte or per request (responses go into a `Vec` the caller
//! reuses), never look past the head (a body, or a second request, is never
//! read as one), and never hand a client's bytes to the log or the
//! response: only fixed texts and numbers come out of here.

use std::io::Write as _;

/// The longest request head accepted, request line and headers together:
/// a scraper's `GET /metrics` with its headers is a few hundred bytes
/// (Prometheus sends six headers), so 4 KiB leaves room for proxies'
/// additions while bounding what a client can make the master hold (one
/// buffer per connection slot). A longer head gets 431.
pub const MAX_REQUEST: usize = 4096;

/// The only path served.
pub const METRICS_PATH: &[u8] = b"/metrics";

/// What a 405 says is allowed.
const ALLOWED: &str = "GET, HEAD";

/// The statuses the endpoint answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    /// The head did not end within [`MAX_REQUEST`] bytes.
    HeadTooLarge,
}

impl Status {
    /// Every status, in the order the metrics list them.
    pub const ALL: [Status; 5] = [
        Status::Ok,
        Status::BadRequest,
        Status::NotFound,
        Status::MethodNotAllowed,
        Status::HeadTooLarge,
    ];

    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::HeadTooLarge => 431,
        }
    }

    /// Its position in [`Status::ALL`], for counting.
    pub fn index(self) -> usize {
        self as usize
    }

    fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::HeadTooLarge => "Request Header Fields Too Large",
        }
    }

    /// The body of an error response: one line saying what to do.
    pub fn error_text(self) -> &'static str {
        match self {
            Status::Ok => "",
            Status::BadRequest => "malformed HTTP/1.x request\n",
            Status::NotFound => "not found: this server serves GET /metrics only\n",
            Status::MethodNotAllowed => "method not allowed: use GET (or HEAD)\n",
            Status::HeadTooLarge => "request head longer than 4096 bytes\n",
        }
    }
}

/// What a complete request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub status: Status,
    /// A HEAD request: the response has the head a GET would have, and no
    /// body.
    pub head_only: bool,
}

/// Where a request head stands after more bytes arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The empty line that ends the head has not come yet.
    Incomplete,
    /// The head is the first `n` bytes.
    Complete(usize),
    /// The buffer is full and the head has not ended.
    TooLarge,
}

/// One connection's request head, as it arrives.
pub struct RequestBuffer {
    bytes: Box<[u8; MAX_REQUEST]>,
    len: usize,
    /// Bytes already searched for the end of the head.
    scanned: usize,
}

impl Default for RequestBuffer {
    fn default() -> Self {
        RequestBuffer {
            bytes: Box::new([0; MAX_REQUEST]),
            len: 0,
            scanned: 0,
        }
    }
}

impl RequestBuffer {
    /// Empties the buffer for the next connection.
    pub fn clear(&mut self) {
        self.len = 0;
        self.scanned = 0;
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where the next read goes (empty when the buffer is full).
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.bytes[self.len..]
    }

    /// The whole buffer, for reads whose bytes are thrown away (what a
    /// client sends after its request).
    pub fn scratch(&mut self) -> &mut [u8] {
        &mut self.bytes[..]
    }

    /// Takes note that `n` more bytes were read into [`spare`](Self::spare),
    /// and says whether the head is complete. Only the new bytes (and the
    /// two before them) are searched, so a head that trickles in byte by
    /// byte costs no more than one that arrives whole.
    pub fn filled(&mut self, n: usize) -> Progress {
        self.len = (self.len + n).min(MAX_REQUEST);
        let b = &self.bytes[..self.len];
        for i in self.scanned..self.len {
            // A head ends with an empty line: `\r\n\r\n`, or bare `\n`s,
            // which RFC 9112 §2.2 lets a recipient accept.
            let ends = b[i] == b'\n'
                && ((i >= 1 && b[i - 1] == b'\n')
                    || (i >= 2 && b[i - 1] == b'\r' && b[i - 2] == b'\n'));
            if ends {
                return Progress::Complete(i + 1);
            }
        }
        self.scanned = self.len;
        if self.len == MAX_REQUEST {
            Progress::TooLarge
        } else {
            Progress::Incomplete
        }
    }

    /// The first `n` bytes: the head, once [`Progress::Complete`] said `n`.
    pub fn head(&self, n: usize) -> &[u8] {
        &self.bytes[..n.min(self.len)]
    }
}

/// The answer to a complete request head: 400 unless it is a well-formed
/// HTTP/1.0 or 1.1 request line followed by well-formed header lines; then
/// 404 for any path but `/metrics` (a query string is ignored), 405 for a
/// method other than GET and HEAD, 200 otherwise.
pub fn answer(head: &[u8]) -> Answer {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let Some((method, target)) = lines.next().and_then(request_line) else {
        return Answer {
            status: Status::BadRequest,
            head_only: false,
        };
    };
    let head_only = method == b"HEAD";
    let headers_ok = lines
        .take_while(|line| !line.is_empty())
        .all(is_header_line);
    let path = target.split(|&b| b == b'?').next().unwrap_or(target);
    let status = if !headers_ok {
        Status::BadRequest
    } else if path != METRICS_PATH {
        Status::NotFound
    } else if method == b"GET" || head_only {
        Status::Ok
    } else {
        Status::MethodNotAllowed
    };
    Answer { status, head_only }
}

/// `METHOD SP TARGET SP HTTP/1.x`, as `(method, target)`.
fn request_line(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut parts = line.split(|&b| b == b' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let well_formed = parts.next().is_none()
        && !method.is_empty()
        && method.iter().all(|&b| is_token_byte(b))
        && target.first() == Some(&b'/')
        && target.iter().all(|&b| b.is_ascii_graphic())
        && (version == b"HTTP/1.1" || version == b"HTTP/1.0");
    well_formed.then_some((method, target))
}

/// `NAME: value`, with a token for a name and no control character but a
/// tab in the value. A line starting with white space (an obsolete folded
/// continuation) is refused, as RFC 9112 §5.2 allows.
fn is_header_line(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    !name.is_empty()
        && name.iter().all(|&b| is_token_byte(b))
        && value.iter().all(|&b| b == b'\t' || !b.is_ascii_control())
}

/// A `tchar` of RFC 9110 §5.6.2.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Writes a whole response into `out` (emptied first): status line,
/// `Content-Type`, `Content-Length`, `Connection: close` (one request per
/// connection), `Allow` on a 405, then `body` unless `head_only`.
pub fn write_response(
    out: &mut Vec<u8>,
    status: Status,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) {
    out.clear();
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        status.code(),
        status.reason(),
        body.len()
    );
    if status == Status::MethodNotAllowed {
        let _ = write!(out, "Allow: {ALLOWED}\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(request: &[u8]) -> (Progress, RequestBuffer) {
        let mut buffer = RequestBuffer::default();
        let mut progress = Progress::Incomplete;
        for &byte in request {
            if buffer.spare().is_empty() {
                break;
            }
            buffer.spare()[0] = byte;
            progress = buffer.filled(1);
            if progress != Progress::Incomplete {
                break;
            }
        }
        (progress, buffer)
    }

    fn status_of(request: &[u8]) -> Status {
        let (progress, buffer) = feed(request);
        match progress {
            Progress::Complete(n) => answer(buffer.head(n)).status,
            other => panic!("{other:?} for {request:?}"),
        }
    }

    #[test]
    fn a_head_ends_at_the_first_empty_line_even_byte_by_byte() {
        let request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        let (progress, _) = feed(request);
        assert_eq!(progress, Progress::Complete(34));
        assert_eq!(feed(b"GET /metrics HTTP/1.0\n\n").0, Progress::Complete(23));
        assert_eq!(feed(b"GET /metrics HTTP/1.1\r\n").0, Progress::Incomplete);
    }

    #[test]
    fn answers_by_path_then_method() {
        let ok = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n";
        assert_eq!(status_of(ok), Status::Ok);
        assert_eq!(status_of(b"GET /metrics?x=1 HTTP/1.1\r\n\r\n"), Status::Ok);
        assert_eq!(status_of(b"GET / HTTP/1.1\r\n\r\n"), Status::NotFound);
        assert_eq!(status_of(b"POST / HTTP/1.1\r\n\r\n"), Status::NotFound);
        let post = b"POST /metrics HTTP/1.1\r\n\r\n";
        assert_eq!(status_of(post), Status::MethodNotAllowed);
        let (Progress::Complete(n), buffer) = feed(b"HEAD /metrics HTTP/1.1\r\n\r\n") else {
            panic!("incomplete");
        };
        assert_eq!(
            answer(buffer.head(n)),
            Answer {
                status: Status::Ok,
                head_only: true
            }
        );
    }

    #[test]
    fn malformed_heads_are_bad_requests() {
        for request in [
            &b"\r\n\r\n"[..],
            b"GET /metrics\r\n\r\n",
            b"GET /metrics HTTP/2.0\r\n\r\n",
            b"GET  /metrics HTTP/1.1\r\n\r\n",
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"G\x01T /metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nno colon\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\n folded: x\r\n\r\n",
            b"GET /metrics HTTP/1.1\r\nX: a\x00b\r\n\r\n",
            b"GET http://x/metrics HTTP/1.1\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        ] {
            assert_eq!(status_of(request), Status::BadRequest, "{request:?}");
        }
    }

    #[test]
    fn a_head_that_fills_the_buffer_is_too_large() {
        let mut request = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        request.resize(MAX_REQUEST + 100, b'a');
        assert_eq!(feed(&request).0, Progress::TooLarge);
    }

    #[test]
    fn responses_say_their_length_and_close() {
        let mut out = Vec::new();
        write_response(
            &mut out,
            Status::MethodNotAllowed,
            "text/plain",
            b"no\n",
            false,
        );
        assert_eq!(
            out,
            b"HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\nAllow: GET, HEAD\r\n\r\nno\n"
        );
        write_response(&mut out, Status::Ok, "text/plain", b"body", true);
        assert!(out.ends_with(b"Content-Length: 4\r\nConnection: close\r\n\r\n"));
    }
}
