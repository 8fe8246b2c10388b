//! Live capture (in progress).
