//! The connector's command line: the three services' own clap commands composed into one, so
//! `sse-connector` takes the flags (and environment variables) a user already knows from
//! `sse-ingest`, `sse-schema` and `sse-publisher`, parsed once by clap, and each service's
//! configuration is read from the same matches by its own derived parser.
//!
//! A flag two services share (their `#[command(flatten)]` groups: gRPC security, the broker's
//! credentials) has one id and one definition, so it appears once and reaches both. `--listen`
//! is ingest's (the connector's front door); `--schema-listen` and `--publisher-listen` are the
//! other two's `--listen`. `--schema` and `--publisher` are refused: the connector joins its
//! services itself.

use std::collections::HashSet;
use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Args, Command, CommandFactory};

/// One of the three services the connector runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// `sse-ingest`.
    Ingest,
    /// `sse-schema`.
    Schema,
    /// `sse-publisher`.
    Publisher,
}

impl Part {
    /// All three, in the order their flags are composed.
    pub const ALL: [Part; 3] = [Part::Ingest, Part::Schema, Part::Publisher];

    /// The service's binary name (its telemetry and log name when run alone).
    pub fn name(self) -> &'static str {
        match self {
            Part::Ingest => "sse-ingest",
            Part::Schema => "sse-schema",
            Part::Publisher => "sse-publisher",
        }
    }

    /// The service's own command, as its binary parses it.
    pub fn command(self) -> Command {
        match self {
            Part::Ingest => sse_ingest::Config::command(),
            Part::Schema => sse_schema::Config::command(),
            Part::Publisher => sse_publisher::Config::command(),
        }
    }

    /// The id (and long flag) of this service's `--listen` in the connector's command.
    pub fn listen_id(self) -> &'static str {
        match self {
            Part::Ingest => "listen",
            Part::Schema => "schema-listen",
            Part::Publisher => "publisher-listen",
        }
    }
}

/// Flags that name a peer's address: inside one process the connector joins the services itself.
const JOINED: [(&str, &str); 2] = [
    ("schema", "ingest's schema address"),
    ("publisher", "schema's publisher address"),
];

/// What the command line asked for.
#[derive(Debug)]
pub enum Parsed {
    /// Run, with every service's flags in these matches.
    Run(Box<ArgMatches>),
    /// Print this text and exit successfully (`--help`, `--version`).
    Print(String),
}

/// A command line the connector cannot take; the message names the flag.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    /// No service knows the flag.
    #[error("unknown flag {0} (see sse-connector --help)")]
    Unknown(String),
    /// The flag needs a value and none followed.
    #[error("flag {0} needs a value")]
    MissingValue(String),
    /// The flag names a peer that the connector joins itself.
    #[error("--{0} ({1}) is set by the connector itself: the services run in one process")]
    Joined(String, &'static str),
    /// Any other problem clap found (a bad value, an unexpected argument).
    #[error("{0}")]
    Invalid(String),
}

const VERSION: &str = env!("CARGO_PKG_VERSION");

const ABOUT: &str = "Ingest, schema and publisher in one process, joined inside it. It takes \
every flag and environment variable of the three services; a flag two of them share (gRPC \
security, the broker's credentials) reaches both.";

/// The connector's command: every service's arguments once, each under its service's heading.
pub fn command() -> Command {
    let mut cmd = Command::new("sse-connector")
        .version(VERSION)
        .about(ABOUT)
        .next_line_help(false);
    let commands = Part::ALL.map(|p| (p, p.command()));
    let shared = shared_ids(&commands);
    let mut seen: HashSet<String> = HashSet::new();
    for (part, command) in &commands {
        let part = *part;
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str().to_string();
            if ["help", "version"].contains(&id.as_str()) {
                continue;
            }
            let arg = if id == "listen" {
                listen(part, arg)
            } else if seen.insert(id.clone()) {
                let hidden = JOINED.iter().any(|(j, _)| *j == id);
                let heading = if shared.contains(&id) {
                    SHARED
                } else {
                    part.name()
                };
                arg.clone().help_heading(heading).hide(hidden)
            } else {
                continue;
            };
            cmd = cmd.arg(arg);
        }
    }
    // The embedded console's flags, as `sse-console` takes them. Augmenting also sets the
    // command's description from `ConsoleArgs`' doc comment, so the connector's goes back on.
    let cmd = sse_console::ConsoleArgs::augment_args(cmd.next_help_heading(CONSOLE))
        .about(ABOUT)
        .long_about(None);
    cmd.mut_arg("checkpoint_store", |a| {
        a.help(
            "Where each stream's resume point is kept (see sse-ingest). Unset here: the \
             publisher's broker, with its URL, TLS and credentials, so a restart resumes each \
             stream; `none` turns it off",
        )
    })
}

