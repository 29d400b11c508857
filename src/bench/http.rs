//! The load generator's HTTP/1.1: one keep-alive connection over a raw tokio `TcpStream`,
//! requests written from prepared bytes and answers parsed just far enough to find the
//! status and the body (`Content-Length` or chunked).
//!
//! It exists because a general client costs more CPU per request than a trivial warp
//! handler does to answer it: on two cores the client and the server compete, and
//! reqwest's share capped the rate the benchmark saw (docs/performance.md, "The load
//! generator"). Nothing here is for talking to servers other than the benchmark's own.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest answer head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// What went wrong on a connection, in a few words (the error counts group by them).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// Connecting, reading or writing failed.
    #[error("transport: {0}")]
    Io(String),
    /// The server closed the connection before the answer was complete.
    #[error("transport: connection closed")]
    Closed,
    /// The answer is not HTTP/1.x as we read it.
    #[error("malformed answer: {0}")]
    Malformed(&'static str),
}

impl From<std::io::Error> for HttpError {
    fn from(e: std::io::Error) -> Self {
        HttpError::Io(e.kind().to_string())
    }
}

/// An answer: its status and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body, de-chunked.
    pub body: Bytes,
    /// The server said `Connection: close`.
    pub close: bool,
}

/// A request as bytes on the wire: `METHOD PATH HTTP/1.1`, `Host`, the extra headers, and a
/// `Content-Length` when there is a body.
pub fn request(
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Bytes {
    let mut out = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\n");
    for (name, value) in headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    if !body.is_empty() || method != "GET" {
        out.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    Bytes::from(bytes)
}

/// One keep-alive connection.
pub struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

impl Conn {
    /// Connects to `addr` (`host:port`), Nagle off: requests are written whole.
    pub async fn connect(addr: &str) -> Result<Conn, HttpError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
        })
    }

    /// Writes `requests` (one or several pipelined, as bytes) in one write.
    pub async fn write(&mut self, requests: &[u8]) -> Result<(), HttpError> {
        self.stream.write_all(requests).await?;
        Ok(())
    }

    /// Reads the next answer.
    pub async fn read(&mut self) -> Result<Answer, HttpError> {
        loop {
            if let Some((answer, used)) = parse(&self.buf)? {
                self.buf.advance(used);
                return Ok(answer);
            }
            if self.buf.len() > MAX_HEAD && find_head_end(&self.buf).is_none() {
                return Err(HttpError::Malformed("head too large"));
            }
            self.buf.reserve(16 * 1024);
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(HttpError::Closed);
            }
        }
    }

    /// Sends one request and reads its answer.
    pub async fn send(&mut self, request: &[u8]) -> Result<Answer, HttpError> {
        self.write(request).await?;
        self.read().await
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Parses one complete answer at the start of `buf`: the answer and the bytes it took, or
/// `None` when more bytes are needed.
pub fn parse(buf: &[u8]) -> Result<Option<(Answer, usize)>, HttpError> {
    let Some(head_end) = find_head_end(buf) else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_end - 4])
        .map_err(|_| HttpError::Malformed("head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    if !status_line.starts_with("HTTP/1.") {
        return Err(HttpError::Malformed("no HTTP/1.x status line"));
    }
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or(HttpError::Malformed("no status code"))?;
    let mut length = None;
    let mut chunked = false;
    let mut close = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(HttpError::Malformed("header line without a colon"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| HttpError::Malformed("bad content-length"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    let rest = &buf[head_end..];
    let no_body = status == 204 || status == 304 || (100..200).contains(&status);
    if no_body {
        let answer = Answer {
            status,
            body: Bytes::new(),
            close,
        };
        return Ok(Some((answer, head_end)));
    }
    if chunked {
        return Ok(dechunk(rest)?.map(|(body, used)| {
            let answer = Answer {
                status,
                body,
                close,
            };
            (answer, head_end + used)
        }));
    }
    // Neither length nor chunks: the body runs to the end of the connection, which a
    // keep-alive load generator does not support.
    let length = length.ok_or(HttpError::Malformed("no content-length and not chunked"))?;
    if rest.len() < length {
        return Ok(None);
    }
    let answer = Answer {
        status,
        body: Bytes::copy_from_slice(&rest[..length]),
        close,
    };
    Ok(Some((answer, head_end + length)))
}

/// A complete chunked body at the start of `buf`: the body and the bytes it took.
fn dechunk(buf: &[u8]) -> Result<Option<(Bytes, usize)>, HttpError> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some(line_len) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&buf[at..at + line_len])
            .map_err(|_| HttpError::Malformed("chunk size is not UTF-8"))?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| HttpError::Malformed("bad chunk size"))?;
        at += line_len + 2;
        if size == 0 {
            // Trailers (none expected), then the blank line.
            loop {
                let Some(end) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
                    return Ok(None);
                };
                at += end + 2;
                if end == 0 {
                    return Ok(Some((Bytes::from(body), at)));
                }
            }
        }
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[at..at + size]);
        if &buf[at + size..at + size + 2] != b"\r\n" {
            return Err(HttpError::Malformed("chunk without its CRLF"));
        }
        at += size + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_host_headers_and_length() {
        let r = request("GET", "127.0.0.1:1", "/a", &[("x-k", "v")], b"");
        assert_eq!(
            &r[..],
            b"GET /a HTTP/1.1\r\nhost: 127.0.0.1:1\r\nx-k: v\r\n\r\n"
        );
        let r = request("PUT", "h", "/b", &[], b"{}");
        assert_eq!(
            &r[..],
            b"PUT /b HTTP/1.1\r\nhost: h\r\ncontent-length: 2\r\n\r\n{}"
        );
    }

    #[test]
    fn answers_with_a_length_are_read_whole_and_not_before() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhelloHTTP/1.1 404 Not";
        let (answer, used) = parse(wire).unwrap().unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(&answer.body[..], b"hello");
        assert!(!answer.close);
        assert_eq!(&wire[used..], b"HTTP/1.1 404 Not");
        assert_eq!(parse(&wire[..used - 1]).unwrap(), None);
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\nContent-Le").unwrap(), None);
    }

    #[test]
    fn chunked_answers_are_dechunked() {
        let wire = b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\nrest";
        let (answer, used) = parse(wire).unwrap().unwrap();
        assert_eq!(
            (answer.status, &answer.body[..], answer.close),
            (201, &b"abcde"[..], true)
        );
        assert_eq!(&wire[used..], b"rest");
        for cut in 60..used {
            assert_eq!(parse(&wire[..cut]).unwrap(), None, "cut at {cut}");
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse(b"SSH-2.0\r\n\r\n").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n").is_err());
    }

    #[tokio::test]
    async fn a_connection_carries_many_requests() {
        use warp::Filter;
        let route = warp::path!("x").map(|| "pong");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(warp::serve(route).incoming(listener).run());
        let mut conn = Conn::connect(&addr).await.unwrap();
        let get = request("GET", &addr, "/x", &[], b"");
        for _ in 0..3 {
            let answer = conn.send(&get).await.unwrap();
            assert_eq!((answer.status, &answer.body[..]), (200, &b"pong"[..]));
        }
        let two = [get.clone(), get].concat();
        conn.write(&two).await.unwrap();
        assert_eq!(conn.read().await.unwrap().status, 200);
        assert_eq!(conn.read().await.unwrap().status, 200);
        let missing = request("GET", &addr, "/nope", &[], b"");
        assert_eq!(conn.send(&missing).await.unwrap().status, 404);
    }
}
