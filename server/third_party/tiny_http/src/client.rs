use ascii::AsciiString;

use std::io::Error as IoError;
use std::io::Result as IoResult;
use std::io::{BufReader, BufWriter, ErrorKind, Read};

use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use crate::common::{HTTPVersion, Header, HeaderField, Method};
use crate::util::socket::{ReadPolicy, Socket};
use crate::util::RefinedTcpStream;
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::{Limits, Request};

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {
    // address of the client
    remote_addr: IoResult<Option<SocketAddr>>,

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<BufReader<RefinedTcpStream>>,

    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<BufWriter<RefinedTcpStream>>,

    // Reader to read the next header from
    next_header_source: SequentialReader<BufReader<RefinedTcpStream>>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // true if the connection goes through SSL
    secure: bool,

    // NIMBUS-PATCH: the socket's deadlines and idle state, and the limits.
    socket: Arc<Socket>,
    limits: Arc<Limits>,
    // no request has been read yet: the head is due `header_timeout` after
    // the accept, not `keepalive_timeout` after the last response
    first: bool,
    // the head being read follows an earlier request on this connection
    reused: bool,
    // a byte of the head being read has arrived
    head_started: bool,
    // the last head was refused with an error status
    refused: bool,
}

/// Why no request came out of the stream.
#[derive(Debug)]
enum ReadError {
    /// The peer closed, or went silent between requests: close quietly.
    Closed,
    /// Answer with this status and close: the stream cannot be read on.
    Refuse(u16, &'static str),
    /// An I/O error in the middle of a head.
    Io(IoError),
}

/// A line of the head too long for its limit.
struct TooLong;

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    pub(crate) fn new(
        write_socket: RefinedTcpStream,
        mut read_socket: RefinedTcpStream,
        socket: Arc<Socket>,
        limits: Arc<Limits>,
    ) -> ClientConnection {
        let remote_addr = read_socket.peer_addr();
        let secure = read_socket.secure();

        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(8192, read_socket));
        let first_header = source.next().unwrap();