/// The help heading of the embedded console's flags.
const CONSOLE: &str = "sse-console (embedded when --console-listen is given)";

/// The help heading of the flags more than one service takes.
const SHARED: &str = "shared by the services";

/// The ids of the arguments more than one service has (their flattened groups).
fn shared_ids(commands: &[(Part, Command)]) -> HashSet<String> {
    let mut once = HashSet::new();
    let mut twice = HashSet::new();
    for (_, command) in commands {
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str().to_string();
            if !once.insert(id.clone()) {
                twice.insert(id);
            }
        }
    }
    twice
}

/// `part`'s `--listen`, under the connector's name for it.
fn listen(part: Part, arg: &Arg) -> Arg {
    arg.clone()
        .id(part.listen_id())
        .long(part.listen_id())
        .help_heading(part.name())
}

/// Parses `args` (the program name first).
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Parsed, ArgsError> {
    let matches = match command().try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) if !e.use_stderr() => return Ok(Parsed::Print(e.render().to_string())),
        Err(e) => return Err(clap_error(&e)),
    };
    for (id, what) in JOINED {
        if matches.value_source(id) == Some(ValueSource::CommandLine) {
            return Err(ArgsError::Joined(id.to_string(), what));
        }
    }
    Ok(Parsed::Run(Box::new(matches)))
}

/// Clap's error, in the connector's words where it has them.
fn clap_error(e: &clap::Error) -> ArgsError {
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.split_whitespace().next().unwrap_or(s).to_string(),
        _ => String::new(),
    };
    match e.kind() {
        ErrorKind::UnknownArgument if arg.starts_with('-') => ArgsError::Unknown(arg),
        ErrorKind::InvalidValue if e.get(ContextKind::InvalidValue).is_none_or(is_empty) => {
            ArgsError::MissingValue(arg)
        }
        _ => {
            let text = sse_runtime::process::clap_message(e);
            let first = text.lines().next().unwrap_or_default();
            match owner(&arg) {
                Some(part) => ArgsError::Invalid(format!("{}: {first}", part.name())),
                None => ArgsError::Invalid(first.to_string()),
            }
        }
    }
}

/// The service whose flag `--long` is (the first, for a shared one).
fn owner(flag: &str) -> Option<Part> {
    let long = flag.strip_prefix("--")?;
    Part::ALL.into_iter().find(|p| {
        long == p.listen_id()
            || p.command()
                .get_arguments()
                .any(|a| a.get_long() == Some(long) && long != "listen")
    })
}

