//! Everything the gates print goes through here: cargo-style status lines on stderr, a
//! spinner for long steps on a terminal (step lines only in CI), and machine output on stdout.
#![allow(clippy::print_stdout, clippy::print_stderr, reason = "the one module that prints")]

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static VERBOSE: AtomicBool = AtomicBool::new(false);

pub fn set_verbose(verbose: bool) {
    VERBOSE.store(verbose, Ordering::Relaxed);
}

fn styled() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Whether live progress may be drawn: a terminal, and not a CI log.
pub fn interactive() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("CI").is_none()
}

fn line(colour: &str, verb: &str, message: &str) {
    if styled() {
        eprintln!("\x1b[1;{colour}m{verb:>12}\x1b[0m {message}");
    } else {
        eprintln!("{verb:>12} {message}");
    }
}

/// A step, as cargo prints `Compiling`.
pub fn status(verb: &str, message: &str) {
    line("32", verb, message);
}

pub fn warn(message: &str) {
    if styled() {
        eprintln!("\x1b[1;33mwarning\x1b[0m: {message}");
    } else {
        eprintln!("warning: {message}");
    }
}

pub fn error(message: &str) {
    if styled() {
        eprintln!("\x1b[1;31merror\x1b[0m: {message}");
    } else {
        eprintln!("error: {message}");
    }
}

pub fn note(message: &str) {
    eprintln!("{:>12} {message}", "");
}

pub fn verbose(message: &str) {
    if VERBOSE.load(Ordering::Relaxed) {
        line("36", "Debug", message);
    }
}

/// A block of text for the terminal (the verdict table, findings).
pub fn block(text: &str) {
    eprintln!("{text}");
}

/// Machine output on stdout.
pub fn stdout(text: &str) {
    use std::io::Write as _;
    // A reader that stops early (`| head`) is no error of the run's.
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// A spinner for a step that may take more than a second; silent when not interactive.
pub struct Progress(Option<indicatif::ProgressBar>);

impl Progress {
    pub fn start(message: &str) -> Progress {
        if !interactive() {
            return Progress(None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(message.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress(Some(bar))
    }

    pub fn set_message(&self, message: String) {
        if let Some(bar) = &self.0 {
            bar.set_message(message);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
