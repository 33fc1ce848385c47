//! Writing command output without panicking when its reader has gone.
//!
//! `println!` panics when stdout is a closed pipe (`failoverd report <id> | head`): Rust ignores
//! `SIGPIPE`, so the write fails with `BrokenPipe` and the macro turns that into a panic. Client
//! commands write through [`print`] instead, and [`exit_code`] ends them quietly when the reader
//! stopped reading — what a Unix tool does — while any other write error is reported.

use std::io::{ErrorKind, Write};

use super::EXIT_FAILURE;

/// Writes `text` to stdout and flushes it.
pub fn print(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Whether `e` means the reader of stdout went away.
pub fn is_closed(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::BrokenPipe
}

/// The exit code of a command that meant to end with `ok` after writing its output: `ok` also
/// when the reader closed the pipe (quietly: nobody is left to read a message), a failure with
/// the error otherwise.
pub fn exit_code(written: std::io::Result<()>, ok: u8) -> u8 {
    match written {
        Ok(()) => ok,
        Err(e) if is_closed(&e) => ok,
        Err(e) => {
            eprintln!("cannot write the output: {e}");
            EXIT_FAILURE
        }
    }
}
