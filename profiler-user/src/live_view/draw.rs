//! One frame of the view: a header (node, interval, order, the nodes to switch between), the
//! shown node's hottest functions, its native code, its log writes, the long dispatches, and
//! the keys. ratatui diffs frames, so a redraw writes only what changed (no flicker, light
//! over ssh), and every area is laid out from the frame's size, so a resize is just a redraw.
use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Cell, Paragraph, Row, Table, Wrap},
};

use super::{
    app::App,
    interval::{FunctionRate, NodeView},
};

const KEYS: &str = "s/t/c sort by self/total/calls · n/p/Tab node · space pause · q quit";

pub fn draw(frame: &mut Frame, app: &App) {
    let [header, functions, lower, footer] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Percentage(55),
        Constraint::Min(5),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let [natives, logs, dispatches] =
        Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(30), Constraint::Percentage(30)])
            .areas(lower);
    frame.render_widget(Paragraph::new(header_lines(app)), header);
    let status = app.note.as_ref().map_or_else(|| KEYS.to_owned(), |note| format!("{KEYS} · {note}"));
    frame.render_widget(Paragraph::new(status), footer);
    let Some(node) = app.selected() else {
        let waiting = if app.has_data() {
            "no Zeek process is attached: with --cluster, nodes are picked up as they start".to_owned()
        } else {
            format!("collecting the first {} s interval…", app.interval)
        };
        frame.render_widget(Paragraph::new(waiting).wrap(Wrap { trim: true }).block(Block::bordered()), functions);
        return;
    };
    draw_functions(frame, functions, app, node);
    draw_natives(frame, natives, app, node);
    draw_logs(frame, logs, node);
    draw_long_dispatches(frame, dispatches, node);
}

fn header_lines(app: &App) -> Vec<Line<'static>> {
    let Some(node) = app.selected() else { return vec![Line::from("zeek-probe top")] };
    let mut title = format!(
        "zeek-probe top · node {} (PID {}, Zeek {}) · last {:.1} s · sorted by {}",
        node.node,
        node.pid,
        node.zeek_version,
        node.seconds,
        app.sort.label()
    );
    if !node.running {
        title.push_str(" · EXITED");
    }
    if app.paused {
        title.push_str(" · PAUSED");
    }
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let mut nodes = vec![Span::raw("nodes: ")];
    for (i, n) in app.nodes().iter().enumerate() {
        // Node names repeat across restarts and hand-started runs: the PID tells them apart.
        let label = format!("{}/{} {:.0}%", n.node, n.pid, n.cpu_percent);
        nodes.push(if i == app.selected_index() {
            Span::styled(format!("[{label}]"), bold.add_modifier(Modifier::REVERSED))
        } else {
            Span::raw(format!(" {label} "))
        });
    }
    let cpu = match node.sample_hz {
        Some(hz) => format!("CPU {:.1}% of a core, sampled at {hz} Hz", node.cpu_percent),
        None => "CPU not sampled (--no-sample)".to_owned(),
    };
    let calls = if node.calls_counted {
        let total: f64 = node.functions.iter().filter_map(|f| f.calls_per_second).sum();
        format!("{total:.0} calls/s counted")
    } else {
        "calls not counted (start with --count-calls)".to_owned()
    };
    vec![Line::styled(title, bold), Line::from(nodes), Line::from(format!("{cpu} · {calls}"))]
}

/// A number, right-aligned in its column.
fn number(text: String) -> Cell<'static> {
    Cell::from(Line::from(text).right_aligned())
}

fn percent(node: &NodeView, value: f64) -> Cell<'static> {
    number(if node.sample_hz.is_some() { format!("{value:.1}") } else { "-".to_owned() })
}

fn per_second(rate: Option<f64>) -> Cell<'static> {
    number(rate.map_or_else(|| "-".to_owned(), |r| format!("{r:.1}")))
}

/// Column titles, bold; the first `numbers` right-aligned over their numbers.
fn header_row(titles: &'static [&'static str], numbers: usize) -> Row<'static> {
    let cells = titles.iter().enumerate().map(|(i, title)| {
        let line = Line::from(*title);
        Cell::from(if i < numbers { line.right_aligned() } else { line })
    });
    Row::new(cells).style(Style::default().add_modifier(Modifier::BOLD))
}

fn draw_functions(frame: &mut Frame, area: Rect, app: &App, node: &NodeView) {
    let rows = app.functions().into_iter().map(|f| {
        Row::new([
            percent(node, f.self_percent),
            percent(node, f.total_percent),
            per_second(f.calls_per_second),
            Cell::from(f.kind.as_str()),
            Cell::from(f.name.clone()),
        ])
    });
    let widths = [
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(10),
        Constraint::Length(8),
        Constraint::Fill(1),
    ];
    let table = Table::new(rows, widths)
        .header(header_row(&["SELF%", "TOTAL%", "CALLS/S", "KIND", "FUNCTION"], 3))
        .block(Block::bordered().title(" script functions, events, hooks, BIFs "));
    frame.render_widget(table, area);
}

