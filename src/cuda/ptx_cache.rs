// SPDX-License-Identifier: MPL-2.0
//! Compiled kernels on disk, so that a second start does not run NVRTC: one PTX file per kernel module, keyed by
//! everything that changes NVRTC's output or whether the driver can load it (the device's compute capability, the
//! driver's and NVRTC's versions, the target architecture, the options and the source). Entries are written
//! atomically (a temporary file renamed into place) and carry a checksum of their text: an unreadable, corrupt or
//! unloadable entry is compiled again and replaced, never an error; an unwritable directory only costs the cache.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::Result;

/// First line of every entry: the format, then the key and the checksum of the PTX below it.
const MAGIC: &str = "// vfupscale-ptx-cache v1";

/// What a compiled module depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey<'a> {
    pub module: &'a str,
    pub source: &'a str,
    /// Target virtual architecture (`compute_90a`, …) and the other NVRTC options, as passed.
    pub arch: &'a str,
    pub options: &'a [String],
    pub compute_capability: (i32, i32),
    pub driver_version: i32,
    pub nvrtc_version: (i32, i32),
}

impl CacheKey<'_> {
    fn digest(&self) -> String {
        let mut h = Sha256::new();
        let (cc, nvrtc) = (self.compute_capability, self.nvrtc_version);
        for part in [self.module, self.arch, self.source] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        for option in self.options {
            h.update(option.as_bytes());
            h.update([0]);
        }
        h.update(format!("cc {}.{} driver {} nvrtc {}.{}", cc.0, cc.1, self.driver_version, nvrtc.0, nvrtc.1));
        hex(&h.finalize()[..16])
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn checksum(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes())[..16])
}

/// Where a loaded module's PTX came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PtxOrigin {
    /// Read from the cache: NVRTC did not run.
    Cached,
    /// Compiled by NVRTC and stored for the next start.
    Compiled,
    /// Compiled by NVRTC; the cache could not be used (the reason, for a log line).
    CompiledUncached(String),
}

/// A directory of compiled kernel modules.
#[derive(Debug, Clone)]
pub struct PtxCache {
    dir: PathBuf,
}

