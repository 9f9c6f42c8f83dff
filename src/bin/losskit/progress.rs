//! A minimal progress bar on stderr, drawn only when stderr is a terminal (so logs and
//! captured output stay clean).

use std::io::{IsTerminal, Write};
use std::time::Instant;

/// A progress bar over `total` steps.
pub struct Progress {
    total: usize,
    done: usize,
    label: String,
    start: Instant,
    tty: bool,
}

impl Progress {
    /// A bar with a label; nothing is drawn unless stderr is a terminal.
    pub fn new(total: usize, label: &str) -> Self {
        let p = Progress {
            total: total.max(1),
            done: 0,
            label: label.to_string(),
            start: Instant::now(),
            tty: std::io::stderr().is_terminal(),
        };
        p.draw("");
        p
    }

    /// Advance by one step; `what` names the step just finished.
    pub fn inc(&mut self, what: &str) {
        self.done = (self.done + 1).min(self.total);
        self.draw(what);
    }

    fn draw(&self, what: &str) {
        if !self.tty {
            return;
        }
        const W: usize = 30;
        let filled = W * self.done / self.total;
        let bar: String = "#".repeat(filled) + &"-".repeat(W - filled);
        let mut what = what.to_string();
        what.truncate(32);
        let mut e = std::io::stderr().lock();
        let _ = write!(
            e,
            "\r\x1b[2K{} [{bar}] {}/{} {:.0}s {what}",
            self.label,
            self.done,
            self.total,
            self.start.elapsed().as_secs_f64()
        );
        let _ = e.flush();
    }

    /// Clear the bar.
    pub fn finish(self) {
        if self.tty {
            let mut e = std::io::stderr().lock();
            let _ = write!(e, "\r\x1b[2K");
            let _ = e.flush();
        }
    }
}
