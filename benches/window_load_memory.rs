//! Where the memory of a loaded capture goes: loads FILE as the window's loader does
//! (`lesson::load`) under a counting allocator and prints the live heap by part: the
//! analyzer alone (what `mailwire open --summary-only` keeps), the packets kept for the hex
//! view, and the steps.
//!
//!     cargo bench --bench window_load_memory -- FILE
//!
//! (Allocation sizes do not depend on the build profile, so `cargo test --bench
//! window_load_memory -- FILE` gives the same numbers, slower.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting the bytes in use and their peak.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's pointer and layout, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= layout.size() {
            let grow = new_size - layout.size();
            let now = IN_USE.fetch_add(grow, Ordering::Relaxed) + grow;
            PEAK.fetch_max(now, Ordering::Relaxed);
        } else {
            IN_USE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        // SAFETY: the caller's pointer, layout and size, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn mib(bytes: usize) -> f64 {
    bytes as f64 / 1_048_576.0
}

fn main() {
    let file: PathBuf = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .expect("usage: window_load_memory FILE");
    let size = std::fs::metadata(&file).unwrap().len() as usize;

    // The analyzer alone, as `open --summary-only` keeps it.
    let base = IN_USE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let analyzer = {
        let mut a = mailwire::decode::analyzer::Analyzer::default();
        for p in mailwire::capture::file::CaptureFile::open(&file).unwrap() {
            a.push(&p.unwrap());
        }
        a.finish();
        a
    };
    let analyzer_heap = IN_USE.load(Ordering::Relaxed) - base;
    let analyzer_peak = PEAK.load(Ordering::Relaxed) - base;
    drop(analyzer);

    // The whole load, as the window's loader does it.
    let base = IN_USE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let start = std::time::Instant::now();
    let timeline = mailwire::lesson::load(&file).unwrap();
    let secs = start.elapsed().as_secs_f64();
    let total = IN_USE.load(Ordering::Relaxed) - base;
    let peak = PEAK.load(Ordering::Relaxed) - base;
    let packets = timeline.packets.heap_bytes();
    let steps = total.saturating_sub(analyzer_heap + packets);

    println!(
        "file {} ({:.1} MiB): {} packets, {} steps, loaded in {secs:.2} s",
        file.display(),
        mib(size),
        timeline.packets.len(),
        timeline.steps.len()
    );
    println!(
        "heap after the load: {:.1} MiB ({:.2}x the file); peak during it {:.1} MiB ({:.2}x)",
        mib(total),
        total as f64 / size as f64,
        mib(peak),
        peak as f64 / size as f64
    );
    println!(
        "  analyzer (frames, flows, units; open --summary-only keeps the same): {:.1} MiB \
         (peak while decoding {:.1} MiB)",
        mib(analyzer_heap),
        mib(analyzer_peak)
    );
    println!("  packets kept for the hex view: {:.1} MiB", mib(packets));
    println!("  steps and the rest: {:.1} MiB", mib(steps));
    use mailwire::decode::analyzer::{Carrier, Connection, Frame, Unit};
    use mailwire::decode::stream::StreamPiece;
    use std::mem::{size_of, size_of_val};
    let a = &timeline.analyzer;
    let units_heap: usize = a
        .units()
        .iter()
        .map(|u| u.text.capacity() + u.carriers.capacity() * size_of::<Carrier>())
        .sum();
    let conns_heap: usize = a
        .connections()
        .iter()
        .map(|c| {
            let pieces: usize = c
                .streams
                .iter()
                .map(|s| s.pieces.capacity() * size_of::<StreamPiece>() + s.gaps.capacity() * 16)
                .sum();
            c.frames.capacity() * 4 + c.units.capacity() * 8 + pieces
        })
        .sum();
    let steps_heap: usize = timeline
        .steps
        .iter()
        .map(|s| {
            let e = &s.outcome.exchanges;
            s.caption.capacity()
                + s.outcome.session.capacity()
                + e.capacity() * size_of::<mailwire::exchange::Exchange>()
                + e.iter().map(|e| e.line.capacity()).sum::<usize>()
        })
        .sum();
    println!(
        "  analyzer: frames {:.1} MiB ({} of {} B), units {:.1} MiB ({} of {} B, with their \
         texts and carriers), connections {:.1} MiB ({} of {} B, with their lists)",
        mib(size_of_val(a.frames())),
        a.frames().len(),
        size_of::<Frame>(),
        mib(size_of_val(a.units()) + units_heap),
        a.units().len(),
        size_of::<Unit>(),
        mib(size_of_val(a.connections()) + conns_heap),
        a.connections().len(),
        size_of::<Connection>(),
    );
    println!(
        "  steps: records {:.1} MiB ({} of {} B), their captions, sessions and exchanges \
         {:.1} MiB",
        mib(timeline.steps.capacity() * size_of::<mailwire::timeline::StepRecord>()),
        timeline.steps.len(),
        size_of::<mailwire::timeline::StepRecord>(),
        mib(steps_heap)
    );
}
