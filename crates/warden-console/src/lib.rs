//! The operator console: server-rendered pages on the operator plane, under `/ui`.
//!
//! What it guarantees:
//! - **No separate process, no build step.** Pages are compiled [askama] templates (every
//!   value HTML-escaped unless a template says otherwise, which none does for data); the one
//!   stylesheet and the one script are embedded in the binary ([`assets`]).
//! - **Sign-in with an operator credential** (`wo_…`), turned into a console session: a random
//!   cookie (`HttpOnly`, `SameSite=Strict`, `Secure` when the operator plane has TLS, with an
//!   expiry), stored hashed and bounded in memory ([`auth`]). An agent token, an observer
//!   credential, a revoked credential and a replayed cookie after sign-out or expiry are
//!   refused. Sign-in and sign-out are recorded.
//! - **CSRF**: every state-changing form carries the console session's token, checked in
//!   constant time, and a cross-site `Origin` is refused ([`auth::CsrfForm`]).
//! - **Headers on every `/ui` response** ([`headers`]): a strict Content-Security-Policy (no
//!   inline script, no inline style, nothing from another origin), `X-Frame-Options: DENY`,
//!   `Cache-Control: no-store`, `X-Content-Type-Options: nosniff`, `Referrer-Policy:
//!   same-origin`.
//! - **Rights follow the role**: an admin sees everything; an approver sees the approvals
//!   inbox, only the requests it may decide; an observer credential gets nothing here.
//!   Decisions taken here go through the same workflow as the API (authority, separation of
//!   duties, quorum, single use, recorded before they take effect).
//! - **Live without refresh**: one server-sent-event stream per page ([`live`]) says when the
//!   ledger's committed head moves (at most 4 times a second, at most
//!   [`live::MAX_LIVE_STREAMS`] streams, ending with the console session); the script
//!   re-fetches the page's live parts, which check the session again.
//! - **Every `/ui` path answers a page**: one no route serves is a `404` page with the same
//!   headers, never the operator API's JSON.
//!
//! # How the pieces meet (contract between the modules)
//! - Each module exposes `pub(crate) fn routes() -> Router<Arc<ConsoleState>>`; [`router`]
//!   merges them.
//! - A handler that needs a signed-in operator takes a [`auth::Signed`] (GET) or an
//!   [`auth::CsrfForm<T>`] (POST). Without a console session a GET is redirected to
//!   `/ui/login`; anything else is refused with a page.
//! - Every page template has a `layout: page::Layout` field and `{% extends "base.html" %}`
//!   with the blocks `title` and `content`; [`page::render`] turns it into a response.
//! - Live parts: an element with `data-live="URL"` has its inner HTML replaced by `GET URL`
//!   when the head moves; an element with `data-live-append="URL"` and `data-after="SEQ"` gets
//!   `GET URL?after=SEQ` appended, and the response's `X-Warden-Last-Seq` header becomes its
//!   new `data-after`. Fragment routes answer HTML fragments with the same headers.
//!
//! Where it sits: above `warden-operator` (whose state it shares: sessions, credentials,
//! approvals, controls, the charter, the recorder), `warden-audit` (read-only: the ledger and
//! the search index) and `warden-pdp` (`explain`); the gateway builds a [`ConsoleState`] and
//! merges [`router`] into the operator plane.

pub mod assets;
pub mod auth;
pub mod headers;
pub mod live;
pub mod page;
pub mod views;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::response::Response;
use axum::routing::any;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use warden_audit::LedgerReader;
use warden_operator::OperatorState;

/// The largest form a console `POST` may carry.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// What the console's handlers use.
#[derive(Debug)]
pub struct ConsoleState {
    /// The operator plane's state: sessions, credentials, approvals, controls, the charter,
    /// the recorder and the clock.
    pub operator: Arc<OperatorState>,
    /// The ledger, read-only.
    pub ledger: LedgerReader,
    /// The ledger's committed head (the last durable record's `seq`).
    pub head: watch::Receiver<u64>,
    /// The data directory (for the search index, `search.db`).
    pub data_dir: PathBuf,
    /// Whether the operator plane is served over TLS (cookies are then `Secure`).
    pub tls: bool,
    /// The console sessions (signed-in operators).
    pub signins: auth::SignIns,
    /// Decisions and model tokens per minute, fed from the ledger.
    pub activity: views::overview::Activity,
    /// The last ledger verification run from the console.
    pub last_verify: views::overview::LastVerify,
    /// The open live streams (bounded).
    pub live: live::LiveStreams,
    /// Cancelled when the gateway stops: live streams end.
    pub stop: CancellationToken,
    /// The shared store's ledger (a fleet on PostgreSQL): the timeline reads every instance's
    /// chain from it. `None` on SQLite.
    pub fleet: Option<warden_audit::LedgerSource>,
}

impl ConsoleState {
    /// The console over the operator plane's state and the ledger in `data_dir`.
    pub fn new(
        operator: Arc<OperatorState>,
        ledger: LedgerReader,
        head: watch::Receiver<u64>,
        data_dir: PathBuf,
        tls: bool,
        stop: CancellationToken,
    ) -> ConsoleState {
        ConsoleState {
            operator,
            ledger,
            head,
            data_dir,
            tls,
            signins: auth::SignIns::default(),
            activity: views::overview::Activity::default(),
            last_verify: views::overview::LastVerify::default(),
            live: live::LiveStreams::default(),
            stop,
            fleet: None,
        }
    }

    /// The console reading a fleet's other instances from the shared store (`source` is this
    /// instance's `LedgerSource::Postgres`; a directory source changes nothing).
    pub fn with_fleet(mut self, source: warden_audit::LedgerSource) -> ConsoleState {
        if matches!(source, warden_audit::LedgerSource::Postgres { .. }) {
            self.fleet = Some(source);
        }
        self
    }
}

/// The console's background work, until the gateway stops: following the ledger into
/// [`ConsoleState::activity`] and ending expired console sessions. The gateway spawns it.
pub async fn background(state: Arc<ConsoleState>) {
    tokio::join!(
        views::overview::follow(state.clone()),
        auth::sweep(state.clone())
    );
}

/// The console's routes (all under `/ui`), with their layers: the form body limit and the
/// security headers. No operator-token layer: the console authenticates with its own cookie.
pub fn router(state: Arc<ConsoleState>) -> Router {
    Router::new()
        .merge(auth::routes())
        .merge(assets::routes())
        .merge(live::routes())
        .merge(views::routes())
        // Any other path under `/ui`: a page (with the headers below), not the operator
        // plane's JSON 404.
        .route("/ui/{*rest}", any(not_found))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            headers::secure_headers,
        ))
        .with_state(state)
}

async fn not_found() -> Response {
    page::error_page(
        page::Layout::default(),
        http::StatusCode::NOT_FOUND,
        "there is no such page in the console",
    )
}
