//! Automatic call distribution: agents, their states, queues, and which
//! agent each waiting call is offered to. A sans-IO core owned by the
//! B2BUA (see `ARCHITECTURE.md`); being written (issue 5).
