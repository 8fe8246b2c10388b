//! Any bytes as a frame of any link type: summary, field tree and analyzer must not panic,
//! and every field's byte range must lie inside the frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailwire::capture::LinkType;
use mailwire::decode::{Analyzer, Field, decode_frame_partial, summarize};

const LINKS: [LinkType; 9] = [
    LinkType::ETHERNET,
    LinkType::NULL,
    LinkType::LOOP,
    LinkType::LINUX_SLL,
    LinkType::LINUX_SLL2,
    LinkType::RAW,
    LinkType::IPV4,
    LinkType::IPV6,
    LinkType(147),
];

fn check(f: &Field, len: usize) {
    assert!(f.range.start <= f.range.end && f.range.end <= len);
    for c in &f.children {
        check(c, len);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else {
        return;
    };
    let link = LINKS[usize::from(selector) % LINKS.len()];
    let summary = summarize(0, link, frame, frame.len() as u32);
    if let Some(t) = summary.tcp {
        assert!(t.payload_offset as usize + t.payload_len as usize <= frame.len());
    }
    let tree = decode_frame_partial(link, frame);
    for layer in &tree.layers {
        check(layer, frame.len());
    }
    if let Some(e) = tree.error {
        let _ = e.to_string();
    }
    let mut analyzer = Analyzer::new();
    analyzer.push_frame(0, link, frame, frame.len() as u32);
    analyzer.push_frame(1, link, frame, frame.len() as u32);
    analyzer.finish();
});
