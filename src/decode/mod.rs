//! Decoding captured frames: per-frame summaries and on-demand field trees with byte ranges
//! (for the hex view), TCP connections with relative sequence numbers, reassembly of each
//! direction's byte stream, and the cutting of those streams into POP3 and SMTP commands
//! and replies, each knowing the segments that carried it.
//!
//! Two levels (as etherparse's slices and headers): [`summarize`] keeps a few dozen bytes
//! for every frame; [`decode_frame`] builds the full [`FrameTree`] for the one frame a user
//! selects. [`Analyzer`] takes frames one at a time (from a file or live) and keeps the
//! summaries, the [`Connection`]s and the [`Unit`]s.
//!
//! Invariants: nothing here panics on any input (no unwrap, expect or indexing on frame
//! bytes); nothing does I/O except [`analyze`] (which reads a capture file through
//! [`crate::capture::file`]).

pub mod analyzer;
pub mod error;
pub mod frame;
mod layers;
mod layout;
pub mod stream;
pub mod tls_decrypt;
pub mod tree;
pub mod units;

pub use analyzer::{Analyzer, Carrier, Connection, Ends, Frame, Pushed, Segment, Unit, analyze};
pub use error::{DecodeError, Problem};
pub use frame::{FrameSummary, IpSummary, TcpFlags, TcpSummary, summarize};
pub use stream::{SegmentNotes, Stream, StreamEvent, StreamPiece};
pub use tree::{Field, FrameTree, decode_captured_frame, decode_frame, decode_frame_partial};
pub use units::{Detected, ProtocolSource, UnitKind};
