#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use super::*;
use clap::{Arg, ArgAction, Command, value_parser};

fn cmd() -> Command {
    Command::new("t")
        .arg(Arg::new("config").long("config"))
        .arg(
            Arg::new("node_name")
                .long("node-name")
                .env("SKIFF_TEST_UNSET_NODE_NAME"),
        )
        .arg(
            Arg::new("count")
                .long("startup-concurrency")
                .value_parser(value_parser!(u16).range(1..=256)),
        )
        .arg(
            Arg::new("mode")
                .long("mode")
                .value_parser(["auto", "vxlan"]),
        )
        .arg(
            Arg::new("bins")
                .long("cni-bin-dir")
                .action(ArgAction::Append)
                .value_delimiter(':'),
        )
        // PATH is always set: the file's value for this flag must lose to the environment.
        .arg(Arg::new("from_env").long("from-env").env("PATH"))
        .arg(
            Arg::new("check")
                .long("check-join")
                .action(ArgAction::SetTrue),
        )
}

fn args(list: &[&str]) -> Vec<OsString> {
    std::iter::once("t")
        .chain(list.iter().copied())
        .map(OsString::from)
        .collect()
}

fn merged(cli: &[&str], yaml: &str) -> Result<Vec<String>, ConfigFileError> {
    let a = args(cli);
    let extra = settings_args(&cmd(), &a, Path::new("/etc/skiff/agent.yaml"), yaml)?;
    Ok(extra
        .into_iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect())
}

#[test]
fn file_settings_become_flags() {
    let got = merged(
        &[],
        "node-name: vm\nstartup-concurrency: 8\ncni-bin-dir: [/a, /b]\ncheck-join: true\n",
    )
    .unwrap();
    // serde_json keeps the file's order or sorts, depending on the crate's features: compare sorted.
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "--check-join",
            "--cni-bin-dir=/a",
            "--cni-bin-dir=/b",
            "--node-name=vm",
            "--startup-concurrency=8",
        ]
    );
    let m = cmd().try_get_matches_from(args(&[]).into_iter().chain(got.iter().map(OsString::from)));
    let m = m.unwrap();
    assert_eq!(m.get_one::<u16>("count"), Some(&8));
    let bins: Vec<&String> = m.get_many("bins").unwrap().collect();
    assert_eq!(bins, ["/a", "/b"]);
}

#[test]
fn command_line_and_env_win_over_the_file() {
    let got = merged(
        &["--node-name", "cli", "--startup-concurrency=2"],
        "node-name: file\nstartup-concurrency: 8\nfrom-env: file\nmode: vxlan\n",
    )
    .unwrap();
    assert_eq!(got, ["--mode=vxlan"]);
}

#[test]
fn false_and_empty_files_add_nothing() {
    assert!(merged(&[], "check-join: false\n").unwrap().is_empty());
    assert!(merged(&[], "").unwrap().is_empty());
    assert!(merged(&[], "# only a comment\n").unwrap().is_empty());
}

#[test]
fn unknown_keys_are_refused() {
    let e = merged(&[], "nod-name: vm\n").unwrap_err().to_string();
    assert_eq!(e, "/etc/skiff/agent.yaml: unknown setting `nod-name`");
    let e = merged(&[], "config: /x\n").unwrap_err().to_string();
    assert_eq!(e, "/etc/skiff/agent.yaml: unknown setting `config`");
    let e = merged(&[], "help: true\n").unwrap_err().to_string();
    assert_eq!(e, "/etc/skiff/agent.yaml: unknown setting `help`");
}

#[test]
fn wrong_types_name_the_file_and_key() {
    let e = merged(&[], "startup-concurrency: x\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("/etc/skiff/agent.yaml: `startup-concurrency`: invalid value 'x': "),
        "{e}"
    );
    let e = merged(&[], "startup-concurrency: 0\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`startup-concurrency`: invalid value '0'"),
        "{e}"
    );
    let e = merged(&[], "mode: fast\n").unwrap_err().to_string();
    assert!(e.contains("`mode`: invalid value 'fast'"), "{e}");
    assert!(e.contains("auto"), "{e}");
    let e = merged(&[], "node-name: [a, b]\n").unwrap_err().to_string();
    assert!(e.contains("`node-name`: expected a single value"), "{e}");
    let e = merged(&[], "node-name: {a: b}\n").unwrap_err().to_string();
    assert!(
        e.contains("`node-name`: expected a value, found a mapping"),
        "{e}"
    );
    let e = merged(&[], "check-join: 3\n").unwrap_err().to_string();
    assert!(e.contains("`check-join`: expected true or false"), "{e}");
}

#[test]
fn a_bad_value_is_refused_even_when_overridden() {
    // The file is wrong whatever else is set: say so rather than let it fail later.
    let e = merged(&["--startup-concurrency=3"], "startup-concurrency: x\n").unwrap_err();
    assert!(e.to_string().contains("`startup-concurrency`"));
}

#[test]
fn malformed_yaml_names_file_and_line() {
    let e = merged(&[], "node-name: vm\nstartup-concurrency: [1\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("/etc/skiff/agent.yaml: malformed YAML: "),
        "{e}"
    );
    assert!(e.contains("line"), "{e}");
    let e = merged(&[], "- a\n- b\n").unwrap_err().to_string();
    assert!(e.contains("expected a mapping"), "{e}");
}

#[test]
fn config_path_sources() {
    let default = Path::new("/nonexistent/skiff.yaml");
    assert_eq!(
        config_path(&args(&["--config", "/x.yaml"]), default),
        Some("/x.yaml".into())
    );
    assert_eq!(
        config_path(&args(&["--config=/y.yaml"]), default),
        Some("/y.yaml".into())
    );
    assert_eq!(
        config_path(&args(&["--", "--config=/y.yaml"]), default),
        None.or_else(|| std::env::var_os(CONFIG_ENV).map(PathBuf::from))
    );
}

#[test]
fn explicit_missing_file_is_an_error() {
    let e = merge_args(
        &cmd(),
        args(&["--config", "/nonexistent/agent.yaml"]),
        Path::new("/nonexistent/d"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("/nonexistent/agent.yaml: "), "{e}");
}
