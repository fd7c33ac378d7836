//! The stylesheet and the script, embedded in the binary and served under `/ui/assets/`.

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::ConsoleState;

/// The console's stylesheet.
pub const CONSOLE_CSS: &str = include_str!("../assets/console.css");
/// The views' stylesheet (overview, timeline, charter, search).
pub const VIEWS_CSS: &str = include_str!("../assets/views.css");
/// The console's one script (the live updates, expanding long values).
pub const CONSOLE_JS: &str = include_str!("../assets/console.js");

/// The asset routes.
pub(crate) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new().route("/ui/assets/{name}", get(asset))
}

async fn asset(Path(name): Path<String>) -> Response {
    let (content_type, body) = match name.as_str() {
        "console.css" => ("text/css; charset=utf-8", CONSOLE_CSS),
        "views.css" => ("text/css; charset=utf-8", VIEWS_CSS),
        "console.js" => ("text/javascript; charset=utf-8", CONSOLE_JS),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}
