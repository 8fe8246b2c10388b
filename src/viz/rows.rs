//! The rows of the sequence diagram, computed from the timeline (no painting): a band per
//! step, an arrow per command or reply, and in the TCP view every captured segment, placed
//! just before the exchange it carries. TLS records (after STLS/STARTTLS, or on an
//! implicit-TLS port) are rows too, after the frame that completed them, each followed by
//! the commands and replies decrypted from it when the timeline's key log holds the
//! session's secrets ([`crate::decode::tls_decrypt`]).
//!
//! The list is rebuilt only when the timeline, the viewed step or the view changes
//! ([`DiagramRows::refresh`]); drawing then lays out only the rows on screen.

use crate::decode::tls_decrypt::TlsDecryption;
use crate::export::lifelines::Lifelines;
use crate::timeline::Timeline;

/// One row of the diagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    /// The band that opens a step (its caption).
    Band { step: usize },
    /// A command or reply.
    Exchange { step: usize, exchange: usize },
    /// A captured frame (a TCP segment), by index in the timeline's packets.
    Segment { frame: usize },
    /// A TLS record: the index of its unit in the analyzer.
    Record { unit: usize },
    /// A command or reply decrypted from TLS records: connection `conn`'s decrypted unit
    /// `index` (in [`crate::decode::tls_decrypt::TlsConnection::units`]).
    Decrypted { conn: usize, index: usize },
}

/// What the rows were built from; when it changes they are rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct RowsKey {
    generation: u64,
    steps: usize,
    packets: usize,
    upto: Option<usize>,
    tcp: bool,
    units: usize,
    /// Key log entries: keys may come after the packets.
    keys: usize,
}

/// The diagram's rows, cached, with the timeline's lifelines.
#[derive(Debug, Default)]
pub struct DiagramRows {
    pub rows: Vec<Row>,
    /// Every lifeline of the timeline, and which two each step and connection use.
    pub lifelines: Lifelines,
    /// The lifelines the rows use, in order (the diagram's columns when they are few).
    pub used: Vec<usize>,
    /// The TLS records of the timeline, decrypted where its key log allows.
    pub tls: TlsDecryption,
    key: Option<RowsKey>,
}

impl DiagramRows {
    /// Rebuilds the rows if the timeline (`generation` changes on every reset), the last
    /// shown step or the view changed. Returns whether it rebuilt.
    pub fn refresh(
        &mut self,
        timeline: &Timeline,
        generation: u64,
        upto: Option<usize>,
        tcp: bool,
    ) -> bool {
        let key = RowsKey {
            generation,
            steps: timeline.steps.len(),
            packets: timeline.packets.len(),
            upto,
            tcp,
            units: timeline.analyzer.units().len(),
            keys: timeline.keylog.entries().len(),
        };
        if self.key == Some(key) {
            return false;
        }
        // New units or packets change only their connections' decryption; new keys or
        // another run, everything.
        match self.key {
            Some(k) if (k.generation, k.keys) == (key.generation, key.keys) => {
                // (A FIN adds a packet, and may end a decrypted line.)
                if (k.units, k.packets) != (key.units, key.packets) {
                    self.tls = timeline.tls_decryption_update(&self.tls);
                }
            }
            _ => self.tls = timeline.tls_decryption(),
        }
        self.lifelines = Lifelines::of(timeline);
        self.rows = build_rows_with(timeline, &self.lifelines.conn_of_step, &self.tls, upto, tcp);
        let mut used = vec![false; self.lifelines.lines.len()];
        for row in &self.rows {
            if let Some((c, s)) = self.lanes(timeline, *row) {
                for l in [c, s] {
                    if let Some(u) = used.get_mut(l) {
                        *u = true;
                    }
                }
            }
        }
        self.used = (0..used.len())
            .filter(|&l| used.get(l).copied().unwrap_or(false))
            .collect();
        self.key = Some(key);
        true
    }