        ClientConnection {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(8192, write_socket)),
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            secure,
            socket,
            limits,
            first: true,
            reused: false,
            head_started: false,
            refused: false,
        }
    }

    /// Reads one line of the head, ended by CRLF or by a bare LF (RFC 9112
    /// section 2.2), without the line end. At most `limit` bytes. The first
    /// byte of a head on a reused connection starts the head's deadline.
    fn read_line(&mut self, limit: usize) -> Result<Result<Vec<u8>, TooLong>, IoError> {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            match self.next_header_source.read(&mut byte) {
                Ok(0) => return Err(IoError::new(ErrorKind::UnexpectedEof, "Unexpected EOF")),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if !self.head_started {
                self.head_started = true;
                if self.reused {
                    self.socket.set_read_policy(ReadPolicy::Deadline(
                        Instant::now() + self.limits.header_timeout,
                    ));
                }
            }
            if byte[0] == b'\n' {
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
                return Ok(Ok(buf));
            }
            if buf.len() >= limit {
                return Ok(Err(TooLong));
            }
            buf.push(byte[0]);
        }
    }

    /// Reads a request from the stream.
    /// Blocks until the header has been read.
    fn read(&mut self) -> Result<Request, ReadError> {
        let limits = self.limits.clone();
        // NIMBUS-PATCH: until a request is handed out the connection holds
        // nothing of the server's and counts as idle (the connection table
        // may close it, oldest first, to make room): waiting for a head,
        // reading one, or reading a small body with it. Between requests it
        // may wait `keepalive_timeout` for a first byte; from that byte (or
        // from the accept) the whole head is due within `header_timeout`.
        self.socket.set_idle(true);
        self.reused = !self.first;
        if self.reused {
            self.socket
                .set_read_policy(ReadPolicy::Idle(limits.keepalive_timeout));
        }
        self.first = false;
        self.head_started = false;

        // The request line; empty lines before it are skipped (RFC 9112
        // section 2.2), a few of them.
        let mut line = Vec::new();
        for _ in 0..4 {
            line = match self.read_line(limits.max_request_line) {
                Ok(Ok(line)) => line,
                Ok(Err(TooLong)) => return Err(ReadError::Refuse(414, "request line too long")),
                // Nothing of a head yet: the peer closed or stayed idle.
                Err(_) if !self.head_started => return Err(ReadError::Closed),
                Err(e) => return Err(head_error(e)),
            };
            if !line.is_empty() {
                break;
            }
        }
        let (method, path, version) = parse_request_line(&line)?;

        // The header fields, bounded in number and in total size.
        let mut headers: Vec<Header> = Vec::new();
        let mut total = 0usize;
        loop {
            let left = limits.max_header_bytes.saturating_sub(total);
            let line = match self.read_line(left) {
                Ok(Ok(line)) => line,
                Ok(Err(TooLong)) => return Err(ReadError::Refuse(431, "request header too large")),
                Err(e) => return Err(head_error(e)),
            };
            if line.is_empty() {
                break;
            }
            total += line.len() + 2;
            if headers.len() >= limits.max_headers {
                return Err(ReadError::Refuse(431, "too many request header fields"));
            }
            headers.push(parse_header_line(&line)?);
        }
        check_framing(&headers, &version)?;

        // From here on the body is read; each read may wait `body_timeout`.
        self.socket
            .set_read_policy(ReadPolicy::Idle(limits.body_timeout));

        // building the writer for the request
        let writer = self.sink.next().unwrap();

        // follow-up for next potential request
        let mut data_source = self.source.next().unwrap();
        std::mem::swap(&mut self.next_header_source, &mut data_source);

        // building the next reader
        let request = crate::request::new_request(
            self.secure,
            method,
            path,
            version,
            headers,
            *self.remote_addr.as_ref().unwrap(),
            data_source,
            writer,
        )
        .map_err(|e| {
            use crate::request;
            match e {
                // NIMBUS-PATCH: a small body (read here, with its head) that
                // stops arriving is answered, not just dropped.
                request::RequestCreationError::CreationIoError(e)
                    if e.kind() == ErrorKind::TimedOut =>
                {
                    ReadError::Refuse(408, "request body not received in time")
                }
                request::RequestCreationError::CreationIoError(e) => ReadError::Io(e),
                request::RequestCreationError::ExpectationFailed => {
                    ReadError::Refuse(417, "unsupported Expect value")
                }
            }
        })?;

        // A request goes out: the connection is busy until it is answered.
        self.socket.set_idle(false);
        Ok(request)
    }

    /// NIMBUS-PATCH: ends a connection whose last request body was not read
    /// (or whose stream is out of step): the response already went out, a
    /// FIN follows it, and what the peer still sends is read and thrown away
    /// for at most `limits.linger` and `limits.linger_bytes`, so that its data does not
    /// turn the close into a reset that could destroy the response before
    /// the peer reads it (nginx's lingering close). Only this connection's
    /// thread waits; never a worker.
    pub(crate) fn close_lingering(mut self) {
        let _ = self.socket.shutdown(Shutdown::Write);
        self.socket
            .set_read_policy(ReadPolicy::Deadline(Instant::now() + self.limits.linger));
        let mut buf = [0u8; 8192];
        let mut left = self.limits.linger_bytes;
        while left > 0 {
            match self.next_header_source.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    }

    /// Whether the connection ended on a refused head (and should linger).
    pub(crate) fn refused(&self) -> bool {
        self.refused
    }

    fn refuse(&mut self, status: u16, why: &str) {
        use crate::{Response, StatusCode};
        use std::io::Write;
        let mut writer = self.sink.next().unwrap();
        let response = Response::from_string(format!("{why}\n"))
            .with_status_code(StatusCode(status))
            .with_header(Header::from_bytes(&b"Connection"[..], &b"close"[..]).unwrap());
        response
            .raw_print(&mut writer, HTTPVersion(1, 1), &[], false, None)
            .ok();
        // raw_print does not flush, and the close comes next
        writer.flush().ok();
    }
}

