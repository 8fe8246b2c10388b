//! Shared by the fuzz targets that drive a machine: the input's own chunking, and an
//! allocator that counts the bytes alive so a target can bound a machine's memory.
#![allow(dead_code)] // each target uses part of it

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Input laid out as `[flags][n][n chunk sizes][payload]`: the payload is handed out in
/// pieces of `size + 1` bytes, the sizes taken in turn (one piece of everything when n = 0),
/// so the fuzzer decides every chunk boundary.
pub struct Script<'a> {
    pub flags: u8,
    sizes: &'a [u8],
    next_size: usize,
    pub payload: &'a [u8],
}

impl<'a> Script<'a> {
    pub fn parse(data: &'a [u8]) -> Option<Script<'a>> {
        let (&flags, rest) = data.split_first()?;
        let (&n, rest) = rest.split_first()?;
        let n = usize::from(n % 16).min(rest.len());
        let (sizes, payload) = rest.split_at(n);
        Some(Script {
            flags,
            sizes,
            next_size: 0,
            payload,
        })
    }

    /// The next chunk, with the size byte that cut it (its top bit is free for the target).
    pub fn next_chunk(&mut self) -> Option<(&'a [u8], u8)> {
        if self.payload.is_empty() {
            return None;
        }
        let (len, byte) = match self.sizes.get(self.next_size % self.sizes.len().max(1)) {
            Some(&b) => (usize::from(b & 0x7f) + 1, b),
            None => (self.payload.len(), 0),
        };
        self.next_size += 1;
        let (chunk, rest) = self.payload.split_at(len.min(self.payload.len()));
        self.payload = rest;
        Some((chunk, byte))
    }
}

/// The global allocator, counting the bytes alive and the most alive since the last reset.
pub struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is the system allocator's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            let now = LIVE.fetch_add(new_size, Ordering::Relaxed) + new_size;
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
}

/// Starts a measurement: returns the bytes alive now.
pub fn reset_peak() -> usize {
    let now = LIVE.load(Ordering::Relaxed);
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// The most bytes alive since [`reset_peak`].
pub fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Asserts every line of `bytes` ends with CR LF: no bare LF, and the last byte ends a line.
pub fn assert_crlf_lines(bytes: &[u8], what: &str) {
    assert!(bytes.ends_with(b"\r\n"), "{what} does not end with CRLF: {:?}", String::from_utf8_lossy(bytes));
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            assert!(
                i > 0 && bytes.get(i - 1) == Some(&b'\r'),
                "{what} has a bare LF at {i}: {:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}

/// The lines of `bytes` (each ends CR LF), without their CR LF.
pub fn crlf_lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l)).collect();
    if bytes.ends_with(b"\n") {
        lines.pop();
    }
    lines
}
