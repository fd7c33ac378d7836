//! Pages: the layout every page extends, rendering a template into a response, and error
//! pages.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// What the layout (`templates/base.html`) shows around a page: who is signed in, what the
/// navigation offers to that role, which tab is current, and the CSRF token forms carry.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// The signed-in operator's name (empty on the sign-in page).
    pub user: String,
    /// Its role (`admin`, `approver`).
    pub role: String,
    /// The console session's CSRF token (empty on the sign-in page).
    pub csrf: String,
    /// The current tab (`overview`, `sessions`, `approvals`, `controls`, `charter`, `search`).
    pub tab: &'static str,
    /// Whether the admin tabs are shown.
    pub admin: bool,
}

/// Renders `page` as a `200` HTML response (the security headers are added by the console's
/// layer). A template that fails to render is a `500` page, never a partial one.
pub fn render<T: Template>(page: &T) -> Response {
    render_with(StatusCode::OK, page)
}

/// Renders `page` with `status`.
pub fn render_with<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "A console page failed to render.");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><title>warden</title><p>This page could not be rendered."),
            )
                .into_response()
        }
    }
}

/// An error page: the status, and a sentence for the person reading it.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    /// The layout (default on pages shown before sign-in).
    pub layout: Layout,
    /// The status, as a number.
    pub status: u16,
    /// What went wrong.
    pub message: String,
}

/// The error page for `status` and `message`.
pub fn error_page(layout: Layout, status: StatusCode, message: impl Into<String>) -> Response {
    render_with(
        status,
        &ErrorPage {
            layout,
            status: status.as_u16(),
            message: message.into(),
        },
    )
}

/// A value shown clipped: its first characters, and the whole of it when it was longer, so a
/// page can show the head and expand to the rest (`<details>`; no script). A long value never
/// hides what follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clip {
    /// The first characters (all of them when the value is short).
    pub head: String,
    /// The whole value, when it was clipped.
    pub full: Option<String>,
    /// How many characters the head leaves out.
    pub more: usize,
}

/// `text` clipped to `max_chars` characters.
pub fn clip(text: &str, max_chars: usize) -> Clip {
    let total = text.chars().count();
    if total <= max_chars {
        return Clip {
            head: text.to_owned(),
            full: None,
            more: 0,
        };
    }
    Clip {
        head: text.chars().take(max_chars).collect(),
        full: Some(text.to_owned()),
        more: total.saturating_sub(max_chars),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_value_is_clipped_and_kept_whole_for_expanding() {
        let c = clip("abcdef", 3);
        assert_eq!(c.head, "abc");
        assert_eq!(c.full.as_deref(), Some("abcdef"));
        assert_eq!(c.more, 3);
        let short = clip("ab", 3);
        assert_eq!(short.full, None);
        assert_eq!(short.head, "ab");
    }
}
