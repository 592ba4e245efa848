//! The console in a real browser: headless Chromium (Debian's `chromium`) driven through `chromedriver`
//! (Debian's `chromium-driver`; `scripts/test` installs both), against the real server over HTTPS with its
//! self-signed certificate. An operator signs in, plans a selector job, confirms it, watches it reach 100 %
//! on the same page (no reload), downloads the report, reverts the job and signs out; a `CCKM Users` member
//! sees only their own jobs and only the buttons they may use. The job page's screenshot is written to
//! `target/console-job.png` (and to `docs/console-job.png` with `KEYFLEET_UPDATE_SCREENSHOT=1`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use crate::support::*;

/// How long any one thing the test waits for may take.
const PATIENCE: Duration = Duration::from_secs(90);
const KEYS: usize = 12;

/// `chromedriver` on a port of its choosing (it prints it), stopped when dropped.
struct Driver {
    url: String,
    _child: tokio::process::Child,
}

impl Driver {
    async fn start() -> Driver {
        let mut child = tokio::process::Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start chromedriver ({e}): install Debian's chromium and chromium-driver (scripts/test does)"
                )
            });
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let port = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                // "ChromeDriver was started successfully on port 41567."
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    return rest.trim_end_matches('.').trim().parse::<u16>().unwrap();
                }
            }
            panic!("chromedriver exited without saying its port")
        })
        .await
        .expect("chromedriver starts within 30 s");
        Driver { url: format!("http://127.0.0.1:{port}"), _child: child }
    }

    /// A new headless Chromium at 1280x800 that downloads into `downloads`.
    async fn browser(&self, downloads: &Path) -> Client {
        let caps = json!({
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,800", "--hide-scrollbars", "--force-color-profile=srgb"],
                "prefs": {
                    "download.default_directory": downloads.to_str().unwrap(),
                    "download.prompt_for_download": false,
                },
            },
        });
        let caps = match caps {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session (is Debian's chromium installed?)")
    }
}

/// The browser, with the steps an operator takes, each found as a person finds it: by label or by text.
struct Page {
    c: Client,
    base: String,
}

impl Page {
    async fn open(&self, path: &str) {
        self.c.goto(&format!("{}{path}", self.base)).await.unwrap();
    }

    /// The form control labelled `label`.
    async fn field(&self, label: &str) -> Element {
        let l = self.c.find(Locator::XPath(&format!("//label[normalize-space()='{label}']"))).await.unwrap();
        let id = l.attr("for").await.unwrap().unwrap_or_else(|| panic!("label {label} names no control"));
        self.c.find(Locator::Id(&id)).await.unwrap()
    }

    async fn fill(&self, label: &str, text: &str) {
        let f = self.field(label).await;
        f.clear().await.unwrap();
        f.send_keys(text).await.unwrap();
    }

    async fn choose(&self, label: &str, value: &str) {
        self.field(label).await.select_by_value(value).await.unwrap();
    }

    /// The texts of the main content's buttons. (Read in the page in one go: the script may replace a
    /// section at any moment, which would leave an element found earlier stale.)
    async fn buttons(&self) -> Vec<String> {
        let js = "return [...document.querySelectorAll('main button')].map(b => b.textContent.trim());";
        let v = self.c.execute(js, vec![]).await.unwrap();
        v.as_array().unwrap().iter().map(|b| b.as_str().unwrap().to_string()).collect()
    }

