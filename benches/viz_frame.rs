//! The CPU time of one frame of the window (layout and tessellation, no GPU) with a
//! timeline of 100,000 captured segments, the diagram in the TCP view:
//!
//!     cargo bench --bench viz_frame
//!
//! The timeline is one long POP3 session on loopback Ethernet (handshake, greeting, login,
//! then RETR n / a 4 KiB reply in MSS-sized segments / acknowledgments, over and over),
//! pushed frame by frame into a `Timeline` with a step per command, exactly as the
//! recorder does. Two measurements, each the median of 50 frames after a warm-up:
//! the diagram scrolled to the middle and left there, and scrolling (a different row every
//! frame). Target: under 8 ms per frame.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "../tests/it/decode_support.rs"]
mod decode_support;

use std::net::SocketAddr;
use std::time::Instant;

use decode_support::{ACK, Conversation};
use eframe::egui;
use mailwire::capture::LinkType;
use mailwire::exchange::{Exchange, ExchangeKind, StepOutcome};
use mailwire::proto::{Direction, Protocol};
use mailwire::timeline::{Ends, Timeline};
use mailwire::viz::MailwireApp;
use mailwire::viz::state::UiAction;

const TARGET_FRAMES: usize = 100_000;
const MSS: usize = 1448;
const FRAMES_MEASURED: usize = 50;

fn exchange(direction: Direction, line: &str, octets: usize) -> Exchange {
    let kind = match direction {
        Direction::ClientToServer => ExchangeKind::Command,
        Direction::ServerToClient => ExchangeKind::Reply,
    };
    Exchange {
        kind,
        line: line.to_string(),
        more: Vec::new(),
        octets,
        stream: None,
    }
}

/// One step: what `run` adds to the conversation becomes the step's frames.
fn step(
    timeline: &mut Timeline,
    c: &mut Conversation,
    client: Ends,
    caption: &str,
    exchanges: Vec<Exchange>,
    run: impl FnOnce(&mut Conversation),
) {
    // Each exchange's place in its stream: after what the connection has carried so far.
    let mut at = timeline
        .analyzer
        .connections()
        .first()
        .map_or([0, 0], |c| c.streams.each_ref().map(|s| s.delivered()));
    let mut exchanges = exchanges;
    for e in &mut exchanges {
        let d = e.direction().index();
        e.stream = Some(at[d]..at[d] + e.octets as u64);
        at[d] += e.octets as u64;
    }
    let first = c.frames.len();
    run(c);
    let start = timeline.packets.len();
    for p in c.frames.drain(first..) {
        timeline.push_packet(p);
    }
    let outcome = StepOutcome {
        index: timeline.steps.len(),
        session: "main".to_string(),
        protocol: Some(Protocol::Pop3),
        conn: Some(0),
        exchanges,
        check: Ok(()),
        events: Vec::new(),
        server_closed: false,
    };
    let end = timeline.packets.len();
    timeline.push_step(outcome, caption.to_string(), None, Some(client), start..end);
}

fn send(c: &mut Conversation, from_client: bool, bytes: &[u8]) {
    for (i, chunk) in bytes.chunks(MSS).enumerate() {
        if from_client {
            c.client(chunk);
        } else {
            c.server(chunk);
        }
        if i % 2 == 1 {
            let (seq, ack) = if from_client {
                (c.server_seq, c.client_seq)
            } else {
                (c.client_seq, c.server_seq)
            };
            c.raw(!from_client, seq, ack, ACK, b"");
        }
    }
}

fn long_pop3_session() -> Timeline {
    let mut timeline = Timeline::new("A long POP3 session (benchmark)");
    let mut c = Conversation::new(LinkType::ETHERNET, 40000, 110);
    let client = Ends {
        client: SocketAddr::new(c.client.0, c.client.1),
        server: SocketAddr::new(c.server.0, c.server.1),
    };
    let greeting = "+OK POP3 server ready <1.1@localhost>";
    step(
        &mut timeline,
        &mut c,
        client,
        "Connect",
        vec![exchange(
            Direction::ServerToClient,
            greeting,
            greeting.len() + 2,
        )],
        |c| {
            c.handshake();
            send(c, false, format!("{greeting}\r\n").as_bytes());
        },
    );
    for (cmd, reply) in [
        ("USER bob", "+OK"),
        ("PASS builder", "+OK maildrop locked and ready"),
    ] {
        step(
            &mut timeline,
            &mut c,
            client,
            cmd,
            vec![
                exchange(Direction::ClientToServer, cmd, cmd.len() + 2),
                exchange(Direction::ServerToClient, reply, reply.len() + 2),
            ],
            |c| {
                send(c, true, format!("{cmd}\r\n").as_bytes());
                send(c, false, format!("{reply}\r\n").as_bytes());
            },
        );
    }
    let body: String = (0..52)
        .map(|i| {
            format!("line {i:02} of a message that fills about four kilobytes of text....\r\n")
        })
        .collect();
    let mut n = 0u32;
    while timeline.packets.len() < TARGET_FRAMES {
        n += 1;
        let cmd = format!("RETR {n}");
        let status = format!("+OK {} octets", body.len());
        let mut reply = format!("{status}\r\n{body}").into_bytes();
        reply.extend_from_slice(b".\r\n");
        let mut ex = exchange(Direction::ServerToClient, &status, reply.len());
        ex.more = body.lines().map(str::to_string).collect();
        step(
            &mut timeline,
            &mut c,
            client,
            &format!("RETR {n}: a 4 KiB message in MSS-sized segments"),
            vec![exchange(Direction::ClientToServer, &cmd, cmd.len() + 2), ex],
            |c| {
                send(c, true, format!("{cmd}\r\n").as_bytes());
                send(c, false, &reply);
                let (seq, ack) = (c.client_seq, c.server_seq);
                c.raw(true, seq, ack, ACK, b"");
            },
        );
    }
    step(
        &mut timeline,
        &mut c,
        client,
        "QUIT",
        vec![
            exchange(Direction::ClientToServer, "QUIT", 6),
            exchange(Direction::ServerToClient, "+OK bye", 9),
        ],
        |c| {
            send(c, true, b"QUIT\r\n");
            send(c, false, b"+OK bye\r\n");
            c.close();
        },
    );
    timeline
}