    /// The client and server lifelines of a row (none for a band or a frame that is not
    /// TCP).
    pub fn lanes(&self, timeline: &Timeline, row: Row) -> Option<(usize, usize)> {
        match row {
            Row::Band { .. } => None,
            Row::Exchange { step, .. } => self.lifelines.by_step.get(step).copied(),
            Row::Segment { frame } => {
                let conn = timeline.analyzer.frames().get(frame)?.segment?.conn;
                self.lifelines
                    .by_conn
                    .get(usize::try_from(conn).ok()?)
                    .copied()
            }
            Row::Record { unit } => {
                let conn = timeline.analyzer.units().get(unit)?.conn;
                self.lifelines.by_conn.get(conn).copied()
            }
            Row::Decrypted { conn, .. } => self.lifelines.by_conn.get(conn).copied(),
        }
    }

    /// The frame a TLS row selects: the first that carried its record (of a decrypted
    /// command, its first record).
    pub fn frame_of(&self, timeline: &Timeline, row: Row) -> Option<usize> {
        let unit = match row {
            Row::Record { unit } => unit,
            Row::Decrypted { conn, index } => *self
                .tls
                .connection(conn)?
                .units
                .get(index)?
                .records
                .first()?,
            Row::Segment { frame } => return Some(frame),
            Row::Band { .. } | Row::Exchange { .. } => return None,
        };
        Some(timeline.analyzer.units().get(unit)?.carriers.first()?.frame)
    }

    /// The row that shows a selection best: the exchange, else the frame, else the step.
    pub fn row_of(
        &self,
        step: Option<usize>,
        exchange: Option<usize>,
        frame: Option<usize>,
    ) -> Option<usize> {
        if let (Some(s), Some(e)) = (step, exchange) {
            let want = Row::Exchange {
                step: s,
                exchange: e,
            };
            if let Some(i) = self.rows.iter().position(|r| *r == want) {
                return Some(i);
            }
        }
        if let Some(f) = frame
            && let Some(i) = self
                .rows
                .iter()
                .position(|r| *r == Row::Segment { frame: f })
        {
            return Some(i);
        }
        let s = step?;
        self.rows.iter().position(|r| *r == Row::Band { step: s })
    }
}

/// What the diagram should bring into view: a step's rows (its band, arrows and segments)
/// and, within them, the selected row, which must be visible when the step is taller than
/// the diagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reveal {
    /// The step's rows.
    pub rows: std::ops::Range<usize>,
    /// The selected row (inside `rows`, or the band when nothing in the step is selected).
    pub focus: usize,
}

impl DiagramRows {
    /// The rows of `step`: from its band up to the next step's band (or the end).
    pub fn step_rows(&self, step: usize) -> Option<std::ops::Range<usize>> {
        let band = self.rows.iter().position(|r| *r == Row::Band { step })?;
        let end = self
            .rows
            .iter()
            .enumerate()
            .skip(band + 1)
            .find(|(_, r)| matches!(r, Row::Band { .. }))
            .map_or(self.rows.len(), |(i, _)| i);
        Some(band..end)
    }

    /// What to bring into view for a selection: the selected step's rows around the
    /// selected row.
    pub fn reveal(
        &self,
        step: Option<usize>,
        exchange: Option<usize>,
        frame: Option<usize>,
    ) -> Option<Reveal> {
        let focus = self.row_of(step, exchange, frame)?;
        let rows = match step.and_then(|s| self.step_rows(s)) {
            Some(r) if r.contains(&focus) => r,
            _ => focus..focus + 1,
        };
        Some(Reveal { rows, focus })
    }
}

/// The rows for the steps up to `upto` (all recorded steps when it is the last one; none
/// when `None`). Frames captured after the last shown step appear only when that step is
/// the newest.
pub fn build_rows(timeline: &Timeline, upto: Option<usize>, tcp: bool) -> Vec<Row> {
    let conn_of_step = Lifelines::of(timeline).conn_of_step;
    build_rows_with(
        timeline,
        &conn_of_step,
        &timeline.tls_decryption(),
        upto,
        tcp,
    )
}

