//! Where a finding or an input error points: a file, a line and a column.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::yaml::Pos;

/// A place in a file of the repository, 1-based; line 0 means the whole file.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Location {
    pub file: PathBuf,
    pub line: u32,
    pub column: u32,
}

impl Location {
    pub fn new(file: impl Into<PathBuf>, pos: Pos) -> Location {
        Location { file: file.into(), line: pos.line, column: pos.column }
    }

    /// The whole file, with no line.
    pub fn file(file: impl Into<PathBuf>) -> Location {
        Location { file: file.into(), line: 0, column: 0 }
    }

    pub fn line(file: impl Into<PathBuf>, line: u32) -> Location {
        Location { file: file.into(), line, column: 1 }
    }

    /// The same place with the file made relative to `root` where possible.
    pub fn relative_to(&self, root: &Path) -> Location {
        let file =
            self.file.strip_prefix(root).map_or_else(|_| self.file.clone(), Path::to_path_buf);
        Location { file, ..self.clone() }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.column > 0 {
                write!(f, ":{}", self.column)?;
            }
        }
        Ok(())
    }
}

/// Bad input: what is wrong, where, and how to fix it. Makes the gates exit with code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub location: Location,
    pub message: String,
    pub help: String,
}

impl InputError {
    pub fn new(
        location: Location,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> InputError {
        InputError { location, message: message.into(), help: help.into() }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)?;
        if !self.help.is_empty() {
            write!(f, "\n  help: {}", self.help)?;
        }
        Ok(())
    }
}

impl std::error::Error for InputError {}

/// Several input errors found in one pass, reported together.
#[derive(Debug)]
pub struct InputErrors(pub Vec<InputError>);

impl fmt::Display for InputErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for InputErrors {}