fn head_error(e: IoError) -> ReadError {
    if e.kind() == ErrorKind::TimedOut {
        ReadError::Refuse(408, "request head not received in time")
    } else {
        ReadError::Io(e)
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {
        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        if self.no_more_requests {
            return None;
        }

        let rq = match self.read() {
            Ok(rq) => rq,
            Err(ReadError::Closed) | Err(ReadError::Io(_)) => return None,
            Err(ReadError::Refuse(status, why)) => {
                // NIMBUS-PATCH: every refusal of a head is answered, and the
                // connection closes: where the next request would start is
                // unknown. Upstream answered 505 and read on, which hung.
                self.refuse(status, why);
                self.no_more_requests = true;
                self.refused = true;
                return None;
            }
        };

        // updating the status of the connection
        let connection_header = rq
            .headers()
            .iter()
            .find(|h| h.field.equiv("Connection"))
            .map(|h| h.value.as_str());

        let lowercase = connection_header.map(|h| h.to_ascii_lowercase());

        match lowercase {
            Some(ref val) if val.contains("close") => self.no_more_requests = true,
            Some(ref val) if val.contains("upgrade") => self.no_more_requests = true,
            Some(ref val)
                if !val.contains("keep-alive") && *rq.http_version() == HTTPVersion(1, 0) =>
            {
                self.no_more_requests = true
            }
            None if *rq.http_version() == HTTPVersion(1, 0) => self.no_more_requests = true,
            _ => (),
        };

        // returning the request
        Some(rq)
    }
}

/// `tchar` of RFC 9110 section 5.6.2: what a method or a field name is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses the request line: `METHOD SP TARGET SP HTTP/x.y`, strictly.
/// NIMBUS-PATCH: a well-formed version other than 1.0 and 1.1 is 505, any
/// other malformation 400 (upstream: 400 for every unknown version).
fn parse_request_line(line: &[u8]) -> Result<(Method, String, HTTPVersion), ReadError> {
    let bad = || ReadError::Refuse(400, "malformed request line");
    let text = std::str::from_utf8(line).map_err(|_| bad())?;
    let mut parts = text.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err(bad());
    }
    if target.is_empty() || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    let version = match version.as_bytes() {
        b"HTTP/1.1" => HTTPVersion(1, 1),
        b"HTTP/1.0" => HTTPVersion(1, 0),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(ReadError::Refuse(505, "only HTTP/1.0 and HTTP/1.1 are supported"))
        }
        _ => return Err(bad()),
    };
    let method = method.parse().map_err(|_| bad())?;
    Ok((method, target.to_owned(), version))
}

/// Parses `name: value`; no space before the colon, no line folding
/// (RFC 9112 section 5), ASCII only.
fn parse_header_line(line: &[u8]) -> Result<Header, ReadError> {
    let bad = || ReadError::Refuse(400, "malformed header field");
    let colon = line.iter().position(|&b| b == b':').ok_or_else(bad)?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(bad());
    }
    let value = trim_ows(value);
    if !value.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b)) {
        return Err(bad());
    }
    let field = HeaderField::from_bytes(name).map_err(|_| bad())?;
    let value = AsciiString::from_ascii(value.to_vec()).map_err(|_| bad())?;
    Ok(Header { field, value })
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// NIMBUS-PATCH: message framing (RFC 9112 section 6.3), strictly, since a
/// proxy in front may read it otherwise (request smuggling): every
/// `Content-Length` is digits only and all are equal; `Content-Length`
/// together with `Transfer-Encoding` is refused; the only transfer coding
/// is `chunked` (501 otherwise).
fn check_framing(headers: &[Header], version: &HTTPVersion) -> Result<(), ReadError> {
    let mut length: Option<&str> = None;
    let mut coding: Vec<&str> = Vec::new();
    for h in headers {
        if h.field.equiv("Content-Length") {
            let v = h.value.as_str();
            if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ReadError::Refuse(400, "invalid Content-Length"));
            }
            match length {
                Some(seen) if seen.trim_start_matches('0') != v.trim_start_matches('0') => {
                    return Err(ReadError::Refuse(400, "conflicting Content-Length values"))
                }
                _ => length = Some(v),
            }
        } else if h.field.equiv("Transfer-Encoding") {
            coding.extend(h.value.as_str().split(',').map(str::trim));
        }
    }
    if coding.is_empty() {
        return Ok(());
    }
    if length.is_some() {
        return Err(ReadError::Refuse(
            400,
            "both Content-Length and Transfer-Encoding",
        ));
    }
    if *version == HTTPVersion(1, 0) {
        return Err(ReadError::Refuse(400, "Transfer-Encoding in an HTTP/1.0 request"));
    }
    if coding.len() != 1 || !coding[0].eq_ignore_ascii_case("chunked") {
        return Err(ReadError::Refuse(501, "unsupported Transfer-Encoding"));
    }
    Ok(())
}

