//! The log line, byte for byte, for every process that writes one (the
//! master on std, the worker without it): `2026-11-21T22:16:24.123Z INFO
//! master[4242]: message`, UTC with milliseconds, the level's label, the
//! component and pid, then the message with every control character
//! written as `\xNN`, cut to [`MAX_LINE`] bytes with `...`, and a newline.
//!
//! Formatting happens into a buffer the caller owns (a stack array): no
//! allocation, no system call, no clock. Callers read the time, decide
//! whether the level is enabled, and write the line with one `write(2)`
//! (DESIGN §5).

use core::fmt::{self, Write as _};
use core::time::Duration;

/// Severity, from the most to the least important.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    pub const ALL: [Level; 5] = [
        Level::Error,
        Level::Warn,
        Level::Info,
        Level::Debug,
        Level::Trace,
    ];

    /// The name as written in a log line.
    pub fn label(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        }
    }

    /// The lower-case name used on the command line (`--log-level info`).
    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }

    pub fn from_name(name: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|level| level.name() == name)
    }
}

/// The command-line name (what `--log-level` takes and defaults show).
impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Longest line written, newline included. Below `PIPE_BUF` (4096), so a
/// line sent to a pipe (stderr under a supervisor) is still written whole.
pub const MAX_LINE: usize = 4000;

/// Text written into a byte buffer the caller owns, whole characters only;
/// what does not fit is dropped and remembered ([`TextBuf::overflowed`]).
/// Writing never fails, so a message is never lost to a formatting error.
pub struct TextBuf<'b> {
    buf: &'b mut [u8],
    len: usize,
    overflowed: bool,
}

impl<'b> TextBuf<'b> {
    pub fn new(buf: &'b mut [u8]) -> TextBuf<'b> {
        TextBuf {
            buf,
            len: 0,
            overflowed: false,
        }
    }

    /// Appends `bytes` (one character, or raw text) whole, or nothing once
    /// the buffer is full.
    fn push(&mut self, bytes: &[u8]) {
        if self.overflowed {
            return;
        }
        match self.buf.get_mut(self.len..self.len + bytes.len()) {
            Some(room) => {
                room.copy_from_slice(bytes);
                self.len += bytes.len();
            }
            None => self.overflowed = true,
        }
    }

    /// Whether something did not fit.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// What was written.
    pub fn into_bytes(self) -> &'b [u8] {
        &self.buf[..self.len]
    }
}

impl fmt::Write for TextBuf<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

/// A message on its way into a line: every control character (newline
/// included) becomes `\xNN`, so a message is always exactly one line and
/// no client can forge one.
struct Escaping<'t, 'b>(&'t mut TextBuf<'b>);

impl fmt::Write for Escaping<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut utf8 = [0u8; 4];
        for c in s.chars() {
            if c.is_control() {
                // `\xNN` byte by byte, as a cut may fall inside it.
                let mut hex = [0u8; 4];
                let mut code = TextBuf::new(&mut hex);
                let _ = write!(code, "\\x{:02x}", c as u32);
                for &b in code.into_bytes() {
                    self.0.push(&[b]);
                }
            } else {
                self.0.push(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
        Ok(())
    }
}

/// Formats one log line into `buf` and returns it, newline included, at
/// most [`MAX_LINE`] bytes. `now` is the wall-clock time since the Unix
/// epoch (`CLOCK_REALTIME`).
pub fn format_line<'b>(
    buf: &'b mut [u8; MAX_LINE],
    now: Duration,
    level: Level,
    component: &str,
    pid: u32,
    args: fmt::Arguments<'_>,
) -> &'b [u8] {
    // The newline always has its byte.
    let mut line = TextBuf::new(&mut buf[..MAX_LINE - 1]);
    write_line(&mut line, now, level, component, pid, args);
    let (written, overflowed) = (line.len(), line.overflowed());
    let mut len = written;
    if overflowed {
        // Cut where a character starts (what was kept is the line's
        // beginning, whole characters), and say that something is missing.
        len = written.min(MAX_LINE - 1 - "...".len());
        while len > 0 && len < written && (buf[len] & 0xc0) == 0x80 {
            len -= 1;
        }
        buf[len..len + 3].copy_from_slice(b"...");
        len += 3;
    }
    buf[len] = b'\n';
    &buf[..=len]
}

