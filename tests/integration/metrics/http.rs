//! What each kind of request gets: the exposition for `GET /metrics` (and
//! its head for HEAD), 404 for other paths, 405 with `Allow` for other
//! methods, 400 for what is not HTTP/1.x, 431 for a head over 4 KiB; every
//! response closes its connection, and each is counted by code.

use mpecho_testkit::text;

use super::{CONTENT_TYPE, request, request_for, scrape, start};

/// HEAD gets the head a GET would (200, the exposition's type and a
/// length) and no body; a query string and HTTP/1.0 are served like a
/// plain GET.
#[test]
fn head_query_strings_and_http_1_0_are_served() {
    let (_server, metrics) = start(&[]);
    let head = request(metrics, &request_for("HEAD", "/metrics"));
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Type"), Some(CONTENT_TYPE));
    assert!(
        head.assert_framed(true) > 1000,
        "HEAD announces the GET's length"
    );

    let query = request(metrics, &request_for("GET", "/metrics?name[]=up"));
    assert_eq!(query.status, 200);
    query.assert_framed(false);
    let old = request(metrics, b"GET /metrics HTTP/1.0\r\n\r\n");
    assert_eq!(old.status, 200);
    old.assert_framed(false);
    assert!(text(&old.body).contains("# TYPE mpecho_workers_active gauge\n"));
}

/// Other paths get 404, other methods on /metrics 405 with `Allow: GET,
/// HEAD`, each with a one-line text body and `Connection: close`.
#[test]
fn other_paths_are_404_and_other_methods_405() {
    let (_server, metrics) = start(&[]);
    for path in ["/", "/metric", "/metrics/", "/favicon.ico"] {
        let response = request(metrics, &request_for("GET", path));
        assert_eq!(response.status, 404, "GET {path}");
        response.assert_framed(false);
        assert_eq!(
            response.header("Content-Type"),
            Some("text/plain; charset=utf-8")
        );
    }
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "BREW"] {
        let response = request(metrics, &request_for(method, "/metrics"));
        assert_eq!(response.status, 405, "{method} /metrics");
        assert_eq!(response.header("Allow"), Some("GET, HEAD"), "{method}");
        response.assert_framed(false);
    }
    let with_body = b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
    assert_eq!(request(metrics, with_body).status, 405);
}

/// What is not an HTTP/1.x request head gets 400 (the parser's unit tests
/// go through the cases; here, a request line of another version and a TLS
/// ClientHello, as a client with the wrong scheme sends), and so does a head
/// the client ends (shutting its side) before the empty line.
#[test]
fn malformed_requests_are_400() {
    let (_server, metrics) = start(&[]);
    let tls_hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n";
    for raw in [&b"GET /metrics HTTP/2.0\r\n\r\n"[..], tls_hello] {
        let response = request(metrics, raw);
        assert_eq!(response.status, 400, "{:?}", text(raw));
        response.assert_framed(false);
    }

    let mut stream = mpecho_testkit::connect_to(metrics);
    std::io::Write::write_all(&mut stream, b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .expect("send half a request");
    stream
        .shutdown(std::net::Shutdown::Write)
        .expect("end the request early");
    let mut all = Vec::new();
    std::io::Read::read_to_end(&mut stream, &mut all).expect("read the answer");
    assert_eq!(super::parse_response(&all).status, 400);
}

/// A head that does not end within 4 KiB gets 431 (the client reads the
/// whole response, what it sent beyond is thrown away), then the endpoint
/// goes on serving; every response so far is counted by status code.
#[test]
fn an_oversized_head_is_431_and_responses_are_counted() {
    let (_server, metrics) = start(&[]);
    let mut raw = b"GET /metrics HTTP/1.1\r\n".to_vec();
    for i in 0..200 {
        raw.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "y".repeat(30)).as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    assert!(raw.len() > 8192);
    let response = request(metrics, &raw);
    assert_eq!(response.status, 431);
    response.assert_framed(false);

    assert_eq!(request(metrics, &request_for("GET", "/nope")).status, 404);
    assert_eq!(
        request(metrics, &request_for("PATCH", "/metrics")).status,
        405
    );
    assert_eq!(request(metrics, b"nonsense\r\n\r\n").status, 400);
    assert_eq!(
        request(metrics, &request_for("GET", "/metrics")).status,
        200
    );
    let scrape = scrape(metrics);
    let responses = "mpecho_metrics_responses_total";
    for (code, expected) in [("200", 1), ("400", 1), ("404", 1), ("405", 1), ("431", 1)] {
        assert_eq!(
            scrape.count(responses, &[("code", code)]),
            expected,
            "code {code}"
        );
    }
}
