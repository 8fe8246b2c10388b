//! The no-root sandbox (in progress).
