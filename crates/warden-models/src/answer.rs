//! What forwarding a model call gave the handler: a complete answer, a stream whose relay
//! is waiting to start, or no answer at all — each with what is left to record.

use axum::response::Response;

use crate::capture::CallOutcome;

/// What forwarding a call gave: the response for the agent, and what is left to do.
pub(crate) enum ForwardedAnswer {
    /// A complete answer (or a provider error passed through); its outcome is recorded after
    /// it is sent.
    Complete {
        /// The response for the agent.
        response: Response,
        /// What to record.
        outcome: CallOutcome,
    },
    /// A stream: its relay starts when `start_relay` fires (once the request is recorded) and
    /// records the completion at its end.
    Streaming {
        /// The response for the agent, whose body the relay feeds.
        response: Response,
        /// Starts the relay; dropping it cancels the relay.
        start_relay: tokio::sync::oneshot::Sender<()>,
    },
    /// No route answered: an error for the agent, and the failure to record.
    Unanswered {
        /// The error for the agent.
        response: Response,
        /// What to record.
        outcome: CallOutcome,
    },
}
