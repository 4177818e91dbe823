//! The one way the gates run other programs. A failure names the whole command, its exit
//! status and what it printed on stderr.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use anyhow::Context as _;

#[derive(Clone, Debug)]
pub struct ProcessBuilder {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    removed: Vec<OsString>,
    dir: Option<PathBuf>,
}

impl ProcessBuilder {
    pub fn new(program: impl AsRef<OsStr>) -> ProcessBuilder {
        ProcessBuilder {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
            removed: Vec::new(),
            dir: None,
        }
    }

    /// `cargo` as the caller's cargo runs it (`$CARGO`), so toolchain overrides hold.
    pub fn cargo() -> ProcessBuilder {
        ProcessBuilder::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> ProcessBuilder {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> ProcessBuilder {
        self.args.extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> ProcessBuilder {
        self.envs.push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> ProcessBuilder {
        self.removed.push(key.as_ref().to_owned());
        self
    }

    pub fn dir(mut self, dir: impl AsRef<Path>) -> ProcessBuilder {
        self.dir = Some(dir.as_ref().to_owned());
        self
    }

    fn command(&self) -> Command {
        #[allow(clippy::disallowed_methods, reason = "the wrapper the rest of the crate must use")]
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        for key in &self.removed {
            command.env_remove(key);
        }
        command.envs(self.envs.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        command
    }

    /// Runs to completion capturing output; a non-zero exit is an error.
    pub fn read(&self) -> anyhow::Result<String> {
        let output = self.output()?;
        if !output.status.success() {
            return Err(self.failure(&output));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs to completion capturing output, whatever the exit status.
    pub fn output(&self) -> anyhow::Result<Output> {
        crate::term::verbose(&format!("running {self}"));
        self.command()
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("failed to start `{self}`"))
    }

    /// Starts the program with captured output.
    pub fn spawn(&self) -> anyhow::Result<Child> {
        crate::term::verbose(&format!("starting {self}"));
        self.command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("failed to start `{self}`"))
    }

    /// The error for a finished run that failed.
    pub fn failure(&self, output: &Output) -> anyhow::Error {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr = stderr.trim();
        let status = match output.status.code() {
            Some(code) => format!("exit code {code}"),
            None => "a signal".to_owned(),
        };
        if stderr.is_empty() {
            anyhow::anyhow!("`{self}` failed with {status}")
        } else {
            anyhow::anyhow!("`{self}` failed with {status}:\n{stderr}")
        }
    }
}

impl fmt::Display for ProcessBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.program.to_string_lossy())?;
        for arg in &self.args {
            let arg = arg.to_string_lossy();
            if arg.is_empty() || arg.contains([' ', '"', '\'', '$']) {
                write!(f, " '{}'", arg.replace('\'', "'\\''"))?;
            } else {
                write!(f, " {arg}")?;
            }
        }
        Ok(())
    }
}
