//! Serving long-polling requests through the node that owns the session, so a
//! round-robin load balancer needs no sticky sessions.