/// The same line as [`format_line`], formatted into a smaller buffer, or
/// `None` if it does not fit there whole (newline included): then, and
/// only then, [`format_line`] is needed. Lets a caller whose lines are
/// short keep a small buffer on its stack (the worker) and still write
/// exactly the bytes [`format_line`] would.
pub fn format_short_line<'b>(
    buf: &'b mut [u8],
    now: Duration,
    level: Level,
    component: &str,
    pid: u32,
    args: fmt::Arguments<'_>,
) -> Option<&'b [u8]> {
    let room = buf.len().min(MAX_LINE).checked_sub(1)?;
    let mut line = TextBuf::new(&mut buf[..room]);
    write_line(&mut line, now, level, component, pid, args);
    if line.overflowed() {
        return None;
    }
    let len = line.len();
    buf[len] = b'\n';
    Some(&buf[..=len])
}

/// The line without its newline: timestamp, level, `component[pid]: `,
/// the escaped message.
fn write_line(
    line: &mut TextBuf<'_>,
    now: Duration,
    level: Level,
    component: &str,
    pid: u32,
    args: fmt::Arguments<'_>,
) {
    write_timestamp(line, now);
    let _ = write!(line, " {} {component}[{pid}]: ", level.label());
    let _ = Escaping(line).write_fmt(args);
}

