//! The console in a real browser (issue #24): headless Chromium over WebDriver against the real
//! services, Mosquitto, an SSE source whose readings gain a field on demand, and the real
//! `sse-console` on loopback. Following the console's page contract it creates a device through
//! `form#device-form` (a bad URL first: the field error appears next to `address`), an asset
//! through `form#asset-form` (its endpoint picked when the device is) with a dataset topic, sees the asset's events arrive live in
//! `/events`, and, once the source adds `humidity`, sees the subject's version 2 and a diff naming
//! the field. Screenshots go to `target/console-screenshots/` (`just screenshots` copies one to
//! the README). Each step is a function of its own, so a failure names its step (and leaves a
//! `failed-<step>.png`).

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use fantoccini::Locator;
use sse_e2e::broker::Mosquitto;
use sse_e2e::browser::Browser;
use sse_e2e::mqtt::Subscriber;
use sse_e2e::procs::Service;
use sse_e2e::source::{GROWING_EVERY, SseSource, growing_feed};
use sse_e2e::stack::{Pipeline, PipelineArgs};

const DEVICE: &str = "weather-gw";
const ASSET: &str = "weather";
const TOPIC: &str = "console/weather";
/// The field the source adds: the diff must name it.
const ADDED: &str = "humidity";
const BAD_URL: &str = "not a url";
/// What the live events page keeps (`--console-live-list-max`).
const LIST_MAX: usize = 5;

/// The browser on the console's pages.
struct Web<'a> {
    b: &'a Browser,
    base: String,
}