impl PtxCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The cache under the user's cache directory (`$XDG_CACHE_HOME/vfupscale/kernels`, else `~/.cache/…`).
    pub fn user() -> Self {
        Self::new(crate::paths::kernel_cache_dir())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry(&self, key: &CacheKey<'_>, digest: &str) -> PathBuf {
        let module: String = key.module.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        self.dir.join(format!("{module}-{}-{digest}.ptx", key.arch))
    }

    /// The PTX of a valid entry for `key`, if there is one.
    fn read(&self, path: &Path, digest: &str) -> Option<String> {
        let text = std::fs::read_to_string(path).ok()?;
        let (header, ptx) = text.split_once('\n')?;
        let rest = header.strip_prefix(MAGIC)?.trim();
        let (key, sum) = rest.split_once(' ')?;
        (key == digest && sum == checksum(ptx)).then(|| ptx.to_string())
    }

    fn write(&self, path: &Path, digest: &str, ptx: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
        writeln!(file, "{MAGIC} {digest} {}", checksum(ptx))?;
        file.write_all(ptx.as_bytes())?;
        file.as_file().sync_all()?;
        file.persist(path).map_err(|e| e.error)?;
        Ok(())
    }

    /// Loads the module for `key` from the cache with `load`; when there is no valid entry (or `load` refuses it),
    /// runs `compile`, loads its PTX and stores it. Only `compile` and the final `load` can fail.
    pub fn load_or_compile<M>(
        &self,
        key: &CacheKey<'_>,
        compile: impl FnOnce() -> Result<String>,
        load: impl Fn(&str) -> Result<M>,
    ) -> Result<(M, PtxOrigin)> {
        let digest = key.digest();
        let path = self.entry(key, &digest);
        if let Some(ptx) = self.read(&path, &digest)
            && let Ok(module) = load(&ptx)
        {
            return Ok((module, PtxOrigin::Cached));
        }
        let ptx = compile()?;
        let module = load(&ptx)?;
        let origin = match self.write(&path, &digest, &ptx) {
            Ok(()) => PtxOrigin::Compiled,
            Err(e) => PtxOrigin::CompiledUncached(format!("cannot write {}: {e}", path.display())),
        };
        Ok((module, origin))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::error::Error;

    fn key<'a>(source: &'a str, driver_version: i32) -> CacheKey<'a> {
        CacheKey {
            module: "blend",
            source,
            arch: "compute_90",
            options: &[],
            compute_capability: (9, 0),
            driver_version,
            nvrtc_version: (13, 0),
        }
    }

    /// A "loader" that accepts PTX that starts with `.version`, as the driver would refuse garbage.
    fn load(ptx: &str) -> Result<String> {
        if ptx.starts_with(".version") { Ok(ptx.to_string()) } else { Err(Error::Usage("not PTX".into())) }
    }

    #[test]
    fn a_second_load_does_not_compile_and_any_change_of_the_key_does() {
        let dir = tempfile::tempdir().unwrap();
        let cache = PtxCache::new(dir.path().join("kernels"));
        let compiles = Cell::new(0);
        let compile = |text: &'static str| {
            compiles.set(compiles.get() + 1);
            Ok(text.to_string())
        };
        let (m, origin) = cache.load_or_compile(&key("a", 1), || compile(".version 9\nA"), load).unwrap();
        assert_eq!((m.as_str(), origin, compiles.get()), (".version 9\nA", PtxOrigin::Compiled, 1));
        let (m, origin) = cache.load_or_compile(&key("a", 1), || compile(".version 9\nB"), load).unwrap();
        assert_eq!((m.as_str(), origin, compiles.get()), (".version 9\nA", PtxOrigin::Cached, 1));
        // another source, another driver: compiled anew, the first entry stays
        let (_, origin) = cache.load_or_compile(&key("b", 1), || compile(".version 9\nC"), load).unwrap();
        assert_eq!((origin, compiles.get()), (PtxOrigin::Compiled, 2));
        let (_, origin) = cache.load_or_compile(&key("a", 2), || compile(".version 9\nD"), load).unwrap();
        assert_eq!((origin, compiles.get()), (PtxOrigin::Compiled, 3));
        let (m, _) = cache.load_or_compile(&key("a", 1), || compile("unused"), load).unwrap();
        assert_eq!((m.as_str(), compiles.get()), (".version 9\nA", 3));
        let files = std::fs::read_dir(cache.dir()).unwrap().count();
        assert_eq!(files, 3, "one entry per key and no temporary files left");
    }

    #[test]
    fn corrupt_and_unloadable_entries_are_compiled_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = PtxCache::new(dir.path());
        let k = key("a", 1);
        cache.load_or_compile(&k, || Ok(".version 9\nGOOD".into()), load).unwrap();
        let entry = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
        for damage in [
            |t: &str| t.replace("GOOD", "EVIL"),         // checksum no longer matches
            |t: &str| t[..t.len() / 2].to_string(),      // truncated
            |_: &str| String::new(),                     // empty
            |t: &str| t.replace(".version", "garbage!"), // text the driver would refuse
        ] {
            let text = std::fs::read_to_string(&entry).unwrap();
            std::fs::write(&entry, damage(&text)).unwrap();
            let (m, origin) = cache.load_or_compile(&k, || Ok(".version 9\nGOOD".into()), load).unwrap();
            assert_eq!((m.as_str(), origin), (".version 9\nGOOD", PtxOrigin::Compiled));
            let (_, origin) = cache.load_or_compile(&k, || Ok("unused".into()), load).unwrap();
            assert_eq!(origin, PtxOrigin::Cached, "the entry was replaced");
        }
        // a checksum over damaged text that still passes: the loader refusing it is enough to recompile
        let text = std::fs::read_to_string(&entry).unwrap();
        let body = "garbage";
        let (head, _) = text.split_once('\n').unwrap();
        let digest = head.split(' ').nth(3).unwrap();
        std::fs::write(&entry, format!("{MAGIC} {digest} {}\n{body}", checksum(body))).unwrap();
        let (_, origin) = cache.load_or_compile(&k, || Ok(".version 9\nGOOD".into()), load).unwrap();
        assert_eq!(origin, PtxOrigin::Compiled);
    }

    #[test]
    fn an_unusable_directory_only_costs_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"not a directory").unwrap();
        let cache = PtxCache::new(blocker.join("kernels"));
        let (m, origin) = cache.load_or_compile(&key("a", 1), || Ok(".version 9\nX".into()), load).unwrap();
        assert_eq!(m, ".version 9\nX");
        assert!(matches!(origin, PtxOrigin::CompiledUncached(ref why) if why.contains("cannot write")), "{origin:?}");
        // and compile errors are errors
        let e = cache.load_or_compile(&key("a", 1), || Err(Error::Usage("NVRTC failed".into())), load);
        assert!(e.is_err());
    }
}