#[cfg(test)]
mod test {
    use super::*;

    fn status(r: Result<impl Sized, ReadError>) -> u16 {
        match r {
            Err(ReadError::Refuse(s, _)) => s,
            Err(_) => 1,
            Ok(_) => 0,
        }
    }

    #[test]
    fn test_parse_request_line() {
        let (method, path, ver) = super::parse_request_line(b"GET /hello HTTP/1.1").unwrap();

        assert!(method == crate::Method::Get);
        assert!(path == "/hello");
        assert!(ver == crate::common::HTTPVersion(1, 1));

        assert_eq!(status(parse_request_line(b"GET /hello")), 400);
        assert_eq!(status(parse_request_line(b"qsd qsd qsd")), 400);
        assert_eq!(status(parse_request_line(b"GET / HTTP/2.0")), 505);
        assert_eq!(status(parse_request_line(b"GET / HTTP/0.9")), 505);
        assert_eq!(status(parse_request_line(b"GET  / HTTP/1.1")), 400);
        assert_eq!(status(parse_request_line(b"GET / HTTP/1.1 x")), 400);
        assert_eq!(status(parse_request_line(b"G(T / HTTP/1.1")), 400);
    }

    fn headers(list: &[(&str, &str)]) -> Vec<Header> {
        list.iter()
            .map(|(n, v)| Header::from_bytes(n.as_bytes(), v.as_bytes()).unwrap())
            .collect()
    }

    #[test]
    fn framing() {
        let v11 = HTTPVersion(1, 1);
        let ok = |h: &[(&str, &str)]| status(check_framing(&headers(h), &v11));
        assert_eq!(ok(&[("Content-Length", "6")]), 0);
        assert_eq!(ok(&[("Content-Length", "6"), ("content-length", "6")]), 0);
        assert_eq!(ok(&[("Content-Length", "6"), ("Content-Length", "7")]), 400);
        assert_eq!(ok(&[("Content-Length", "+6")]), 400);
        assert_eq!(ok(&[("Content-Length", "6, 6")]), 400);
        assert_eq!(ok(&[("Content-Length", "-1")]), 400);
        assert_eq!(ok(&[("Transfer-Encoding", "chunked")]), 0);
        assert_eq!(
            ok(&[("Transfer-Encoding", "chunked"), ("Content-Length", "3")]),
            400
        );
        assert_eq!(ok(&[("Transfer-Encoding", "gzip, chunked")]), 501);
        assert_eq!(ok(&[("Transfer-Encoding", "identity")]), 501);
    }

    #[test]
    fn header_lines() {
        assert!(parse_header_line(b"Host: a").is_ok());
        assert_eq!(status(parse_header_line(b"Host : a")), 400);
        assert_eq!(status(parse_header_line(b" Host: a")), 400);
        assert_eq!(status(parse_header_line(b"Host a")), 400);
        assert_eq!(status(parse_header_line(b": a")), 400);
    }
}
