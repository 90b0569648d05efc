//! W3C extended access logs, one per site, in IIS's default field set.
//!
//! Job: record every request as IIS does (`u_exYYMMDD.log` in
//! `logging.dir/SITE/`), rotated by day and by size (`u_exYYMMDD_N.log`).
//!
//! Design: the request path formats everything but the date and time into
//! one `String` and hands it to a bounded channel; a dedicated thread stamps
//! it, writes through a `BufWriter`, flushes once a second when idle, and
//! opens a new file (with the `#Software`/`#Version`/`#Date`/`#Fields`
//! header) when the day changes or the size limit is reached. A full channel
//! drops the line and counts it (`mote_web_log_dropped_total`) rather than
//! slowing requests down.
//!
//! Limits: times are UTC (as IIS's default); `time-taken` runs to the last
//! body byte handed to the connection (see `server::Tracked`).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use time::OffsetDateTime;

use crate::metrics::SiteMetrics;

pub(crate) const FIELDS: &str = "date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken";

/// Lines waiting for the writer before new ones are dropped.
const QUEUE: usize = 65_536;

/// Errors opening a site log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot create log directory {path}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the log writer thread")]
    Thread(#[source] std::io::Error),
}

/// The sending half of a site's log.
pub(crate) struct Logger {
    tx: SyncSender<(SystemTime, String)>,
    /// Where dropped lines are counted (`mote_web_log_dropped_total`).
    metrics: Arc<SiteMetrics>,
}

/// One request, as the log wants it.
pub(crate) struct Entry<'a> {
    pub s_ip: std::net::IpAddr,
    pub method: &'a str,
    pub stem: &'a str,
    pub query: Option<&'a str>,
    pub s_port: u16,
    pub user: Option<&'a str>,
    pub c_ip: std::net::IpAddr,
    pub user_agent: Option<&'a str>,
    pub referer: Option<&'a str>,
    pub status: u16,
    pub substatus: u16,
    pub time_taken_ms: u128,
}

fn field(out: &mut String, v: Option<&str>) {
    match v {
        Some(v) if !v.is_empty() => {
            for c in v.chars() {
                out.push(match c {
                    ' ' => '+',
                    c if c.is_control() => '?',
                    c => c,
                });
            }
        }
        _ => out.push('-'),
    }
    out.push(' ');
}

impl Entry<'_> {
    /// The line without its leading `date time `.
    pub(crate) fn format(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::with_capacity(160);
        let _ = write!(s, "{} ", self.s_ip);
        field(&mut s, Some(self.method));
        field(&mut s, Some(self.stem));
        field(&mut s, self.query);
        let _ = write!(s, "{} ", self.s_port);
        field(&mut s, self.user);
        let _ = write!(s, "{} ", self.c_ip);
        field(&mut s, self.user_agent);
        field(&mut s, self.referer);
        let _ = write!(
            s,
            "{} {} 0 {}",
            self.status, self.substatus, self.time_taken_ms
        );
        s
    }
}

impl Logger {
    /// Starts the writer thread of `dir/site`.
    pub(crate) fn start(
        dir: &Path,
        site: &str,
        max_bytes: u64,
        daily: bool,
        metrics: Arc<SiteMetrics>,
    ) -> Result<Self, LogError> {
        let dir = dir.join(site);
        std::fs::create_dir_all(&dir).map_err(|source| LogError::Dir {
            path: dir.clone(),
            source,
        })?;
        let (tx, rx) = sync_channel::<(SystemTime, String)>(QUEUE);
        let mut w = Writer {
            dir,
            max_bytes,
            daily,
            file: None,
            day: (0, 0, 0),
            written: 0,
        };
        std::thread::Builder::new()
            .name(format!("log-{site}"))
            .spawn(move || loop {
                match rx.recv_timeout(Duration::from_secs(1)) {
                    Ok((t, line)) => w.write(t, &line),
                    Err(RecvTimeoutError::Timeout) => w.flush(),
                    Err(RecvTimeoutError::Disconnected) => {
                        w.flush();
                        return;
                    }
                }
            })
            .map_err(LogError::Thread)?;
        Ok(Self { tx, metrics })
    }

