//! Interventions in force: the gateway posture and frozen tools. They live in
//! `warden-session`, so that the model proxy, which never imports the gateway, reads the same
//! posture as the governor.

pub use warden_session::interventions::Interventions;
