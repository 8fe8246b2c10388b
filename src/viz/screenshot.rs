//! `mailwire --screenshot FILE`: drives the real window through the demo scenario (or, with
//! a capture file, waits until it is decoded and shows its second step), selects a command
//! so the packet details show, waits for the layout to settle, takes a screenshot
//! of the window ([`egui::Context::request_screenshot`]), writes it as PNG and closes the
//! window. Bounded: after [`LIMIT`] without a screenshot it gives up with a message.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use eframe::egui::ColorImage;

/// How long the whole screenshot run may take.
pub const LIMIT: Duration = Duration::from_secs(30);
/// How long to let the window settle (late packets, layout) before the screenshot.
pub const SETTLE: Duration = Duration::from_millis(1200);

/// How a screenshot run ended; `None` while it runs. The error is the sentence the command
/// prints (the window makes some of them itself: a run that got stuck, a scenario that did
/// not start).
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
    /// The window shows a capture file: wait for it to be decoded instead of running steps.
    pub file: bool,
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
            file: false,
        }
    }

    /// Records how the run ended.
    pub fn finish(&mut self, outcome: Result<PathBuf, impl fmt::Display>) {
        if let Ok(mut slot) = self.result.lock() {
            slot.get_or_insert(outcome.map_err(|e| e.to_string()));
        }
        self.phase = Phase::Done;
    }
}

/// Why the screenshot could not be written.
#[derive(Debug)]
pub enum PngError {
    /// The file could not be created.
    Create { path: PathBuf, source: io::Error },
    /// The image is larger than PNG allows.
    TooLarge { width: usize, height: usize },
    /// Encoding or writing the image failed.
    Write {
        path: PathBuf,
        source: png::EncodingError,
    },
    /// The end of the file could not be written.
    Finish {
        path: PathBuf,
        source: png::EncodingError,
    },
}

impl fmt::Display for PngError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PngError::Create { path, source } => {
                write!(f, "cannot create {}: {source}", path.display())
            }
            PngError::TooLarge { width, height } => {
                write!(f, "the screenshot is too large ({width}x{height})")
            }
            PngError::Write { path, source } => {
                write!(f, "cannot write {}: {source}", path.display())
            }
            PngError::Finish { path, source } => {
                write!(f, "cannot finish {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for PngError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PngError::Create { source, .. } => Some(source),
            PngError::Write { source, .. } | PngError::Finish { source, .. } => Some(source),
            PngError::TooLarge { .. } => None,
        }
    }
}

/// Writes an image as an 8-bit RGBA PNG file.
pub fn write_png(path: &Path, image: &ColorImage) -> Result<(), PngError> {
    let [width, height] = image.size;
    let file = std::fs::File::create(path).map_err(|source| PngError::Create {
        path: path.to_path_buf(),
        source,
    })?;
    let w = std::io::BufWriter::new(file);
    let (Ok(w_px), Ok(h_px)) = (u32::try_from(width), u32::try_from(height)) else {
        return Err(PngError::TooLarge { width, height });
    };
    let (width, height) = (w_px, h_px);
    let mut encoder = png::Encoder::new(w, width, height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let write = |source| PngError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut writer = encoder.write_header().map_err(write)?;
    let bytes: Vec<u8> = image
        .pixels
        .iter()
        .flat_map(|c| c.to_srgba_unmultiplied())
        .collect();
    writer.write_image_data(&bytes).map_err(write)?;
    writer.finish().map_err(|source| PngError::Finish {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_errors_name_the_file() {
        let e = PngError::Create {
            path: PathBuf::from("/nope/shot.png"),
            source: io::Error::other("no such folder"),
        };
        assert_eq!(
            e.to_string(),
            "cannot create /nope/shot.png: no such folder"
        );
        let e = PngError::TooLarge {
            width: 1 << 33,
            height: 10,
        };
        assert_eq!(e.to_string(), "the screenshot is too large (8589934592x10)");
    }

    #[test]
    fn a_png_is_written_and_a_bad_path_is_a_create_error() {
        let image = ColorImage::filled([2, 2], eframe::egui::Color32::RED);
        let e = write_png(Path::new("/nonexistent-folder/shot.png"), &image).unwrap_err();
        assert!(matches!(e, PngError::Create { .. }), "{e}");
        let dir = crate::scenario::WorkDir::new().unwrap();
        let path = dir.path().join("shot.png");
        write_png(&path, &image).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"));
    }

    #[test]
    fn finish_keeps_the_first_outcome_as_text() {
        let result: ScreenshotResult = Arc::new(Mutex::new(None));
        let mut plan = ScreenshotPlan::new(PathBuf::from("x.png"), result.clone());
        plan.finish(Err(PngError::TooLarge {
            width: 1,
            height: 2,
        }));
        plan.finish(Ok::<PathBuf, String>(PathBuf::from("x.png")));
        let outcome = result.lock().unwrap().take();
        assert_eq!(
            outcome,
            Some(Err("the screenshot is too large (1x2)".to_string()))
        );
    }
}