/// Native rows are what the sampler's leaf frames name (a C++ symbol, else the library): there
/// is no native call tree, so only self time.
fn draw_natives(frame: &mut Frame, area: Rect, app: &App, node: &NodeView) {
    let rows = app.natives().into_iter().map(|f: &FunctionRate| {
        Row::new([percent(node, f.self_percent), Cell::from(f.kind.as_str()), Cell::from(f.name.clone())])
    });
    let table = Table::new(rows, [Constraint::Length(6), Constraint::Length(6), Constraint::Fill(1)])
        .header(header_row(&["SELF%", "KIND", "NATIVE (leaf symbol or library)"], 1))
        .block(Block::bordered().title(" native code, by sampled leaf "));
    frame.render_widget(table, area);
}

fn draw_logs(frame: &mut Frame, area: Rect, node: &NodeView) {
    let rows = node
        .streams
        .iter()
        .map(|s| Row::new([number(format!("{:.1}", s.writes_per_second)), Cell::from(s.stream.clone())]));
    let table = Table::new(rows, [Constraint::Length(9), Constraint::Fill(1)])
        .header(header_row(&["WRITES/S", "LOG STREAM"], 1))
        .block(Block::bordered().title(" log writes "));
    frame.render_widget(table, area);
}

fn wrapped(text: &str) -> Paragraph<'static> {
    Paragraph::new(text.to_owned()).wrap(Wrap { trim: true })
}

/// The interval's longest dispatches, or why they are not measured.
fn draw_long_dispatches(frame: &mut Frame, area: Rect, node: &NodeView) {
    let block = Block::bordered().title(" long dispatches ");
    match &node.long_dispatches {
        Err(why) => frame.render_widget(wrapped(&format!("long dispatches: {why}")).block(block), area),
        Ok(dispatches) if dispatches.is_empty() => {
            frame.render_widget(wrapped("no long dispatches in the interval").block(block), area);
        }
        Ok(dispatches) => {
            let rows = dispatches.iter().map(|d| {
                Row::new([
                    number(format!("{:.1}", d.seconds * 1000.0)),
                    Cell::from(d.name.clone()),
                    Cell::from(d.hottest.clone().unwrap_or_default()),
                ])
            });
            let widths = [Constraint::Length(7), Constraint::Fill(3), Constraint::Fill(2)];
            let table =
                Table::new(rows, widths).header(header_row(&["MS", "DISPATCH", "MOST SAMPLED IN"], 1)).block(block);
            frame.render_widget(table, area);
        }
    }
}

#[cfg(test)]
mod tests {
    use ratatui::{Terminal, backend::TestBackend};

    use super::*;
    use crate::live_view::{app::tests::node, interval::LongDispatch};

    /// The screen as text, one line per row.
    fn screen(app: &App, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|f| draw(f, app)).unwrap();
        let buffer = terminal.backend().buffer();
        (0..height)
            .map(|y| (0..width).map(|x| buffer[(x, y)].symbol()).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The row of `screen` naming `name`, and the rows below it.
    fn line_of(screen: &str, name: &str) -> usize {
        screen.lines().position(|l| l.contains(name)).unwrap_or_else(|| panic!("{name} not on:\n{screen}"))
    }

    #[test]
    fn shows_the_nodes_rows_in_order_and_long_dispatches_as_not_measured() {
        let mut app = App::new(2.0);
        assert!(screen(&app, 120, 30).contains("collecting the first 2 s interval"));
        app.update(Vec::new());
        assert!(screen(&app, 120, 30).contains("no Zeek process is attached"), "a host without Zeek");
        app.update(vec![node(4, "worker-1"), node(5, "worker-2")]);
        let text = screen(&app, 120, 30);
        assert!(text.contains("node worker-1 (PID 4, Zeek 8.2.2)"), "{text}");
        assert!(text.contains("[worker-1/4 135%]") && text.contains(" worker-2/5 135% "), "{text}");
        assert!(line_of(&text, " fib ") < line_of(&text, " new_connection "), "self CPU first:\n{text}");
        assert!(text.contains("zeek::Connection::NextPacket") && text.contains("Conn::LOG"), "{text}");
        assert!(text.contains("long dispatches: not measured"), "{text}");
        app.key(crate::live_view::app::Key::Char('t'));
        let text = screen(&app, 120, 30);
        assert!(line_of(&text, " new_connection ") < line_of(&text, " fib "), "total CPU first:\n{text}");
        assert!(text.contains("sorted by total CPU"), "{text}");
    }

    #[test]
    fn measured_long_dispatches_are_listed() {
        let mut worker = node(4, "worker-1");
        let hottest = Some("Conn::set_state".to_owned());
        worker.long_dispatches = Ok(vec![LongDispatch { name: "new_connection".into(), seconds: 0.25, hottest }]);
        let mut app = App::new(2.0);
        app.update(vec![worker.clone()]);
        let text = screen(&app, 160, 30);
        assert!(text.contains("250.0") && text.contains("Conn::set_state") && !text.contains("not measured"), "{text}");
        worker.long_dispatches = Ok(Vec::new());
        app.update(vec![worker]);
        assert!(screen(&app, 120, 30).contains("no long dispatches in the interval"));
    }

    #[test]
    fn a_tiny_terminal_is_drawn_without_panicking() {
        let mut app = App::new(1.0);
        app.update(vec![node(4, "worker-1")]);
        for (w, h) in [(1, 1), (10, 3), (40, 8)] {
            screen(&app, w, h);
        }
    }
}
