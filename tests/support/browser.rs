//! Headless Chromium over WebDriver for the browser tests: Debian's `chromium` and
//! `chromium-driver` (installed by `.ci/run`), `CHROMIUM` and `CHROMEDRIVER` override the paths.
//! chromedriver runs in a process group of its own, ended with the browser it started when the
//! value is dropped (a panicking test included). Without the programs the test fails, saying
//! how to install them: it never skips.

#![allow(dead_code)] // each test binary uses part of it

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

/// A WebDriver session with a headless Chromium of its own profile.
pub struct Headless {
    client: Option<Client>,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn program(var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.exists(),
        "{} is missing: install Debian's chromium and chromium-driver \
         (`apt-get install -y chromium chromium-driver`, as .ci/run does) or set {var}",
        path.display()
    );
    path
}

impl Headless {
    /// Starts chromedriver on a free loopback port and opens a session.
    pub async fn start() -> Headless {
        use std::os::unix::process::CommandExt;
        let driver_bin = program("CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = program("CHROMIUM", "/usr/bin/chromium");
        let port = crate::support::free_port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver_bin.display()));
        let mut me = Headless {
            client: None,
            driver,
            _profile: tempfile::tempdir().expect("a browser profile directory"),
        };
        let addr = format!("127.0.0.1:{port}");
        crate::support::eventually(
            Duration::from_secs(20),
            "chromedriver to listen",
            || async { crate::support::port_open(&addr).then_some(()) },
        )
        .await;
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-quic".into(),
            "--disable-sync".into(),
            "--window-size=1280,1000".into(),
            format!("--user-data-dir={}", me._profile.path().display()),
        ];
        let Value::Object(caps) = json!({"goog:chromeOptions": {"binary": chromium, "args": args}})
        else {
            unreachable!("an object literal")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://{addr}"))
            .await
            .unwrap_or_else(|e| panic!("no WebDriver session with headless Chromium: {e}"));
        me.client = Some(client);
        me
    }

    /// The session.
    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("an open session")
    }

    /// Evaluates `script` (a function body that `return`s) in the page.
    pub async fn eval(&self, script: &str) -> Value {
        self.client()
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("the script failed: {e}\n{script}"))
    }

    /// Evaluates `script` until `accept` takes its value, or panics after `timeout` with `what`
    /// and the last value seen. A script that fails (the page is still loading) counts as no
    /// value yet.
    pub async fn poll<T>(
        &self,
        what: &str,
        timeout: Duration,
        script: &str,
        mut accept: impl FnMut(&Value) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        let mut last = Value::Null;
        loop {
            last = self.client().execute(script, vec![]).await.unwrap_or(last);
            if let Some(t) = accept(&last) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "the page did not show {what} within {timeout:?}; it last showed {last}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the element `css` selects, as a user would.
    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
    }

    /// Replaces the text of the field `css` selects with `text`, typed key by key.
    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        el.clear()
            .await
            .unwrap_or_else(|e| panic!("clearing {css}: {e}"));
        el.send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("typing into {css}: {e}"));
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client()
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
    }

    /// Ends the session (the browser closes) before the driver is stopped.
    pub async fn close(mut self) {
        if let Some(c) = self.client.take() {
            let _ = c.close().await;
        }
    }
}

impl Drop for Headless {
    fn drop(&mut self) {
        // The whole group: chromedriver and the Chromium it started.
        let pgid = self.driver.id() as i32;
        // SAFETY: kill(2) on a process group this value started; no memory is involved.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}
