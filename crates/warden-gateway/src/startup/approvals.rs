//! Start-up phase 4: the approval workflow, its webhook notifier and its sweeper.

use std::sync::Arc;

use anyhow::Context as _;
use warden_approval::workflow::SWEEP_INTERVAL;
use warden_approval::{
    ApprovalRequest, ApprovalStore, Approvals, Notifier, OnRequest, StorePool, WebhookConfig,
    WebhookFormat,
};
use warden_audit::Ledger;
use warden_charter::CharterCell;
use warden_core::Clock;
use warden_session::state_db::Backend;
use warden_session::{OperatorCredentials, StateDb};

use super::Background;
use super::secrets::approval_signer;
use crate::config::Config;
use crate::telemetry::MeteredRecorder;

/// Phase 4: the approval workflow, its webhook notifier (if configured) and the sweeper that
/// times out requests past their deadline (it stops with the listeners).
pub(super) async fn start_approvals(
    config: &Config,
    charter: &Arc<CharterCell>,
    (ledger, telemetry): (&Ledger, &Arc<warden_telemetry::Telemetry>),
    db: &StateDb,
    clock: &Arc<dyn Clock>,
    background: &Background,
) -> anyhow::Result<Arc<Approvals>> {
    // `state.db`, or the fleet's PostgreSQL database (every instance decides every request).
    let pool = match db.backend() {
        Backend::Sqlite(pool) => StorePool::Sqlite(pool.clone()),
        Backend::Postgres(pool) => StorePool::Postgres(pool.clone()),
    };
    let store = ApprovalStore::open(pool, clock.now())
        .await
        .context("cannot open the approval store")?;
    let signer = approval_signer(&config.data_dir)?;
    // The shared webhook, if configured, and each principal's own target from the charter.
    let webhook = match &config.approval_webhook {
        Some(hook) if hook.slack => WebhookConfig::new(
            Some(hook.url.clone()),
            WebhookFormat::Slack,
            config.public_url.clone(),
        ),
        hook => WebhookConfig::new(
            hook.as_ref().map(|h| h.url.clone()),
            WebhookFormat::Json,
            config.public_url.clone(),
        ),
    };
    // Each principal's own target, from every agent's charter (principals of the organisation
    // are usually declared once, in a document the charters include).
    let webhook = charter
        .load()
        .iter()
        .fold(webhook, |w, c| w.with_charter_targets(&c.authority));
    let on_request: Option<OnRequest> = if webhook.is_active() {
        let notifier = Notifier::start(
            webhook,
            signer.clone(),
            Arc::new(ledger.clone()),
            clock.clone(),
            &background.tasks,
            background.stop.clone(),
        )
        .context("approval webhook")?;
        Some(Arc::new(move |req: &ApprovalRequest| {
            notifier.notify(req);
        }))
    } else {
        None
    };
    let approvals = Arc::new(
        Approvals::new(
            store,
            signer,
            charter.clone(),
            Arc::new(MeteredRecorder::new(
                Arc::new(ledger.clone()),
                telemetry.clone(),
            )),
            clock.clone(),
            on_request,
            config.approval_progress_interval,
        )
        // A grant is used only while the credentials that voted for it are not revoked.
        .with_credential_check({
            let operators = OperatorCredentials::open(db);
            Arc::new(move |id: String| {
                let operators = operators.clone();
                Box::pin(async move { operators.is_active(&id).await.map_err(|e| e.to_string()) })
            })
        }),
    );
    let sweeper = approvals.clone();
    let stop = background.stop.clone();
    background.tasks.spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(SWEEP_INTERVAL) => { sweeper.sweep().await; }
                () = stop.cancelled() => break,
            }
        }
    });
    Ok(approvals)
}
