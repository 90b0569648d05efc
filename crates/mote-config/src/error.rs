//! Errors from loading a manifest. Each names the file, line and column, the key
//! path, what was found and what is allowed.

use std::fmt;
use std::path::PathBuf;

use crate::invalid::Invalid;

/// A problem and where it is in the source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong.
    pub problem: Invalid,
}

/// `12:9: services.hello.restart: found "sometimes"; allowed: …`
impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.problem)
    }
}

/// Why a manifest could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read the manifest {}", path.display())]
    Read {
        /// The manifest's path.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The text is not TOML.
    #[error("{}:{problem}", path.display())]
    Syntax {
        /// The manifest's path.
        path: PathBuf,
        /// The first syntax error; its key path is the table and key being written there.
        problem: Box<Located>,
    },
    /// The TOML does not fit the schema: an unknown key, a wrong type, a value
    /// that does not parse.
    #[error("{}:{problem}", path.display())]
    Schema {
        /// The manifest's path.
        path: PathBuf,
        /// The first such error.
        problem: Box<Located>,
    },
    /// The values break rules of the schema; every problem is listed, in source order.
    #[error("{}", Lines { path, problems })]
    Invalid {
        /// The manifest's path.
        path: PathBuf,
        /// All of them.
        problems: Vec<Located>,
    },
}

impl ManifestError {
    /// The located problems this error reports; none for [`ManifestError::Read`].
    pub fn problems(&self) -> &[Located] {
        match self {
            Self::Read { .. } => &[],
            Self::Syntax { problem, .. } | Self::Schema { problem, .. } => {
                std::slice::from_ref(&**problem)
            }
            Self::Invalid { problems, .. } => problems,
        }
    }
}

/// One `file:line:column: problem` line per problem.
struct Lines<'a> {
    path: &'a PathBuf,
    problems: &'a [Located],
}

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}:{problem}", self.path.display())?;
        }
        Ok(())
    }
}
