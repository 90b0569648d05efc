//! Online servicing end to end: a node whose image trusts a key and holds
//! no app; the hello app (`examples/hello/package.toml`) built into a
//! package, signed, and installed over the API with `mote -n NAME package
//! install`. Checked from the host, through a port forward: nothing answers
//! on 8080 before, hello answers after the install; an upgrade taken by
//! name from a signed repository served over HTTPS by nginx (a new
//! greeting) answers with the new greeting; a tampered package (another
//! archive under a good signature) and one that needs a kernel module the
//! image does not carry are refused with nothing changed; after a
//! power-off and a boot on the same state
//! disk the upgraded package serves again; a removal closes the port and
//! the service is gone.
//!
//! Same prerequisites as `e2e_hello.rs` (QEMU, the kernel, `MOTE_BIN_DIR`
//! with release node binaries). Skipped only when `MOTE_SKIP_VM=1`.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

mod repo_server;
mod vm;
use vm::*;

fn run(st: &Path, args: &[&str]) -> Output {
    mote(st).args(args).output().expect("mote runs")
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds the hello package from `examples/hello` (with `greeting` in its
/// service's environment, and `version`) into `st/NAME`, signed with `key`.
fn hello_package(
    st: &Path,
    key: &Path,
    version: &str,
    greeting: Option<&str>,
    modules: &[&str],
    name: &str,
) -> String {
    let dir = st.join(format!("pkg-{version}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = std::fs::read_to_string(root().join("examples/hello/package.toml"))
        .unwrap()
        .replace(
            "version = \"0.1.0\"",
            &format!("version = \"{version}\"\nmodules = {modules:?}"),
        );
    if let Some(g) = greeting {
        text.push_str(&format!("environment = {{ GREETING = \"{g}\" }}\n"));
    }
    std::fs::write(dir.join("package.toml"), text).unwrap();
    let file = st.join(name);
    let file_s = file.to_str().unwrap().to_owned();
    ok(
        run(
            st,
            &["package", "build", dir.to_str().unwrap(), "-o", &file_s],
        ),
        "package build",
    );
    ok(
        run(
            st,
            &["package", "sign", &file_s, "--key", key.to_str().unwrap()],
        ),
        "package sign",
    );
    file_s
}

fn packages(st: &Path, name: &str) -> Vec<(String, String, bool)> {
    let list = remote(st, name, &["package", "list"]);
    list["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["version"].as_str().unwrap().to_owned(),
                p["active"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_signed_package_is_installed_upgraded_kept_across_a_reboot_and_removed() {
    if !prerequisites(&["mote-init", "moted", "mote-hello", "mote-web"]) {
        return;
    }
    let state = tempfile::tempdir().expect("temp dir");
    let st = state.path();
    let key = st.join("me.key");
    ok(
        run(st, &["key", "generate", "-o", key.to_str().unwrap()]),
        "key generate",
    );
    let manifest = st.join("pkg.toml");
    // examples/online.toml: management and nothing else, trusting
    // me.key.pub beside it.
    std::fs::copy(root().join("examples/online.toml"), &manifest).unwrap();
    let image = build_image(st, manifest.to_str().unwrap());
    let v1 = hello_package(st, &key, "0.1.0", None, &[], "hello-1.mpkg");
    let v2 = hello_package(st, &key, "0.2.0", Some("upgraded"), &[], "hello-2.mpkg");
    // Needs a kernel module the image does not carry (and one it does).
    let v3 = hello_package(
        st,
        &key,
        "0.3.0",
        None,
        &["virtio_net", "dummy"],
        "hello-3.mpkg",
    );

    let name = "e2e-packages";
    let http = free_port();
    let node = boot(st, &image, name, &[(http, 8080)]);
    assert!(
        get(http, "/", "3").is_err(),
        "8080 answered before any install"
    );
    assert!(packages(st, name).is_empty());

    // Installed: verified on the node, started, its port opened.
    let change = remote(st, name, &["package", "install", &v1]);
    assert_eq!(change["package"]["name"], "hello", "{change}");
    assert_eq!(change["package"]["trust"]["kind"], "signed", "{change}");
    let body = wait_for("hello to answer", Duration::from_secs(30), || {
        get(http, "/", "3").ok()
    });
    assert!(body.contains("hello from pkg"), "{body}");
    assert_eq!(packages(st, name), [("hello".into(), "0.1.0".into(), true)]);

    // Tampered (0.2.0's bytes under 0.1.0's signature: the archive changed
    // after signing): refused on the node, nothing changed.
    let tampered = st.join("tampered.mpkg");
    std::fs::copy(&v2, &tampered).unwrap();
    std::fs::copy(format!("{v1}.minisig"), st.join("tampered.mpkg.minisig")).unwrap();
    let refused = run(
        st,
        &["-n", name, "package", "upgrade", tampered.to_str().unwrap()],
    );
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "a tampered package was taken");
    assert!(
        said.contains("422") && said.contains("changed after signing"),
        "{said}"
    );
    assert_eq!(packages(st, name), [("hello".into(), "0.1.0".into(), true)]);
    assert!(get(http, "/", "3").unwrap().contains("hello from pkg"));

    // Needs a module this node's image does not carry: refused, nothing
    // changed.
    let refused = run(st, &["-n", name, "package", "upgrade", &v3]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "a package whose module is missing was taken"
    );
    assert!(
        said.contains("kernel module dummy") && said.contains("[kernel] drivers"),
        "{said}"
    );
    assert_eq!(packages(st, name), [("hello".into(), "0.1.0".into(), true)]);
    assert!(get(http, "/", "3").unwrap().contains("hello from pkg"));

    // Upgraded, by name from a repository served over HTTPS by nginx (its
    // index signed with the same key; the server's certificate from a test
    // CA that SSL_CERT_FILE names): the new version's service answers.
    let repo = st.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    for ext in ["", ".minisig"] {
        std::fs::copy(
            format!("{v2}{ext}"),
            repo.join(format!("hello-0.2.0.mpkg{ext}")),
        )
        .unwrap();
    }
    let repo_s = repo.to_str().unwrap();
    ok(
        run(
            st,
            &["package", "index", repo_s, "--key", key.to_str().unwrap()],
        ),
        "package index",
    );
    let server = repo_server::serve(&st.join("nginx"), &repo);
    let upgraded = mote(st)
        .args(["-n", name, "package", "upgrade", "hello", "--json"])
        .args(["--repository", &server.https])
        .env("SSL_CERT_FILE", &server.ca)
        .output()
        .expect("mote runs");
    let change: serde_json::Value =
        serde_json::from_str(&ok(upgraded, "upgrade over HTTPS")).expect("the change as JSON");
    assert_eq!(change["previous"], "0.1.0", "{change}");
    let body = wait_for("the upgrade to answer", Duration::from_secs(30), || {
        get(http, "/", "3").ok().filter(|b| b.contains("upgraded"))
    });
    assert!(body.contains("upgraded from pkg"), "{body}");

    // Power off, boot on the same state disk: the upgraded package is back.
    stop(st, name, node);
    let web = free_port();
    let node = boot(st, &image, name, &[(http, 8080), (web, 80)]);
    let body = wait_for("hello after the reboot", Duration::from_secs(30), || {
        get(http, "/", "3").ok()
    });
    assert!(body.contains("upgraded from pkg"), "{body}");
    assert_eq!(packages(st, name), [("hello".into(), "0.2.0".into(), true)]);

    // Removed: the port closes and the service is gone.
    remote(st, name, &["package", "remove", "hello"]);
    wait_for("8080 to close", Duration::from_secs(20), || {
        get(http, "/", "3").is_err().then_some(())
    });
    assert!(packages(st, name).is_empty());
    assert!(service_pid(st, name, "hello", false).is_none());
    let services = remote(st, name, &["service", "list"]);
    assert!(
        !services["services"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "hello"),
        "{services}"
    );

    // The web role is a package like any other: installed online from the
    // build's signed roles (BIN/roles, signed by mote's own key, which the
    // image trusts), its default page loads through the forward.
    assert!(get(web, "/", "3").is_err(), "80 answered before the role");
    let roles = std::path::PathBuf::from(std::env::var_os("MOTE_BIN_DIR").unwrap()).join("roles");
    assert!(
        roles.join("index.json").exists(),
        "{} holds no signed roles: run `cargo xtask test` (it signs them)",
        roles.display()
    );
    let change = remote(
        st,
        name,
        &[
            "package",
            "install",
            "web",
            "--repository",
            roles.to_str().unwrap(),
        ],
    );
    assert_eq!(change["package"]["trust"]["kind"], "signed", "{change}");
    let page = wait_for("the web role's page", Duration::from_secs(30), || {
        get(web, "/", "3").ok()
    });
    assert!(page.contains("mote web"), "{page}");
    stop(st, name, node);
}