fn input() -> egui::RawInput {
    egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(
            egui::Pos2::ZERO,
            egui::vec2(1600.0, 1000.0),
        )),
        ..egui::RawInput::default()
    }
}

/// One frame: layout (the app's logic and ui) and tessellation. Returns milliseconds.
fn frame(ctx: &egui::Context, app: &mut MailwireApp) -> f64 {
    let start = Instant::now();
    let output = ctx.run_ui(input(), |ui| app.frame_ui(ui));
    let primitives = ctx.tessellate(output.shapes, output.pixels_per_point);
    let ms = start.elapsed().as_secs_f64() * 1e3;
    std::hint::black_box(primitives);
    ms
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let t = Instant::now();
    let timeline = long_pop3_session();
    let segments = timeline.packets.len();
    let steps = timeline.steps.len();
    let linked = (0..steps)
        .flat_map(|s| (0..timeline.steps[s].outcome.exchanges.len()).map(move |e| (s, e)))
        .filter(|&(s, e)| timeline.unit_index(s, e).is_some())
        .count();
    println!(
        "timeline: {segments} segments, {steps} steps, {linked} exchanges linked to units (built in {:.1} s)",
        t.elapsed().as_secs_f64()
    );
    assert!(segments >= TARGET_FRAMES);

    let mut app = MailwireApp::with_timeline(timeline);
    app.state.tcp_view = true;
    let last = steps - 1;
    app.state.cursor = Some(last);
    // Select a command in the middle: the packet details show its frame's tree and bytes.
    let middle_step = steps / 2;
    app.act(UiAction::SelectExchange {
        step: middle_step,
        exchange: 1,
    });
    let ctx = egui::Context::default();
    // First frame builds the rows; then scroll to the middle.
    let first = frame(&ctx, &mut app);
    let rows = app.diagram_rows().rows.len();
    println!(
        "diagram: {rows} rows in the TCP view; the first frame (which builds the row list, \
         as after every timeline change) took {first:.1} ms"
    );
    app.state.scroll_to_row = Some(rows / 2);
    for _ in 0..10 {
        frame(&ctx, &mut app);
    }
    // What one frame holds (to see that the diagram, details and hex dump are drawn).
    let output = ctx.run_ui(input(), |ui| app.frame_ui(ui));
    let shapes = output.shapes.len();
    let primitives = ctx.tessellate(output.shapes, output.pixels_per_point);
    let vertices: usize = primitives
        .iter()
        .map(|p| match &p.primitive {
            egui::epaint::Primitive::Mesh(m) => m.vertices.len(),
            egui::epaint::Primitive::Callback(_) => 0,
        })
        .sum();
    println!(
        "one frame: {shapes} shapes, {} meshes, {vertices} vertices",
        primitives.len()
    );
    let still: Vec<f64> = (0..FRAMES_MEASURED)
        .map(|_| frame(&ctx, &mut app))
        .collect();
    println!(
        "one frame, scrolled to the middle: median {:.2} ms (min {:.2}, max {:.2}) over {FRAMES_MEASURED} frames",
        median(still.clone()),
        still.iter().copied().fold(f64::INFINITY, f64::min),
        still.iter().copied().fold(0.0, f64::max),
    );
    let scrolling: Vec<f64> = (0..FRAMES_MEASURED)
        .map(|i| {
            app.state.scroll_to_row = Some(rows / 2 + i * 7);
            frame(&ctx, &mut app)
        })
        .collect();
    println!(
        "one frame while scrolling (7 rows a frame): median {:.2} ms (max {:.2})",
        median(scrolling.clone()),
        scrolling.iter().copied().fold(0.0, f64::max),
    );
    // Which rows the diagram showed (by their accessible labels), to see it really is the
    // middle of the session that was drawn.
    app.state.scroll_to_row = Some(rows / 2);
    ctx.enable_accesskit();
    let output = ctx.run_ui(input(), |ui| app.frame_ui(ui));
    ctx.disable_accesskit();
    if let Some(update) = &output.platform_output.accesskit_update {
        let labels: Vec<String> = update
            .nodes
            .iter()
            .filter_map(|(_, n)| n.label().map(str::to_string))
            .filter(|l| l.starts_with("C: RETR") || l.starts_with('#'))
            .collect();
        println!(
            "rows drawn: {} (from \"{}\" to \"{}\")",
            labels.len(),
            labels.first().map_or("", String::as_str),
            labels.last().map_or("", String::as_str)
        );
    }
    // Rebuilding the row list (after the timeline changed) on its own.
    let t = Instant::now();
    let rebuilt = mailwire::viz::rows::build_rows(&app.timeline, Some(last), true);
    println!(
        "rebuilding the {} rows: {:.1} ms",
        rebuilt.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    let ms = median(still);
    println!(
        "target: under 8 ms per frame: {}",
        if ms < 8.0 { "met" } else { "NOT met" }
    );
}
