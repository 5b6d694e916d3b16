//! Container logs as upstream's kubelet serves them: the runtime writes CRI log files
//! (`<RFC3339Nano> <stdout|stderr> <P|F> <msg>` per line, `P` = partial line continued by
//! the next entry); this module parses them, applies `tailLines`, `sinceSeconds`/
//! `sinceTime`, `timestamps` and `limitBytes`, and streams the raw messages, following the
//! file while the container runs when `follow` is set.

mod options;

pub use options::LogOptions;

use bytes::Bytes;
use chrono::{DateTime, FixedOffset, Offset, SecondsFormat, Utc};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncSeekExt, BufReader};
use tokio::sync::mpsc;

/// How often a followed log is re-read (and the container's state checked) at EOF.
const FOLLOW_POLL: Duration = Duration::from_millis(150);
/// Output is sent in chunks of about this size (smaller at EOF).
const CHUNK: usize = 32 * 1024;
/// Block size of the backwards scan for `tailLines`.
const TAIL_BLOCK: u64 = 8 * 1024;

/// Which output stream a log entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One parsed line of a CRI log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry<'a> {
    pub timestamp: DateTime<FixedOffset>,
    pub stream: LogStream,
    /// The entry is the start/middle of a longer line continued by the next entry.
    pub partial: bool,
    /// The message; for a full line it keeps the line's trailing newline (if the file has
    /// one), for a partial one the newline the runtime added is removed.
    pub message: &'a [u8],
}

/// Why a log line could not be parsed (such lines are skipped, as upstream does).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("timestamp is not found")]
    NoTimestamp,
    #[error("unexpected timestamp format: {0}")]
    Timestamp(String),
    #[error("stream type is not found")]
    NoStream,
    #[error("unexpected stream type {0:?}")]
    Stream(String),
    #[error("log tag is not found")]
    NoTag,
}

fn split_field(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = b.iter().position(|c| *c == b' ')?;
    Some((&b[..i], &b[i + 1..]))
}

/// Parses one line as read from the file (including its newline, if any).
pub fn parse_line(line: &[u8]) -> Result<LogEntry<'_>, ParseError> {
    let (ts, rest) = split_field(line).ok_or(ParseError::NoTimestamp)?;
    let ts = std::str::from_utf8(ts).map_err(|e| ParseError::Timestamp(e.to_string()))?;
    let timestamp =
        DateTime::parse_from_rfc3339(ts).map_err(|e| ParseError::Timestamp(e.to_string()))?;
    let (stream, rest) = split_field(rest).ok_or(ParseError::NoStream)?;
    let stream = match stream {
        b"stdout" => LogStream::Stdout,
        b"stderr" => LogStream::Stderr,
        other => return Err(ParseError::Stream(String::from_utf8_lossy(other).into())),
    };
    let (tag, mut message) = split_field(rest).ok_or(ParseError::NoTag)?;
    // Tags are `:`-separated for forward compatibility; the first says partial or full.
    let partial = tag.split(|c| *c == b':').next() == Some(b"P");
    if partial {
        message = message.strip_suffix(b"\n").unwrap_or(message);
    }
    Ok(LogEntry {
        timestamp,
        stream,
        partial,
        message,
    })
}

/// Go's RFC3339Nano (`2006-01-02T15:04:05.999999999Z07:00`): trailing zeros of the
/// fraction are dropped, and so is the dot when the fraction is zero.
pub fn format_timestamp(t: &DateTime<FixedOffset>) -> String {
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.timestamp_subsec_nanos();
    let mut frac = String::new();
    if nanos > 0 {
        frac = format!(".{nanos:09}");
        while frac.ends_with('0') {
            frac.pop();
        }
    }
    let offset = t.offset().fix().local_minus_utc();
    let zone = if offset == 0 {
        "Z".to_string()
    } else {
        // Reuse chrono's `+hh:mm` rendering of the offset.
        let s = t.to_rfc3339_opts(SecondsFormat::Secs, false);
        s[s.len().saturating_sub(6)..].to_string()
    };
    format!("{base}{frac}{zone}")
}

/// Applies `since`, `timestamps` and `limitBytes` to parsed entries.
#[derive(Debug)]
pub struct LogWriter {
    since: Option<DateTime<Utc>>,
    timestamps: bool,
    remain: Option<u64>,
    /// The previous entry ended a line: the next one gets the timestamp prefix.
    at_line_start: bool,
}

/// Whether more output may follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    More,
    LimitReached,
}