    pub(crate) fn log(&self, line: String) {
        match self.tx.try_send((SystemTime::now(), line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.metrics.log_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

struct Writer {
    dir: PathBuf,
    max_bytes: u64,
    daily: bool,
    file: Option<BufWriter<File>>,
    day: (i32, u8, u8),
    written: u64,
}

impl Writer {
    fn write(&mut self, t: SystemTime, line: &str) {
        let dt = OffsetDateTime::from(t);
        let day = (dt.year(), dt.month() as u8, dt.day());
        let rotate = self.file.is_none()
            || (self.daily && day != self.day)
            || self.written + line.len() as u64 + 21 > self.max_bytes;
        if rotate {
            self.open(&dt, day);
        }
        let Some(f) = self.file.as_mut() else { return };
        let stamp = format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} ",
            day.0,
            day.1,
            day.2,
            dt.hour(),
            dt.minute(),
            dt.second()
        );
        if f.write_all(stamp.as_bytes())
            .and_then(|()| f.write_all(line.as_bytes()))
            .and_then(|()| f.write_all(b"\n"))
            .is_ok()
        {
            self.written += (stamp.len() + line.len() + 1) as u64;
        }
    }

    fn flush(&mut self) {
        if let Some(f) = self.file.as_mut() {
            let _ = f.flush();
        }
    }

    fn open(&mut self, dt: &OffsetDateTime, day: (i32, u8, u8)) {
        self.flush();
        self.file = None;
        let base = format!("u_ex{:02}{:02}{:02}", day.0 % 100, day.1, day.2);
        // First name not full yet: u_exYYMMDD.log, then _1, _2, …
        let mut n = 0u32;
        let path = loop {
            let name = if n == 0 {
                format!("{base}.log")
            } else {
                format!("{base}_{n}.log")
            };
            let p = self.dir.join(name);
            match std::fs::metadata(&p) {
                Ok(m) if m.len() + 512 >= self.max_bytes && n < 100_000 => n += 1,
                _ => break p,
            }
        };
        let Ok(file) = OpenOptions::new().create(true).append(true).open(&path) else {
            return;
        };
        let existing = file.metadata().map_or(0, |m| m.len());
        let mut f = BufWriter::with_capacity(64 * 1024, file);
        let header = format!(
            "#Software: mote-web {}\n#Version: 1.0\n#Date: {:04}-{:02}-{:02} {:02}:{:02}:{:02}\n#Fields: {FIELDS}\n",
            env!("CARGO_PKG_VERSION"),
            day.0,
            day.1,
            day.2,
            dt.hour(),
            dt.minute(),
            dt.second()
        );
        let _ = f.write_all(header.as_bytes());
        self.written = existing + header.len() as u64;
        self.day = day;
        self.file = Some(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_header_and_rotates_by_size() {
        let d = tempfile::tempdir().unwrap();
        let l = Logger::start(d.path(), "s", 4096, true, Default::default()).unwrap();
        let e = Entry {
            s_ip: "127.0.0.1".parse().unwrap(),
            method: "GET",
            stem: "/a b",
            query: None,
            s_port: 80,
            user: None,
            c_ip: "127.0.0.2".parse().unwrap(),
            user_agent: Some("curl/8 x"),
            referer: None,
            status: 200,
            substatus: 0,
            time_taken_ms: 3,
        };
        let line = e.format();
        assert_eq!(
            line,
            "127.0.0.1 GET /a+b - 80 - 127.0.0.2 curl/8+x - 200 0 0 3"
        );
        for _ in 0..100 {
            l.log(line.clone());
        }
        drop(l);
        std::thread::sleep(Duration::from_millis(300));
        let mut files: Vec<_> = std::fs::read_dir(d.path().join("s"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(files.len() >= 2, "{files:?}");
        let text = std::fs::read_to_string(&files[0]).unwrap();
        assert!(text.starts_with("#Software: mote-web"));
        assert!(text.contains(&format!("#Fields: {FIELDS}\n")));
        assert!(text.lines().nth(4).unwrap().ends_with(&line));
    }
}
