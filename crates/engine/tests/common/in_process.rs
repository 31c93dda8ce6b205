//! The cluster transport of the engine's multi-node tests: a [`Forwarder`] that calls
//! the owner's `handle_forwarded` directly, in the same process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use futures_util::future::BoxFuture;
use switchboard_engine::eio::{
    EngineServer, ForwardError, ForwardedRequest, ForwardedResponse, Forwarder,
};

/// The nodes, by tag, and how many requests were forwarded.
#[derive(Debug, Default)]
pub(crate) struct InProcess {
    nodes: Mutex<HashMap<String, Weak<EngineServer>>>,
    /// Requests handed to the forwarder.
    forwarded: AtomicUsize,
}

impl Forwarder for InProcess {
    fn forward(
        &self,
        owner: &str,
        request: ForwardedRequest,
    ) -> BoxFuture<'static, Result<ForwardedResponse, ForwardError>> {
        self.forwarded.fetch_add(1, Ordering::SeqCst);
        let node = self
            .nodes
            .lock()
            .unwrap()
            .get(owner)
            .and_then(Weak::upgrade);
        let owner = owner.to_owned();
        Box::pin(async move {
            let node = node.ok_or(ForwardError::UnknownOwner(owner))?;
            Ok(node.handle_forwarded(request).await)
        })
    }
}

impl InProcess {
    /// Makes `engine` the node tagged `tag`, and forwards its requests through `self`.
    pub(crate) fn join(self: &Arc<Self>, tag: &str, engine: &Arc<EngineServer>) {
        engine.set_forwarder(self.clone());
        self.nodes
            .lock()
            .unwrap()
            .insert(tag.to_owned(), Arc::downgrade(engine));
    }

    /// Requests handed to the forwarder so far.
    #[allow(dead_code)] // not every test binary counts them
    pub(crate) fn forwarded(&self) -> usize {
        self.forwarded.load(Ordering::SeqCst)
    }
}
