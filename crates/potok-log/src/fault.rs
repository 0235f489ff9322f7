//! A fault-injecting [`Storage`] for tests: it wraps [`RealStorage`] on a real directory and can
//! crash after a byte budget (the write that crosses it is torn), split writes into short
//! writes, fail syncs or writes with IO errors, and simulate a power loss that discards or
//! garbles everything written since a file's last `sync_data`.
//!
//! It is public so integration tests, the crash-test binary and other crates' tests can use it;
//! production code uses [`RealStorage`].

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use memmap2::{Mmap, MmapMut};

use crate::storage::{RealStorage, Storage, StorageFile};

/// What to inject. All fields default to "no fault".
#[derive(Clone, Debug, Default)]
pub struct FaultPlan {
    /// Bytes that may still be written across all files; the write that would exceed it
    /// writes only what is left, and from then on the storage behaves as crashed (every write,
    /// sync and open fails). Models a process killed in the middle of a write.
    pub crash_after_bytes: Option<u64>,
    /// Splits every write into pieces of at most this many bytes (each call to
    /// [`StorageFile::write_at`] returns a short count), so callers must loop.
    pub max_write_chunk: Option<usize>,
    /// The next this-many writes fail with an IO error (before writing anything).
    pub fail_writes: u32,
    /// The next this-many `sync_data` calls fail with an IO error.
    pub fail_syncs: u32,
    /// Mutating operations (writes, length changes, syncs, renames, removals, directory
    /// syncs, file creations) that may still run; the next one fails and the storage behaves
    /// as crashed from then on. Models a process killed between any two file operations,
    /// e.g. in the middle of a segment swap.
    pub crash_after_ops: Option<u64>,
}

#[derive(Debug, Default)]
struct FaultState {
    plan: FaultPlan,
    crashed: bool,
    bytes_written: u64,
    ops: u64,
    /// Per file: the length known to be durable (as of open or the last `sync_data`), and
    /// whether anything was written since.
    durable: HashMap<PathBuf, (u64, bool)>,
}

/// A [`Storage`] that injects the faults described by a [`FaultPlan`]. Clones share state.
#[derive(Clone, Debug, Default)]
pub struct FaultyStorage {
    inner: RealStorage,
    state: Arc<Mutex<FaultState>>,
}

fn crashed_error() -> io::Error {
    io::Error::other("injected fault: storage crashed")
}

fn tick(s: &mut FaultState) -> io::Result<()> {
    if s.crashed {
        return Err(crashed_error());
    }
    if s.plan.crash_after_ops.is_some_and(|budget| s.ops >= budget) {
        s.crashed = true;
        return Err(crashed_error());
    }
    s.ops += 1;
    Ok(())
}

impl FaultyStorage {
    /// A storage with no faults planned yet.
    pub fn new() -> FaultyStorage {
        FaultyStorage::default()
    }

    fn state(&self) -> MutexGuard<'_, FaultState> {
        // A panic while holding this lock can only come from a test assertion; the state is
        // plain data and stays usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the fault plan (the byte budget counts from now).
    pub fn set_plan(&self, plan: FaultPlan) {
        let mut s = self.state();
        s.plan = plan;
        s.bytes_written = 0;
        s.ops = 0;
    }

    /// Counts one mutating operation against `crash_after_ops`; an error when the storage
    /// has crashed or crashes now.
    fn tick(&self) -> io::Result<()> {
        tick(&mut self.state())
    }

    /// Whether the byte budget ran out.
    pub fn is_crashed(&self) -> bool {
        self.state().crashed
    }

    /// Mutating operations (see [`FaultPlan::crash_after_ops`]) since the plan was set.
    pub fn operations(&self) -> u64 {
        self.state().ops
    }

    /// Total bytes written through this storage since the plan was set.
    pub fn bytes_written(&self) -> u64 {
        self.state().bytes_written
    }