impl Web<'_> {
    async fn open(&self, path: &str) -> anyhow::Result<()> {
        let url = format!("{}{path}", self.base);
        self.b
            .client
            .goto(&url)
            .await
            .with_context(|| format!("open {url}"))
    }

    /// Types `value` into the input `name` of `form`, or picks it if the field is a select.
    async fn set(&self, form: &str, name: &str, value: &str) -> anyhow::Result<()> {
        let css = format!(r#"{form} [name="{name}"]"#);
        let field = self.b.wait_for(&css).await?;
        if field.tag_name().await?.eq_ignore_ascii_case("select") {
            field
                .select_by_value(value)
                .await
                .with_context(|| format!("pick {value} in {css}"))?;
        } else {
            field.clear().await?;
            field
                .send_keys(value)
                .await
                .with_context(|| format!("type into {css}"))?;
        }
        Ok(())
    }

    /// The current value of the field `name` of `form`.
    async fn value(&self, form: &str, name: &str) -> anyhow::Result<String> {
        let css = format!(r#"{form} [name="{name}"]"#);
        let field = self.b.wait_for(&css).await?;
        Ok(field.prop("value").await?.unwrap_or_default())
    }

    async fn save(&self, form: &str) -> anyhow::Result<()> {
        let css = format!("{form} button#save");
        self.b
            .wait_for(&css)
            .await?
            .click()
            .await
            .context("click save")
    }
}

/// Step 1: a device with a bad URL is refused with a field error next to `address`, the user's
/// values kept.
async fn device_form_rejects_a_bad_url(w: &Web<'_>) -> anyhow::Result<()> {
    let form = "form#device-form";
    w.open("/devices").await?;
    w.b.wait_for("table#devices").await?;
    w.b.wait_for("a#new-device").await?.click().await?;
    w.b.wait_for(form).await?;
    let endpoint = w.value(form, "endpoint_name").await?;
    anyhow::ensure!(endpoint == "sse", "endpoint_name defaults to {endpoint:?}");
    w.set(form, "name", DEVICE).await?;
    w.set(form, "address", BAD_URL).await?;
    w.set(form, "auth", "Anonymous").await?;
    w.save(form).await?;
    let error =
        w.b.wait_for(r#"span.field-error[data-field="address"]"#)
            .await?;
    anyhow::ensure!(
        !error.text().await?.trim().is_empty(),
        "the field error is empty"
    );
    let (name, address) = (
        w.value(form, "name").await?,
        w.value(form, "address").await?,
    );
    anyhow::ensure!(name == DEVICE, "the name was not kept: {name:?}");
    anyhow::ensure!(address == BAD_URL, "the address was not kept: {address:?}");
    w.b.screenshot("device-form-error").await?;
    Ok(())
}

/// Step 2: the corrected form is saved and the device is listed.
async fn device_is_created(w: &Web<'_>, address: &str) -> anyhow::Result<()> {
    let form = "form#device-form";
    w.set(form, "address", address).await?;
    w.save(form).await?;
    w.b.wait_for_path(&format!("/devices/{DEVICE}")).await?;
    let kept = w.value(form, "address").await?;
    anyhow::ensure!(kept == address, "the saved device shows address {kept:?}");
    w.open("/devices").await?;
    // The list shows what ingest has applied: the file is written, then picked up.
    w.b.reload_until(&format!(r#"tr[data-device="{DEVICE}"] td.health"#))
        .await?;
    Ok(())
}

/// Step 3: an asset on the device with a dataset destination topic is saved and listed.
async fn asset_is_created(w: &Web<'_>) -> anyhow::Result<()> {
    let form = "form#asset-form";
    w.open("/assets").await?;
    w.b.wait_for("table#assets").await?;
    w.b.wait_for("a#new-asset").await?.click().await?;
    w.b.wait_for(form).await?;
    w.set(form, "name", ASSET).await?;
    w.set(form, "device", DEVICE).await?;
    // Picking the device swaps in the select of its endpoints, its only one picked.
    w.b.wait_for(&format!(
        r#"{form} select#endpoint[data-device="{DEVICE}"]"#
    ))
    .await?;
    let endpoint = w.value(form, "endpoint").await?;
    anyhow::ensure!(endpoint == "sse", "the device's endpoint is {endpoint:?}");
    w.set(form, "dataset_topic", TOPIC).await?;
    w.set(form, "dataset_qos", "Qos1").await?;
    w.set(form, "dataset_retain", "Never").await?;
    w.save(form).await?;
    w.b.wait_for_path(&format!("/assets/{ASSET}")).await?;
    w.open("/assets").await?;
    // The list shows what ingest has applied: the file is written, then picked up.
    w.b.reload_until(&format!(r#"tr[data-asset="{ASSET}"] td.health"#))
        .await?;
    Ok(())
}

/// Step 4: the asset's events arrive in the live view (pushed over SSE, no reload).
async fn events_arrive_live(w: &Web<'_>) -> anyhow::Result<()> {
    w.open(&format!("/events?asset={ASSET}")).await?;
    w.b.wait_for("div#events").await?;
    // The asset's own status reports are published for it too (and show in the view): wait for
    // its events, on their topic.
    let css = format!(r#"div#events article.event[data-asset="{ASSET}"][data-topic="{TOPIC}"]"#);
    let first = w.b.wait_for(&css).await?;
    let text = first.text().await?;
    anyhow::ensure!(
        text.contains(TOPIC),
        "the event does not show its topic: {text}"
    );
    anyhow::ensure!(
        text.contains("temperature"),
        "the event shows no payload: {text}"
    );
    first.find(Locator::Css("pre")).await.context("no pre")?;
    // A few more, so the screenshot shows a live list (one arrives every GROWING_EVERY).
    w.b.wait_for_count(&css, 3).await?;
    w.b.screenshot("events").await?;
    // The page keeps the newest LIST_MAX items however many arrive (`--console-live-list-max`).
    let newest = async || -> anyhow::Result<u64> {
        let text = w.b.wait_for(&css).await?.text().await?;
        let at = text.find(r#""seq":"#).context("no seq in the payload")? + 6;
        let digits: String = text[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        Ok(digits.parse()?)
    };
    let first = newest().await?;
    let start = std::time::Instant::now();
    while newest().await? < first + LIST_MAX as u64 + 3 {
        anyhow::ensure!(
            start.elapsed() < sse_e2e::DEADLINE,
            "no new events in the live view"
        );
        tokio::time::sleep(GROWING_EVERY).await;
    }
    let items = w.b.client.find_all(Locator::Css("div#events > *")).await?;
    anyhow::ensure!(
        items.len() == LIST_MAX,
        "{} items kept, not {LIST_MAX}",
        items.len()
    );
    Ok(())
}

/// Step 5: the stream is listed with its counters.
async fn stream_is_listed(w: &Web<'_>) -> anyhow::Result<()> {
    w.open("/streams").await?;
    w.b.wait_for("table#streams tbody tr[data-stream]").await?;
    w.b.screenshot("streams").await?;
    Ok(())
}

/// Step 6: once the source adds a field, the asset's subject has version 2 and the diff between
/// the latest two versions names the field.
async fn schema_diff_names_the_new_field(w: &Web<'_>, grown: &AtomicBool) -> anyhow::Result<()> {
    grown.store(true, Ordering::Relaxed);
    w.open("/schemas").await?;
    w.b.wait_for("table#schemas").await?;
    let row =
        w.b.reload_until(&format!(r#"table#schemas tr[data-subject*="{ASSET}"]"#))
            .await?;
    let subject = row.attr("data-subject").await?.unwrap_or_default();
    row.find(Locator::Css("a"))
        .await
        .with_context(|| format!("no link to {subject}"))?
        .click()
        .await?;
    w.b.wait_for("pre#schema").await?;
    w.b.reload_until(r#"li[data-version="2"]"#).await?;
    let diff = w.b.wait_for("section#diff").await?;
    let added = diff.find_all(Locator::Css("li.diff-added")).await?;
    let mut said = Vec::new();
    for li in &added {
        said.push(li.text().await?);
    }
    anyhow::ensure!(
        said.iter().any(|t| t.contains(ADDED)),
        "the diff of {subject} does not name {ADDED}: added {said:?}; section: {}",
        diff.text().await?
    );
    // Scrolled to the bottom, so the picture shows the diff under the schema.
    w.b.client
        .execute("window.scrollTo(0, document.body.scrollHeight)", vec![])
        .await
        .context("scroll to the diff")?;
    w.b.screenshot("schema-diff").await?;
    Ok(())
}

/// Runs one step and prints how long it took; a failure leaves `failed-<step>.png` and the console's log in the panic.
async fn step<F: std::future::Future<Output = anyhow::Result<()>>>(
    name: &str,
    w: &Web<'_>,
    console: &Service,
    f: F,
) {
    let started = std::time::Instant::now();
    let result = f.await;
    eprintln!("step {name}: {:?}", started.elapsed());
    if let Err(e) = result {
        let shot = w.b.screenshot(&format!("failed-{name}")).await;
        let at = w.b.client.current_url().await.map(|u| u.to_string());
        panic!(
            "step {name} failed: {e:#}\n(at {at:?}; screenshot {shot:?})\nconsole log:\n{}",
            console.log_text()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_creates_a_device_and_an_asset_and_shows_events_and_schema_history() {
    let Some(browser) = Browser::start().await.unwrap() else {
        return;
    };
    let broker = Mosquitto::start().await.unwrap();
    let sub = Subscriber::connect(broker.port, "console/#").await.unwrap();
    let grown = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source = SseSource::start(listener, growing_feed(grown.clone())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let resources = dir.path().join("resources");
    std::fs::create_dir_all(&resources).unwrap();
    let p = Pipeline::start(PipelineArgs {
        mqtt_url: broker.url(),
        data_dir: dir.path().join("schemas").display().to_string(),
        resources: resources.display().to_string(),
        publisher: vec![],
        ingest: vec![],
        env: None,
    })
    .await
    .unwrap();
    let console = sse_e2e::console::start(&p, &[format!("--console-live-list-max={LIST_MAX}")])
        .await
        .unwrap();
    let w = Web {
        b: &browser,
        base: console.url(),
    };
    let address = format!("{}/weather", source.base_url());

    step(
        "device-bad-url",
        &w,
        &console,
        device_form_rejects_a_bad_url(&w),
    )
    .await;
    step("device", &w, &console, device_is_created(&w, &address)).await;
    step("asset", &w, &console, asset_is_created(&w)).await;
    // The pipeline carries the asset's events to the broker (if not, the pages are not to blame).
    sub.wait_until("the asset's events on MQTT", |m| {
        m.iter().any(|m| m.topic == TOPIC)
    })
    .await
    .unwrap();
    step("events", &w, &console, events_arrive_live(&w)).await;
    step("streams", &w, &console, stream_is_listed(&w)).await;
    step(
        "schema-diff",
        &w,
        &console,
        schema_diff_names_the_new_field(&w, &grown),
    )
    .await;
    browser.close().await.unwrap();
}
