//! The preload library, embedded in the `netcell` binary at build time (see
//! `build.rs`) and written out where the container's programs can map it.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The library's bytes.
pub static PRELOAD_SO: &[u8] = include_bytes!(env!("NETCELL_PRELOAD_SO"));

fn fnv64(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325u64, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x100000001b3)
    })
}

/// Writes the library into `dir` (the container's private runtime directory) if its
/// filesystem allows executable mappings; otherwise into the user's cache directory,
/// content-addressed so concurrent containers share one copy. `NETCELL_PRELOAD`
/// overrides both (a library built separately, for development).
pub fn install(dir: &Path) -> io::Result<PathBuf> {
    if let Some(p) = std::env::var_os("NETCELL_PRELOAD") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("NETCELL_PRELOAD={} is not a file", p.display()),
            ));
        }
        return Ok(p);
    }
    let name = format!("libnetcell_preload-{:016x}.so", fnv64(PRELOAD_SO));
    let target = if crate::sys::exec_allowed(dir) {
        dir.join(&name)
    } else {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .ok_or_else(|| {
                io::Error::other(
                    "the runtime directory is noexec and neither XDG_CACHE_HOME nor HOME is set",
                )
            })?
            .join("netcell");
        fs::create_dir_all(&cache)?;
        let t = cache.join(&name);
        if t.is_file() && fs::read(&t).is_ok_and(|b| b == PRELOAD_SO) {
            return Ok(t);
        }
        t
    };
    // Write to a temporary name and rename: a concurrent reader never sees a partial file.
    let tmp = target.with_extension(format!("tmp{}", std::process::id()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)?;
    f.write_all(PRELOAD_SO)?;
    f.sync_all().ok();
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644))?;
    fs::rename(&tmp, &target)?;
    Ok(target)
}
