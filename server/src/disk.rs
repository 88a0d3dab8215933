//! How full the disk holding a directory is (statvfs on Unix).

use std::path::Path;

/// A file system's size and what an unprivileged writer may still use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUsage {
    pub total: u64,
    pub free: u64,
}

impl DiskUsage {
    /// The share still free, in percent.
    pub fn free_percent(&self) -> f64 {
        self.free as f64 * 100.0 / self.total.max(1) as f64
    }
}

/// The usage of the file system holding `dir`; `None` where it cannot be
/// told (not Unix, or statvfs fails).
#[cfg(unix)]
pub fn usage(dir: &Path) -> Option<DiskUsage> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `s` a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 || s.f_blocks == 0 {
        return None;
    }
    let frsize = s.f_frsize as u64;
    Some(DiskUsage {
        total: s.f_blocks as u64 * frsize,
        free: s.f_bavail as u64 * frsize,
    })
}

#[cfg(not(unix))]
pub fn usage(_dir: &Path) -> Option<DiskUsage> {
    None
}
