//! The IO boundary of the log: every file operation the crate performs goes through
//! [`Storage`] and [`StorageFile`], so tests can inject crashes, short writes and IO errors
//! (see [`crate::fault::FaultyStorage`]) and the rest of the crate never touches `std::fs`.
//!
//! [`RealStorage`] is the production implementation on `std::fs` plus `memmap2` for index
//! files. Positional IO (`pread`/`pwrite`) is used throughout so a file handle can be shared
//! between the appender and readers without a seek position to race on.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::{Mmap, MmapMut, MmapOptions};

/// Directory-level operations and file opening. Implementations must be usable from several
/// threads (`Send + Sync`); the log itself is driven by one thread at a time.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Opens `path` for reading and writing, creating it (empty) when `create` is true and it
    /// does not exist yet.
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>>;
    /// Opens a file that stays open for a long time (a segment's `.log` file). A storage that
    /// bounds open descriptors ([`crate::BoundedStorage`]) returns a handle whose descriptor it
    /// may close while idle and reopens on the next use; by default this is [`Storage::open`].
    fn open_cached(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        self.open(path, create)
    }
    /// Creates `dir` and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The paths of the entries directly inside `dir`.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    /// Atomically renames `from` to `to`, replacing `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory and everything in it.
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Maps the first `len` bytes of `file` read-write and shared, so stores reach the file.
    /// `len` must be non-zero and within the file.
    fn map_mut(&self, file: &dyn StorageFile, len: usize) -> io::Result<MmapMut>;
    /// Maps the first `len` bytes of `file` read-only. `len` must be non-zero and within the file.
    fn map(&self, file: &dyn StorageFile, len: usize) -> io::Result<Mmap>;
    /// Maps the first `len` bytes of a segment's `.log` file read-only, for timestamp lookups.
    /// Storages that must see every read (fault injection) refuse, and the log falls back to
    /// `read_at`.
    fn map_log(&self, file: &dyn StorageFile, len: usize) -> io::Result<Mmap> {
        self.map(file, len)
    }
}

/// An open file. All IO is positional, so one handle is shared by the writer and readers.
// `len` is the file length, an IO query; an `is_empty` twin would only invite unchecked use.
#[allow(clippy::len_without_is_empty)]
pub trait StorageFile: Send + Sync + fmt::Debug {
    /// Reads up to `buf.len()` bytes at `pos`; returns how many were read (0 at end of file).
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize>;
    /// Writes up to `buf.len()` bytes at `pos`; returns how many were written, which may be
    /// fewer (a short write). Use [`write_all_at`] to write everything.
    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<usize>;
    /// Current length of the file.
    fn len(&self) -> io::Result<u64>;
    /// Truncates or extends (with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes the file's data durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// The file's last modification time in milliseconds since the Unix epoch.
    fn modified_ms(&self) -> io::Result<i64>;
    /// The underlying OS file, for zero-copy transfers (`sendfile`) by the caller of
    /// [`crate::Log::read`] and for memory mapping. A handle whose descriptor was closed while
    /// idle reopens it.
    fn std_file(&self) -> io::Result<Arc<File>>;
    /// The open file behind a handle that may close its descriptor while idle, so a reader can
    /// keep the descriptor (and a deleted file's data) for as long as it needs it; `None` for
    /// a handle that is itself always open.
    fn pinned(&self) -> io::Result<Option<Arc<dyn StorageFile>>> {
        Ok(None)
    }
}

/// Writes all of `buf` at `pos`, retrying short writes. A write that makes no progress is an
/// error rather than a busy loop.
pub fn write_all_at(file: &dyn StorageFile, mut buf: &[u8], mut pos: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.write_at(buf, pos) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "write made no progress",
                ))
            }
            Ok(n) => {
                buf = buf.get(n..).unwrap_or(&[]);
                pos += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads exactly `buf.len()` bytes at `pos`; a file that ends first is `UnexpectedEof`.
pub fn read_exact_at(file: &dyn StorageFile, mut buf: &mut [u8], mut pos: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.read_at(buf, pos) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file ends before the requested range",
                ))
            }
            Ok(n) => {
                let rest = std::mem::take(&mut buf);
                buf = rest.get_mut(n..).unwrap_or(&mut []);
                pos += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The production [`Storage`]: `std::fs` and `memmap2`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealStorage;

/// A file opened by [`RealStorage`].
#[derive(Debug)]
pub struct RealFile {
    file: Arc<File>,
}

impl RealFile {
    /// Wraps an already open file.
    pub fn new(file: File) -> RealFile {
        RealFile {
            file: Arc::new(file),
        }
    }
}

impl StorageFile for RealFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.file.read_at(buf, pos)
    }

    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<usize> {
        self.file.write_at(buf, pos)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn modified_ms(&self) -> io::Result<i64> {
        let modified = self.file.metadata()?.modified()?;
        let ms = modified
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Ok(i64::try_from(ms).unwrap_or(i64::MAX))
    }

    fn std_file(&self) -> io::Result<Arc<File>> {
        Ok(Arc::clone(&self.file))
    }
}

fn check_map_len(file: &dyn StorageFile, len: usize) -> io::Result<()> {
    if len == 0 || (len as u64) > file.len()? {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "mapping must be non-empty and within the file",
        ));
    }
    Ok(())
}

impl Storage for RealStorage {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)?;
        Ok(Arc::new(RealFile::new(file)))
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.path()))
            .collect()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(dir)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn map_mut(&self, file: &dyn StorageFile, len: usize) -> io::Result<MmapMut> {
        check_map_len(file, len)?;
        let f = file.std_file()?;
        // SAFETY: the mapping is of a file owned by one `Log`, which is the only writer of its
        // directory (documented on `Log`). The log never shrinks an index file while a mapping
        // of it is alive (it drops the mapping first), so no access can hit a page beyond the
        // end of the file (SIGBUS). Concurrent modification by another process is outside the
        // contract, as it is for Kafka.
        unsafe { MmapOptions::new().len(len).map_mut(&*f) }
    }

    fn map(&self, file: &dyn StorageFile, len: usize) -> io::Result<Mmap> {
        check_map_len(file, len)?;
        let f = file.std_file()?;
        // SAFETY: as for `map_mut`; closed-segment index files are only shrunk or removed
        // after every mapping of them has been dropped. A `.log` file (`map_log`) is only cut
        // by `Segment::truncate_to`, which drops the segment's mapping first, or back to its
        // valid size after a failed append, which no mapping extends past; removing a file
        // (retention) leaves existing mappings valid.
        unsafe { MmapOptions::new().len(len).map(&*f) }
    }
}
