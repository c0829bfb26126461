//! Just enough RESP2 (the Redis protocol) for the chat cluster: commands
//! encoded as arrays of bulk strings, and replies parsed from a byte
//! buffer that may hold part of one.
//!
//! It owns no socket and never waits: the cluster feeds it what the relay's
//! loop has read. It never allocates by what a length prefix claims beyond
//! `MAX_BULK`, so a broken or hostile server cannot make it grow without
//! limit.

/// The longest bulk string accepted: a relayed message (one datagram plus
/// its header) fits with room to spare; anything longer is a protocol error
/// that ends the connection rather than a buffer that grows.
pub const MAX_BULK: usize = 128 * 1024;
/// Elements in one array reply at most: push messages have three.
const MAX_ARRAY: usize = 16;

#[derive(Debug, PartialEq, Eq)]
pub enum Value {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Value>>),
}

/// `args` as one RESP command.
pub fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Parses the first value in `buf`: `Ok(Some((value, bytes used)))`,
/// `Ok(None)` when more bytes are needed, `Err` when the stream is not RESP.
pub fn parse(buf: &[u8]) -> Result<Option<(Value, usize)>, &'static str> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        // A header line is short; a long one without CRLF is not RESP.
        return if buf.len() > 64 {
            Err("header line too long")
        } else {
            Ok(None)
        };
    };
    let line = &buf[1..end];
    let after = end + 2;
    match buf[0] {
        b'+' => Ok(Some((Value::Simple(line.to_vec()), after))),
        b'-' => Ok(Some((Value::Error(line.to_vec()), after))),
        b':' => Ok(Some((Value::Integer(number(line)?), after))),
        b'$' => bulk(buf, number(line)?, after),
        b'*' => array(buf, number(line)?, after),
        _ => Err("unknown reply type"),
    }
}

fn number(line: &[u8]) -> Result<i64, &'static str> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or("bad number")
}

fn bulk(buf: &[u8], len: i64, start: usize) -> Result<Option<(Value, usize)>, &'static str> {
    if len == -1 {
        return Ok(Some((Value::Bulk(None), start)));
    }
    let len = usize::try_from(len).map_err(|_| "bad bulk length")?;
    if len > MAX_BULK {
        return Err("bulk string too long");
    }
    if buf.len() < start + len + 2 {
        return Ok(None);
    }
    if &buf[start + len..start + len + 2] != b"\r\n" {
        return Err("bulk string not followed by CRLF");
    }
    Ok(Some((
        Value::Bulk(Some(buf[start..start + len].to_vec())),
        start + len + 2,
    )))
}

fn array(buf: &[u8], len: i64, start: usize) -> Result<Option<(Value, usize)>, &'static str> {
    if len == -1 {
        return Ok(Some((Value::Array(None), start)));
    }
    let len = usize::try_from(len).map_err(|_| "bad array length")?;
    if len > MAX_ARRAY {
        return Err("array too long");
    }
    let mut items = Vec::with_capacity(len);
    let mut at = start;
    for _ in 0..len {
        match parse(&buf[at..])? {
            Some((value, used)) => {
                items.push(value);
                at += used;
            }
            None => return Ok(None),
        }
    }
    Ok(Some((Value::Array(Some(items)), at)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        assert_eq!(
            command(&[b"PUBLISH", b"room", b"a\r\nb"]),
            b"*3\r\n$7\r\nPUBLISH\r\n$4\r\nroom\r\n$4\r\na\r\nb\r\n"
        );
    }

    #[test]
    fn a_push_message_parses_only_when_complete() {
        let push = b"*3\r\n$7\r\nmessage\r\n$4\r\nroom\r\n$3\r\nhi!\r\n:1\r\n";
        for cut in 0..push.len() - 4 {
            assert_eq!(parse(&push[..cut]), Ok(None), "cut at {cut}");
        }
        let (value, used) = parse(push).unwrap().unwrap();
        assert_eq!(used, push.len() - 4);
        assert_eq!(
            value,
            Value::Array(Some(vec![
                Value::Bulk(Some(b"message".to_vec())),
                Value::Bulk(Some(b"room".to_vec())),
                Value::Bulk(Some(b"hi!".to_vec())),
            ]))
        );
        assert_eq!(parse(&push[used..]), Ok(Some((Value::Integer(1), 4))));
    }

    #[test]
    fn hostile_lengths_are_errors_not_allocations() {
        assert!(parse(b"$999999999999\r\n").is_err());
        assert!(parse(b"*99999\r\n").is_err());
        assert!(parse(b"?x\r\n").is_err());
        assert!(parse(&[b'+'; 100]).is_err());
    }
}
