//! A bound on the file descriptors held open by segment files (issue #14).
//!
//! Each segment keeps its `.log` file for its whole life; with tens of thousands of partitions
//! that alone exceeds the process's descriptor limit. [`BoundedStorage`] wraps another
//! [`Storage`] and hands out, for [`Storage::open_cached`], a [`LazyFile`] whose descriptor is
//! one entry of a shared [`OpenFiles`] set: when more than the configured number are open, the
//! least recently used one is closed (the CLOCK approximation of LRU, so a use only sets a
//! flag and takes no shared lock), and the handle reopens its file by path on its next use.
//!
//! A reader that must keep a file open while it works (a `sendfile` of a fetched range) takes
//! the descriptor itself ([`StorageFile::std_file`] or [`StorageFile::pinned`]); closing the
//! handle's copy then does not close the file, so the bound is exceeded only by the reads in
//! flight. Index files are not held open at all (see `index`), and every other file the log
//! opens (checkpoints, snapshots) is closed right after use, so the descriptors of the logs are
//! the bound plus the files being read or written at that instant.
//!
//! Kafka has no such bound (it keeps every segment's files open and asks operators to raise
//! `ulimit -n`); the broker setting is `potok.log.max.open.files`.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use memmap2::{Mmap, MmapMut};

use crate::storage::{Storage, StorageFile};

/// The shared set of open segment descriptors, bounded by `max_open`.
pub struct OpenFiles {
    max_open: usize,
    ring: Mutex<Ring>,
    /// Descriptors closed to stay within the bound, for metrics.
    evictions: AtomicU64,
    /// Descriptors (re)opened through lazy handles, for metrics.
    opens: AtomicU64,
}

impl fmt::Debug for OpenFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenFiles")
            .field("max_open", &self.max_open)
            .field("open", &self.open_count())
            .finish()
    }
}

/// The CLOCK ring: every handle whose descriptor is open, and the hand.
#[derive(Default)]
struct Ring {
    entries: Vec<Weak<Slot>>,
    hand: usize,
}

/// One handle's descriptor (when open) and its recently-used flag.
struct Slot {
    file: Mutex<Option<Arc<dyn StorageFile>>>,
    referenced: AtomicBool,
}

impl OpenFiles {
    /// A set that keeps at most `max_open` descriptors open (at least one).
    pub fn new(max_open: usize) -> Arc<OpenFiles> {
        Arc::new(OpenFiles {
            max_open: max_open.max(1),
            ring: Mutex::new(Ring::default()),
            evictions: AtomicU64::new(0),
            opens: AtomicU64::new(0),
        })
    }

    /// The configured bound.
    pub fn max_open(&self) -> usize {
        self.max_open
    }

    /// Descriptors currently counted as open (handles dropped since the last eviction sweep
    /// are still counted, so this never under-counts).
    pub fn open_count(&self) -> usize {
        self.ring
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .len()
    }

    /// Descriptors closed so far to stay within the bound.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Descriptors opened so far through lazy handles (first opens and reopens).
    pub fn opens(&self) -> u64 {
        self.opens.load(Ordering::Relaxed)
    }

    /// Lists a slot whose descriptor was just opened and closes others' descriptors while more
    /// than `max_open` are listed. The victims are closed after the ring's lock is released,
    /// and a victim's own lock is never held together with the ring's.
    fn admit(&self, slot: &Arc<Slot>) {
        self.opens.fetch_add(1, Ordering::Relaxed);
        let mut victims = Vec::new();
        {
            let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
            ring.entries.push(Arc::downgrade(slot));
            // Each pass over an entry either removes it or clears its flag, so the sweep ends
            // within two turns of the ring; the step limit only guards that argument.
            let mut steps = 2 * ring.entries.len() + 2;
            while ring.entries.len() > self.max_open && steps > 0 {
                steps -= 1;
                let i = ring.hand % ring.entries.len();
                match ring.entries[i].upgrade() {
                    None => {
                        ring.entries.swap_remove(i);
                    }
                    Some(s) if Arc::ptr_eq(&s, slot) => {
                        // Never close the descriptor being admitted.
                        ring.hand = i + 1;
                    }
                    Some(s) => {
                        if s.referenced.swap(false, Ordering::Relaxed) {
                            ring.hand = i + 1;
                        } else {
                            ring.entries.swap_remove(i);
                            victims.push(s);
                        }
                    }
                }
            }
        }
        for v in victims {
            let file = v.file.lock().unwrap_or_else(|e| e.into_inner()).take();
            if file.is_some() {
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
            // Dropped here, outside every lock: closing a descriptor is a system call.
            drop(file);
        }
    }
}

/// A [`Storage`] whose long-lived files ([`Storage::open_cached`]) share a bounded set of open
/// descriptors; every other operation is the inner storage's.
#[derive(Debug, Clone)]
pub struct BoundedStorage {
    inner: Arc<dyn Storage>,
    files: Arc<OpenFiles>,
}

impl BoundedStorage {
    /// Wraps `inner`, keeping at most `files.max_open()` segment descriptors open.
    pub fn new(inner: Arc<dyn Storage>, files: Arc<OpenFiles>) -> BoundedStorage {
        BoundedStorage { inner, files }
    }

    /// The shared descriptor set.
    pub fn files(&self) -> &Arc<OpenFiles> {
        &self.files
    }
}

impl Storage for BoundedStorage {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        self.inner.open(path, create)
    }

