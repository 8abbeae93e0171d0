//! `yakt-dump --image [--at OFFSET] DATA_DIR`: the image as of an offset, offline, through the
//! node's own rebuild ([`yakt::raft::history::rebuild_at`]), so it prints exactly what
//! `/get_metadata?at_offset=OFFSET` answers.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use yakt::raft::history::offline::DataDirHistory;
use yakt::raft::history::{answer_json, rebuild_at, HistoryError, HistorySource};

/// Prints the image of the data directory `dir` at `at` (default: its committed end).
pub fn print(dir: &Path, at: Option<u64>) -> ExitCode {
    if !dir.join("log").is_dir() && !dir.join("snapshots").is_dir() {
        eprintln!(
            "yakt-dump: {} is not a data directory (no log/ or snapshots/ in it)",
            dir.display()
        );
        return ExitCode::from(2);
    }
    let source = DataDirHistory::new(dir);
    let outcome = at
        .map_or_else(|| source.end(), Ok)
        .and_then(|n| rebuild_at(&source, n));
    let image = match outcome {
        Ok(image) => image,
        Err(e @ (HistoryError::Compacted { .. } | HistoryError::OutOfRange { .. })) => {
            eprintln!("yakt-dump: {e}");
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("yakt-dump: {}: {e}", dir.display());
            return ExitCode::from(2);
        }
    };
    let written = answer_json(&image)
        .map_err(std::io::Error::other)
        .and_then(|json| {
            let mut out = std::io::stdout().lock();
            out.write_all(&json)?;
            out.write_all(b"\n")
        });
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("yakt-dump: writing the image: {e}");
            ExitCode::from(2)
        }
    }
}
