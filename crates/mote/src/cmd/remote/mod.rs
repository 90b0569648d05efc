//! The remote verbs (`mote -n NAME <verb>`), one module per API surface.
//! Each verb connects with the node's pin (see [`crate::remote`]), prints a
//! human table or, with `--json`, the API's own JSON.

pub mod audit;
pub mod events;
pub mod exec;
pub mod files;
pub mod firewall;
pub mod net;
pub mod package;
pub mod perf;
pub mod power;
pub mod ps;
pub mod role;
pub mod service;
pub mod settings;
pub mod system;

use crate::remote::{self, Session};

/// Every verb that talks to a node.
#[derive(clap::Subcommand)]
pub enum Verb {
    /// Log in to the node (MOTE_PASSWORD or a prompt) and cache the token.
    Login(LoginArgs),
    /// End this session: the node revokes the cached token, and it is
    /// forgotten here.
    Logout(LoginArgs),
    /// The node's hostname, kernel, uptime, boot timeline and packages.
    System(system::Args),
    /// List, start, stop or restart services, or show a service's logs.
    Service(service::Args),
    /// Query (or follow) the node's events.
    Events(events::Args),
    /// Show the network, or configure an interface.
    Net(net::Args),
    /// List, add, remove, enable or disable firewall rules.
    Firewall(firewall::Args),
    /// List the node's processes.
    Ps(ps::Args),
    /// Send a signal to a process on the node.
    Kill(ps::KillArgs),
    /// CPU, memory, disks, network and per-service use.
    Perf(perf::Args),
    /// List, download or upload files on the node.
    Files(files::Args),
    /// Run a program on the node, streaming its output; exits with its code.
    Exec(exec::Args),
    /// Reboot or power off the node.
    Power(power::Args),
    /// Read, change, revert the node's settings, or show their history.
    Settings(settings::Args),
    /// The audit log: every change made through the API.
    Audit(audit::Args),
    /// A role's own verbs (`mote -n NAME web site list`), parsed with the
    /// role's command line.
    #[command(skip)]
    Role(role::Call),
    /// `mote -n NAME package …`, parsed with `mote package`.
    #[command(skip)]
    Package(package::Remote),
}

/// `mote -n NAME login`
#[derive(clap::Args)]
pub struct LoginArgs {
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `verb` against node `node`; returns the exit code to end with.
pub fn run(node: Option<&str>, verb: Verb) -> anyhow::Result<i32> {
    let name = remote::node_name(node)?.to_string();
    remote::block_on(async move {
        if let Verb::Login(a) = &verb {
            remote::connect(&name, true).await?;
            if a.json {
                crate::output::json(&serde_json::json!({ "node": name, "logged_in": true }))?;
            } else {
                println!("logged in to {name}; the token is cached");
            }
            return Ok(0);
        }
        if let Verb::Logout(a) = &verb {
            // Without a cached token there is no session to end (and no
            // reason to log in).
            let ended = if remote::has_token(&name)? {
                let mut s = remote::connect(&name, false).await?;
                match s.client.logout().await {
                    Ok(_) => true,
                    // The node had forgotten it already.
                    Err(mote_api::client::ClientError::Status { status: 401, .. }) => false,
                    Err(e) => return Err(remote::explain(&name, None, e)),
                }
            } else {
                false
            };
            remote::forget_token(&name)?;
            if a.json {
                crate::output::json(&serde_json::json!({ "node": name, "logged_out": ended }))?;
            } else if ended {
                println!("logged out of {name}; its token no longer works");
            } else {
                println!("no live session with {name}; nothing cached now");
            }
            return Ok(0);
        }
        let mut s = remote::connect(&name, false).await?;
        match dispatch(&s, &verb).await {
            // A cached token the node forgot (it restarted): log in again.
            Err(e) if s.cached && remote::is_unauthorized(&e) => {
                remote::login(&mut s).await?;
                dispatch(&s, &verb).await
            }
            r => r,
        }
    })?
}

async fn dispatch(s: &Session, verb: &Verb) -> anyhow::Result<i32> {
    match verb {
        Verb::Login(_) | Verb::Logout(_) => Ok(0),
        Verb::System(a) => system::run(s, a).await.map(|()| 0),
        Verb::Service(a) => service::run(s, a).await.map(|()| 0),
        Verb::Events(a) => events::run(s, a).await.map(|()| 0),
        Verb::Net(a) => net::run(s, a).await.map(|()| 0),
        Verb::Firewall(a) => firewall::run(s, a).await.map(|()| 0),
        Verb::Ps(a) => ps::run(s, a).await.map(|()| 0),
        Verb::Kill(a) => ps::kill(s, a).await.map(|()| 0),
        Verb::Perf(a) => perf::run(s, a).await.map(|()| 0),
        Verb::Files(a) => files::run(s, a).await.map(|()| 0),
        Verb::Exec(a) => exec::run(s, a).await,
        Verb::Power(a) => power::run(s, a).await.map(|()| 0),
        Verb::Settings(a) => settings::run(s, a).await.map(|()| 0),
        Verb::Audit(a) => audit::run(s, a).await.map(|()| 0),
        Verb::Role(c) => role::run(s, c).await.map(|()| 0),
        Verb::Package(r) => package::run(s, r).await.map(|()| 0),
    }
}

/// Prints a settings change's outcome.
pub fn changed(
    s: &Session,
    json: bool,
    what: &str,
    v: &mote_api::api::VersionedSettings,
) -> anyhow::Result<()> {
    if json {
        return crate::output::json(v);
    }
    println!("{}: {what}; settings version {}", s.name, v.version);
    Ok(())
}
