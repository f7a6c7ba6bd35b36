//! SQLite's memory comes from mimalloc (the `kembali` binary's global allocator too) instead
//! of the C library's `malloc`.
//!
//! Why: writing jobs run under SAVEPOINTs, and SQLite copies each page first changed under
//! one into an in-memory statement journal made of 1 KiB chunks, one `malloc` each, freed
//! when the savepoint is released. An order under a savepoint of its own allocates about 80. glibc
//! serves chunks of that size from its bins at about 340 instructions apiece, some 12 % of
//! the writer's work per order; mimalloc serves them from its thread-local free lists.
//!
//! SQLite takes its allocator once per process, before it is first initialised (the first
//! connection opened): [`use_mimalloc`] must run before that, so `main` calls it
//! first and every connection of this crate calls it before opening. Called too late, it
//! changes nothing and SQLite keeps `malloc`, which is slower but just as correct.
//!
//! mimalloc is called directly, not through Rust's allocator interface: SQLite asks for the
//! size of a block (`xSize`), which mimalloc knows, and a size header would push the 1 KiB
//! chunks past mimalloc's small-block fast path (1 KiB and under).

use libmimalloc_sys::{mi_free, mi_malloc, mi_realloc, mi_usable_size};
use rusqlite::ffi;
use std::os::raw::{c_int, c_void};
use std::ptr::null_mut;
use std::sync::OnceLock;

unsafe extern "C" fn x_malloc(n: c_int) -> *mut c_void {
    // SQLite never asks for zero bytes or fewer (it answers those itself).
    match usize::try_from(n) {
        // SAFETY: plain allocation; a null return is SQLite's out-of-memory.
        Ok(size) if size > 0 => unsafe { mi_malloc(size) },
        _ => null_mut(),
    }
}

unsafe extern "C" fn x_free(p: *mut c_void) {
    // SAFETY: SQLite frees only what this allocator gave it, once; null is allowed.
    unsafe { mi_free(p) }
}

unsafe extern "C" fn x_realloc(p: *mut c_void, n: c_int) -> *mut c_void {
    // A size of zero must change nothing (SQLite turns a null block or a zero size into an
    // allocation or a free before calling this).
    match usize::try_from(n) {
        // SAFETY: `p` came from this allocator; on failure it stays as it was.
        Ok(size) if size > 0 && !p.is_null() => unsafe { mi_realloc(p, size) },
        _ => null_mut(),
    }
}

unsafe extern "C" fn x_size(p: *mut c_void) -> c_int {
    // SAFETY: `p` is null or came from this allocator.
    let size = unsafe { mi_usable_size(p) };
    c_int::try_from(size).unwrap_or(c_int::MAX)
}

/// SQLite asks for the rounded size: to 8 bytes, as its own allocator rounds.
unsafe extern "C" fn x_roundup(n: c_int) -> c_int {
    n.checked_add(7).map_or(n, |m| m & !7)
}

unsafe extern "C" fn x_init(_: *mut c_void) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_shutdown(_: *mut c_void) {}

/// Hands SQLite mimalloc, once per process; true if SQLite took it (false if SQLite was
/// already initialised, by a connection opened earlier).
pub fn use_mimalloc() -> bool {
    static TAKEN: OnceLock<bool> = OnceLock::new();
    *TAKEN.get_or_init(|| {
        let methods = ffi::sqlite3_mem_methods {
            xMalloc: Some(x_malloc),
            xFree: Some(x_free),
            xRealloc: Some(x_realloc),
            xSize: Some(x_size),
            xRoundup: Some(x_roundup),
            xInit: Some(x_init),
            xShutdown: Some(x_shutdown),
            pAppData: null_mut(),
        };
        // SAFETY: SQLite copies the methods before returning; it refuses (SQLITE_MISUSE)
        // once initialised, and nothing has been allocated through it before that.
        let rc = unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_MALLOC, &methods) };
        if rc != ffi::SQLITE_OK {
            tracing::debug!(rc, "SQLite was initialised already: it keeps its allocator");
        }
        rc == ffi::SQLITE_OK
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_keep_their_size_and_content_through_realloc_and_free() {
        // SAFETY: the calls pair as SQLite pairs them.
        unsafe {
            let p = x_malloc(x_roundup(13));
            assert!(!p.is_null());
            assert_eq!(p as usize % 8, 0);
            assert!(x_size(p) >= 16);
            p.cast::<u8>().write_bytes(0xAB, 16);
            let q = x_realloc(p, 4096);
            assert!(x_size(q) >= 4096);
            assert_eq!(std::slice::from_raw_parts(q.cast::<u8>(), 16), &[0xAB; 16]);
            assert!(x_malloc(0).is_null());
            assert!(x_malloc(-1).is_null());
            assert!(
                x_realloc(q, 0).is_null(),
                "a realloc to nothing does nothing"
            );
            assert!(x_size(q) >= 4096, "and leaves the block as it was");
            assert_eq!(std::slice::from_raw_parts(q.cast::<u8>(), 16), &[0xAB; 16]);
            x_free(q);
            x_free(null_mut());
            assert_eq!(x_size(null_mut()), 0);
            assert_eq!(x_roundup(1024), 1024);
            assert_eq!(x_roundup(1017), 1024);
        }
    }
}
