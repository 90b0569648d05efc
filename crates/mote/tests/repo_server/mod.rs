//! A package repository served over HTTP and HTTPS by nginx on loopback
//! (a real web server, as users serve repositories), with a certificate
//! for 127.0.0.1 from a test CA made here.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// nginx serving one directory; stopped when dropped.
pub struct RepoServer {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    #[allow(dead_code)] // not every test that serves a repository uses HTTP
    pub http: String,
    /// `https://127.0.0.1:PORT`.
    pub https: String,
    /// The test CA's certificate (PEM), for `SSL_CERT_FILE`.
    pub ca: PathBuf,
}

impl Drop for RepoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn nginx() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("nginx serves the test repository: apt-get install nginx-light")
}

/// A CA and a certificate for 127.0.0.1 it signed: (CA PEM, cert PEM,
/// key PEM).
fn certificates() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.subject_alt_names = vec![SanType::IpAddress([127, 0, 0, 1].into())];
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

/// Serves `root` from nginx with its config, logs and certificates in
/// `dir`.
pub fn serve(dir: &Path, root: &Path) -> RepoServer {
    std::fs::create_dir_all(dir).unwrap();
    let (ca, cert, key) = certificates();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca).unwrap();
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
    let (http, https) = (free_port(), free_port());
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "user root;\ndaemon off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log;\nevents {{ worker_connections 64; }}\nhttp {{\n\
             default_type application/octet-stream;\n access_log {d}/access.log;\n\
             client_body_temp_path {d};\n proxy_temp_path {d};\n fastcgi_temp_path {d};\n\
             uwsgi_temp_path {d};\n scgi_temp_path {d};\n\
             server {{ listen 127.0.0.1:{http}; root {root}; }}\n\
             server {{ listen 127.0.0.1:{https} ssl; root {root};\n\
             ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem; }}\n}}\n",
            d = dir.display(),
            root = root.display()
        ),
    )
    .unwrap();
    let child = Command::new(nginx())
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(dir)
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx starts");
    let server = RepoServer {
        child,
        http: format!("http://127.0.0.1:{http}"),
        https: format!("https://127.0.0.1:{https}"),
        ca: ca_path,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    for port in [http, https] {
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    server
}
