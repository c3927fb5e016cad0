//! An error with its causes in one line, for logs and status: transport errors (tonic, hyper,
//! rustls) say little at the top level and the cause that matters sits below.

use std::error::Error;

/// An error and its causes, joined by `: `, each cause named once (many errors already repeat
/// their source in their own text), e.g. "tcp connect error: Connection refused (os error 111)".
pub fn error_chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("outer: inner")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn joins_causes_and_names_each_once() {
        let io = || std::io::Error::other("inner");
        assert_eq!(error_chain(&io()), "inner");
        assert_eq!(error_chain(&Outer(io())), "outer: inner");
        assert_eq!(error_chain(&Repeats(io())), "outer: inner");
    }
}
