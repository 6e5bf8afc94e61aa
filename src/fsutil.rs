//! Files that hold customer data: folders 0700, files 0600, whatever the umask.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Create `dir` (and parents) with mode 0700; tighten an existing one we own.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let meta = fs::metadata(dir)?;
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Write `bytes` to `path` atomically in a 0700 folder, as a 0600 file (see [`write_atomic`]).
pub fn write_private_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    create_private_dir(path.parent().unwrap_or(Path::new(".")))?;
    write_atomic(path, bytes, 0o600)
}

/// Write `bytes` to `path` (whose folder exists) atomically and durably: a synced temp file
/// ([`write_synced_temp`]), renamed into place, then an fsync of the folder (POSIX makes a
/// rename durable only with that; ext4 happens to order it before the journal's next fsync,
/// btrfs does not).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = write_synced_temp(path, bytes, mode)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Write `bytes` to a new temp file of `mode` beside `path` ([`temp_path`]) and sync it, for the
/// caller to rename or link into place; its path. The mode is set explicitly, so a strict
/// umask cannot narrow it. On an error the temp file is removed (a full disk would otherwise
/// collect one per message).
pub fn write_synced_temp(path: &Path, bytes: &[u8], mode: u32) -> io::Result<PathBuf> {
    let tmp = temp_path(path);
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    match written {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Where a file for `path` is written before it is renamed or linked into place: `.NAME.PID.tmp`
/// beside it.
pub fn temp_path(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    dir.join(format!(".{name}.{}{TEMP_SUFFIX}", std::process::id()))
}

/// Sync folder `dir`, so that a name just made in it survives a crash.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    // `Path::parent` of a bare file name is "".
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    fs::File::open(dir)?.sync_all()
}

const TEMP_SUFFIX: &str = ".tmp";

/// Whether `name` is a temp file of [`write_private_atomic`]: `.NAME.PID.tmp`.
fn is_temp_file(name: &str) -> bool {
    name.strip_prefix('.')
        .and_then(|n| n.strip_suffix(TEMP_SUFFIX))
        .and_then(|n| n.rsplit_once('.'))
        .is_some_and(|(file, pid)| !file.is_empty() && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// Remove the temp files [`write_private_atomic`] left in `dir` when a process was killed in
/// the middle of a write (they hold whole messages). Only call it while no write into `dir` is
/// under way. Returns how many were removed; a missing folder has none.
pub fn remove_stale_temp_files(dir: &Path) -> io::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        if entry.file_name().to_str().is_some_and(is_temp_file) && entry.file_type()?.is_file() {
            fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The disk (or the quota) is full, or the file system is read-only: every further write to
/// it fails the same way, so it is not worth trying one per message.
pub fn is_out_of_space(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::ReadOnlyFilesystem
    )
}

/// Create (or open) a file that must be private, e.g. a report written with `--output`.
/// Missing parent folders are created 0700 (whatever the umask); existing ones are the
/// user's and are left as they are.
pub fn create_private_file(path: &Path) -> io::Result<fs::File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temp_files_are_recognised_and_removed() {
        assert!(is_temp_file(".000001-a@b.de.eml.4242.tmp"));
        assert!(!is_temp_file("000001-a@b.de.eml"));
        assert!(!is_temp_file(".notes.tmp"));
        assert!(!is_temp_file(".x.12a.tmp"));
        let dir = tempfile::tempdir().unwrap();
        write_private_atomic(&dir.path().join("kept.eml"), b"m").unwrap();
        fs::write(dir.path().join(".kept.eml.99999.tmp"), b"half a message").unwrap();
        fs::write(dir.path().join(".hidden"), b"").unwrap();
        assert_eq!(remove_stale_temp_files(dir.path()).unwrap(), 1);
        let mut left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, [".hidden", "kept.eml"]);
        assert_eq!(remove_stale_temp_files(&dir.path().join("missing")).unwrap(), 0);
    }

    #[test]
    fn the_folder_of_a_bare_file_name_is_the_current_one() {
        // What `write_atomic` syncs for "bare.txt": `Path::parent` gives "", which cannot be
        // opened.
        assert_eq!(Path::new("bare.txt").parent(), Some(Path::new("")));
        sync_dir(Path::new("")).unwrap();
    }

    #[test]
    fn a_failed_write_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        // The rename fails: a folder is in the way.
        let target = dir.path().join("taken");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("inside"), b"x").unwrap();
        assert!(write_private_atomic(&target, b"message").is_err());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["taken"]);
    }
}
