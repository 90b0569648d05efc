//! `mote-hello`: the small static HTTP service of the hello example node.
//!
//! It exists so the example and the end-to-end test have a real process to
//! copy in with `[[files]]`, supervise, reach through the firewall and kill:
//!
//! - `GET /` answers `hello from HOSTNAME` (`GREETING from HOSTNAME` when the
//!   environment sets `GREETING`, so a test can see a service's environment);
//!   `GET /pid` answers the process id;
//! - `GET /kill` makes the process SIGKILL itself (to show it gets restarted);
//! - `--port N` may repeat: every port is served, declared in the firewall or not;
//! - `--mark PATH` writes a first-boot marker file and exits (for `[[first_boot]]`).
//!
//! Only std and libc, one thread per connection: small and static by design.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

const USAGE: &str = "usage: mote-hello [--port N]... | --mark PATH";

fn main() {
    let mut ports = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--port", Some(p)) => match p.parse::<u16>() {
                Ok(p) => ports.push(p),
                Err(_) => fail(&format!("--port {p}: not a port number (1-65535)")),
            },
            ("--mark", Some(path)) => {
                let text = format!(
                    "first boot of {} at pid {}\n",
                    hostname(),
                    std::process::id()
                );
                if let Err(e) = std::fs::write(&path, text) {
                    fail(&format!("--mark {path}: {e}"));
                }
                println!("marked first boot in {path}");
                return;
            }
            _ => fail(USAGE),
        }
    }
    if ports.is_empty() {
        ports.push(8080);
    }
    let mut handles = Vec::new();
    for port in ports {
        let listener = match TcpListener::bind(("::", port))
            .or_else(|_| TcpListener::bind(("0.0.0.0", port)))
        {
            Ok(l) => l,
            Err(e) => fail(&format!("cannot listen on port {port}: {e}")),
        };
        println!("listening on port {port}");
        handles.push(std::thread::spawn(move || serve(listener)));
    }
    for handle in handles {
        let _ = handle.join();
    }
}

fn fail(message: &str) -> ! {
    eprintln!("mote-hello: {message}");
    std::process::exit(2)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

fn serve(listener: TcpListener) {
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let _ = handle(stream);
        });
    }
}

fn handle(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // Drain the headers; the body of a GET is empty.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = match path {
        "/" => (
            "200 OK",
            format!(
                "{} from {}\n",
                std::env::var("GREETING").unwrap_or_else(|_| "hello".into()),
                hostname()
            ),
        ),
        "/pid" => ("200 OK", format!("{}\n", std::process::id())),
        "/kill" => {
            // SAFETY: kill with our own pid and a constant signal.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
            ("500 Internal Server Error", String::new())
        }
        _ => ("404 Not Found", "not found\n".to_owned()),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}
