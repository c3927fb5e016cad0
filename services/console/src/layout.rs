//! The frame every page shares: head (vendored script and style only, as the CSP allows),
//! navigation, and a read-only banner when resources are not ours to write.

use maud::{DOCTYPE, Markup, html};

/// The sections of the navigation, in order: (path, label).
pub const SECTIONS: [(&str, &str); 6] = [
    ("/devices", "Devices"),
    ("/assets", "Assets"),
    ("/streams", "Streams"),
    ("/schemas", "Schemas"),
    ("/events", "Live events"),
    ("/discovered", "Discovered"),
];

/// A whole page: `active` is the section path it belongs to.
pub fn page(title: &str, active: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // htmx must not evaluate strings or inject its own styles: the CSP forbids both.
                meta name="htmx-config" content=r#"{"allowEval":false,"includeIndicatorStyles":false,"allowScriptTags":false}"#;
                title { (title) " · sse-connector" }
                link rel="stylesheet" href="/static/console.css";
                script src="/static/htmx.min.js" defer {}
                script src="/static/htmx-ext-sse.js" defer {}
            }
            body {
                header {
                    a.brand href="/" { "sse-connector" }
                    nav {
                        @for (path, label) in SECTIONS {
                            a href=(path) class=[(path == active).then_some("active")] { (label) }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A problem shown instead of (or above) a page's content: a service that did not answer.
pub fn problem(message: &str) -> Markup {
    html! { p.problem role="alert" { (message) } }
}
