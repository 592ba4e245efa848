//! Server-sent events (`text/event-stream`), read from a response one event at a time: what
//! [`Client::bulkjob_events`](crate::Client::bulkjob_events) answers.

use crate::error::ClientError;

/// One event: its name (`message` when the server gave none), its id, and its data lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

/// An open event stream.
#[derive(Debug)]
pub struct EventStream {
    response: reqwest::Response,
    parser: Parser,
}

impl EventStream {
    pub(crate) fn new(response: reqwest::Response) -> Self {
        EventStream { response, parser: Parser::default() }
    }

    /// The next event; `None` once the server has closed the stream.
    pub async fn next(&mut self) -> Result<Option<ServerEvent>, ClientError> {
        loop {
            if let Some(event) = self.parser.event() {
                return Ok(Some(event));
            }
            match self.response.chunk().await? {
                Some(chunk) => self.parser.push(&chunk),
                None => return Ok(None),
            }
        }
    }
}

/// The event-stream format (WHATWG HTML, "server-sent events"): lines of `field: value`, an empty line ends an
/// event, lines starting with `:` are comments; LF, CRLF or CR end a line.
#[derive(Debug, Default)]
struct Parser {
    buffer: Vec<u8>,
}

impl Parser {
    fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The first complete event in the buffer, consuming it (and any comment-only blocks before it).
    fn event(&mut self) -> Option<ServerEvent> {
        loop {
            let (block, rest) = split_block(&self.buffer)?;
            let text = String::from_utf8_lossy(&self.buffer[..block]).into_owned();
            self.buffer.drain(..rest);
            let (mut event, mut id, mut data) = (None, None, Vec::new());
            for line in text.split(['\n', '\r']).filter(|l| !l.is_empty() && !l.starts_with(':')) {
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => event = Some(value.to_owned()),
                    "id" => id = Some(value.to_owned()),
                    "data" => data.push(value),
                    _ => {}
                }
            }
            if !data.is_empty() {
                let event = event.unwrap_or_else(|| "message".to_owned());
                return Some(ServerEvent { event, id, data: data.join("\n") });
            }
        }
    }
}

/// The length of the first block (before its blank line) and where the next one starts.
fn split_block(b: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < b.len() {
        // A line end: LF, CRLF or CR (a CR at the very end may still be the start of a CRLF).
        let end = match b[i] {
            b'\n' => i + 1,
            b'\r' if i + 1 < b.len() => i + 1 + usize::from(b[i + 1] == b'\n'),
            _ => {
                i += 1;
                continue;
            }
        };
        match b.get(end) {
            Some(b'\n') => return Some((i, end + 1)),
            // A CR ends the blank line at once; an LF after it, even in a later chunk, is only an empty block.
            Some(b'\r') => return Some((i, end + 1 + usize::from(b.get(end + 1) == Some(&b'\n')))),
            _ if end >= b.len() => return None,
            _ => i = end,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&str]) -> Vec<ServerEvent> {
        let mut p = Parser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.push(c.as_bytes());
            while let Some(e) = p.event() {
                out.push(e);
            }
        }
        out
    }

    fn ev(event: &str, id: Option<&str>, data: &str) -> ServerEvent {
        ServerEvent { event: event.into(), id: id.map(Into::into), data: data.into() }
    }

    #[test]
    fn events_are_read_across_chunks_and_comments_are_skipped() {
        let got =
            events(&[": keep-alive\n\nevent: progress\nid: a.1\nretry: 1000\nda", "ta: {\"x\":1}\n", "\nevent: end\n"]);
        assert_eq!(got, vec![ev("progress", Some("a.1"), "{\"x\":1}")]);
    }

    #[test]
    fn crlf_and_cr_end_lines_and_data_lines_join() {
        assert_eq!(events(&["data: one\r\ndata:two\r\n\r\n"]), vec![ev("message", None, "one\ntwo")]);
        assert_eq!(events(&["event: end\rdata: x\r\r"]), vec![ev("end", None, "x")]);
        // A CR ends the event at once; an LF that follows in the next chunk adds nothing.
        assert_eq!(
            events(&["data: y\r\n\r", "\ndata: z\n\n"]),
            vec![ev("message", None, "y"), ev("message", None, "z")]
        );
        // A line cut after its CR waits for the rest.
        assert_eq!(events(&["data: w\r"]), vec![]);
    }
}