    /// Simulates a power loss: every file written since its last sync loses the bytes beyond
    /// its durable length; with `garble`, those bytes are overwritten with a pseudo-random
    /// pattern instead of being cut off (a torn sector write). Memory-mapped index stores are
    /// not tracked (index files are rebuilt or sanity-checked by recovery). Afterwards the
    /// storage is usable again with no faults planned.
    pub fn simulate_power_loss(&self, garble: bool, seed: u64) -> io::Result<()> {
        let mut s = self.state();
        let mut rng = seed | 1;
        for (path, (durable_len, dirty)) in s.durable.iter_mut() {
            if !*dirty || !path.exists() {
                continue;
            }
            let file = self.inner.open(path, false)?;
            let len = file.len()?;
            if len > *durable_len {
                if garble {
                    let mut junk = vec![0u8; (len - *durable_len) as usize];
                    for b in junk.iter_mut() {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        *b = rng as u8;
                    }
                    crate::storage::write_all_at(&*file, &junk, *durable_len)?;
                } else {
                    file.set_len(*durable_len)?;
                }
            }
            *dirty = false;
        }
        s.plan = FaultPlan::default();
        s.crashed = false;
        Ok(())
    }
}

/// A file opened through [`FaultyStorage`].
#[derive(Debug)]
pub struct FaultyFile {
    inner: Arc<dyn StorageFile>,
    path: PathBuf,
    storage: FaultyStorage,
}

impl StorageFile for FaultyFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.inner.read_at(buf, pos)
    }

    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<usize> {
        let mut s = self.storage.state();
        tick(&mut s)?;
        if s.plan.fail_writes > 0 {
            s.plan.fail_writes -= 1;
            return Err(io::Error::other("injected fault: write failed"));
        }
        let mut n = buf.len();
        if let Some(chunk) = s.plan.max_write_chunk {
            n = n.min(chunk.max(1));
        }
        let mut crash_now = false;
        if let Some(budget) = s.plan.crash_after_bytes {
            let left = budget.saturating_sub(s.bytes_written);
            if (n as u64) > left {
                n = left as usize;
                crash_now = true;
            }
        }
        let written = if n > 0 {
            self.inner.write_at(&buf[..n], pos)?
        } else {
            0
        };
        s.bytes_written += written as u64;
        let entry = s.durable.entry(self.path.clone()).or_insert((pos, false));
        entry.1 = true;
        if crash_now {
            s.crashed = true;
            if written == 0 {
                return Err(crashed_error());
            }
        }
        Ok(written)
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.storage.state();
        tick(&mut s)?;
        self.inner.set_len(len)?;
        let entry = s.durable.entry(self.path.clone()).or_insert((len, false));
        entry.0 = entry.0.min(len);
        entry.1 = true;
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.storage.state();
        tick(&mut s)?;
        if s.plan.fail_syncs > 0 {
            s.plan.fail_syncs -= 1;
            return Err(io::Error::other("injected fault: sync failed"));
        }
        self.inner.sync_data()?;
        let len = self.inner.len()?;
        s.durable.insert(self.path.clone(), (len, false));
        Ok(())
    }

    fn modified_ms(&self) -> io::Result<i64> {
        self.inner.modified_ms()
    }

    fn std_file(&self) -> io::Result<Arc<std::fs::File>> {
        self.inner.std_file()
    }
}

impl Storage for FaultyStorage {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        if create {
            self.tick()?;
        } else if self.is_crashed() {
            return Err(crashed_error());
        }
        let inner = self.inner.open(path, create)?;
        let len = inner.len()?;
        self.state()
            .durable
            .entry(path.to_path_buf())
            .or_insert((len, false));
        Ok(Arc::new(FaultyFile {
            inner,
            path: path.to_path_buf(),
            storage: self.clone(),
        }))
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        self.inner.list_dir(dir)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.tick()?;
        self.inner.rename(from, to)?;
        let mut s = self.state();
        if let Some(d) = s.durable.remove(from) {
            s.durable.insert(to.to_path_buf(), d);
        }
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.tick()?;
        self.inner.remove_file(path)?;
        self.state().durable.remove(path);
        Ok(())
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        if self.is_crashed() {
            return Err(crashed_error());
        }
        self.inner.remove_dir_all(dir)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.tick()?;
        self.inner.sync_dir(dir)
    }

    fn map_mut(&self, file: &dyn StorageFile, len: usize) -> io::Result<MmapMut> {
        if self.is_crashed() {
            return Err(crashed_error());
        }
        self.inner.map_mut(file, len)
    }

    fn map(&self, file: &dyn StorageFile, len: usize) -> io::Result<Mmap> {
        self.inner.map(file, len)
    }

    /// Refused: a simulated crash truncates files to their durable length, which would turn a
    /// cached mapping of a `.log` file into SIGBUS, and lookups must keep going through
    /// `read_at` here anyway so injected failures reach them.
    fn map_log(&self, _file: &dyn StorageFile, _len: usize) -> io::Result<Mmap> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the fault-injection storage does not map log files",
        ))
    }
}
