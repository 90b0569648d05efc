//! `mote -n NAME system`

use crate::output;
use crate::remote::{Explain, Session};

/// Show what the node is.
#[derive(clap::Args)]
pub struct Args {
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(s: &Session, a: &Args) -> anyhow::Result<()> {
    let i = s.client.system().await.explain(&s.name)?;
    if a.json {
        return output::json(&i);
    }
    let timeline: Vec<String> = i
        .boot_timeline
        .iter()
        .map(|(p, ms)| format!("{p} {ms} ms"))
        .collect();
    output::table(
        &["", ""],
        &[
            vec!["hostname".into(), i.hostname.clone()],
            vec!["kernel".into(), i.kernel.clone()],
            vec!["uptime".into(), output::duration_ms(i.uptime_ms)],
            vec![
                "ready".into(),
                i.ready_ms
                    .map_or("not yet".into(), |ms| format!("{ms} ms after the kernel")),
            ],
            vec![
                "init started".into(),
                format!("{} ms after the kernel", i.init_ms),
            ],
            vec!["boot".into(), timeline.join(", ")],
            vec!["packages".into(), i.packages.join(" ")],
            vec![
                "unsigned packages".into(),
                if i.allow_unsigned {
                    "ALLOWED (allow_unsigned: development only)".into()
                } else {
                    "refused".into()
                },
            ],
            vec!["settings".into(), i.settings.to_string()],
        ],
    );
    // Who else is logged in (never their tokens); `*` marks this session.
    if let Ok(list) = s.client.sessions().await {
        println!();
        let rows: Vec<Vec<String>> = list
            .sessions
            .iter()
            .map(|x| {
                vec![
                    format!("{}{}", x.id, if x.current { " *" } else { "" }),
                    x.user.clone(),
                    x.source.clone(),
                    output::time_ms(x.issued_ms),
                    output::time_ms(x.expires_ms),
                ]
            })
            .collect();
        output::table(&["SESSION", "USER", "FROM", "ISSUED", "EXPIRES"], &rows);
    }
    Ok(())
}
