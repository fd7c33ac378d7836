//! [`ModelProxy`]: what the model proxy holds, set up once at start.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::TaskTracker;
use warden_charter::CharterCell;
use warden_core::redact::{RedactingRecorder, Secrets};
use warden_core::{Clock, Recorder};
use warden_session::{Controls, TokenBudgets};

use crate::cooldowns::Cooldowns;
use crate::turns::ModelTurns;

/// The model proxy's state, shared by its handlers and its stream relays.
pub struct ModelProxy {
    /// The charter in force (shared with the rest of the gateway, swapped by a reload): its
    /// model aliases and their routes. A call loads it once ([`crate::capture`]'s call).
    pub(crate) charter: Arc<CharterCell>,
    /// The client that calls the providers (no redirects).
    pub(crate) client: reqwest::Client,
    /// Provider keys by the name of the environment variable they were read from.
    pub(crate) keys: HashMap<String, String>,
    /// Routes kept aside after a 429.
    pub(crate) cooldowns: Cooldowns,
    /// The token budgets, checked before a call and counted after it.
    pub(crate) budgets: TokenBudgets,
    /// Where calls are recorded (the ledger), every payload redacted of [`Self::secrets`].
    pub(crate) recorder: Arc<dyn Recorder>,
    /// The secrets the gateway holds (provider keys and the others it was given), replaced by
    /// `[REDACTED]` in everything relayed to the agent or recorded.
    pub(crate) secrets: Secrets,
    /// The time budgets and sessions are checked against.
    pub(crate) clock: Arc<dyn Clock>,
    /// The recent model turns per session.
    pub(crate) turns: Arc<ModelTurns>,
    /// The interventions in force (the governor's own): under the frozen posture no call is
    /// forwarded.
    pub(crate) controls: Arc<Controls>,
    /// Stream relays and captures still running after their answer was sent; shutdown drains
    /// them.
    pub(crate) tasks: TaskTracker,
}

impl std::fmt::Debug for ModelProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keys' values are secrets: only their count is shown.
        f.debug_struct("ModelProxy")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// The model proxy could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ProxyBuildError {
    /// The HTTP client for the providers could not be built.
    #[error("cannot build the http client for the model providers")]
    Client(#[source] reqwest::Error),
    /// The secrets to redact could not be made into a redactor.
    #[error(transparent)]
    Secrets(#[from] warden_core::redact::SecretsError),
}

impl ModelProxy {
    /// The secrets the gateway holds (provider keys and the others it was given): what every
    /// surface redacts from what it relays and records.
    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// The proxy for `charter`'s models. Provider keys are read once, from `env` when given
    /// (tests), from the process environment otherwise; a route whose key variable is unset is
    /// called without a key (and a warning is logged). Records go to `recorder`; relays and
    /// captures run on `tasks`, which the caller drains at shutdown. `controls` are the
    /// interventions the governor reads: pass the same `Arc`, so that freezing the gateway
    /// stops model calls too. The provider keys and `other_secrets` (the gateway's other
    /// credentials: upstream environment values, the webhook URL) are redacted from every
    /// answer relayed to the agent and every record.
    #[expect(
        clippy::too_many_arguments,
        reason = "start-up hands the proxy everything it shares with the gateway, once"
    )]
    pub fn new(
        charter: Arc<CharterCell>,
        budgets: TokenBudgets,
        recorder: Arc<dyn Recorder>,
        clock: Arc<dyn Clock>,
        tasks: TaskTracker,
        controls: Arc<Controls>,
        env: Option<&HashMap<String, String>>,
        other_secrets: &[String],
    ) -> Result<ModelProxy, ProxyBuildError> {
        let mut keys = HashMap::new();
        let set = charter.load();
        for route in set
            .iter()
            .flat_map(|c| &c.inventory.models)
            .flat_map(|m| &m.routes)
        {
            if let Some(name) = &route.api_key_env {
                let value = match env {
                    Some(map) => map.get(name).cloned(),
                    None => std::env::var(name).ok(),
                };
                match value {
                    Some(v) if !v.is_empty() => {
                        keys.insert(name.clone(), v);
                    }
                    _ => {
                        tracing::warn!(variable = %name, model = %route.model, "A provider key variable is not set; that route is called without a key.")
                    }
                }
            }
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(256)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(ProxyBuildError::Client)?;
        let secrets = Secrets::new(keys.values().chain(other_secrets))?;
        let recorder: Arc<dyn Recorder> = if secrets.is_empty() {
            recorder
        } else {
            Arc::new(RedactingRecorder::new(recorder, secrets.clone()))
        };
        Ok(ModelProxy {
            charter,
            client,
            keys,
            cooldowns: Cooldowns::default(),
            budgets,
            recorder,
            secrets,
            clock,
            turns: Arc::new(ModelTurns::default()),
            controls,
            tasks,
        })
    }

    /// Keeps the recent model turns in `turns` (one written through to `state.db`, say)
    /// instead of in memory only.
    #[must_use]
    pub fn keeping_turns(mut self, turns: Arc<ModelTurns>) -> Self {
        self.turns = turns;
        self
    }

    /// The recent model turns per session, which the proxy keeps: the governor shows them to
    /// approvers, so it gets this same `Arc`.
    pub fn turns(&self) -> &Arc<ModelTurns> {
        &self.turns
    }
}
