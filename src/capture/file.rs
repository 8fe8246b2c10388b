//! Capture files: pcap and pcapng (in progress).