/// The TLS rows, each with the frame that completed it, in that order: every record, and
/// after each the units decrypted from data that ended in it.
fn tls_rows(timeline: &Timeline, tls: &TlsDecryption) -> Vec<(usize, Row)> {
    let units = timeline.analyzer.units();
    let mut out = Vec::new();
    for c in &tls.conns {
        for r in &c.records {
            let Some(done) = units
                .get(r.unit)
                .and_then(|u| u.carriers.iter().map(|c| c.frame).max())
            else {
                continue;
            };
            out.push((done, Row::Record { unit: r.unit }));
            for (index, _) in c.units_ending_in(r.unit) {
                out.push((
                    done,
                    Row::Decrypted {
                        conn: c.conn,
                        index,
                    },
                ));
            }
        }
    }
    // Stable: a record's decrypted rows stay right after it.
    out.sort_by_key(|(frame, _)| *frame);
    out
}

/// The first frame that carried an exchange, on the step's connection `conn` (as
/// `Timeline::unit`, without looking the connection up again: a capture may hold
/// thousands).
fn first_carrier(
    timeline: &Timeline,
    conn: Option<usize>,
    step: usize,
    exchange: usize,
) -> Option<usize> {
    let e = timeline.steps.get(step)?.outcome.exchanges.get(exchange)?;
    let at = e.stream.as_ref()?.start;
    let direction = e.direction();
    let units = timeline.analyzer.units();
    let connection = timeline.analyzer.connections().get(conn?)?;
    connection
        .units
        .iter()
        .filter_map(|&u| units.get(u))
        .find(|u| u.direction == direction && u.stream.contains(&at))
        .and_then(|u| u.carriers.first())
        .map(|c| c.frame)
}

/// [`build_rows`] with each step's connection known.
fn build_rows_with(
    timeline: &Timeline,
    conn_of_step: &[Option<usize>],
    tls: &TlsDecryption,
    upto: Option<usize>,
    tcp: bool,
) -> Vec<Row> {
    let mut rows = Vec::new();
    let Some(newest) = timeline.steps.len().checked_sub(1) else {
        return rows;
    };
    let Some(upto) = upto else { return rows };
    let last = upto.min(newest);
    let packets = timeline.packets.len();
    let mut next_frame = 0usize;
    let tls_rows = tls_rows(timeline, tls);
    let mut next_tls = 0usize;
    // The frames before `end` (in the TCP view), each followed by the TLS rows it
    // completed.
    let mut segments_until = |rows: &mut Vec<Row>, next_frame: &mut usize, end: usize| {
        let end = end.min(packets);
        if tcp {
            for frame in *next_frame..end {
                rows.push(Row::Segment { frame });
                while let Some((f, row)) = tls_rows.get(next_tls)
                    && *f <= frame
                {
                    rows.push(*row);
                    next_tls += 1;
                }
            }
        } else {
            while let Some((f, row)) = tls_rows.get(next_tls)
                && *f < end
            {
                rows.push(*row);
                next_tls += 1;
            }
        }
        *next_frame = (*next_frame).max(end);
    };
    for (step, record) in timeline.steps.iter().enumerate().take(last + 1) {
        // Frames between the previous step and this one (late ACKs, FINs) stay with the
        // previous step, before this step's band.
        segments_until(&mut rows, &mut next_frame, record.frames.start);
        rows.push(Row::Band { step });
        for exchange in 0..record.outcome.exchanges.len() {
            let conn = conn_of_step.get(step).copied().flatten();
            if let Some(first) = first_carrier(timeline, conn, step, exchange) {
                // The segments before the one that carries this exchange come first.
                segments_until(&mut rows, &mut next_frame, first);
            }
            rows.push(Row::Exchange { step, exchange });
        }
        segments_until(&mut rows, &mut next_frame, record.frames.end);
    }
    if last == newest {
        segments_until(&mut rows, &mut next_frame, packets);
    }
    rows
}
