//! Teardown on every exit: success, failure, error, panic (through `Drop`), SIGINT and SIGTERM
//! (through a signal thread).
//!
//! A run registers its Compose project and its `compose up` process before they can create
//! anything. Teardown stops `up` with SIGTERM (so it cancels the engine calls it has under
//! way), runs `compose down --volumes --remove-orphans`, then removes whatever is still
//! labelled with the project. One lock covers registration and the whole teardown, so a
//! signal can never land between the two, and the process never exits half-way through one.

use std::path::PathBuf;
use std::process::Child;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use anyhow::Context as _;

use crate::docker;
use crate::term;
use crate::tools::Compose;

/// What must be removed when the run ends, however it ends.
pub struct Teardown {
    pub compose: Compose,
    pub project: String,
    pub files: Vec<PathBuf>,
}

struct Registered {
    teardown: Option<Teardown>,
    up: Option<Child>,
}

/// Held while registering and for the whole of a teardown.
static REGISTERED: Mutex<Registered> = Mutex::new(Registered { teardown: None, up: None });

/// The signal that interrupted the run, or 0.
static INTERRUPTED: AtomicI32 = AtomicI32::new(0);

fn registered() -> std::sync::MutexGuard<'static, Registered> {
    REGISTERED.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The signal that interrupted the run, if one did.
pub fn interrupted() -> Option<i32> {
    match INTERRUPTED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// Fails when the run was interrupted; called between steps so an interrupted run stops.
pub fn ensure_not_interrupted() -> anyhow::Result<()> {
    match interrupted() {
        Some(signal) => anyhow::bail!("interrupted by signal {signal}"),
        None => Ok(()),
    }
}

/// Registers a project and starts its `compose up` through `start`, atomically with respect
/// to teardown: a signal arriving now waits, then removes what `start` created.
pub fn register_and_start(
    teardown: Teardown,
    start: impl FnOnce() -> anyhow::Result<Child>,
) -> anyhow::Result<()> {
    let mut registered = registered();
    ensure_not_interrupted()?;
    registered.teardown = Some(teardown);
    registered.up = Some(start()?);
    Ok(())
}

/// Looks at the `compose up` process: `None` while it runs, its result once it ended.
pub fn poll_up(
    describe_failure: impl FnOnce(&std::process::Output) -> anyhow::Error,
) -> Option<anyhow::Result<()>> {
    let mut registered = registered();
    let child = registered.up.as_mut()?;
    match child.try_wait() {
        Ok(None) => None,
        Ok(Some(status)) => {
            let output = registered.up.take()?.wait_with_output();
            Some(match output {
                Ok(_) if status.success() => Ok(()),
                Ok(output) => Err(describe_failure(&output)),
                Err(error) => Err(error.into()),
            })
        }
        Err(error) => Some(Err(error.into())),
    }
}

/// Forgets the project without removing it (`--keep-up`).
pub fn keep_up() {
    registered().teardown = None;
}

/// Removes the registered project, if any. Safe from any thread, any number of times.
pub fn teardown_now() {
    let mut registered = registered();
    if let Some(child) = registered.up.take() {
        stop_gently(child);
    }
    let Some(teardown) = registered.teardown.take() else { return };
    term::status("Removing", &format!("compose project {}", teardown.project));
    let down = teardown.compose.command(&teardown.project, &teardown.files).args([
        "down",
        "--volumes",
        "--remove-orphans",
        "--timeout",
        "10",
    ]);
    if let Err(error) = down.read() {
        term::warn(&format!("{error:#}"));
    }
    // Whatever Compose did not remove (a killed `up`, a renamed file) goes by label.
    let swept = tokio::runtime::Builder::new_current_thread().enable_all().build().map(|runtime| {
        runtime.block_on(async {
            let docker = docker::connect().await?;
            docker::remove_labelled(&docker, docker::PROJECT_LABEL, &teardown.project).await
        })
    });
    match swept {
        Ok(Ok(removed)) if removed.total() > 0 => {
            term::note(&format!("removed {} leftover resource(s) by label", removed.total()));
        }
        Ok(Err(error)) => {
            term::warn(&format!("label sweep of {} failed: {error:#}", teardown.project));
        }
        _ => {}
    }
}

/// Stops a running `compose up`: SIGTERM lets it cancel the engine calls it has under way, so
/// nothing is created after teardown has looked; SIGKILL only if it ignores that for 10 s.
fn stop_gently(mut child: Child) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    let Ok(pid) = i32::try_from(child.id()).map(Pid::from_raw) else { return };
    if kill(pid, Signal::SIGTERM).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        return;
    }
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait());
    });
    if receiver.recv_timeout(Duration::from_secs(10)).is_err() {
        let _ = kill(pid, Signal::SIGKILL);
        let _ = receiver.recv();
    }
}

/// Runs teardown when dropped: on return and during a panic's unwinding.
pub struct TeardownGuard;

impl Drop for TeardownGuard {
    fn drop(&mut self) {
        teardown_now();
    }
}

/// On SIGINT or SIGTERM: tear down, then exit with 128 + the signal's number.
pub fn install_signal_handler() -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};

    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("failed to install the SIGINT/SIGTERM handler")?;
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            INTERRUPTED.store(signal, Ordering::SeqCst);
            term::warn("interrupted: tearing the mesh down");
            teardown_now();
            // The run notices at its next check and writes its `interrupted` report; a run
            // busy elsewhere (a long build) is not waited for beyond a few seconds.
            for _ in 0..50 {
                if FINISHED.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            std::process::exit(128 + signal);
        }
    });
    Ok(())
}

/// Set once the run has written its report and is about to exit on its own.
static FINISHED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The exit code to use instead of the run's own: 128 + signal when the run was interrupted.
///
/// Waits for a teardown the signal thread is running, so the process never exits before it.
pub fn finish() -> Option<u8> {
    teardown_now();
    FINISHED.store(true, Ordering::SeqCst);
    interrupted().and_then(|signal| u8::try_from(128 + signal).ok())
}
