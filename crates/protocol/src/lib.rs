//! Engine.IO v4 and Socket.IO v5 codecs and session state machines; no IO.
