//! Container log rotation, as upstream's kubelet does it with its defaults
//! (`containerLogMaxSize` 10Mi, `containerLogMaxFiles` 5, checked every 10 s): a running
//! container's log that reached the size is renamed to `<log>.<YYYYmmdd-HHMMSS>` and the
//! runtime reopens the original path (CRI `ReopenContainerLog`); older rotated files are
//! gzip-compressed (`.gz`), the newest rotated one only at the next rotation, and the
//! oldest are deleted so a container keeps at most 5 files. Without this a chatty
//! container fills the disk. `kubectl logs` shows the current file, as upstream.

use crate::cri::{Cri, api};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tracing::{debug, warn};

/// Size at which a log is rotated.
pub const MAX_SIZE: u64 = 10 * 1024 * 1024;
/// Files a container keeps: the current log and rotated ones.
pub const MAX_FILES: usize = 5;
const INTERVAL: Duration = Duration::from_secs(10);
const GZ: &str = ".gz";
const TMP: &str = ".tmp";

/// Rotates running containers' logs until the task is dropped.
pub async fn run(cri: Cri) {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = rotate_running(&cri).await {
            debug!("log rotation: {e}");
        }
    }
}

async fn rotate_running(cri: &Cri) -> crate::error::Result<()> {
    let running = api::ContainerFilter {
        state: Some(api::ContainerStateValue {
            state: api::ContainerState::ContainerRunning as i32,
        }),
        ..Default::default()
    };
    for c in cri.list_containers(Some(running)).await? {
        let Ok(status) = cri.container_status(&c.id).await else {
            continue;
        };
        let log = PathBuf::from(&status.log_path);
        if status.log_path.is_empty() || !needs_rotation(&log) {
            continue;
        }
        let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string();
        let prepared = {
            let log = log.clone();
            tokio::task::spawn_blocking(move || prepare(&log, &stamp)).await
        };
        let rotated = match prepared {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                warn!(log = %log.display(), "log rotation: {e}");
                continue;
            }
            Err(_) => continue,
        };
        if let Err(e) = cri.reopen_container_log(&c.id).await {
            // The runtime still writes to the renamed file: put it back.
            warn!(container = %c.id, "reopening the log after rotation: {e}");
            let _ = std::fs::rename(&rotated, &log);
        }
    }
    Ok(())
}

fn needs_rotation(log: &Path) -> bool {
    std::fs::metadata(log).is_ok_and(|m| m.len() >= MAX_SIZE)
}

/// The rotated files of `log` (`<log>.*`), oldest first (their names sort by time).
fn rotated_files(log: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (log.parent(), log.file_name()) else {
        return Vec::new();
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// Everything before the rename: leftovers removed, the oldest files beyond the limit
/// deleted, the others compressed; then the current log renamed. Returns its new name.
fn prepare(log: &Path, stamp: &str) -> std::io::Result<PathBuf> {
    let mut rotated = Vec::new();
    for f in rotated_files(log) {
        let name = f.to_string_lossy().to_string();
        // An interrupted compression, or a file whose compressed copy exists.
        let leftover = name.ends_with(TMP)
            || (!name.ends_with(GZ) && Path::new(&format!("{name}{GZ}")).exists());
        if leftover {
            std::fs::remove_file(&f)?;
        } else {
            rotated.push(f);
        }
    }
    // Room for the file rotated now: the current log plus MAX_FILES - 1 rotated ones.
    let keep = MAX_FILES - 2;
    if rotated.len() > keep {
        for f in rotated.drain(..rotated.len() - keep) {
            std::fs::remove_file(&f)?;
        }
    }
    for f in rotated
        .iter()
        .filter(|f| !f.to_string_lossy().ends_with(GZ))
    {
        compress(f)?;
    }
    let target = PathBuf::from(format!("{}.{stamp}", log.display()));
    std::fs::rename(log, &target)?;
    Ok(target)
}

/// `f` → `f.gz` (written under a temporary name first), then `f` removed.
fn compress(f: &Path) -> std::io::Result<()> {
    let gz = PathBuf::from(format!("{}{GZ}", f.display()));
    let tmp = PathBuf::from(format!("{}{TMP}", gz.display()));
    {
        let mut input = std::fs::File::open(f)?;
        let out = std::fs::File::create(&tmp)?;
        let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
        std::io::copy(&mut input, &mut enc)?;
        enc.finish()?.flush()?;
    }
    std::fs::rename(&tmp, &gz)?;
    std::fs::remove_file(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn rotation_keeps_five_files_and_compresses_all_but_the_newest() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("0.log");
        for (i, stamp) in ["20260101-000001", "20260101-000002", "20260101-000003"]
            .iter()
            .enumerate()
        {
            std::fs::write(&log, format!("line {i}\n")).unwrap();
            let r = prepare(&log, stamp).unwrap();
            assert_eq!(r, d.path().join(format!("0.log.{stamp}")));
        }
        std::fs::write(&log, "current\n").unwrap();
        assert_eq!(
            names(d.path()),
            [
                "0.log",
                "0.log.20260101-000001.gz",
                "0.log.20260101-000002.gz",
                "0.log.20260101-000003"
            ]
        );
        let mut text = String::new();
        flate2::read::GzDecoder::new(
            std::fs::File::open(d.path().join("0.log.20260101-000001.gz")).unwrap(),
        )
        .read_to_string(&mut text)
        .unwrap();
        assert_eq!(text, "line 0\n");
        // Two more rotations: the oldest go, five files remain.
        for stamp in ["20260101-000004", "20260101-000005"] {
            prepare(&log, stamp).unwrap();
            std::fs::write(&log, "current\n").unwrap();
        }
        assert_eq!(
            names(d.path()),
            [
                "0.log",
                "0.log.20260101-000002.gz",
                "0.log.20260101-000003.gz",
                "0.log.20260101-000004.gz",
                "0.log.20260101-000005"
            ]
        );
    }

    #[test]
    fn leftovers_of_an_interrupted_rotation_are_removed() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("1.log");
        std::fs::write(&log, "x").unwrap();
        std::fs::write(d.path().join("1.log.20260101-000001"), "a").unwrap();
        std::fs::write(d.path().join("1.log.20260101-000001.gz"), "a").unwrap();
        std::fs::write(d.path().join("1.log.20260101-000002.gz.tmp"), "b").unwrap();
        // Another container's files are not touched.
        std::fs::write(d.path().join("10.log"), "other").unwrap();
        prepare(&log, "20260101-000003").unwrap();
        assert_eq!(
            names(d.path()),
            [
                "1.log.20260101-000001.gz",
                "1.log.20260101-000003",
                "10.log"
            ]
        );
    }

    #[test]
    fn only_large_logs_are_rotated() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("0.log");
        assert!(!needs_rotation(&log));
        std::fs::write(&log, "small").unwrap();
        assert!(!needs_rotation(&log));
        let f = std::fs::File::options().write(true).open(&log).unwrap();
        f.set_len(MAX_SIZE).unwrap();
        assert!(needs_rotation(&log));
    }
}
