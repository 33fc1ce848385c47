//! Replacing a small state file so that a crash leaves either the old content or the new one.
//!
//! The daemon keeps a few small files in its state directory (the leadership epoch, the Cognito
//! sync checkpoint, the recorded active region). Each must survive a crash or power loss whole:
//! a torn epoch could hand out a fencing token twice, a torn checkpoint would stop the sync from
//! resuming. [`write_atomically`] is the one way they are written.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Replaces `path` with `bytes` atomically and durably: writes `<name>.tmp` next to it, fsyncs
/// it, renames it over `path` (atomic within one file system), then fsyncs the directory so the
/// rename itself survives a power loss. Blocking; call it from `spawn_blocking` in async code.
///
/// Errors are the I/O error of the first operation that failed; callers name `path` in their
/// own error.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path(path);
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    File::open(directory_of(path))?.sync_all()
}

/// `<dir>/<name>.tmp`: in the same directory (a rename across file systems is not atomic) and
/// named after the target, so two files of one directory never share a temporary file.
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replaces_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leader.epoch");
        write_atomically(&path, b"1\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"1\n");
        write_atomically(&path, b"2\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"2\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("leader.epoch")]);
    }

    #[test]
    fn temporary_file_is_named_after_the_target_in_its_directory() {
        assert_eq!(
            temp_path(Path::new("/state/cognito-sync.json")),
            Path::new("/state/cognito-sync.json.tmp")
        );
        assert_eq!(directory_of(Path::new("epoch")), Path::new("."));
        assert_eq!(directory_of(Path::new("/state/epoch")), Path::new("/state"));
    }

    #[test]
    fn a_missing_directory_is_an_error_and_the_old_content_stays() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone").join("file");
        assert!(write_atomically(&missing, b"x").is_err());

        let path = dir.path().join("file");
        write_atomically(&path, b"old").unwrap();
        // A directory where the temporary file should go makes the write fail before the rename.
        std::fs::create_dir(temp_path(&path)).unwrap();
        assert!(write_atomically(&path, b"new").is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }
}
