//! The window on a capture of TLS sessions (poplib STLS, smtplib STARTTLS; see
//! `decode_tls`), driven through egui_kittest: TLS records are diagram rows with their type,
//! length and fate; with the key log the commands decrypted from them are rows of their own
//! marked "decrypted", and the packet details list them apart under "Decrypted from TLS";
//! without it, the records say why they were not decrypted and nothing decrypted is shown.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use eframe::egui;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use mailwire::proto::keylog::KeyLog;
use mailwire::viz::MailwireApp;
use mailwire::viz::rows::Row;
use mailwire::viz::state::UiAction;

use crate::decode_tls::{TlsCapture, sessions};

/// The window on the capture (as a file opens: steps from the clear commands), with
/// `keylog`, showing the last step (so every row is there).
fn window(cap: &TlsCapture, keylog: KeyLog) -> Harness<'static, MailwireApp> {
    let mut timeline = mailwire::lesson::load(&cap.pcap).unwrap();
    timeline.keylog = keylog;
    let last = timeline.steps.len() - 1;
    let mut app = MailwireApp::with_timeline(timeline);
    app.state.recorded_only = true;
    app.act(UiAction::GoToStep {
        step: last,
        exchange: None,
    });
    let mut h = Harness::builder()
        .with_size(egui::vec2(1280.0, 720.0))
        .with_max_steps(10_000)
        .build_ui_state(|ui, app: &mut MailwireApp| app.frame_ui(ui), app);
    h.run();
    h
}

fn has_label(h: &Harness<'static, MailwireApp>, text: &str) -> bool {
    h.query_all_by_label_contains(text).next().is_some()
}

#[test]
fn decrypted_commands_are_rows_and_details_marked_decrypted() {
    let Some(cap) = sessions() else { return };
    let mut h = window(cap, cap.keylog());
    let rows = h.state().diagram_rows().rows.clone();
    let records = rows
        .iter()
        .filter(|r| matches!(r, Row::Record { .. }))
        .count();
    let decrypted = rows
        .iter()
        .filter(|r| matches!(r, Row::Decrypted { .. }))
        .count();
    assert!(records > 20, "every TLS record is a row: {records}");
    assert!(
        decrypted >= 8 + 8 + 6,
        "the decrypted commands and replies: {decrypted}"
    );
    // Each decrypted row comes right after a record row of its connection (the record that
    // completed it) or another decrypted row.
    for (i, r) in rows.iter().enumerate() {
        if matches!(r, Row::Decrypted { .. }) {
            assert!(
                matches!(rows[i - 1], Row::Record { .. } | Row::Decrypted { .. }),
                "row {i}: {:?} after {:?}",
                r,
                rows[i - 1]
            );
        }
    }
    // The diagram names them decrypted, with the frame of their record.
    let Some(Row::Decrypted { conn, index }) = rows
        .iter()
        .find(|r| matches!(r, Row::Decrypted { .. }))
        .copied()
    else {
        unreachable!()
    };
    let tls = &h.state().diagram_rows().tls;
    let first = &tls.connection(conn).unwrap().units[index];
    let frame = first.frames[0];
    let label = format!("(decrypted from TLS, frame #{}", frame + 1);
    // Scroll it into view: only rows on screen are laid out.
    let row_index = rows
        .iter()
        .position(|r| *r == Row::Decrypted { conn, index })
        .unwrap();
    h.state_mut().state.scroll_to_row = Some(row_index);
    h.run();
    assert!(has_label(&h, &label), "no diagram row labelled {label}");
    assert!(has_label(&h, "C: USER alice (decrypted from TLS"));
    // A record row says what it is and that it was decrypted.
    assert!(has_label(&h, "TLS application-data"), "record rows");
    assert!(has_label(&h, ": decrypted (application data,"));
    assert!(!has_label(&h, "not decrypted"));

    // Its frame in the packet details: the record's header fields and fate, and the
    // plaintext apart, marked decrypted.
    h.state_mut().act(UiAction::SelectFrame(frame));
    h.run();
    assert!(has_label(&h, "Decrypted from TLS"), "the decrypted section");
    assert!(has_label(&h, "C: USER alice"));
    assert!(has_label(&h, "command from TLS record, frames"));
    assert!(has_label(&h, "Content type: 23 (application_data)"));
    assert!(has_label(&h, "decrypted with the application traffic keys"));
}

#[test]
fn without_keys_records_say_why_and_nothing_is_decrypted() {
    let Some(cap) = sessions() else { return };
    let mut h = window(cap, KeyLog::new());
    let rows = h.state().diagram_rows().rows.clone();
    assert!(rows.iter().any(|r| matches!(r, Row::Record { .. })));
    assert!(
        !rows.iter().any(|r| matches!(r, Row::Decrypted { .. })),
        "nothing decrypted without keys"
    );
    // An application-data record's row and details give the reason.
    let tls = h.state().diagram_rows().tls.clone();
    let (row_index, unit) = rows
        .iter()
        .enumerate()
        .find_map(|(i, r)| match r {
            Row::Record { unit } => {
                let u = &h.state().timeline.analyzer.units()[*unit];
                (tls.record(u.conn, *unit)?.content_type == 23).then_some((i, *unit))
            }
            _ => None,
        })
        .unwrap();
    h.state_mut().state.scroll_to_row = Some(row_index);
    h.run();
    assert!(has_label(&h, "not decrypted: no TLS key log"));
    let frame = h.state().timeline.analyzer.units()[unit].carriers[0].frame;
    h.state_mut().act(UiAction::SelectFrame(frame));
    h.run();
    assert!(!has_label(&h, "Decrypted from TLS"));
    assert!(!has_label(&h, "USER alice"), "no plaintext anywhere");

    // The keys come later (a live run logs them after the packets): the rows and the
    // details catch up.
    std::sync::Arc::make_mut(&mut h.state_mut().timeline).keylog = cap.keylog();
    h.run();
    assert!(
        h.state()
            .diagram_rows()
            .rows
            .iter()
            .any(|r| matches!(r, Row::Decrypted { .. }))
    );
    // The frame shown before (the server's encrypted handshake) now says it was decrypted,
    // and USER's frame lists its command.
    assert!(
        has_label(&h, "decrypted with the handshake traffic keys"),
        "the details are decoded again with the keys"
    );
    let user_frame = h
        .state()
        .diagram_rows()
        .tls
        .conns
        .iter()
        .flat_map(|c| &c.units)
        .find(|u| u.text == "USER alice")
        .map(|u| u.frames[0])
        .unwrap();
    h.state_mut().act(UiAction::SelectFrame(user_frame));
    h.run();
    assert!(has_label(&h, "Decrypted from TLS"));
    assert!(has_label(&h, "C: USER alice"));
}
