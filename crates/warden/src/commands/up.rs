//! `warden up`: the one-command start. The gateway on the embedded SQLite default, with the
//! demo charter whose upstream is the npm filesystem reference server on a demo folder; a demo
//! session; the URL, the token and MCP client configuration printed. If the upstream server
//! is not connected once the gateway has waited for it, `warden up` prints its id, why, and
//! the last lines it wrote to stderr, and exits non-zero.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use crate::commands::serve::{self, GatewayFlags};

pub mod observer;

/// The demo charter template.
const CHARTER_TEMPLATE: &str = include_str!("up_charter.yaml");
/// The reference server's entry point when it was installed with npm in the current folder.
const LOCAL_FS_SERVER: &str = "node_modules/@modelcontextprotocol/server-filesystem/dist/index.js";

/// Arguments of `warden up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Gateway settings (`--data` defaults to `./warden-data`).
    #[command(flatten)]
    pub flags: GatewayFlags,
    /// The filesystem server command, as a JSON list (default: the npm package installed in
    /// `./node_modules`, else `npx -y @modelcontextprotocol/server-filesystem`); the demo
    /// folder is appended.
    #[arg(long)]
    pub fs_command: Option<String>,
    /// Session lifetime.
    #[arg(long, default_value = "8h")]
    pub ttl: String,
    /// Do not start the observer (`warden observe`) beside the gateway.
    #[arg(long)]
    pub no_observer: bool,
}

fn write_demo_folder(demo: &Path) -> std::io::Result<()> {
    for dir in ["notes", "docs", "secret"] {
        std::fs::create_dir_all(demo.join(dir))?;
    }
    let files = [
        (
            "README.md",
            "# Demo folder\n\nThe agent may read everything here, write `notes/`, and ask before writing anything else.\n",
        ),
        (
            "docs/plan.md",
            "# Plan\n\n1. Tidy the notes.\n2. Summarise the plan.\n",
        ),
        ("notes/todo.md", "- try warden up\n"),
        ("secret/credentials.txt", "api_key = demo-not-a-real-key\n"),
    ];
    for (name, text) in files {
        let path = demo.join(name);
        if !path.exists() {
            std::fs::write(path, text)?;
        }
    }
    Ok(())
}

fn fs_command(arg: Option<&str>, demo: &Path) -> Result<Vec<String>, String> {
    let mut cmd: Vec<String> = match arg {
        Some(json) => serde_json::from_str(json)
            .map_err(|e| format!("`--fs-command` must be a JSON list of strings: {e}"))?,
        None => {
            let local = std::env::current_dir()
                .map(|d| d.join(LOCAL_FS_SERVER))
                .ok()
                .filter(|p| p.exists());
            match local {
                Some(p) => vec!["node".to_owned(), p.display().to_string()],
                None => ["npx", "-y", "@modelcontextprotocol/server-filesystem"]
                    .map(str::to_owned)
                    .to_vec(),
            }
        }
    };
    if cmd.is_empty() {
        return Err("`--fs-command` is empty".to_owned());
    }
    cmd.push(demo.display().to_string());
    Ok(cmd)
}

/// The demo folder of the data directory `data`: beside it (`warden-data-demo` for
/// `warden-data`), never inside it, since no action may reach the data directory.
pub fn demo_folder(data: &Path) -> PathBuf {
    let mut name = data.file_name().unwrap_or_default().to_os_string();
    name.push("-demo");
    data.with_file_name(name)
}

/// Writes the demo folder (beside `data`) and the demo charter (in `data`); returns the
/// charter's path.
pub fn prepare(data: &Path, fs_command_arg: Option<&str>) -> Result<PathBuf, String> {
    // The owner's only (0700), like the gateway makes it: it holds the ledger and the keys.
    let tightened = warden_core::private::private_dir(data)
        .map_err(|e| format!("cannot create `{}` with mode 0700: {e}", data.display()))?;
    if let Some(t) = tightened {
        tracing::warn!(%t, "The data directory was open to group or others; it is now the owner's only.");
    }
    let data = std::fs::canonicalize(data).map_err(|e| format!("`{}`: {e}", data.display()))?;
    let demo = demo_folder(&data);
    write_demo_folder(&demo).map_err(|e| format!("cannot write the demo folder: {e}"))?;
    let command = fs_command(fs_command_arg, &demo)?;
    let command_yaml = serde_json::to_string(&command).map_err(|e| e.to_string())?;
    let text = CHARTER_TEMPLATE
        .replace("{{FS_COMMAND}}", &command_yaml)
        .replace("{{DEMO}}", &demo.display().to_string());
    let path = data.join("up-charter.yaml");
    std::fs::write(&path, text).map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
    Ok(path)
}

