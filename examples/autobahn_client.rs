//! The Autobahn|TestSuite client driver: runs every case the fuzzing server offers, echoing
//! each text and binary message with the same type, then asks for the report.
//!
//! `cargo run --release --example autobahn_client -- --url ws://127.0.0.1:9001`

#[path = "common/args.rs"]
mod args;

use std::process::ExitCode;
use std::time::Instant;
use wsproto::drivers::blocking::WebSocket;
use wsproto::drivers::{Error, Message};
use wsproto::{ClientRequest, Config, Event};

const USAGE: &str = "autobahn_client: the Autobahn|TestSuite client driver (blocking)

usage: autobahn_client [--url URL] [--agent NAME] [--deflate] [--verbose]

  --url URL      the fuzzing server (default $AUTOBAHN_URL, else ws://127.0.0.1:9001)
  --agent NAME   the name in the report (default $AUTOBAHN_AGENT, else wsproto)

An empty option or variable counts as not given.
  --deflate      offer permessage-deflate (RFC 7692), for groups 12 and 13
  --verbose      print how each case's connection ended

Runs /getCaseCount, then /runCase?case=N&agent=NAME for each case, echoing every message,
then /updateReports?agent=NAME.";

/// The largest Autobahn message is 16 MiB (case 9.1.6); keepalive pings would add frames the
/// fuzzing server does not expect.
fn config(deflate: bool) -> Config {
    let mut config = Config::default();
    config.max_message_size = (16 << 20) + (64 << 10);
    config.keepalive_interval = None;
    if deflate {
        config.deflate = Some(wsproto::DeflateConfig::default());
    }
    config
}

/// An owned copy of what to send back.
enum Echo {
    Text(String),
    Binary(Vec<u8>),
    Nothing,
}

fn main() -> ExitCode {
    let args = args::Args::parse(USAGE, &["url", "agent"], &["verbose", "deflate"]);
    let setting = |option: &str, variable: &str, default: &str| {
        first_non_empty(
            [Some(args.get(option, "")), std::env::var(variable).ok()],
            default,
        )
    };
    let url = setting("url", "AUTOBAHN_URL", "ws://127.0.0.1:9001");
    let agent = setting("agent", "AUTOBAHN_AGENT", "wsproto");
    let base = url.trim_end_matches('/');
    match run(base, &agent, args.flag("verbose"), args.flag("deflate")) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("autobahn_client: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The first of `candidates` that is given and not empty, else `default`: `AUTOBAHN_AGENT=`
/// in a script means "not set", not an agent with an empty name (which would make the case
/// URLs end in `agent=`).
fn first_non_empty(candidates: [Option<String>; 2], default: &str) -> String {
    candidates
        .into_iter()
        .flatten()
        .find(|value| !value.is_empty())
        .unwrap_or_else(|| default.to_string())
}

fn run(
    base: &str,
    agent: &str,
    verbose: bool,
    deflate: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    let count = case_count(base)?;
    println!("autobahn_client: {count} cases from {base}, agent {agent}");
    let mut ended_with_error = 0;
    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        if let Err(e) = echo(&url, deflate) {
            // Many cases send invalid input on purpose: failing the connection is the point.
            ended_with_error += 1;
            if verbose {
                println!("case #{case}: {e}");
            }
        } else if verbose {
            println!("case #{case}: closed");
        }
    }
    let mut ws = WebSocket::connect(&format!("{base}/updateReports?agent={agent}"))?;
    while ws.recv()?.is_some() {}
    println!(
        "autobahn_client: ran {count} cases in {:.1} s ({ended_with_error} ended with an error, \
         as the invalid-input cases should)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `/getCaseCount` answers with one text message holding the number.
fn case_count(base: &str) -> Result<u32, Box<dyn std::error::Error>> {
    let mut ws = WebSocket::connect(&format!("{base}/getCaseCount"))?;
    let mut count = None;
    while let Some(message) = ws.recv()? {
        if let Message::Text(text) = message {
            count = Some(text.trim().parse()?);
        }
    }
    count.ok_or_else(|| "no case count received".into())
}

/// Echoes every message until the connection closes.
fn echo(url: &str, deflate: bool) -> Result<(), Error> {
    let mut ws = WebSocket::connect_with(ClientRequest::new(url)?, config(deflate))?;
    loop {
        let echo = ws.recv_with(|event| match event {
            Event::Text(text) => Echo::Text(text.to_owned()),
            Event::Binary(data) => Echo::Binary(data.to_vec()),
            _ => Echo::Nothing,
        })?;
        match echo {
            None => return Ok(()),
            Some(Echo::Text(text)) => ws.send_text(&text)?,
            Some(Echo::Binary(data)) => ws.send_binary(&data)?,
            Some(Echo::Nothing) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::first_non_empty;

    #[test]
    fn empty_option_or_variable_falls_back() {
        let given = |value: &str| Some(value.to_string());
        // No option, AUTOBAHN_AGENT set but empty: the default, not "".
        assert_eq!(
            first_non_empty([given(""), given("")], "wsproto"),
            "wsproto"
        );
        assert_eq!(first_non_empty([given(""), None], "wsproto"), "wsproto");
        assert_eq!(first_non_empty([given(""), given("ci")], "wsproto"), "ci");
        assert_eq!(
            first_non_empty([given("cli"), given("ci")], "wsproto"),
            "cli"
        );
    }
}
