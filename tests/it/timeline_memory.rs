//! A loaded capture keeps little memory (issue 11) without changing what it holds: every
//! packet of every reference capture comes back from `lesson::load`'s timeline exactly as
//! libpcap reads it from the file, whether its bytes were kept in memory or left in a classic
//! pcap file and read again.

// Test helpers: a panic is how a test reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;

use mailwire::capture::file::read_all;

#[test]
fn loaded_packets_are_the_file_s_packets_and_a_classic_pcap_keeps_its_bytes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference-captures");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("skipped: no {}", dir.display());
        return;
    };
    let mut files: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no captures in {}", dir.display());
    let mut left_in_file = 0;
    for file in &files {
        let name = file.display();
        let expected = read_all(file).unwrap();
        let t = mailwire::lesson::load(file).unwrap();
        assert_eq!(t.packets.len(), expected.len(), "{name}");
        for (i, want) in expected.iter().enumerate() {
            assert_eq!(
                t.packets.get(i).as_ref(),
                Some(want),
                "{name}: frame {}",
                i + 1
            );
            assert_eq!(t.packets.ts_micros(i), Some(want.ts_micros), "{name}");
        }
        assert_eq!(t.packets.iter().count(), expected.len(), "{name}");
        let classic = file.extension().is_some_and(|e| e == "pcap");
        if classic && expected.len() > 16 {
            // Only the first 16 packets' bytes are in memory; the rest stay in the file.
            let first: usize = expected.iter().take(16).map(|p| p.data.len()).sum();
            assert_eq!(t.packets.bytes_in_memory(), first, "{name}");
            left_in_file += 1;
        }
    }
    assert!(
        left_in_file > 0,
        "no classic pcap with more than 16 packets in {files:?}"
    );
}
