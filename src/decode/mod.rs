//! Decoding captured frames into headers with byte ranges, TCP reassembly, protocol units (in progress).