    /// Clicks the button named `text` (again if the page replaced it between finding and clicking).
    async fn press(&self, text: &str) {
        let xpath = format!("//button[normalize-space()='{text}']");
        for _ in 0..10 {
            match self.c.find(Locator::XPath(&xpath)).await {
                Ok(b) if b.click().await.is_ok() => return,
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        panic!("no button {text} to press: {}", self.body().await);
    }

    async fn follow(&self, text: &str) {
        self.c.find(Locator::LinkText(text)).await.unwrap().click().await.unwrap();
    }

    /// The rendered text of the first element matching `css` ("" when there is none or it is hidden).
    async fn text(&self, css: &str) -> String {
        let js = "const e = document.querySelector(arguments[0]); return e ? e.innerText.trim() : '';";
        let v = self.c.execute(js, vec![json!(css)]).await.unwrap();
        v.as_str().unwrap_or_default().to_string()
    }

    async fn body(&self) -> String {
        self.text("body").await
    }

    async fn path(&self) -> String {
        self.c.current_url().await.unwrap().path().to_string()
    }

    /// Waits until `check` holds, then returns; panics with `what` after [`PATIENCE`].
    async fn until<F, Fut>(&self, what: &str, check: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !check().await {
            assert!(tokio::time::Instant::now() < deadline, "waited in vain for {what}: {}", self.body().await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn sign_in(&self, user: &str, password: &str) {
        self.open("/").await;
        self.until("the sign-in page", || async { self.path().await == "/console/login" }).await;
        self.fill("Username", user).await;
        self.fill("Password", password).await;
        self.press("Sign in").await;
        self.until("the jobs page", || async { self.path().await == "/console/jobs" }).await;
    }

    /// Marks the page; [`Page::same_page`] is true until the browser loads another document.
    async fn mark(&self) {
        self.c.execute("window.keyfleetTestMark = 'still here'; return null;", vec![]).await.unwrap();
    }

    async fn same_page(&self) -> bool {
        self.c.execute("return window.keyfleetTestMark === 'still here';", vec![]).await.unwrap() == json!(true)
    }

    /// The job id of the job page shown.
    async fn job_id(&self) -> String {
        self.path().await.rsplit('/').next().unwrap().to_string()
    }

    /// Waits, without reloading, until the live progress says the job finished all its items.
    async fn watch_until_done(&self, total: usize) {
        self.mark().await;
        self.until("100 % on the job page", || async {
            self.text("[data-k=percent]").await == "100.0 %" && self.text("[data-k=status]").await == "completed"
        })
        .await;
        assert!(self.same_page().await, "the page was reloaded while the job ran");
        assert_eq!(self.text("[data-k=done]").await, total.to_string());
        assert_eq!(self.text("[data-count=succeeded]").await, total.to_string());
        let value = self.c.execute("return document.getElementById('job-progress').value;", vec![]).await.unwrap();
        assert_eq!(value.as_f64(), Some(100.0), "the progress bar is full");
    }
}

fn workspace_target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"))
}

#[tokio::test]
async fn an_operator_plans_confirms_watches_downloads_and_reverts_a_job_in_the_browser() {
    // Paced as in production (DisableKey 5/s), so the job runs long enough to be watched.
    let app = TestApp::start_with(|a| a.quota_scale = Some(1.0)).await;
    app.fake.fake.create_keys(FAKE_ACCOUNT, "us-east-1", KEYS);
    app.fake.fake.create_keys(FAKE_ACCOUNT, "eu-west-1", 2);
    app.add_kms("acct", &app.fake.url(), FAKE_ACCESS_KEY, FAKE_ACCOUNT, &["us-east-1", "eu-west-1"]).await;
    app.sync("acct").await;
    let keys = app.key_ids("acct").await;
    // A CCKM User allowed to run jobs on the container, with a job of their own; the admin's jobs stay hidden.
    let (ops_id, ops_token) = app.user("ops", Some("CCKM Users")).await;
    let grant = json!({"acls": [{"user_id": ops_id, "permit": true, "actions": ["keybulkoperation"]}]});
    app.post("/api/v1/cckm/aws/kms/acct/update-acls", grant).await.ok();

    let driver = Driver::start().await;
    let downloads = tempfile::tempdir().unwrap();
    let page = Page { c: driver.browser(downloads.path()).await, base: app.url.clone() };

    page.sign_in("admin", ADMIN_PASSWORD).await;
    assert!(page.body().await.contains("Signed in as admin"));

    // New job → Plan.
    page.follow("New job").await;
    page.until("the new-job form", || async { page.path().await == "/console/jobs/new" }).await;
    page.choose("Cloud", "aws").await;
    page.choose("Operation", "disablekey").await;
    page.fill("Containers", "acct").await;
    page.fill("Regions", "us-east-1").await;
    snap(&page, "new-job").await;
    page.press("Plan").await;
    page.until("the plan", || async { !page.text("#plan-items").await.is_empty() }).await;
    assert_eq!(page.text("#plan-items").await, KEYS.to_string());
    assert_eq!(page.text("#plan-noops").await, "0");
    assert!(page.text("#plan-sample").await.contains("disablekey"), "{}", page.text("#plan-sample").await);
    let buttons = page.buttons().await;
    assert!(buttons.contains(&"Confirm".to_string()) && !buttons.contains(&"Revert".to_string()), "{buttons:?}");
    let job = page.job_id().await;

    // Confirm, then the progress reaches 100 % on this page, pushed by the server.
    snap(&page, "plan").await;
    page.press("Confirm").await;
    page.until("the running job", || async {
        page.text("#plan-items").await.is_empty() || page.text("[data-k=status]").await != "planned"
    })
    .await;
    page.watch_until_done(KEYS).await;
    page.until("the finished job's actions", || async { page.buttons().await.contains(&"Revert".to_string()) }).await;
    let buttons = page.buttons().await;
    assert!(!buttons.contains(&"Cancel".to_string()) && !buttons.contains(&"Confirm".to_string()), "{buttons:?}");
    screenshot(&page).await;

    // Download report: one row per key, each disabled.
    page.follow("Download report").await;
    let file = downloads.path().join(format!("bulkjob-{job}-report.csv"));
    page.until("the downloaded report", || async { file.exists() }).await;
    let csv = std::fs::read_to_string(&file).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let status = header.iter().position(|c| *c == "status").unwrap();
    let after = header.iter().position(|c| *c == "state_after").unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), KEYS, "{csv}");
    for r in &rows {
        assert_eq!((r[status], r[after]), ("succeeded", "Disabled"), "{csv}");
        assert!(keys.contains(&r[0].to_string()), "{csv}");
    }

    // Revert: a plan that enables the keys again; confirmed, it runs like any job.
    page.press("Revert").await;
    page.until("the revert plan", || async {
        page.job_id().await != job && !page.text("#plan-items").await.is_empty()
    })
    .await;
    assert_eq!(page.text("#plan-items").await, KEYS.to_string());
    assert!(page.text("#facts").await.contains(&job), "the revert names the job it reverts");
    page.press("Confirm").await;
    page.until("the revert running", || async { page.text("[data-k=status]").await != "planned" }).await;
    page.watch_until_done(KEYS).await;
    let enabled = app.get("/api/v1/cckm/aws/keys?kms=acct&region=us-east-1&keystate=Enabled&limit=100").await.ok();
    assert_eq!(enabled["total"], KEYS, "{enabled}");

    // Sign out: back at the sign-in page, and the console is closed until the next sign-in.
    page.press("Sign out").await;
    page.until("the signed-out page", || async { page.body().await.contains("You have signed out.") }).await;
    page.open("/console/jobs").await;
    page.until("the sign-in page", || async { page.path().await == "/console/login" }).await;

    // A CCKM User: only their own job, no Audit, only the buttons they may use. Their jobs page, open while
    // they start a job elsewhere (the API), lists it without a reload.
    page.sign_in("ops", "ops-password").await;
    page.mark().await;
    let theirs = app
        .call(
            "POST",
            "/api/v1/cckm/aws/bulkjob",
            Some(&ops_token),
            Some(json!({"operation": "disablekey", "keys": [keys[0]]})),
        )
        .await
        .ok();
    let theirs = theirs["id"].as_str().unwrap().to_string();
    app.wait_until_done(&format!("/api/v1/cckm/aws/bulkjob/{theirs}")).await;
    page.until("their job in the open list, completed", || async {
        let list = page.text("#job-rows").await;
        list.contains(&theirs) && list.contains("completed")
    })
    .await;
    assert!(page.same_page().await, "the jobs page was reloaded");
    snap(&page, "jobs").await;
    let list = page.text("#job-rows").await;
    assert!(list.contains(&theirs), "{list}");
    assert!(!list.contains(&job), "an admin's job is not listed for a CCKM User: {list}");
    assert_eq!(page.c.find_all(Locator::LinkText("Audit")).await.unwrap().len(), 0);
    page.open(&format!("/console/jobs/aws/{job}")).await;
    assert!(
        page.body().await.contains("not allowed") || page.body().await.contains("may not"),
        "{}",
        page.body().await
    );
    assert!(page.buttons().await.is_empty(), "no job buttons on a job they may not read");
    page.open(&format!("/console/jobs/aws/{theirs}")).await;
    page.until("their job", || async { page.text("[data-k=status]").await == "completed" }).await;
    let buttons = page.buttons().await;
    assert!(!buttons.iter().any(|b| b == "Cancel" || b == "Confirm" || b == "Retry failed"), "{buttons:?}");
    // Each button shown works for them: Revert plans the undo of their job.
    page.press("Revert").await;
    page.until("their revert plan", || async { !page.text("#plan-items").await.is_empty() }).await;
    assert_eq!(page.text("#plan-items").await, "1");
    page.c.close().await.unwrap();
}

/// The page shown, into `target/console-<name>.png` (for a look at the other pages; not kept in docs/).
async fn snap(page: &Page, name: &str) {
    let png = page.c.screenshot().await.unwrap();
    std::fs::write(workspace_target().join(format!("console-{name}.png")), png).unwrap();
}

/// The finished job's page at 1280x800, into target/ (and docs/ when asked).
async fn screenshot(page: &Page) {
    // The window's frame takes some of its height: grow it until the page itself is 1280x800.
    let frame = page
        .c
        .execute("return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight];", vec![])
        .await
        .unwrap();
    let (dw, dh) = (frame[0].as_u64().unwrap() as u32, frame[1].as_u64().unwrap() as u32);
    page.c.set_window_size(1280 + dw, 800 + dh).await.unwrap();
    page.c.execute("window.scrollTo(0, 0); return null;", vec![]).await.unwrap();
    let png = page.c.screenshot().await.unwrap();
    let target = workspace_target().join("console-job.png");
    std::fs::write(&target, &png).unwrap();
    if std::env::var("KEYFLEET_UPDATE_SCREENSHOT").as_deref() == Ok("1") {
        std::fs::write(workspace_root().join("docs/console-job.png"), &png).unwrap();
    }
    // And as a phone shows it.
    page.c.set_window_size(390 + dw, 844 + dh).await.unwrap();
    snap(page, "job-phone").await;
    page.c.set_window_size(1280 + dw, 800 + dh).await.unwrap();
}