    fn open_cached(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let file = self.inner.open(path, create)?;
        let slot = Arc::new(Slot {
            file: Mutex::new(Some(file)),
            referenced: AtomicBool::new(true),
        });
        self.files.admit(&slot);
        Ok(Arc::new(LazyFile {
            path: path.to_path_buf(),
            inner: Arc::clone(&self.inner),
            files: Arc::clone(&self.files),
            slot,
        }))
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        self.inner.list_dir(dir)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.remove_dir_all(dir)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.sync_dir(dir)
    }

    fn map_mut(&self, file: &dyn StorageFile, len: usize) -> io::Result<MmapMut> {
        self.inner.map_mut(file, len)
    }

    fn map(&self, file: &dyn StorageFile, len: usize) -> io::Result<Mmap> {
        self.inner.map(file, len)
    }

    fn map_log(&self, file: &dyn StorageFile, len: usize) -> io::Result<Mmap> {
        self.inner.map_log(file, len)
    }
}

/// A segment file whose descriptor the shared [`OpenFiles`] may close while it is idle; every
/// operation reopens it by path first if so. A reopen never creates the file: a segment file
/// removed behind the log's back is an error, not a new empty file.
pub struct LazyFile {
    path: PathBuf,
    inner: Arc<dyn Storage>,
    files: Arc<OpenFiles>,
    slot: Arc<Slot>,
}

impl fmt::Debug for LazyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyFile")
            .field("path", &self.path)
            .finish()
    }
}

impl LazyFile {
    /// The open file, reopening it when its descriptor was closed.
    fn get(&self) -> io::Result<Arc<dyn StorageFile>> {
        let reopened = {
            let mut guard = self.slot.file.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(f) = guard.as_ref() {
                self.slot.referenced.store(true, Ordering::Relaxed);
                return Ok(Arc::clone(f));
            }
            // Opened under the slot's lock so two users cannot both reopen and list it twice.
            let f = self.inner.open(&self.path, false)?;
            *guard = Some(Arc::clone(&f));
            f
        };
        self.slot.referenced.store(true, Ordering::Relaxed);
        self.files.admit(&self.slot);
        Ok(reopened)
    }
}

impl StorageFile for LazyFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.get()?.read_at(buf, pos)
    }

    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<usize> {
        self.get()?.write_at(buf, pos)
    }

    fn len(&self) -> io::Result<u64> {
        self.get()?.len()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.get()?.set_len(len)
    }

    // fdatasync writes back the inode's dirty pages whichever descriptor wrote them, so a
    // reopened descriptor makes earlier writes through a closed one durable too.
    fn sync_data(&self) -> io::Result<()> {
        self.get()?.sync_data()
    }

    fn modified_ms(&self) -> io::Result<i64> {
        self.get()?.modified_ms()
    }

    fn std_file(&self) -> io::Result<Arc<File>> {
        self.get()?.std_file()
    }

    fn pinned(&self) -> io::Result<Option<Arc<dyn StorageFile>>> {
        self.get().map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{read_exact_at, write_all_at, RealStorage};

    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
    }

    #[test]
    fn descriptors_stay_within_the_bound_and_files_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let files = OpenFiles::new(4);
        let st = BoundedStorage::new(Arc::new(RealStorage), Arc::clone(&files));
        let before = open_fds();
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let f = st
                    .open_cached(&dir.path().join(format!("{i}.log")), true)
                    .unwrap();
                write_all_at(&*f, format!("file {i:02}").as_bytes(), 0).unwrap();
                assert!(files.open_count() <= 4);
                f
            })
            .collect();
        // Other tests in this process open files too, so allow some slack; without the bound
        // this would be 50 more.
        assert!(open_fds() <= before + 4 + 8, "{} open", open_fds());
        assert!(files.evictions() >= 46);
        for (i, f) in handles.iter().enumerate() {
            let mut buf = [0u8; 7];
            read_exact_at(&**f, &mut buf, 0).unwrap();
            assert_eq!(&buf, format!("file {i:02}").as_bytes());
            f.sync_data().unwrap();
            assert_eq!(f.len().unwrap(), 7);
        }
        assert!(files.open_count() <= 4);
        drop(handles);
        // Dropped handles close their descriptors at once and leave the ring on the next sweep.
        let f = st.open_cached(&dir.path().join("x.log"), true).unwrap();
        assert!(files.open_count() <= 4);
        drop(f);
    }

    #[test]
    fn a_pinned_file_outlives_eviction_and_removal() {
        let dir = tempfile::tempdir().unwrap();
        let files = OpenFiles::new(1);
        let st = BoundedStorage::new(Arc::new(RealStorage), Arc::clone(&files));
        let a_path = dir.path().join("a.log");
        let a = st.open_cached(&a_path, true).unwrap();
        write_all_at(&*a, b"kept", 0).unwrap();
        let pinned = a.pinned().unwrap().unwrap();
        let b = st.open_cached(&dir.path().join("b.log"), true).unwrap();
        std::fs::remove_file(&a_path).unwrap();
        let mut buf = [0u8; 4];
        read_exact_at(&*pinned, &mut buf, 0).unwrap();
        assert_eq!(&buf, b"kept");
        // The handle itself was evicted and its file is gone: a reopen must fail, not create.
        assert_eq!(files.evictions(), 1);
        assert!(a.len().is_err());
        assert!(!a_path.exists());
        drop(b);
    }
}