/// Runs `warden up`.
pub fn execute(args: &UpArgs) -> ExitCode {
    crate::init_tracing();
    let data = args
        .flags
        .data_dir
        .clone()
        .or_else(|| std::env::var("WARDEN_DATA").ok().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(warden_gateway::config::DEFAULT_DATA_DIR));
    let charter = match prepare(&data, args.fs_command.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(crate::EXIT_USAGE);
        }
    };
    let mut flags = args.flags.clone();
    flags.data_dir = Some(data.clone());
    let given = serve::ChartersGiven {
        charter: vec![charter.clone()],
        charters: None,
    };
    let config = match serve::resolve(&flags, &given) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let ttl = args.ttl.clone();
    let no_observer = args.no_observer;
    crate::runtime(async move {
        // Watched before the gateway starts: a stop asked for as soon as it answers is clean.
        let signals = warden_gateway::shutdown::StopSignals::watch();
        let gateway = match serve::start(config).await {
            Ok(g) => g,
            Err(code) => return code,
        };
        // The demo is its upstream: one that did not come up within the initial wait stops
        // `warden up` (where `warden serve` logs it and keeps retrying).
        let (connecting, down): (Vec<_>, Vec<_>) = gateway
            .state
            .upstreams
            .down()
            .into_iter()
            .partition(|d| d.connecting);
        for d in &connecting {
            eprintln!(
                "warning: upstream server `{}` is still connecting; its tools are unavailable until it does",
                d.id
            );
        }
        if !down.is_empty() {
            for d in &down {
                eprintln!(
                    "error: upstream server `{}` did not start: {}",
                    d.id, d.reason
                );
                if d.stderr.is_empty() {
                    eprintln!("  (it wrote nothing to stderr)");
                } else {
                    eprintln!("  its last stderr lines:");
                    for line in &d.stderr {
                        eprintln!("    {line}");
                    }
                }
            }
            eprintln!(
                "hint: check the server's command (`--fs-command`) and that it runs by itself"
            );
            gateway.shutdown().await;
            return ExitCode::FAILURE;
        }
        let client = crate::commands::session::OperatorClient {
            operator_url: Some(format!("http://{}", gateway.operator_addr)),
            token: gateway.bootstrap_operator_token.clone(),
            data_dir: Some(data.clone()),
        };
        let opened = client
            .call(
                reqwest::Method::POST,
                "/v1/sessions",
                Some(json!({ "agent": "demo-agent", "user": "demo-user", "task": "Try warden", "ttl": ttl })),
            )
            .await;
        let opened = match opened {
            Ok(v) => v,
            Err(e) => {
                eprintln!("error: cannot open the demo session: {e}");
                gateway.shutdown().await;
                return ExitCode::FAILURE;
            }
        };
        let token = opened
            .get("token")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        // A credential for the charter's second person, so approvals can be tried at once.
        let reviewer = client
            .call(
                reqwest::Method::POST,
                "/v1/operator-tokens",
                Some(json!({ "name": "warden-up-reviewer", "role": "approver", "principal": "reviewer" })),
            )
            .await
            .ok()
            .and_then(|v| v.get("token").and_then(serde_json::Value::as_str).map(str::to_owned));
        let observer = if no_observer {
            None
        } else {
            let operator_url = format!("http://{}", gateway.operator_addr);
            match observer::start(&client, &operator_url, &data, &charter).await {
                Ok(o) => Some(o),
                Err(e) => {
                    eprintln!("error: cannot start the observer: {e}");
                    gateway.shutdown().await;
                    return ExitCode::FAILURE;
                }
            }
        };
        let url = format!("http://{}/mcp", gateway.agent_addr);
        let http_config = json!({ "mcpServers": { "warden": { "type": "http", "url": url, "headers": { "Authorization": format!("Bearer {token}") } } } });
        let exe = std::env::current_exe().ok();
        let exe_shown = exe
            .as_deref()
            .map_or_else(|| "warden".to_owned(), |p| p.display().to_string());
        let stdio_config = json!({ "mcpServers": { "warden": { "command": exe_shown, "args": ["connect", "--url", url, "--token", token] } } });
        // Absolute, so the printed commands work from any folder.
        let data = std::fs::canonicalize(&data).unwrap_or(data);
        println!("warden is up.");
        println!();
        println!("  charter         {}", charter.display());
        println!("  demo folder     {}", demo_folder(&data).display());
        println!("  ledger          {}", data.join("ledger.db").display());
        println!("  MCP endpoint    {url}");
        println!("  session token   {token}");
        println!(
            "  operator plane  http://{}  (token in {})",
            gateway.operator_addr,
            data.join(warden_gateway::OPERATOR_TOKEN_FILE).display()
        );
        let path = std::env::var_os("PATH").unwrap_or_default();
        if let Some(note) = exe.as_deref().and_then(|exe| path_note(exe, &path)) {
            println!();
            println!("{note}");
        }
        if let Some(o) = &observer {
            println!(
                "  observer        pid {}  (credential in {}, data in {})",
                o.id().unwrap_or_default(),
                data.join(observer::TOKEN_FILE).display(),
                data.join(observer::DATA_SUBDIR).display()
            );
        }
        if let Some(reviewer) = &reviewer {
            println!();
            println!(
                "Actions that need approval wait for `reviewer` (the agent acts for `demo-user`):"
            );
            println!(
                "  warden approvals list --operator-url http://{} --token {reviewer}",
                gateway.operator_addr
            );
            println!(
                "  warden approvals approve ID --operator-url http://{} --token {reviewer}",
                gateway.operator_addr
            );
        }
        println!();
        println!("MCP client configuration (Streamable HTTP):");
        println!("{http_config:#}");
        println!();
        println!("MCP client configuration (stdio, through `warden connect`):");
        println!("{stdio_config:#}");
        println!();
        println!(
            "Verify the ledger any time with: warden audit verify --data {}",
            data.display()
        );
        println!("Press Ctrl-C to stop.");
        gateway.run_until_signal(signals).await;
        if let Some(o) = observer {
            o.stop().await;
        }
        ExitCode::SUCCESS
    })
}

