//! Helpers for the binary's end-to-end tests: a scratch directory, the binary, a running
//! server on a real port, and an HTTP call.
#![allow(dead_code)]

pub mod load;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_kembali");
pub const ADMIN: &str = "kb_test_admin_secret";

/// A fresh directory for one test's database, removed when dropped.
pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn scratch_dir() -> Scratch {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "kembali-cli-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    Scratch(dir)
}

pub fn db_url(dir: &std::path::Path) -> String {
    format!("sqlite://{}", dir.join("kembali.db").display())
}

pub fn kembali(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("KEMBALI_DATABASE_URL")
        .env_remove("KEMBALI_LISTEN")
        .env_remove("KEMBALI_ADMIN_KEY")
        .output()
        .expect("the binary runs")
}

/// A running `kembali serve`, stopped with SIGTERM when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    pub fn start(db: &str, extra: &[&str]) -> Server {
        let mut args = vec!["serve", "--db", db, "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        Server::spawn(&args, Duration::from_secs(30))
    }

    /// Runs the binary with `args` (which must make it serve, e.g. on `127.0.0.1:0`) and
    /// waits up to `ready_within` for its address.
    pub fn spawn(args: &[&str], ready_within: Duration) -> Server {
        let mut child = Command::new(BIN)
            .args(args)
            .env("KEMBALI_ADMIN_KEY", ADMIN)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the server starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        // Keep draining stderr after the address is found so the server never blocks on it.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(i) = line.find("listening on ") {
                    let addr = line[i + "listening on ".len()..].trim().to_string();
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = rx
            .recv_timeout(ready_within)
            .expect("the server logs its address");
        Server {
            child,
            base: format!("http://{addr}"),
        }
    }

    /// `GET path` with the admin key: the status and the JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        call(
            reqwest::Method::GET,
            &format!("{}{path}", self.base),
            ADMIN,
            None,
        )
        .await
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        self.child.wait().expect("the server exits")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub async fn call(
    method: reqwest::Method,
    url: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut req = client.request(method, url).bearer_auth(key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.expect("the server answers");
    let status = res.status().as_u16();
    let body = res.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

/// `kembali keys create` for a till of `store` on channel `store`; returns the secret.
pub fn create_till_key(db: &str, store: &str) -> String {
    let out = kembali(&[
        "keys",
        "create",
        "--db",
        db,
        "--role",
        "channel",
        "--channel",
        "store",
        "--store",
        store,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    stdout.lines().last().expect("a line").trim().to_string()
}
