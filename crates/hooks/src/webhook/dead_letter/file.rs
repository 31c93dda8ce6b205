//! The dead-letter file: a writer task appending JSONL records off the caller's task,
//! and the size-bounded file with its rotation to `<path>.1`.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;

/// Records appended per blocking call: amortizes the thread hop without holding
/// one write for long.
const BATCH: usize = 64;

/// What the store sends the writer task.
pub(super) enum FileCommand {
    /// Append one record (a JSON line, newline included).
    Append(Vec<u8>),
    /// Write what came before, then acknowledge and stop.
    Close(oneshot::Sender<()>),
}

impl std::fmt::Debug for FileCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FileCommand::Append(_) => "Append",
            FileCommand::Close(_) => "Close",
        })
    }
}

/// Appends batches of records until closed.
pub(super) async fn write_loop(
    mut rx: mpsc::Receiver<FileCommand>,
    mut file: DeadLetterFile,
    metrics: Arc<Metrics>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = Vec::new();
        let mut close = None;
        match first {
            FileCommand::Append(line) => batch.push(line),
            FileCommand::Close(done) => close = Some(done),
        }
        while close.is_none() && batch.len() < BATCH {
            match rx.try_recv() {
                Ok(FileCommand::Append(line)) => batch.push(line),
                Ok(FileCommand::Close(done)) => close = Some(done),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            // The file moves into the blocking task and back, so only one write is
            // ever in progress and no lock is needed.
            let written = tokio::task::spawn_blocking(move || {
                let failed = file.append(&batch);
                (file, failed)
            })
            .await;
            match written {
                Ok((back, failed)) => {
                    file = back;
                    metrics.dead_letter_file_errors.fetch_add(failed, Relaxed);
                }
                Err(err) => {
                    tracing::error!(cause = %err, "dead-letter writer failed; file disabled");
                    return;
                }
            }
        }
        if let Some(done) = close {
            let _ = done.send(());
            return;
        }
    }
}

/// The JSONL file and its size, for rotation.
#[derive(Debug)]
pub(super) struct DeadLetterFile {
    path: PathBuf,
    /// `None` after a rotation or a failed reopen; the next append opens it.
    file: Option<File>,
    /// Bytes in the current file.
    len: u64,
    max_bytes: u64,
}

