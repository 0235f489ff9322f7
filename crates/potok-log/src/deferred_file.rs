//! A segment's `.log` file that is created on its first write rather than when the segment is
//! (issue #14): a new partition, or a partition directory holding no segment yet, then costs no
//! file and no descriptor until something is appended to it (or a reader needs a descriptor).
//! Creating 100,000 partitions created 300,000 files before; Kafka creates a new log's segment
//! files eagerly, but nothing needs a file before its first record.
//!
//! Until the file exists it reads as the empty file it stands for: zero length, no bytes, nothing
//! to sync, and the modification time of the moment the segment was made. Anything that needs
//! the file itself (a write, a length change, a descriptor for `sendfile` or a mapping) creates
//! it through [`Storage::open_cached`], after which every operation goes to that file.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use crate::storage::{Storage, StorageFile};

/// A file created on first use. See the module docs.
pub(crate) struct DeferredFile {
    path: PathBuf,
    storage: Arc<dyn Storage>,
    /// The clock when the segment was made, the modification time it reports until created.
    made_ms: i64,
    file: OnceLock<Arc<dyn StorageFile>>,
    /// Serialises the creation, so two users cannot both create and register the file.
    creating: Mutex<()>,
}

impl std::fmt::Debug for DeferredFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeferredFile")
            .field("path", &self.path)
            .field("created", &self.created())
            .finish()
    }
}

impl DeferredFile {
    /// A handle for `path`, which must not exist yet (the caller listed its directory or made
    /// it): the first use creates it empty.
    pub(crate) fn new(path: PathBuf, storage: Arc<dyn Storage>, made_ms: i64) -> DeferredFile {
        DeferredFile {
            path,
            storage,
            made_ms,
            file: OnceLock::new(),
            creating: Mutex::new(()),
        }
    }

    /// Whether the file exists (was created by a use).
    pub(crate) fn created(&self) -> bool {
        self.file.get().is_some()
    }

    /// The file, creating it on the first call.
    fn get(&self) -> io::Result<Arc<dyn StorageFile>> {
        if let Some(f) = self.file.get() {
            return Ok(Arc::clone(f));
        }
        let _creating = self.creating.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = self.file.get() {
            return Ok(Arc::clone(f));
        }
        let f = self.storage.open_cached(&self.path, true)?;
        // Cannot be set already: creation is serialised by the lock held here.
        let _ = self.file.set(Arc::clone(&f));
        Ok(f)
    }
}

impl StorageFile for DeferredFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        match self.file.get() {
            Some(f) => f.read_at(buf, pos),
            None => Ok(0),
        }
    }

    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<usize> {
        self.get()?.write_at(buf, pos)
    }

    fn len(&self) -> io::Result<u64> {
        match self.file.get() {
            Some(f) => f.len(),
            None => Ok(0),
        }
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        match self.file.get() {
            Some(f) => f.set_len(len),
            // Cutting the empty file that does not exist yet changes nothing.
            None if len == 0 => Ok(()),
            None => self.get()?.set_len(len),
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        match self.file.get() {
            Some(f) => f.sync_data(),
            None => Ok(()),
        }
    }

    fn modified_ms(&self) -> io::Result<i64> {
        match self.file.get() {
            Some(f) => f.modified_ms(),
            None => Ok(self.made_ms),
        }
    }

    fn std_file(&self) -> io::Result<Arc<File>> {
        self.get()?.std_file()
    }

    fn pinned(&self) -> io::Result<Option<Arc<dyn StorageFile>>> {
        let f = self.get()?;
        match f.pinned()? {
            Some(p) => Ok(Some(p)),
            None => Ok(Some(f)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{read_exact_at, write_all_at, RealStorage};

    #[test]
    fn reads_as_empty_until_the_first_write_creates_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000000.log");
        let f = DeferredFile::new(path.clone(), Arc::new(RealStorage), 1234);
        assert_eq!(f.len().unwrap(), 0);
        assert_eq!(f.read_at(&mut [0u8; 4], 0).unwrap(), 0);
        f.sync_data().unwrap();
        f.set_len(0).unwrap();
        assert_eq!(f.modified_ms().unwrap(), 1234);
        assert!(!path.exists() && !f.created());
        write_all_at(&f, b"data", 0).unwrap();
        assert!(path.exists() && f.created());
        let mut buf = [0u8; 4];
        read_exact_at(&f, &mut buf, 0).unwrap();
        assert_eq!(&buf, b"data");
        assert_eq!(f.len().unwrap(), 4);
        assert_ne!(f.modified_ms().unwrap(), 1234);
    }

    #[test]
    fn a_descriptor_request_creates_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let f = DeferredFile::new(path.clone(), Arc::new(RealStorage), 0);
        let pinned = f.pinned().unwrap().unwrap();
        assert!(path.exists());
        assert_eq!(pinned.len().unwrap(), 0);
        assert_eq!(f.std_file().unwrap().metadata().unwrap().len(), 0);
    }
}
