//! What `tracing` writes, kept in memory for a test to read.

use std::sync::{Arc, Mutex};

/// Formatted `tracing` output, kept in memory: a writer for `tracing_subscriber::fmt`, and
/// the text written so far.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;
    fn make_writer(&'a self) -> CapturedLogs {
        self.clone()
    }
}

impl CapturedLogs {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    /// The first line holding each of `parts`; the test fails with everything recorded
    /// (`what` names the line sought) when there is none.
    pub fn line(&self, what: &str, parts: &[&str]) -> String {
        let text = self.text();
        text.lines()
            .find(|l| parts.iter().all(|part| l.contains(part)))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no {what} in:\n{text}"))
    }
}

/// Records everything at `level` and up on this thread, without colours, until the guard
/// drops.
pub fn record_logs(level: tracing::Level) -> (CapturedLogs, tracing::subscriber::DefaultGuard) {
    let logs = CapturedLogs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(level)
        .with_ansi(false)
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    (logs, guard)
}