impl LogWriter {
    pub fn new(opts: &LogOptions) -> Self {
        LogWriter {
            since: opts.since,
            timestamps: opts.timestamps,
            remain: opts.limit_bytes,
            at_line_start: true,
        }
    }

    /// Appends the entry's output to `out`.
    pub fn write(&mut self, e: &LogEntry<'_>, out: &mut Vec<u8>) -> Written {
        let prefix = self.at_line_start;
        self.at_line_start = e.message.last().is_none_or(|c| *c == b'\n');
        if self.since.is_some_and(|s| e.timestamp < s) {
            return Written::More;
        }
        let mut line = Vec::with_capacity(e.message.len() + 32);
        if self.timestamps && prefix {
            line.extend_from_slice(format_timestamp(&e.timestamp).as_bytes());
            line.push(b' ');
        }
        line.extend_from_slice(e.message);
        let Some(remain) = self.remain.as_mut() else {
            out.extend_from_slice(&line);
            return Written::More;
        };
        let n = line
            .len()
            .min(usize::try_from(*remain).unwrap_or(usize::MAX));
        out.extend_from_slice(&line[..n]);
        *remain -= n as u64;
        if *remain == 0 {
            Written::LimitReached
        } else {
            Written::More
        }
    }
}

/// The offset where the last `n` lines of the file start (counting newline characters,
/// so an unterminated last line is included on top of the `n`).
pub fn tail_offset(f: &mut std::fs::File, n: u64) -> std::io::Result<u64> {
    let size = f.seek(SeekFrom::End(0))?;
    let mut seen = 0u64;
    let mut right = size;
    let mut buf = vec![0u8; TAIL_BLOCK as usize];
    while right > 0 {
        let left = right.saturating_sub(TAIL_BLOCK);
        let len = (right - left) as usize;
        f.seek(SeekFrom::Start(left))?;
        f.read_exact(&mut buf[..len])?;
        for i in (0..len).rev() {
            if buf[i] == b'\n' {
                seen += 1;
                // The (n+1)-th newline from the end precedes the first wanted line.
                if seen > n {
                    return Ok(left + i as u64 + 1);
                }
            }
        }
        right = left;
    }
    Ok(0)
}

/// An opened log file positioned where output starts.
pub struct LogReader {
    file: BufReader<tokio::fs::File>,
    opts: LogOptions,
}

impl LogReader {
    /// Opens `path` and seeks to the `tailLines` start.
    pub async fn open(path: &Path, opts: LogOptions) -> std::io::Result<LogReader> {
        let p = path.to_path_buf();
        let tail = opts.tail_lines;
        let (file, start) = tokio::task::spawn_blocking(move || {
            let mut f = std::fs::File::open(&p)?;
            let start = match tail {
                Some(n) => tail_offset(&mut f, n)?,
                None => 0,
            };
            Ok::<_, std::io::Error>((f, start))
        })
        .await
        .map_err(std::io::Error::other)??;
        let mut file = tokio::fs::File::from_std(file);
        file.seek(SeekFrom::Start(start)).await?;
        Ok(LogReader {
            file: BufReader::new(file),
            opts,
        })
    }

