//! `mailwire --screenshot FILE`: drives the real window through the demo scenario, selects
//! a command so the packet details show, waits for the layout to settle, takes a screenshot
//! of the window ([`egui::Context::request_screenshot`]), writes it as PNG and closes the
//! window. Bounded: after [`LIMIT`] without a screenshot it gives up with a message.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use eframe::egui::ColorImage;

/// How long the whole screenshot run may take.
pub const LIMIT: Duration = Duration::from_secs(30);
/// How long to let the window settle (late packets, layout) before the screenshot.
pub const SETTLE: Duration = Duration::from_millis(1200);

/// How a screenshot run ended; `None` while it runs.
pub type ScreenshotResult = Arc<Mutex<Option<Result<PathBuf, String>>>>;

/// Where the run stands.
#[derive(Debug)]
pub enum Phase {
    /// Waiting for the scenario to be loaded.
    Loading,
    /// Running the scenario's steps.
    Stepping,
    /// Steps done and a command selected; waiting for late packets and the layout.
    Settling { since: Instant, frames: u32 },
    /// The screenshot was asked for.
    Requested(Receiver<Arc<ColorImage>>),
    /// Finished (written, or failed).
    Done,
}

/// A screenshot run.
#[derive(Debug)]
pub struct ScreenshotPlan {
    pub path: PathBuf,
    pub started: Instant,
    pub phase: Phase,
    /// The step and exchange to select before the screenshot.
    pub select: (usize, usize),
    pub result: ScreenshotResult,
}

impl ScreenshotPlan {
    /// A run writing to `path`.
    pub fn new(path: PathBuf, result: ScreenshotResult) -> Self {
        Self {
            path,
            started: Instant::now(),
            phase: Phase::Loading,
            // Step 2 of the RFC 1939 session: APOP, whose digest shows in the hex dump.
            select: (1, 0),
            result,
        }
    }

    /// Records how the run ended.
    pub fn finish(&mut self, outcome: Result<PathBuf, String>) {
        if let Ok(mut slot) = self.result.lock() {
            slot.get_or_insert(outcome);
        }
        self.phase = Phase::Done;
    }
}

/// Writes an image as an 8-bit RGBA PNG file.
pub fn write_png(path: &Path, image: &ColorImage) -> Result<(), String> {
    let [width, height] = image.size;
    let file = std::fs::File::create(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let w = std::io::BufWriter::new(file);
    let (Ok(width), Ok(height)) = (u32::try_from(width), u32::try_from(height)) else {
        return Err(format!("the screenshot is too large ({width}x{height})"));
    };
    let mut encoder = png::Encoder::new(w, width, height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder
        .write_header()
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let bytes: Vec<u8> = image
        .pixels
        .iter()
        .flat_map(|c| c.to_srgba_unmultiplied())
        .collect();
    writer
        .write_image_data(&bytes)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    writer
        .finish()
        .map_err(|e| format!("cannot finish {}: {e}", path.display()))
}
