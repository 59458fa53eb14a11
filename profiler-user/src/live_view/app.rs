//! The view's state and what each key does to it: the nodes' last intervals, which node is
//! shown, the order of its rows, whether the screen is paused.
use std::cmp::Ordering;

use super::interval::{FunctionRate, NodeView};

/// The order of the function rows (busiest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    SelfTime,
    TotalTime,
    Calls,
}

impl Sort {
    pub const fn label(self) -> &'static str {
        match self {
            Self::SelfTime => "self CPU",
            Self::TotalTime => "total CPU",
            Self::Calls => "calls/s",
        }
    }

    /// Busiest first by this key, then by the others, then by name.
    fn order(self, a: &FunctionRate, b: &FunctionRate) -> Ordering {
        let by_self = || b.self_percent.total_cmp(&a.self_percent);
        let by_total = || b.total_percent.total_cmp(&a.total_percent);
        let by_calls = || b.calls_per_second.unwrap_or(0.0).total_cmp(&a.calls_per_second.unwrap_or(0.0));
        let first = match self {
            Self::SelfTime => by_self().then_with(by_total).then_with(by_calls),
            Self::TotalTime => by_total().then_with(by_self).then_with(by_calls),
            Self::Calls => by_calls().then_with(by_total).then_with(by_self),
        };
        first.then_with(|| a.name.cmp(&b.name))
    }
}

/// A key press, as the view understands it (the terminal's events mapped onto these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Tab,
    BackTab,
    Esc,
    /// Ctrl-C: in raw mode a key, not a signal.
    Interrupt,
}

/// What the loop does after a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Redraw,
    Quit,
    /// A key that means nothing here.
    Ignore,
}

#[derive(Debug)]
pub struct App {
    /// The nodes' last intervals as shown (frozen while paused).
    nodes: Vec<NodeView>,
    /// The newest intervals, received while paused.
    pending: Option<Vec<NodeView>>,
    /// The node shown, by PID (kept when nodes come and go); the first when gone.
    selected: Option<u32>,
    pub sort: Sort,
    pub paused: bool,
    /// Seconds per interval, as asked for.
    pub interval: f64,
    /// Whether an interval has come in.
    received: bool,
    /// The latest note zeek-probe said (a node attached or exited), for the status line.
    pub note: Option<String>,
}

impl App {
    pub fn new(interval: f64) -> Self {
        Self {
            nodes: Vec::new(),
            pending: None,
            selected: None,
            sort: Sort::SelfTime,
            paused: false,
            interval,
            received: false,
            note: None,
        }
    }

    /// Takes every node's newest interval (in the order to list them). While paused the
    /// screen stays as it was; the newest is shown on resuming.
    pub fn update(&mut self, nodes: Vec<NodeView>) {
        self.received = true;
        if self.paused {
            self.pending = Some(nodes);
        } else {
            self.nodes = nodes;
        }
    }

    /// Whether an interval has come in yet (with --cluster it may hold no node).
    pub fn has_data(&self) -> bool {
        self.received
    }

    pub fn nodes(&self) -> &[NodeView] {
        &self.nodes
    }

    /// The index of the node shown.
    pub fn selected_index(&self) -> usize {
        self.selected.and_then(|pid| self.nodes.iter().position(|n| n.pid == pid)).unwrap_or(0)
    }

    pub fn selected(&self) -> Option<&NodeView> {
        self.nodes.get(self.selected_index())
    }

    /// The shown node's functions in the chosen order.
    pub fn functions(&self) -> Vec<&FunctionRate> {
        let mut rows: Vec<&FunctionRate> = self.selected().map(|n| n.functions.iter().collect()).unwrap_or_default();
        rows.sort_by(|a, b| self.sort.order(a, b));
        rows
    }

    /// The shown node's native rows, by self CPU: the only time they have.
    pub fn natives(&self) -> Vec<&FunctionRate> {
        let mut rows: Vec<&FunctionRate> = self.selected().map(|n| n.natives.iter().collect()).unwrap_or_default();
        rows.sort_by(|a, b| Sort::SelfTime.order(a, b));
        rows
    }

    pub fn key(&mut self, key: Key) -> Action {
        match key {
            Key::Char('q' | 'Q') | Key::Esc | Key::Interrupt => return Action::Quit,
            Key::Char('s') => self.sort = Sort::SelfTime,
            Key::Char('t') => self.sort = Sort::TotalTime,
            Key::Char('c') => self.sort = Sort::Calls,
            Key::Char('n') | Key::Tab => self.step_node(1),
            Key::Char('p') | Key::BackTab => self.step_node(-1),
            Key::Char(' ') => {
                self.paused = !self.paused;
                if let Some(newest) = self.pending.take().filter(|_| !self.paused) {
                    self.nodes = newest;
                }
            }
            _ => return Action::Ignore,
        }
        Action::Redraw
    }