/// A note when the `warden` that the printed commands name is not this binary: there is none on
/// `path` (the `PATH`; run through cargo, not installed), or another one comes first.
fn path_note(exe: &Path, path: &std::ffi::OsStr) -> Option<String> {
    let found = std::env::split_paths(path)
        .map(|dir| dir.join("warden"))
        .find(|candidate| candidate.is_file());
    match found {
        None => Some(format!(
            "`warden` is not on the PATH, so the commands below need it installed \
             (`cargo install --locked --path crates/warden`, see the README) or run as {}",
            exe.display()
        )),
        Some(found) if std::fs::canonicalize(&found).ok() != std::fs::canonicalize(exe).ok() => {
            Some(format!(
                "note: the `warden` on the PATH is {}, not this binary ({}); the commands below \
                 run that one",
                found.display(),
                exe.display()
            ))
        }
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::path_note;
    use std::ffi::OsString;

    #[test]
    fn path_note_says_when_the_printed_warden_is_not_this_binary() {
        let dir = tempfile::tempdir().unwrap();
        let (this, other) = (dir.path().join("this"), dir.path().join("other"));
        for d in [&this, &other] {
            std::fs::create_dir(d).unwrap();
            std::fs::write(d.join("warden"), "").unwrap();
        }
        let exe = this.join("warden");
        let path = |dirs: &[&std::path::Path]| -> OsString { std::env::join_paths(dirs).unwrap() };

        let none = path_note(&exe, &path(&[dir.path()])).unwrap();
        assert!(none.contains("is not on the PATH"), "{none}");
        assert!(
            none.contains("cargo install --locked --path crates/warden"),
            "{none}"
        );
        assert_eq!(path_note(&exe, &path(&[dir.path(), &this, &other])), None);
        let shadowed = path_note(&exe, &path(&[&other, &this])).unwrap();
        assert!(
            shadowed.contains(&other.join("warden").display().to_string()),
            "{shadowed}"
        );
    }
}