    /// Sends the output in chunks to `tx` until EOF, or with `follow` until the container
    /// is no longer running (`running` is asked at EOF) and the file is drained. Ends
    /// early when the receiver is gone or `limitBytes` is reached.
    pub async fn stream<F, Fut>(
        mut self,
        tx: mpsc::Sender<Bytes>,
        mut running: F,
    ) -> std::io::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let follow = self.opts.follow;
        // Without follow, `tailLines` also bounds the count: the file may still grow.
        let mut budget = if follow { None } else { self.opts.tail_lines };
        let mut writer = LogWriter::new(&self.opts);
        let mut line = Vec::new();
        let mut out = Vec::with_capacity(CHUNK);
        let mut draining = false;
        loop {
            if budget == Some(0) {
                break;
            }
            let n = self.file.read_until(b'\n', &mut line).await?;
            let complete = line.last() == Some(&b'\n');
            if !complete {
                // EOF. An unterminated line stays in `line` and is completed by the next
                // read when following; otherwise it is output as it is.
                if !out.is_empty()
                    && tx
                        .send(Bytes::from(std::mem::take(&mut out)))
                        .await
                        .is_err()
                {
                    return Ok(());
                }
                if follow && !draining {
                    if tx.is_closed() {
                        return Ok(());
                    }
                    if n == 0 {
                        if running().await {
                            tokio::time::sleep(FOLLOW_POLL).await;
                        } else {
                            // One more pass picks up what was written before the exit.
                            draining = true;
                        }
                    }
                    continue;
                }
                if line.is_empty() || follow {
                    break;
                }
            }
            if let Ok(entry) = parse_line(&line) {
                let w = writer.write(&entry, &mut out);
                if let Some(b) = budget.as_mut() {
                    *b -= 1;
                }
                if w == Written::LimitReached {
                    break;
                }
            }
            let done = !complete;
            line.clear();
            if out.len() >= CHUNK
                && tx
                    .send(Bytes::from(std::mem::take(&mut out)))
                    .await
                    .is_err()
            {
                return Ok(());
            }
            if done {
                break;
            }
        }
        if !out.is_empty() {
            let _ = tx.send(Bytes::from(out)).await;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    const LOG: &str = "2024-01-02T03:04:05.100000000Z stdout F one\n\
2024-01-02T03:04:06.000000000Z stderr F two\n\
2024-01-02T03:04:07.123456789Z stdout P thr\n\
2024-01-02T03:04:07.200000000Z stdout F ee\n\
2024-01-02T03:04:08Z stdout F four\n";

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn opts(pairs: &[(&str, &str)]) -> LogOptions {
        LogOptions::from_query(&q(pairs), Utc::now()).unwrap()
    }

    fn file(content: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content.as_bytes()).unwrap();
        f.flush().unwrap();
        f
    }

    async fn read_all(content: &str, o: LogOptions) -> String {
        let f = file(content);
        let r = LogReader::open(f.path(), o).await.unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        r.stream(tx, || async { false }).await.unwrap();
        let mut s = Vec::new();
        while let Some(b) = rx.recv().await {
            s.extend_from_slice(&b);
        }
        String::from_utf8(s).unwrap()
    }

    #[test]
    fn parses_full_and_partial_lines() {
        let e = parse_line(b"2024-01-02T03:04:05.5Z stderr F hello world\n").unwrap();
        assert_eq!(e.stream, LogStream::Stderr);
        assert!(!e.partial);
        assert_eq!(e.message, b"hello world\n");
        let p = parse_line(b"2024-01-02T03:04:05Z stdout P:x part\n").unwrap();
        assert!(p.partial);
        assert_eq!(p.message, b"part");
        let empty = parse_line(b"2024-01-02T03:04:05Z stdout F \n").unwrap();
        assert_eq!(empty.message, b"\n");
        let offset = parse_line(b"2024-01-02T05:04:05+02:00 stdout F x").unwrap();
        assert_eq!(
            offset.timestamp.with_timezone(&Utc).to_rfc3339(),
            "2024-01-02T03:04:05+00:00"
        );
        assert_eq!(parse_line(b"garbage"), Err(ParseError::NoTimestamp));
        assert!(matches!(
            parse_line(b"notatime stdout F x"),
            Err(ParseError::Timestamp(_))
        ));
        assert!(matches!(
            parse_line(b"2024-01-02T03:04:05Z stdin F x"),
            Err(ParseError::Stream(_))
        ));
        assert_eq!(
            parse_line(b"2024-01-02T03:04:05Z stdout"),
            Err(ParseError::NoStream)
        );
        assert_eq!(
            parse_line(b"2024-01-02T03:04:05Z stdout F"),
            Err(ParseError::NoTag)
        );
    }

    #[test]
    fn timestamps_like_go_rfc3339nano() {
        let t = |s: &str| format_timestamp(&DateTime::parse_from_rfc3339(s).unwrap());
        assert_eq!(
            t("2024-01-02T03:04:05.123456789Z"),
            "2024-01-02T03:04:05.123456789Z"
        );
        assert_eq!(
            t("2024-01-02T03:04:05.120000000Z"),
            "2024-01-02T03:04:05.12Z"
        );
        assert_eq!(t("2024-01-02T03:04:05.000000000Z"), "2024-01-02T03:04:05Z");
        assert_eq!(
            t("2024-01-02T03:04:05.5+02:00"),
            "2024-01-02T03:04:05.5+02:00"
        );
        assert_eq!(t("2024-01-02T03:04:05+00:00"), "2024-01-02T03:04:05Z");
    }