impl DeadLetterFile {
    /// Opens (or creates) `path` for appending.
    pub(super) fn open(path: PathBuf, max_bytes: u64) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let len = file.metadata()?.len();
        Ok(DeadLetterFile {
            path,
            file: Some(file),
            len,
            max_bytes,
        })
    }

    /// Appends `lines`, rotating as needed; returns how many could not be written.
    fn append(&mut self, lines: &[Vec<u8>]) -> u64 {
        // Once a batch: a look at the path costs a `stat`.
        if self.moved_away() {
            self.file = None;
        }
        let mut failed = 0;
        for line in lines {
            if let Err(err) = self.append_one(line) {
                tracing::error!(path = %self.path.display(), cause = %err, "cannot write dead letter");
                failed += 1;
            }
        }
        failed
    }

    fn append_one(&mut self, line: &[u8]) -> std::io::Result<()> {
        let size = u64::try_from(line.len()).unwrap_or(u64::MAX);
        if size > self.max_bytes {
            return Err(std::io::Error::other(
                "record larger than dead_letter_max_bytes",
            ));
        }
        if self.len + size > self.max_bytes && self.len > 0 {
            self.rotate()?;
        }
        if self.file.is_none() {
            *self = DeadLetterFile::open(self.path.clone(), self.max_bytes)?;
        }
        if let Some(file) = &mut self.file {
            file.write_all(line)?;
            self.len += size;
        }
        Ok(())
    }

    /// Renames the full file to `<path>.1`, replacing the previous one. A file no
    /// longer there (moved away to be replayed, deleted) is rotated already: the next
    /// record starts a new one. Before, each later record tried to rotate it again
    /// and failed, and nothing was written until a restart.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        let mut rotated = self.path.clone().into_os_string();
        rotated.push(".1");
        match std::fs::rename(&self.path, &rotated) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
            // Only a file rotated (or gone) starts again from nothing: one that could
            // not be renamed is still full, and reopened it would grow past the bound.
            _ => {
                self.len = 0;
                Ok(())
            }
        }
    }

    /// Whether the open file is no longer the one at `path` (moved away to be
    /// replayed, deleted): then records must go to a new one there, not on into the
    /// moved file or a deleted one, until the next rotation.
    fn moved_away(&self) -> bool {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            let Some(file) = &self.file else { return false };
            match (file.metadata(), std::fs::metadata(&self.path)) {
                (Ok(open), Ok(there)) => (open.dev(), open.ino()) != (there.dev(), there.ino()),
                (Ok(_), Err(_)) => true,
                (Err(_), _) => false,
            }
        }
        #[cfg(not(unix))]
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_moved_away_is_started_again() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let path = tmp.path().join("dl.jsonl");
        let line = b"{\"reason\":\"overflow\"}\n".to_vec();
        let max = u64::try_from(line.len() * 2).unwrap_or(u64::MAX);
        let mut file = DeadLetterFile::open(path.clone(), max)?;
        assert_eq!(file.append(std::slice::from_ref(&line)), 0);
        // An operator takes the file away to replay it.
        let replay = tmp.path().join("replay.jsonl");
        std::fs::rename(&path, &replay)?;
        for _ in 0..5 {
            assert_eq!(file.append(std::slice::from_ref(&line)), 0);
        }
        assert!(path.exists(), "a new file is started");
        assert_eq!(
            std::fs::read(&replay)?,
            line,
            "nothing more in the moved file"
        );
        Ok(())
    }

    #[test]
    fn a_file_that_cannot_be_rotated_does_not_grow_past_its_bound() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let path = tmp.path().join("dl.jsonl");
        // `<path>.1` a directory: every rotation fails.
        std::fs::create_dir(tmp.path().join("dl.jsonl.1"))?;
        let line = b"{\"reason\":\"overflow\"}\n".to_vec();
        let max = u64::try_from(line.len() * 2).unwrap_or(u64::MAX);
        let mut file = DeadLetterFile::open(path.clone(), max)?;
        for _ in 0..20 {
            file.append(std::slice::from_ref(&line));
        }
        assert!(std::fs::metadata(&path)?.len() <= max);
        Ok(())
    }

    #[test]
    fn the_file_rotates_at_its_limit() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path();
        let path = dir.join("dl.jsonl");
        let line = b"{\"reason\":\"overflow\"}\n".to_vec();
        let max = u64::try_from(line.len() * 2).unwrap_or(u64::MAX);
        let mut file = DeadLetterFile::open(path.clone(), max)?;
        assert_eq!(file.append(&[line.clone(), line.clone(), line.clone()]), 0);
        assert_eq!(std::fs::read(dir.join("dl.jsonl.1"))?.len(), line.len() * 2);
        assert_eq!(std::fs::read(&path)?.len(), line.len());
        assert_eq!(file.append(&[line.clone(), line.clone()]), 0);
        assert_eq!(std::fs::read(dir.join("dl.jsonl.1"))?.len(), line.len() * 2);
        assert_eq!(std::fs::read(&path)?.len(), line.len());
        assert_eq!(
            file.append(&[vec![b'x'; line.len() * 3]]),
            1,
            "oversized record refused"
        );
        tmp.close()
    }

    #[test]
    fn an_existing_file_counts_toward_the_limit() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path();
        let path = dir.join("dl.jsonl");
        std::fs::write(&path, vec![b'x'; 90])?;
        let mut file = DeadLetterFile::open(path.clone(), 100)?;
        assert_eq!(file.append(&[vec![b'y'; 20]]), 0);
        assert_eq!(std::fs::read(dir.join("dl.jsonl.1"))?.len(), 90);
        assert_eq!(std::fs::read(&path)?, vec![b'y'; 20]);
        tmp.close()
    }
}
