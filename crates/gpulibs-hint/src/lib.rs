//! The one channel for hints: what the user can do about an error.
//!
//! Owns: the [`Hint`] trait. A library error type that knows a next step implements it next to
//! the type; the CLI walks an error's cause chain (`error:`, `caused by:` lines) and asks every
//! error in it for its hint, so a hint is never lost when an error is wrapped by another.
//!
//! Must not touch: anything else. No dependencies, so every gpulibs crate can implement it.
//!
//! The message of an error says *what* failed; its `source()` says *why*; its hint says *what to
//! do*. None of the three repeats another: a message never interpolates its source, and a hint
//! is never baked into a message.

use std::error::Error;

/// An error that can name a next step for the person who saw it.
pub trait Hint: Error {
    /// One sentence (or a few joined by `;`) naming a real next step: a command to run, a flag to
    /// pass, a file to check. `None` when this error has nothing to add to its causes' hints.
    fn hint(&self) -> Option<String>;
}

/// Every error in `error`'s chain, outermost first (`error` itself, then each `source()`).
pub fn chain<'a>(
    error: &'a (dyn Error + 'static),
) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(error), |&e| e.source())
}

/// The message and each cause once, joined by `: `, for where an error must become one line of
/// text (a report field, another error's `message`): `x.whl: writing /x/x.whl.partial failed:
/// No space left on device (os error 28)`. Nothing of the chain is lost, nothing repeats.
pub fn chain_text(error: &(dyn Error + 'static)) -> String {
    chain(error)
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

/// The first message in `error`'s chain that repeats its own source's message, as
/// `"message" repeats "source"`; `None` when every link says only its own part. The renderer
/// prints each link on its own line, so a repeated source would be read twice. For tests: every
/// crate checks its error variants with it.
pub fn repeated_cause(error: &(dyn Error + 'static)) -> Option<String> {
    chain(error).find_map(|e| {
        let source = e.source()?.to_string();
        let message = e.to_string();
        (!source.is_empty() && message.contains(&source))
            .then(|| format!("{message:?} repeats {source:?}"))
    })
}

/// For tests: panics, naming `name`, unless `error` has a source and no message of its chain
/// repeats its source ([`repeated_cause`]). Each crate's `tests/error_messages.rs` calls it for
/// every error variant that wraps another.
pub fn assert_cause_told_once(name: &str, error: &(dyn Error + 'static)) {
    assert!(error.source().is_some(), "{name}: has a source");
    if let Some(repeated) = repeated_cause(error) {
        panic!("{name}: {repeated}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Inner;
    impl std::fmt::Display for Inner {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("inner")
        }
    }
    impl Error for Inner {}

    #[derive(Debug)]
    struct Outer(Inner);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("outer")
        }
    }
    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn chain_is_outermost_first() {
        let e = Outer(Inner);
        let names: Vec<String> = chain(&e).map(|e| e.to_string()).collect();
        assert_eq!(names, ["outer", "inner"]);
        assert_eq!(chain_text(&e), "outer: inner");
        assert_eq!(chain_text(&Inner), "inner");
    }

    #[derive(Debug)]
    struct Repeats(Inner);
    impl std::fmt::Display for Repeats {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "outer: {}", self.0)
        }
    }
    impl Error for Repeats {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_message_that_repeats_its_source_is_found() {
        assert_eq!(
            repeated_cause(&Repeats(Inner)).as_deref(),
            Some("\"outer: inner\" repeats \"inner\"")
        );
        assert_eq!(repeated_cause(&Outer(Inner)), None);
    }
}