/// RFC 3339 UTC with milliseconds: `2026-11-21T22:16:24.123Z`.
fn write_timestamp(out: &mut TextBuf<'_>, since_epoch: Duration) {
    let secs = since_epoch.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since_epoch.subsec_millis()
    );
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`), so the log needs no date library.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Client bytes for a log message: printable ASCII as itself, backslash as
/// `\\`, everything else as `\xNN`.
pub struct EscapedBytes<'a>(pub &'a [u8]);

impl fmt::Display for EscapedBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0 {
            match b {
                b'\\' => f.write_str("\\\\")?,
                0x20..=0x7e => f.write_char(b as char)?,
                _ => write!(f, "\\x{b:02x}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::{String, ToString};

    fn line(
        now: Duration,
        level: Level,
        component: &str,
        pid: u32,
        args: fmt::Arguments<'_>,
    ) -> String {
        let mut buf = [0u8; MAX_LINE];
        String::from_utf8(format_line(&mut buf, now, level, component, pid, args).to_vec())
            .expect("a log line is UTF-8")
    }

    fn stamp(now: Duration) -> String {
        let mut buf = [0u8; 64];
        let mut out = TextBuf::new(&mut buf);
        write_timestamp(&mut out, now);
        String::from_utf8(out.into_bytes().to_vec()).unwrap()
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_millis() {
        assert_eq!(
            stamp(Duration::from_millis(1_763_763_384_123)),
            "2025-11-21T22:16:24.123Z"
        );
        assert_eq!(
            stamp(Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn a_message_cannot_break_out_of_its_line() {
        assert_eq!(
            line(
                Duration::ZERO,
                Level::Info,
                "worker",
                7,
                format_args!(
                    "got {}",
                    "a\n1970-01-01T00:00:00.000Z ERROR master[1]: forged\r\u{85}"
                )
            ),
            "1970-01-01T00:00:00.000Z INFO worker[7]: got a\\x0a1970-01-01T00:00:00.000Z ERROR master[1]: forged\\x0d\\x85\n"
        );
    }

    #[test]
    fn long_messages_are_cut_to_one_pipe_atomic_line() {
        let long = "x".repeat(10_000);
        let cut = line(Duration::ZERO, Level::Info, "m", 1, format_args!("{long}"));
        assert_eq!(cut.len(), MAX_LINE);
        assert!(cut.ends_with("x...\n"));
        // Exactly at the limit: nothing is cut.
        let prefix = "1970-01-01T00:00:00.000Z INFO m[1]: ".len();
        let fits = "y".repeat(MAX_LINE - 1 - prefix);
        let whole = line(Duration::ZERO, Level::Info, "m", 1, format_args!("{fits}"));
        assert_eq!(whole.len(), MAX_LINE);
        assert!(whole.ends_with("yy\n"));
    }

    /// A cut never splits a character, nor leaves the line short of what
    /// fits: the same as cutting the whole line at the last character
    /// boundary at or before 3996 bytes.
    #[test]
    fn a_cut_falls_between_characters() {
        for pad in 0..4 {
            let message = "x".repeat(pad) + &"é€😀".repeat(2000);
            let cut = line(
                Duration::ZERO,
                Level::Warn,
                "m",
                1,
                format_args!("{message}"),
            );
            assert!(
                cut.len() <= MAX_LINE && cut.len() > MAX_LINE - 4,
                "{}",
                cut.len()
            );
            assert!(cut.ends_with("...\n"));
        }
        // A cut inside an escape keeps the escape's first bytes, as text.
        let controls = "\u{1}".repeat(2000);
        let cut = line(
            Duration::ZERO,
            Level::Warn,
            "m",
            1,
            format_args!("{controls}"),
        );
        assert_eq!(cut.len(), MAX_LINE);
    }

    /// A short line is the same bytes either way; one too long for the
    /// small buffer is refused there, never cut.
    #[test]
    fn short_lines_format_alike_in_a_small_buffer() {
        let now = Duration::from_millis(1_763_763_384_123);
        let args = format_args!("connect peer={}", "127.0.0.1:9\n");
        let mut small = [0u8; 128];
        let mut full = [0u8; MAX_LINE];
        assert_eq!(
            format_short_line(&mut small, now, Level::Info, "worker", 7, args),
            Some(format_line(&mut full, now, Level::Info, "worker", 7, args))
        );
        let long = "x".repeat(200);
        assert_eq!(
            format_short_line(
                &mut small,
                now,
                Level::Info,
                "worker",
                7,
                format_args!("{long}")
            ),
            None
        );
        // Exactly full, newline included.
        let fits = "y".repeat(128 - 1 - "2025-11-21T22:16:24.123Z INFO w[7]: ".len());
        let line = format_short_line(&mut small, now, Level::Info, "w", 7, format_args!("{fits}"));
        assert_eq!(line.map(<[u8]>::len), Some(128));
    }

    /// The old way, a `String` cut at the last character boundary at or
    /// before 3996 bytes: the buffer-based cut gives the same bytes.
    #[test]
    fn cuts_are_those_of_cutting_the_whole_line() {
        for pad in 0..8 {
            let message = "z".repeat(pad) + &"aé€😀\u{7}".repeat(900);
            let mut whole = String::from("1970-01-01T00:00:00.000Z INFO m[1]: ");
            for c in message.chars() {
                if c.is_control() {
                    whole += &std::format!("\\x{:02x}", c as u32);
                } else {
                    whole.push(c);
                }
            }
            let mut cut = 3996;
            while !whole.is_char_boundary(cut) {
                cut -= 1;
            }
            let expected = std::format!("{}...\n", &whole[..cut]);
            let got = line(
                Duration::ZERO,
                Level::Info,
                "m",
                1,
                format_args!("{message}"),
            );
            assert_eq!(got, expected, "pad {pad}");
        }
    }

    #[test]
    fn client_bytes_are_escaped() {
        assert_eq!(
            EscapedBytes(b"ok \\ \0\xff\n").to_string(),
            "ok \\\\ \\x00\\xff\\x0a"
        );
    }

    #[test]
    fn levels_read_back_from_their_names() {
        for level in Level::ALL {
            assert_eq!(Level::from_name(level.name()), Some(level));
            assert_eq!(level.to_string(), level.name());
        }
        assert!(Level::Error < Level::Trace);
    }
}