fn is_empty(v: &ContextValue) -> bool {
    matches!(v, ContextValue::String(s) if s.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse_ok(args: &[&str]) -> ArgMatches {
        let all = std::iter::once("sse-connector").chain(args.iter().copied());
        match parse(all.map(OsString::from)).expect("parses") {
            Parsed::Run(m) => *m,
            Parsed::Print(_) => panic!("printed instead of running"),
        }
    }

    fn err(args: &[&str]) -> ArgsError {
        let all = std::iter::once("sse-connector").chain(args.iter().copied());
        parse(all.map(OsString::from)).expect_err("rejected")
    }

    #[test]
    fn the_services_share_only_their_flattened_groups_and_listen() {
        // One id, one meaning: a flag two services have is the same flattened group field.
        let mut owner: std::collections::HashMap<String, (Part, Arg)> = Default::default();
        for part in Part::ALL {
            for arg in part.command().get_arguments() {
                let id = arg.get_id().as_str().to_string();
                if ["help", "version", "listen"].contains(&id.as_str()) {
                    continue;
                }
                if let Some((first, a)) = owner.get(&id) {
                    assert_eq!(a.get_long(), arg.get_long(), "{id}: {first:?} vs {part:?}");
                    assert_eq!(a.get_env(), arg.get_env(), "{id}: {first:?} vs {part:?}");
                    assert_eq!(
                        a.get_default_values(),
                        arg.get_default_values(),
                        "{id}: {first:?} vs {part:?}"
                    );
                } else {
                    owner.insert(id, (part, arg.clone()));
                }
            }
        }
        command().debug_assert();
    }

    #[test]
    fn the_help_says_what_the_connector_is() {
        for flag in ["-h", "--help"] {
            let Ok(Parsed::Print(text)) = parse(["sse-connector", flag].map(OsString::from)) else {
                panic!("{flag} prints no text");
            };
            assert!(
                text.starts_with("Ingest, schema and publisher in one process"),
                "{flag}:\n{text}"
            );
        }
    }

    #[test]
    fn each_service_reads_its_own_flags_and_the_shared_ones() {
        use clap::FromArgMatches;
        let m = parse_ok(&[
            "--listen",
            "127.0.0.1:7",
            "--schema-listen=127.0.0.1:8",
            "--publisher-listen",
            "127.0.0.1:9",
            "--resources",
            "res",
            "--data-dir=/d",
            "--mqtt-url",
            "mqtt://b:1883",
            "--mqtt-username",
            "u",
            "--mqtt-clean-start",
        ]);
        let i = sse_ingest::Config::from_arg_matches(&m).unwrap();
        let s = sse_schema::Config::from_arg_matches(&m).unwrap();
        let p = sse_publisher::Config::from_arg_matches(&m).unwrap();
        assert_eq!(i.listen.port(), 7);
        assert_eq!(i.resources, std::path::PathBuf::from("res"));
        assert_eq!(i.broker.mqtt_username.as_deref(), Some("u"));
        assert_eq!(s.data_dir, std::path::PathBuf::from("/d"));
        assert_eq!(p.broker.mqtt_username.as_deref(), Some("u"));
        assert!(p.mqtt_clean_start);
        let listen = |id: &str| *m.get_one::<std::net::SocketAddr>(id).unwrap();
        assert_eq!(listen(Part::Schema.listen_id()).port(), 8);
        assert_eq!(listen(Part::Publisher.listen_id()).port(), 9);
    }

    #[test]
    fn every_service_flag_is_the_connectors() {
        let cmd = command();
        for part in Part::ALL {
            for arg in part.command().get_arguments() {
                let Some(long) = arg.get_long() else { continue };
                let long = if long == "listen" {
                    part.listen_id()
                } else {
                    long
                };
                assert!(
                    cmd.get_arguments().any(|a| a.get_long() == Some(long)),
                    "--{long} of {}",
                    part.name()
                );
            }
        }
    }

    #[test]
    fn bad_command_lines_name_the_problem() {
        assert_eq!(err(&["--nope"]), ArgsError::Unknown("--nope".into()));
        assert_eq!(
            err(&["--resources"]),
            ArgsError::MissingValue("--resources".into())
        );
        assert!(matches!(err(&["--schema", "http://x"]), ArgsError::Joined(n, _) if n == "schema"));
        assert!(
            matches!(err(&["--publisher=http://x"]), ArgsError::Joined(n, _) if n == "publisher")
        );
        assert!(matches!(err(&["extra"]), ArgsError::Invalid(m) if m.contains("extra")));
        let bad = |a: &[&str]| match err(a) {
            ArgsError::Invalid(m) => m,
            e => panic!("{a:?}: {e:?}"),
        };
        assert!(
            bad(&["--listen", "nope"])
                .starts_with("sse-ingest: invalid value 'nope' for '--listen")
        );
        assert!(bad(&["--max-in-flight", "0"]).starts_with("sse-ingest: invalid value '0'"));
        assert!(bad(&["--schema-listen", "x"]).starts_with("sse-schema: "));
        assert!(bad(&["--mqtt-keep-alive", "x"]).starts_with("sse-publisher: "));
    }

    #[test]
    fn help_lists_the_connector_flags_under_each_service() {
        let Ok(Parsed::Print(h)) = parse(["sse-connector", "--help"].map(OsString::from)) else {
            panic!("help printed")
        };
        for s in [
            "--schema-listen",
            "--publisher-listen",
            "sse-ingest:",
            "sse-schema:",
            "sse-publisher:",
            "shared by the services:",
            "--mqtt-url",
            "--resources",
            "--data-dir",
            "--checkpoint-store",
        ] {
            assert!(h.contains(s), "help mentions {s}");
        }
        assert!(!h.contains("--schema <"), "--schema is hidden");
        let Ok(Parsed::Print(v)) = parse(["sse-connector", "--version"].map(OsString::from)) else {
            panic!("version printed")
        };
        assert!(v.starts_with("sse-connector "));
    }
}
