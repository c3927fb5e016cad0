//! The connector's command line: every flag of the three services, each handed to the services
//! that know it, so `sse-connector` takes the flags (and environment variables) a user already
//! knows from `sse-ingest`, `sse-schema` and `sse-publisher`.

use std::ffi::OsString;

use clap::{Command, CommandFactory};

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
    /// All three, in the order their flags are looked up.
    pub const ALL: [Part; 3] = [Part::Ingest, Part::Schema, Part::Publisher];

    /// The service's binary name (its telemetry and log name when run alone).
    pub fn name(self) -> &'static str {
        match self {
            Part::Ingest => "sse-ingest",
            Part::Schema => "sse-schema",
            Part::Publisher => "sse-publisher",
        }
    }

    fn command(self) -> Command {
        match self {
            Part::Ingest => sse_ingest::Config::command(),
            Part::Schema => sse_schema::Config::command(),
            Part::Publisher => sse_publisher::Config::command(),
        }
    }
}

/// Flags that name a peer's address: inside one process the connector joins the services itself.
const JOINED: [(&str, &str); 2] = [
    ("schema", "ingest's schema address"),
    ("publisher", "schema's publisher address"),
];

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Run, with these arguments for ingest, schema and publisher (program name first).
    Run([Vec<OsString>; 3]),
    /// Print this text and exit successfully (`--help`, `--version`).
    Print(String),
}

/// A command line the connector cannot split; the message names the flag.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    /// No service knows the flag.
    #[error("unknown flag --{0} (see sse-connector --help)")]
    Unknown(String),
    /// The flag needs a value and none followed.
    #[error("flag --{0} needs a value")]
    MissingValue(String),
    /// The flag names a peer that the connector joins itself.
    #[error("--{0} ({1}) is set by the connector itself: the services run in one process")]
    Joined(String, &'static str),
    /// Only long flags are understood.
    #[error("unexpected argument {0:?}: the connector takes only --flags")]
    Positional(String),
}

/// Splits `args` (without the program name) into each service's arguments.
///
/// `--listen` is ingest's (the connector's front door: its status API and health);
/// `--schema-listen` and `--publisher-listen` are the other two's `--listen`. Every other flag
/// goes to each service that has it (the broker's credentials go to ingest and the publisher).
pub fn split(args: impl IntoIterator<Item = OsString>) -> Result<Parsed, ArgsError> {
    let commands = Part::ALL.map(Part::command);
    let mut out: [Vec<OsString>; 3] = Part::ALL.map(|p| vec![OsString::from(p.name())]);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let text = arg.to_string_lossy().into_owned();
        let Some(flag) = text.strip_prefix("--") else {
            if text == "-h" {
                return Ok(Parsed::Print(help(&commands)));
            }
            return Err(ArgsError::Positional(text));
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (flag, None),
        };
        match name {
            "help" => return Ok(Parsed::Print(help(&commands))),
            "version" => return Ok(Parsed::Print(format!("sse-connector {}\n", VERSION))),
            _ => {}
        }
        if let Some((_, what)) = JOINED.iter().find(|(n, _)| *n == name) {
            return Err(ArgsError::Joined(name.to_string(), what));
        }
        let targets: Vec<(usize, &str)> = match name {
            // One process, one health port: the front door's.
            "listen" | "health-listen" => vec![(0, name)],
            "schema-listen" => vec![(1, "listen")],
            "publisher-listen" => vec![(2, "listen")],
            _ => (0..3)
                .filter(|&i| long(&commands[i], name).is_some())
                .map(|i| (i, name))
                .collect(),
        };
        let Some(&(first, first_name)) = targets.first() else {
            return Err(ArgsError::Unknown(name.to_string()));
        };
        let takes_value =
            long(&commands[first], first_name).is_some_and(|a| a.get_action().takes_values());
        let value = match (takes_value, inline) {
            (true, Some(v)) => Some(OsString::from(v)),
            (true, None) => Some(
                args.next()
                    .ok_or_else(|| ArgsError::MissingValue(name.to_string()))?,
            ),
            (false, Some(v)) => Some(OsString::from(v)),
            (false, None) => None,
        };
        for (i, n) in targets {
            match (&value, takes_value) {
                (Some(v), true) => {
                    out[i].push(OsString::from(format!("--{n}")));
                    out[i].push(v.clone());
                }
                (Some(v), false) => {
                    let mut f = OsString::from(format!("--{n}="));
                    f.push(v);
                    out[i].push(f);
                }
                (None, _) => out[i].push(OsString::from(format!("--{n}"))),
            }
        }
    }
    Ok(Parsed::Run(out))
}

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn long<'a>(cmd: &'a Command, name: &str) -> Option<&'a clap::Arg> {
    cmd.get_arguments().find(|a| a.get_long() == Some(name))
}

