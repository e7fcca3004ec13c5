//! Tiny command-line parsing shared by the examples (`--name value`, `--name=value`, `--help`).
#![allow(dead_code, reason = "each example uses a subset")]

use std::collections::HashMap;
use std::process::exit;

/// Parsed `--name value` options.
pub struct Args {
    values: HashMap<String, String>,
    usage: &'static str,
}

impl Args {
    /// Parses the process arguments. `valued` lists options taking a value, `switches` the
    /// ones that don't. Prints `usage` and exits on `--help` or a mistake.
    pub fn parse(usage: &'static str, valued: &[&str], switches: &[&str]) -> Self {
        let mut values = HashMap::new();
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            if arg == "--help" || arg == "-h" {
                println!("{usage}");
                exit(0);
            }
            let Some(body) = arg.strip_prefix("--") else {
                fail(usage, &arg)
            };
            let (name, inline) = match body.split_once('=') {
                Some((name, value)) => (name.to_string(), Some(value.to_string())),
                None => (body.to_string(), None),
            };
            if switches.contains(&name.as_str()) {
                values.insert(name, "true".to_string());
            } else if valued.contains(&name.as_str()) {
                let value = inline
                    .or_else(|| args.next())
                    .unwrap_or_else(|| fail(usage, &arg));
                values.insert(name, value);
            } else {
                fail(usage, &arg);
            }
        }
        Self { values, usage }
    }

    /// The value of `--name`, or `default`.
    pub fn get(&self, name: &str, default: &str) -> String {
        self.values
            .get(name)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    }

    /// The value of `--name` parsed as a number, or `default`.
    pub fn number(&self, name: &str, default: usize) -> usize {
        match self.values.get(name) {
            Some(v) => v.parse().unwrap_or_else(|_| fail(self.usage, v)),
            None => default,
        }
    }

    /// Whether the switch `--name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }
}

fn fail(usage: &str, arg: &str) -> ! {
    eprintln!("unexpected argument {arg:?}\n\n{usage}");
    exit(2)
}
