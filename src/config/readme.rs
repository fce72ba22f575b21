//! The README's tables of settings against the command line itself: every
//! setting that is an environment variable has a row, with the flag and the
//! default clap gives it, and every row is a setting, so the two cannot
//! drift.

use std::collections::BTreeMap;

use clap::CommandFactory;

use super::Cli;

/// A row of a README table of settings.
struct Row {
    flag: Option<String>,
    default: String,
}

/// The rows of the tables under `## Configuration` (variable, flag,
/// default, meaning) and of Auth0's (variable, default, meaning), by
/// variable (`IDENTITY_MODE` is in both).
fn readme_rows(readme: &str) -> BTreeMap<String, Vec<Row>> {
    let mut rows = BTreeMap::new();
    let mut columns = 0;
    for line in readme.lines() {
        if !line.starts_with('|') {
            columns = 0;
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        if columns == 0 {
            columns = match cells.as_slice() {
                ["variable", "flag", "default", "meaning"] => 4,
                ["variable", "default", "meaning"] => 3,
                _ => usize::MAX,
            };
            continue;
        }
        let Some(name) = cells[0]
            .strip_prefix('`')
            .and_then(|c| c.strip_suffix('`'))
            .filter(|_| columns <= 4 && cells.len() == columns)
        else {
            continue;
        };
        let (flag, default) = if columns == 4 {
            let flag = cells[1].trim_matches('`');
            ((!flag.is_empty()).then(|| flag.to_owned()), cells[2])
        } else {
            (None, cells[1])
        };
        rows.entry(name.to_owned())
            .or_insert_with(Vec::new)
            .push(Row {
                flag,
                default: default.to_owned(),
            });
    }
    rows
}

#[test]
fn the_readme_lists_every_setting_with_its_flag_and_default() {
    let mut rows = readme_rows(include_str!("../../README.md"));
    let command = Cli::command();
    let mut wrong = Vec::new();
    for arg in command.get_arguments() {
        let Some(env) = arg.get_env().and_then(|e| e.to_str()) else {
            continue;
        };
        let Some(found) = rows.remove(env) else {
            wrong.push(format!("{env}: no row in the README"));
            continue;
        };
        let flag = arg.get_long().map(|l| format!("--{l}"));
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let said = match defaults.as_slice() {
            [] => None,
            [empty] if empty.is_empty() => Some("empty".to_owned()),
            values => Some(format!("`{}`", values.join(","))),
        };
        for row in found {
            if row.flag.is_some() && row.flag != flag {
                wrong.push(format!(
                    "{env}: the README says {:?}, clap {flag:?}",
                    row.flag
                ));
            }
            if let Some(said) = &said
                && !row.default.starts_with(said.as_str())
            {
                wrong.push(format!(
                    "{env}: the README's default is {:?}, clap's {said}",
                    row.default
                ));
            }
        }
    }
    // What the process reads itself, not through clap: they have no flag.
    rows.retain(|name, _| !(name == "RUST_LOG" || name.starts_with("OTEL_")));
    for name in rows.keys() {
        wrong.push(format!("{name}: in the README, but no setting reads it"));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
