//! The library is linked `-z nodelete` (build.rs): once FreeSWITCH has loaded
//! it, it stays mapped until the process ends, and `reload mod_zorio_c2c`
//! runs the same copy again. A new `mod_zorio_c2c.so` installed meanwhile
//! takes effect at the next start of FreeSWITCH: say so when it happens.

use std::os::unix::fs::MetadataExt;

use super::log;

/// The file this code was mapped from, with its inode then (from
/// `/proc/self/maps`), or `None` when it cannot be told.
fn mapped_from() -> Option<(String, u64)> {
    let here = mapped_from as *const () as usize;
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|line| {
        let mut f = line.split_whitespace();
        let (range, _perms, _off, _dev, inode) =
            (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
        let path = f.collect::<Vec<_>>().join(" ");
        let (lo, hi) = range.split_once('-')?;
        let (lo, hi) = (
            usize::from_str_radix(lo, 16).ok()?,
            usize::from_str_radix(hi, 16).ok()?,
        );
        (lo <= here && here < hi).then(|| Some((path, inode.parse().ok()?)))?
    })
}

/// The read-only mappings (code, constants) of the file this code was
/// mapped from, as (start, length).
fn read_only_mappings() -> Vec<(usize, usize)> {
    let Some((ours, inode)) = mapped_from() else {
        return Vec::new();
    };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return Vec::new();
    };
    maps.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (range, perms, _off, _dev, ino) =
                (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
            let path = f.collect::<Vec<_>>().join(" ");
            if path != ours || ino.parse::<u64>().ok()? != inode || perms.contains('w') {
                return None;
            }
            let (lo, hi) = range.split_once('-')?;
            let (lo, hi) = (
                usize::from_str_radix(lo, 16).ok()?,
                usize::from_str_radix(hi, 16).ok()?,
            );
            Some((lo, hi.checked_sub(lo)?))
        })
        .collect()
}

/// After an unload the library stays mapped (`-z nodelete`), and the pages
/// of its code that the load touched stay in the switch's RSS: 4.4 MiB
/// measured (`/proc/<pid>/smaps` of the switch). They are clean copies of
/// the file, which the kernel may drop at any time; this asks it to drop
/// them now (`MADV_PAGEOUT`, Linux 5.4+; older kernels refuse it and
/// nothing happens). It never loses a byte: a dirty page (the relocated
/// `RELRO` part) is swapped or kept, and code that runs again (the next
/// load, a destructor) faults its pages back in from the page cache.
/// Returns the bytes advised.
pub(crate) fn page_out_code() -> usize {
    let mut advised = 0;
    for (start, len) in read_only_mappings() {
        // SAFETY: (start, len) is a whole mapping of this library, listed by
        // the kernel just now and never unmapped (nodelete); MADV_PAGEOUT
        // only reclaims pages and keeps their contents.
        let r = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_PAGEOUT) };
        if r == 0 {
            advised += len;
        }
    }
    advised
}

/// What the running copy is, against what is on disk now; `None` when both
/// are the same file.
pub(crate) fn replaced_note() -> Option<String> {
    let (path, inode) = mapped_from()?;
    let on_disk = path.strip_suffix(" (deleted)").map_or_else(
        || std::fs::metadata(&path).ok(),
        |p| std::fs::metadata(p).ok(),
    );
    let same = !path.ends_with(" (deleted)") && on_disk.is_some_and(|m| m.ino() == inode);
    (!same).then(|| {
        format!(
            "{} on disk is not the copy running (version {} stays in memory once loaded: \
             restart FreeSWITCH to run the new one)",
            path.trim_end_matches(" (deleted)"),
            env!("CARGO_PKG_VERSION")
        )
    })
}

/// Logs a warning when the `.so` was replaced since it was first loaded.
pub(crate) fn warn_if_replaced() {
    if let Some(note) = replaced_note() {
        log::warn(&note);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_test_binary_finds_its_own_mapping_unchanged() {
        let (path, inode) = super::mapped_from().expect("this code is mapped from a file");
        assert!(std::path::Path::new(&path).exists(), "mapped from {path}");
        assert!(inode > 0);
        assert_eq!(super::replaced_note(), None);
    }

    #[test]
    fn paging_out_the_code_keeps_it_running() {
        let ro = super::read_only_mappings();
        assert!(!ro.is_empty(), "no read-only mapping of this binary");
        let here = super::read_only_mappings as *const () as usize;
        assert!(ro.iter().any(|(s, l)| *s <= here && here < s + l));
        let advised = super::page_out_code();
        assert_eq!(advised, ro.iter().map(|(_, l)| l).sum::<usize>());
        // The code paged out runs again (faulted back in).
        assert_eq!(super::read_only_mappings(), ro);
    }
}
