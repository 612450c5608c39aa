//! Reading a log line by line in bounded memory: a line longer than the limit is skipped to
//! its end without being kept.

use std::io::{self, BufRead, ErrorKind};

/// What [`read_line`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Line {
    /// A line is in the buffer (without its `\n` or `\r\n`).
    Read,
    /// A line longer than the limit was skipped; the buffer is empty.
    TooLong,
    /// The end of the input.
    End,
}

/// Reads the next line into `buf` (cleared first), keeping at most `max` bytes of it.
///
/// # Errors
/// The reader's errors, except `Interrupted`, which is retried.
pub(crate) fn read_line<R: BufRead>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Line> {
    buf.clear();
    let mut too_long = false;
    let mut read_any = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(match (read_any, too_long) {
                (false, _) => Line::End,
                (true, true) => Line::TooLong,
                (true, false) => Line::Read,
            });
        }
        read_any = true;
        let newline = available.iter().position(|&b| b == b'\n');
        let chunk = &available[..newline.unwrap_or(available.len())];
        if !too_long {
            if buf.len() + chunk.len() > max {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        let used = newline.map_or(available.len(), |i| i + 1);
        reader.consume(used);
        if newline.is_some() {
            if too_long {
                return Ok(Line::TooLong);
            }
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Line::Read);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::BufReader;

    use super::*;

    fn lines(input: &[u8], max: usize, capacity: usize) -> Vec<Result<String, Line>> {
        let mut reader = BufReader::with_capacity(capacity, input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for _ in 0..100 {
            match read_line(&mut reader, &mut buf, max).unwrap() {
                Line::Read => out.push(Ok(String::from_utf8_lossy(&buf).into_owned())),
                Line::TooLong => out.push(Err(Line::TooLong)),
                Line::End => return out,
            }
        }
        panic!("no end");
    }

    #[test]
    fn lines_are_split_and_long_ones_skipped() {
        for capacity in [1, 2, 3, 7, 64] {
            assert_eq!(
                lines(b"ab\r\n\nlong line here\ncd", 5, capacity),
                vec![
                    Ok("ab".to_owned()),
                    Ok(String::new()),
                    Err(Line::TooLong),
                    Ok("cd".to_owned())
                ],
                "capacity {capacity}"
            );
            assert_eq!(
                lines(b"123456", 5, capacity),
                vec![Err(Line::TooLong)],
                "capacity {capacity}"
            );
            assert_eq!(lines(b"12345\n", 5, capacity), vec![Ok("12345".to_owned())]);
            assert!(lines(b"", 5, capacity).is_empty());
        }
    }
}