    fn step_node(&mut self, by: isize) {
        let count = self.nodes.len();
        if count == 0 {
            return;
        }
        let next = (self.selected_index() as isize + by).rem_euclid(count as isize) as usize;
        self.selected = Some(self.nodes[next].pid);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{
        live_view::interval::tests::{function, profile},
        symbolize::FuncKind,
    };

    /// A node whose rows order differently by self, total and calls.
    pub(crate) fn node(pid: u32, name: &str) -> NodeView {
        let p = profile(
            pid,
            name,
            vec![
                function("fib", FuncKind::Function, 0.4, 0.4, Some(10)),
                function("new_connection", FuncKind::Event, 0.1, 0.9, Some(100)),
                function("fmt", FuncKind::Bif, 0.2, 0.2, Some(5000)),
                function("zeek::Connection::NextPacket", FuncKind::Native, 0.6, 0.6, None),
                function("libc.so.6", FuncKind::Native, 0.05, 0.05, None),
            ],
        );
        NodeView::of_interval(&p, true, 1.0)
    }

    fn names(rows: &[&FunctionRate]) -> Vec<String> {
        rows.iter().map(|r| r.name.clone()).collect()
    }

    #[test]
    fn sort_keys_reorder_the_functions() {
        let mut app = App::new(1.0);
        app.update(vec![node(1, "worker-1")]);
        assert_eq!(names(&app.functions()), ["fib", "fmt", "new_connection"], "self CPU first");
        assert_eq!(app.key(Key::Char('t')), Action::Redraw);
        assert_eq!(names(&app.functions()), ["new_connection", "fib", "fmt"]);
        app.key(Key::Char('c'));
        assert_eq!(names(&app.functions()), ["fmt", "new_connection", "fib"]);
        app.key(Key::Char('s'));
        assert_eq!(names(&app.functions()), ["fib", "fmt", "new_connection"]);
        assert_eq!(names(&app.natives()), ["zeek::Connection::NextPacket", "libc.so.6"], "natives apart");
    }

    #[test]
    fn node_keys_cycle_and_the_choice_survives_nodes_coming_and_going() {
        let mut app = App::new(1.0);
        assert_eq!(app.key(Key::Tab), Action::Redraw, "no nodes yet: nothing to switch, nothing breaks");
        app.update(vec![node(1, "manager"), node(2, "worker-1"), node(3, "worker-2")]);
        app.key(Key::Char('n'));
        assert_eq!(app.selected().map(|n| n.node.as_str()), Some("worker-1"));
        app.key(Key::BackTab);
        app.key(Key::Char('p'));
        assert_eq!(app.selected().map(|n| n.node.as_str()), Some("worker-2"), "wraps around");
        // manager exits and is dropped; worker-2 stays shown.
        app.update(vec![node(2, "worker-1"), node(3, "worker-2")]);
        assert_eq!(app.selected().map(|n| n.node.as_str()), Some("worker-2"));
        // worker-2 gone: the first node is shown.
        app.update(vec![node(2, "worker-1")]);
        assert_eq!(app.selected().map(|n| n.node.as_str()), Some("worker-1"));
    }

    #[test]
    fn paused_screens_stay_and_resume_with_the_newest_interval() {
        let mut app = App::new(1.0);
        app.update(vec![node(1, "worker-1")]);
        app.key(Key::Char(' '));
        assert!(app.paused);
        app.update(vec![node(1, "worker-1"), node(2, "worker-2")]);
        app.update(vec![node(1, "worker-1"), node(3, "worker-3")]);
        assert_eq!(app.nodes().len(), 1, "frozen while paused");
        app.key(Key::Char('t'));
        assert_eq!(app.sort, Sort::TotalTime, "sorting works while paused");
        app.key(Key::Char(' '));
        assert_eq!(app.nodes().iter().map(|n| n.pid).collect::<Vec<_>>(), [1, 3], "the newest on resuming");
    }

    #[test]
    fn quit_keys_and_unknown_keys() {
        let mut app = App::new(1.0);
        for key in [Key::Char('q'), Key::Esc, Key::Interrupt] {
            assert_eq!(app.key(key), Action::Quit, "{key:?}");
        }
        assert_eq!(app.key(Key::Char('x')), Action::Ignore);
    }
}
