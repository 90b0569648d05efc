//! Exit codes of `mote`, part of its interface.

/// Why `mote` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Code {
    /// Something failed that is not one of the cases below.
    Failure = 1,
    /// The command line was wrong (clap exits with 2 itself).
    #[allow(dead_code)]
    Usage = 2,
    /// The manifest (or another input file) is invalid.
    InvalidInput = 3,
    /// The host lacks a prerequisite (QEMU, a kernel, a built binary).
    Environment = 4,
    /// A node did not boot or did not become ready.
    NodeFailed = 5,
}

/// An error that carries its exit code.
#[derive(Debug)]
pub struct Coded(pub Code);

/// Says nothing: the code is for the exit status, not for the message
/// (`main` leaves empty links out of the chain it prints).
impl std::fmt::Display for Coded {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Ok(())
    }
}

impl std::error::Error for Coded {}

/// The error's chain as one line, `outer: inner: cause`, without the empty
/// [`Coded`] links.
pub fn message(error: &anyhow::Error) -> String {
    error
        .chain()
        .map(ToString::to_string)
        .filter(|m| !m.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}

impl Code {
    /// The code an error chain asks for: a [`Coded`] context, or a
    /// manifest error, or plain failure.
    pub fn of(error: &anyhow::Error) -> Code {
        // anyhow finds a context type at any depth through the error
        // itself; the `chain()` links are wrapped and would not downcast.
        if let Some(coded) = error.downcast_ref::<Coded>() {
            return coded.0;
        }
        if error.chain().any(|e| e.is::<mote_config::ManifestError>()) {
            return Code::InvalidInput;
        }
        Code::Failure
    }
}

/// Extension to tag an error with an exit code.
pub trait WithCode<T> {
    /// Tag the error with `code`.
    fn code(self, code: Code) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> WithCode<T> for Result<T, E> {
    fn code(self, code: Code) -> anyhow::Result<T> {
        self.map_err(|e| e.into().context(Coded(code)))
    }
}
