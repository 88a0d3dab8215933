//! A small W3C WebDriver client for the browser tests: chromedriver drives
//! Debian's headless Chromium (`.ci/run` installs both). Only what the
//! tests use: open pages, find and click elements, type, run a script, read
//! the page, take screenshots.

use base64::Engine;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile,
    /// `width` x `height` pixels.
    pub fn start(width: u32, height: u32) -> Browser {
        Browser::start_with(width, height, true)
    }

    /// Like [`Browser::start`], with JavaScript on or off.
    pub fn start_with(width: u32, height: u32, javascript: bool) -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed (.ci/run installs chromium-driver)");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while ureq::get(&format!("{base}/status")).call().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-extensions",
                    format!("--user-data-dir={}", profile.path().display()),
                    format!("--window-size={width},{height}"),
                    "--hide-scrollbars", "--force-device-scale-factor=1",
                    format!("--blink-settings=scriptEnabled={javascript}"),
                ]
            }
        }}});
        let mut b = Browser {
            driver,
            base,
            session: String::new(),
            _profile: profile,
        };
        let v = b.call("POST", "/session", Some(caps));
        b.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        b
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let req = ureq::request(method, &url)
            .timeout(Duration::from_secs(60))
            .set("Content-Type", "application/json");
        let resp = match body {
            Some(b) => req.send_string(&b.to_string()),
            None if method == "POST" => req.send_string("{}"),
            None => req.call(),
        };
        let resp = match resp {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                panic!(
                    "WebDriver {method} {path}: {code} {}",
                    r.into_string().unwrap_or_default()
                )
            }
            Err(e) => panic!("WebDriver {method} {path}: {e}"),
        };
        let v: Value = serde_json::from_reader(resp.into_reader()).unwrap();
        v["value"].clone()
    }

    /// The current tab's handle.
    pub fn tab(&self) -> String {
        self.call("GET", "/window", None)
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Opens a new tab and switches to it; returns its handle.
    pub fn new_tab(&self) -> String {
        let v = self.call("POST", "/window/new", Some(json!({"type": "tab"})));
        let handle = v["handle"].as_str().unwrap().to_string();
        self.switch_to(&handle);
        handle
    }

    pub fn switch_to(&self, handle: &str) {
        self.call("POST", "/window", Some(json!({"handle": handle})));
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url})));
    }

    pub fn url(&self) -> String {
        self.call("GET", "/url", None).as_str().unwrap().to_string()
    }

    /// Waits (up to 20 s) until the page's source contains `text`: a click
    /// that submits a form may return before the next page has loaded.
    pub fn wait_for_text(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.source().contains(text) {
            assert!(
                Instant::now() < deadline,
                "{text:?} never appeared on {}: {}",
                self.url(),
                self.source()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn source(&self) -> String {
        self.call("GET", "/source", None)
            .as_str()
            .unwrap()
            .to_string()
    }

    pub fn find(&self, css: &str) -> Element<'_> {
        self.try_find(css)
            .unwrap_or_else(|| panic!("no element {css:?} on {}: {}", self.url(), self.source()))
    }

    pub fn try_find(&self, css: &str) -> Option<Element<'_>> {
        let url = format!("{}/session/{}/element", self.base, self.session);
        let resp = ureq::post(&url)
            .set("Content-Type", "application/json")
            .send_string(&json!({"using": "css selector", "value": css}).to_string());
        let v: Value = serde_json::from_reader(resp.ok()?.into_reader()).ok()?;
        Some(Element {
            browser: self,
            id: v["value"][ELEMENT].as_str()?.to_string(),
        })
    }

    /// Finds the link whose text is exactly `text`.
    pub fn link(&self, text: &str) -> Element<'_> {
        let v = self.call(
            "POST",
            "/element",
            Some(json!({"using": "link text", "value": text})),
        );
        Element {
            browser: self,
            id: v[ELEMENT].as_str().unwrap().to_string(),
        }
    }

    /// Makes the page see `prefers-color-scheme: dark` (or light), through
    /// ChromeDriver's DevTools command.
    pub fn color_scheme(&self, scheme: &str) {
        self.call(
            "POST",
            "/goog/cdp/execute",
            Some(json!({"cmd": "Emulation.setEmulatedMedia",
                        "params": {"features": [{"name": "prefers-color-scheme", "value": scheme}]}})),
        );
    }

    /// Presses keys on whatever has the focus, as a person would: each
    /// character of `keys` down and up (WebDriver's codes for the others:
    /// `\u{E015}` down arrow, `\u{E013}` up, `\u{E007}` Enter,
    /// `\u{E00C}` Escape).
    pub fn press(&self, keys: &str) {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|k| {
                let k = k.to_string();
                [
                    json!({"type": "keyDown", "value": k}),
                    json!({"type": "keyUp", "value": k}),
                ]
            })
            .collect();
        self.call(
            "POST",
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        );
    }

    /// The focused element's tag, name and text, to tell where keys went.
    pub fn focused(&self) -> Value {
        self.run(
            "const e = document.activeElement; return [e.tagName, e.getAttribute('name') || '', e.textContent.trim()];",
            json!([]),
        )
    }

    /// Runs `script` (a function body) in the page; returns its value.
    pub fn run(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// Every URL the current page loaded: itself and its resources.
    pub fn loaded_urls(&self) -> Vec<String> {
        let v = self.run(
            "return [location.href].concat(performance.getEntriesByType('resource').map(e => e.name));",
            json!([]),
        );
        v.as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap().to_string())
            .collect()
    }

    /// Lets downloads land in `dir` (headless Chromium refuses them
    /// otherwise), through chromedriver's DevTools passthrough.
    pub fn allow_downloads(&self, dir: &Path) {
        self.call(
            "POST",
            "/chromium/send_command",
            Some(json!({"cmd": "Page.setDownloadBehavior",
                        "params": {"behavior": "allow", "downloadPath": dir.to_str().unwrap()}})),
        );
    }

    pub fn resize(&self, width: u32, height: u32) {
        self.call(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        );
    }

    pub fn screenshot(&self, path: &Path) {
        let b64 = self.call("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap())
            .unwrap();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}

impl Element<'_> {
    pub fn click(&self) {
        self.browser
            .call("POST", &format!("/element/{}/click", self.id), None);
    }

    pub fn type_text(&self, text: &str) {
        self.browser.call(
            "POST",
            &format!("/element/{}/value", self.id),
            Some(json!({"text": text})),
        );
    }

    /// The element's rendered text.
    pub fn text(&self) -> String {
        self.browser
            .call("GET", &format!("/element/{}/text", self.id), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn attr(&self, name: &str) -> Option<String> {
        self.browser
            .call(
                "GET",
                &format!("/element/{}/attribute/{name}", self.id),
                None,
            )
            .as_str()
            .map(str::to_string)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = ureq::delete(&format!("{}/session/{}", self.base, self.session)).call();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
