//! The tokio drivers: accept loops and one connection driver per protocol session.