    #[tokio::test]
    async fn plain_partial_and_timestamps() {
        assert_eq!(read_all(LOG, opts(&[])).await, "one\ntwo\nthree\nfour\n");
        assert_eq!(
            read_all(LOG, opts(&[("timestamps", "true")])).await,
            "2024-01-02T03:04:05.1Z one\n2024-01-02T03:04:06Z two\n\
2024-01-02T03:04:07.123456789Z three\n2024-01-02T03:04:08Z four\n"
        );
        // Unparsable lines are skipped; an unterminated last line is still output.
        let messy = format!("junk\n{LOG}2024-01-02T03:04:09Z stdout F tail");
        assert_eq!(
            read_all(&messy, opts(&[])).await,
            "one\ntwo\nthree\nfour\ntail"
        );
    }

    #[tokio::test]
    async fn tail_counts_file_lines() {
        assert_eq!(
            read_all(LOG, opts(&[("tailLines", "2")])).await,
            "ee\nfour\n"
        );
        assert_eq!(read_all(LOG, opts(&[("tailLines", "1")])).await, "four\n");
        assert_eq!(read_all(LOG, opts(&[("tailLines", "0")])).await, "");
        assert_eq!(
            read_all(LOG, opts(&[("tailLines", "99")])).await,
            "one\ntwo\nthree\nfour\n"
        );
        assert_eq!(read_all("", opts(&[("tailLines", "3")])).await, "");
        // Across the backwards-scan block boundary.
        let mut big = String::new();
        for i in 0..2000 {
            big.push_str(&format!("2024-01-02T03:04:05Z stdout F line-{i}\n"));
        }
        assert_eq!(
            read_all(&big, opts(&[("tailLines", "3")])).await,
            "line-1997\nline-1998\nline-1999\n"
        );
        let f = file(&big);
        let mut std_file = std::fs::File::open(f.path()).unwrap();
        let off = tail_offset(&mut std_file, 1000).unwrap();
        assert_eq!(
            &big[off as usize..][..40],
            "2024-01-02T03:04:05Z stdout F line-1000\n"
        );
    }

    #[tokio::test]
    async fn since_and_limit_bytes() {
        assert_eq!(
            read_all(LOG, opts(&[("sinceTime", "2024-01-02T03:04:06Z")])).await,
            "two\nthree\nfour\n"
        );
        assert_eq!(
            read_all(LOG, opts(&[("sinceTime", "2024-01-02T03:04:07.15Z")])).await,
            "ee\nfour\n",
            "since applies per entry, also to the halves of a partial line"
        );
        assert_eq!(read_all(LOG, opts(&[("limitBytes", "6")])).await, "one\ntw");
        assert_eq!(read_all(LOG, opts(&[("limitBytes", "4")])).await, "one\n");
        assert_eq!(
            read_all(LOG, opts(&[("limitBytes", "30"), ("timestamps", "1")])).await,
            "2024-01-02T03:04:05.1Z one\n202"
        );
    }

    #[tokio::test]
    async fn follow_sees_appended_lines_until_exit() {
        let f = file("2024-01-02T03:04:05Z stdout F first\n");
        let path = f.path().to_path_buf();
        let r = LogReader::open(&path, opts(&[("follow", "true")]))
            .await
            .unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let alive = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let a = alive.clone();
        let task = tokio::spawn(r.stream(tx, move || {
            let a = a.clone();
            async move { a.load(std::sync::atomic::Ordering::SeqCst) }
        }));
        assert_eq!(&rx.recv().await.unwrap()[..], b"first\n");
        let mut w = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        // A line written in two pieces is output once complete.
        w.write_all(b"2024-01-02T03:04:06Z stdout F sec").unwrap();
        w.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        w.write_all(b"ond\n").unwrap();
        w.flush().unwrap();
        assert_eq!(&rx.recv().await.unwrap()[..], b"second\n");
        w.write_all(b"2024-01-02T03:04:07Z stdout F last\n")
            .unwrap();
        w.flush().unwrap();
        alive.store(false, std::sync::atomic::Ordering::SeqCst);
        let mut rest = Vec::new();
        while let Some(b) = rx.recv().await {
            rest.extend_from_slice(&b);
        }
        assert_eq!(rest, b"last\n");
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn follow_stops_when_the_client_goes_away() {
        let f = file(LOG);
        let r = LogReader::open(f.path(), opts(&[("follow", "1"), ("tailLines", "1")]))
            .await
            .unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let task = tokio::spawn(r.stream(tx, || async { true }));
        assert_eq!(&rx.recv().await.unwrap()[..], b"four\n");
        drop(rx);
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}