fn help(commands: &[Command; 3]) -> String {
    let mut s = String::from(
        "sse-connector: ingest, schema and publisher in one process, joined inside it.\n\n\
         Usage: sse-connector [FLAGS]\n\n\
         It takes every flag and environment variable of the three services (below); a flag two \
         of them share (the broker's credentials) goes to both.\n\
         \x20 --listen <ADDR>            ingest's gRPC address: status API and health \
         [INGEST_LISTEN, default 127.0.0.1:50051]\n\
         \x20 --schema-listen <ADDR>     the schema service's gRPC address: registry API and \
         health [SCHEMA_LISTEN, default 127.0.0.1:50052]\n\
         \x20 --publisher-listen <ADDR>  the publisher's gRPC address: health \
         [PUBLISHER_LISTEN, default 127.0.0.1:50053]\n\
         \x20 --schema, --publisher      not taken: the connector joins its services itself\n\
         \x20 --checkpoint-store <STORE> default here: the publisher's broker (its URL, TLS and \
         credentials), so a restart resumes each stream; `none` turns it off [CHECKPOINT_STORE]\n",
    );
    for (part, cmd) in Part::ALL.iter().zip(commands) {
        let mut cmd = cmd.clone();
        s.push_str(&format!("\n--- flags of {} ---\n", part.name()));
        s.push_str(&cmd.render_long_help().to_string());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> [Vec<String>; 3] {
        match split(args.iter().map(OsString::from)).expect("splits") {
            Parsed::Run(v) => v.map(|a| {
                a.into_iter()
                    .skip(1)
                    .map(|s| s.to_string_lossy().into_owned())
                    .collect()
            }),
            Parsed::Print(_) => panic!("printed instead of running"),
        }
    }

    #[test]
    fn each_flag_goes_to_the_services_that_know_it() {
        let [i, s, p] = run(&[
            "--listen",
            "127.0.0.1:0",
            "--schema-listen=127.0.0.1:1",
            "--publisher-listen",
            "127.0.0.1:2",
            "--resources",
            "res",
            "--data-dir=/d",
            "--mqtt-url",
            "mqtt://b:1883",
            "--mqtt-username",
            "u",
            "--mqtt-clean-start",
        ]);
        assert_eq!(
            i,
            [
                "--listen",
                "127.0.0.1:0",
                "--resources",
                "res",
                "--mqtt-username",
                "u"
            ]
        );
        assert_eq!(s, ["--listen", "127.0.0.1:1", "--data-dir", "/d"]);
        assert_eq!(
            p,
            [
                "--listen",
                "127.0.0.1:2",
                "--mqtt-url",
                "mqtt://b:1883",
                "--mqtt-username",
                "u",
                "--mqtt-clean-start"
            ]
        );
    }

    #[test]
    fn every_service_flag_reaches_its_service() {
        // Every long flag of every service (but the joined ones) is handed to that service as given.
        for (k, part) in Part::ALL.iter().enumerate() {
            for arg in part.command().get_arguments() {
                let Some(name) = arg.get_long() else { continue };
                if ["listen", "schema", "publisher", "help", "version"].contains(&name) {
                    continue;
                }
                // One health port per process: the front door's.
                if name == "health-listen" && k > 0 {
                    continue;
                }
                let args = if arg.get_action().takes_values() {
                    vec![format!("--{name}"), "x".to_string()]
                } else {
                    vec![format!("--{name}")]
                };
                let out = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
                assert_eq!(out[k], args, "--{name} reaches {}", part.name());
            }
        }
    }

    #[test]
    fn bad_command_lines_name_the_problem() {
        let err = |a: &[&str]| split(a.iter().map(OsString::from)).expect_err("rejected");
        assert_eq!(err(&["--nope"]), ArgsError::Unknown("nope".into()));
        assert_eq!(
            err(&["--resources"]),
            ArgsError::MissingValue("resources".into())
        );
        assert!(matches!(err(&["--schema", "http://x"]), ArgsError::Joined(n, _) if n == "schema"));
        assert!(
            matches!(err(&["--publisher=http://x"]), ArgsError::Joined(n, _) if n == "publisher")
        );
        assert_eq!(err(&["extra"]), ArgsError::Positional("extra".into()));
    }

    #[test]
    fn help_lists_the_connector_flags_and_every_service() {
        let Ok(Parsed::Print(h)) = split([OsString::from("--help")]) else {
            panic!("help printed")
        };
        for s in [
            "--schema-listen",
            "--publisher-listen",
            "sse-ingest",
            "sse-schema",
            "sse-publisher",
            "--mqtt-url",
            "--resources",
            "--data-dir",
        ] {
            assert!(h.contains(s), "help mentions {s}");
        }
    }
}
