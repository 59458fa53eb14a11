//! The terminal `top` draws on: raw mode and the alternate screen while it runs, the terminal
//! as it was on every way out (quit, error, panic, SIGTERM/SIGINT/SIGHUP, a terminal that hung
//! up), and the loop that reads keys, takes new intervals and redraws.
use std::{
    io::{self, Stdout},
    sync::{
        Once,
        atomic::{AtomicBool, Ordering},
        mpsc::{Receiver, TryRecvError},
    },
    time::Duration,
};

use crossterm::{
    cursor,
    event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers},
    execute, terminal,
};
use ratatui::{Terminal, backend::CrosstermBackend};

use super::{
    app::{Action, App, Key},
    draw,
    interval::NodeView,
};
use crate::output::HeldNotes;

/// How long the loop waits for a key before looking at intervals and signals again: what a
/// SIGTERM may take to be acted on.
const KEY_WAIT: Duration = Duration::from_millis(100);

/// The terminal in raw mode on the alternate screen, until dropped.
struct Screen {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Screen {
    fn enter() -> io::Result<Self> {
        restore_on_panic();
        terminal::enable_raw_mode()?;
        let entered = execute!(io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)
            .and_then(|()| Terminal::new(CrosstermBackend::new(io::stdout())));
        match entered {
            Ok(terminal) => Ok(Self { terminal }),
            Err(err) => {
                restore();
                Err(err)
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// The terminal as a shell expects it. Safe to do twice (a panic hook, then a drop).
fn restore() {
    let _ = terminal::disable_raw_mode();
    let _ = execute!(io::stdout(), terminal::LeaveAlternateScreen, cursor::Show);
}

/// A panic's message is printed before the unwinding drops the screen: restore the terminal
/// first, so that it is printed where it can be read.
fn restore_on_panic() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}

fn key_of(event: KeyEvent) -> Option<Key> {
    if event.kind != KeyEventKind::Press {
        return None;
    }
    Some(match event.code {
        KeyCode::Char('c') if event.modifiers.contains(KeyModifiers::CONTROL) => Key::Interrupt,
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Tab => Key::Tab,
        KeyCode::BackTab => Key::BackTab,
        KeyCode::Esc => Key::Esc,
        _ => return None,
    })
}

/// Shows `app` until a quit key or `stop` (set by a signal); new intervals come from
/// `intervals`, the status line shows the latest of `notes`.
pub fn run(app: &mut App, intervals: &Receiver<Vec<NodeView>>, stop: &AtomicBool, notes: &HeldNotes) -> io::Result<()> {
    let mut screen = Screen::enter()?;
    let mut redraw = true;
    while !stop.load(Ordering::Relaxed) {
        loop {
            match intervals.try_recv() {
                Ok(nodes) => {
                    app.update(nodes);
                    redraw = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return Err(io::Error::other("the profiles stopped coming")),
            }
        }
        let note = notes.latest();
        if note != app.note {
            app.note = note;
            redraw = true;
        }
        if redraw {
            screen.terminal.draw(|frame| draw::draw(frame, app))?;
            redraw = false;
        }
        // crossterm 0.28 reads a terminal that hung up (ssh dropped, tmux killed) at end of
        // file forever, never returning: so the wait is ours, and crossterm only asked, without
        // waiting, once the terminal is known to be there.
        if terminal_hung_up(KEY_WAIT) {
            return Ok(());
        }
        while event::poll(Duration::ZERO)? {
            match event::read()? {
                Event::Key(key) => match key_of(key).map(|k| app.key(k)) {
                    Some(Action::Quit) => return Ok(()),
                    Some(Action::Redraw) => redraw = true,
                    Some(Action::Ignore) | None => {}
                },
                // The next draw lays the frame out for the new size.
                Event::Resize(..) => redraw = true,
                _ => {}
            }
        }
    }
    Ok(())
}

/// Waits up to `wait` for input on the terminal (stdin); whether it hung up meanwhile. A
/// signal (a resize, SIGTERM) ends the wait early.
fn terminal_hung_up(wait: Duration) -> bool {
    let mut tty = libc::pollfd { fd: libc::STDIN_FILENO, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd, for the duration of the call.
    let ready = unsafe { libc::poll(&mut tty, 1, wait.as_millis() as libc::c_int) };
    ready > 0 && tty.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctrl_c_is_an_interrupt_and_releases_are_ignored() {
        let press = |code, modifiers| KeyEvent::new(code, modifiers);
        assert_eq!(key_of(press(KeyCode::Char('c'), KeyModifiers::CONTROL)), Some(Key::Interrupt));
        assert_eq!(key_of(press(KeyCode::Char('c'), KeyModifiers::NONE)), Some(Key::Char('c')));
        assert_eq!(key_of(press(KeyCode::BackTab, KeyModifiers::SHIFT)), Some(Key::BackTab));
        let mut release = press(KeyCode::Char('q'), KeyModifiers::NONE);
        release.kind = KeyEventKind::Release;
        assert_eq!(key_of(release), None);
    }
}
