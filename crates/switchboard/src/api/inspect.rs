//! The read-only routes: namespaces with socket counts, rooms with sizes, one room's
//! members, sockets (paged) and one socket.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;
use switchboard_engine::Namespace;
use switchboard_engine::adapter::{AdapterError, SocketsPage};
use switchboard_engine::sio::BroadcastOperator;

use super::ApiState;
use super::body::query_pairs;
use super::select::{self, socket_id};
use super::view::SocketView;
use crate::http::ApiError;

/// Sockets per page when `limit` is not given: a page of 100 sockets with their
/// headers is some tens of KiB of JSON.
pub(crate) const DEFAULT_SOCKETS_PAGE: usize = 100;
/// Largest `limit`: 1000 sockets make a response of roughly half a MiB, small enough
/// to build in one go, while a backend still lists 19k sockets in 19 requests.
pub(crate) const MAX_SOCKETS_PAGE: usize = 1000;

/// `GET /api/v1/namespaces`.
#[derive(Debug, Serialize)]
pub(crate) struct NamespacesView {
    namespaces: Vec<NamespaceView>,
}

#[derive(Debug, Serialize)]
struct NamespaceView {
    name: String,
    sockets: usize,
}

/// `GET /api/v1/namespaces/{namespace}/rooms`.
#[derive(Debug, Serialize)]
pub(crate) struct RoomsView {
    namespace: String,
    rooms: Vec<RoomSize>,
}

#[derive(Debug, Serialize)]
struct RoomSize {
    name: String,
    size: usize,
}

/// `GET /api/v1/namespaces/{namespace}/rooms/{room}`.
#[derive(Debug, Serialize)]
pub(crate) struct RoomView {
    namespace: String,
    name: String,
    size: usize,
    socket_ids: Vec<String>,
}

/// `GET /api/v1/namespaces/{namespace}/sockets`.
#[derive(Debug, Serialize)]
pub(crate) struct SocketsView {
    namespace: String,
    sockets: Vec<SocketView>,
    /// Pass as `after` for the next page; `null` on the last page.
    next: Option<String>,
}

/// Every socket `op` selects, on every node of the cluster: this node's from memory,
/// the others' from a fetch (which on a single node returns nothing new).
pub(crate) async fn cluster_sockets(
    ns: &Namespace,
    op: &BroadcastOperator,
) -> Result<Vec<SocketView>, ApiError> {
    cluster_sockets_page(ns, op, &SocketsPage::default()).await
}

/// [`cluster_sockets`] by id and rooms only (the other nodes send no handshake and no
/// `data`): for counts, room sizes and an action's selection, which need no more, and
/// whose answers would otherwise carry every socket's handshake through Redis.
pub(crate) async fn cluster_sockets_brief(
    ns: &Namespace,
    op: &BroadcastOperator,
) -> Result<Vec<SocketView>, ApiError> {
    cluster_sockets_page(ns, op, &SocketsPage::brief()).await
}

/// `page` of [`cluster_sockets`]: each node is asked for its own page only, so a page
/// of a large cluster moves a page from each node, not every socket of every node.
pub(crate) async fn cluster_sockets_page(
    ns: &Namespace,
    op: &BroadcastOperator,
    page: &SocketsPage,
) -> Result<Vec<SocketView>, ApiError> {
    let view = if page.brief {
        SocketView::brief
    } else {
        SocketView::of
    };
    let mut views: Vec<SocketView> = op.sockets_page(page).iter().map(|s| view(s)).collect();
    let local: HashSet<String> = views.iter().map(|v| v.id().to_owned()).collect();
    let fetched = op.fetch_sockets_page(page).await.map_err(cluster_error)?;
    views.extend(
        fetched
            .into_iter()
            .filter(|info| !local.contains(&info.id))
            .map(|info| SocketView::of_remote(ns.name(), info)),
    );
    views.sort_unstable_by(|a, b| a.id().cmp(b.id()));
    // One of each id: a socket id on two nodes must not take two places of the page.
    views.dedup_by(|a, b| a.id() == b.id());
    views.truncate(page.limit.unwrap_or(usize::MAX));
    Ok(views)
}

/// A cluster request that failed: some node did not answer, or Redis is unreachable.
pub(crate) fn cluster_error(err: AdapterError) -> ApiError {
    tracing::warn!(error = %err, "cluster request failed");
    ApiError::ClusterUnavailable
}

/// How many namespaces [`namespaces`] counts at once: each count is a request to
/// every node, and clients can make up to `socketio.max_pattern_namespaces` (10,000)
/// namespaces, which one after another took that many round trips through Redis.
const NAMESPACE_COUNTS_AT_ONCE: usize = 16;

/// Every namespace that exists on this node, by name, with its sockets on every node.
pub(crate) async fn namespaces(state: &ApiState) -> Result<NamespacesView, ApiError> {
    use futures_util::{StreamExt, TryStreamExt};
    let counts = futures_util::stream::iter(state.io.namespaces()).map(|ns| async move {
        let sockets = cluster_sockets_brief(&ns, &ns.all()).await?.len();
        Ok::<_, ApiError>(NamespaceView {
            name: ns.name().to_owned(),
            sockets,
        })
    });
    let mut namespaces: Vec<NamespaceView> = counts
        .buffer_unordered(NAMESPACE_COUNTS_AT_ONCE)
        .try_collect()
        .await?;
    namespaces.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(NamespacesView { namespaces })
}

/// The rooms of a namespace that have members on any node, by name, with their sizes
/// (sockets' own id rooms are not listed).
pub(crate) async fn rooms(state: &ApiState, namespace: &str) -> Result<RoomsView, ApiError> {
    let ns = select::namespace(&state.io, namespace)?;
    let mut sizes: BTreeMap<String, usize> = BTreeMap::new();
    for socket in cluster_sockets_brief(&ns, &ns.all()).await? {
        for room in socket.rooms().iter().filter(|r| r.as_str() != socket.id()) {
            *sizes.entry(room.clone()).or_default() += 1;
        }
    }
    let rooms = sizes
        .into_iter()
        .map(|(name, size)| RoomSize { name, size })
        .collect();
    Ok(RoomsView {
        namespace: ns.name().to_owned(),
        rooms,
    })
}

/// One room's members on every node; a room without members has size 0 (rooms exist
/// only while they have members, so that is not an error).
pub(crate) async fn room(
    state: &ApiState,
    namespace: &str,
    room: &str,
) -> Result<RoomView, ApiError> {
    let ns = select::namespace(&state.io, namespace)?;
    let socket_ids: Vec<String> = cluster_sockets_brief(&ns, &ns.to(room))
        .await?
        .iter()
        .map(|s| s.id().to_owned())
        .collect();
    Ok(RoomView {
        namespace: ns.name().to_owned(),
        name: room.to_owned(),
        size: socket_ids.len(),
        socket_ids,
    })
}

/// What `GET .../sockets` reads from its query string.
#[derive(Debug, Default, PartialEq, Eq)]
struct Page {
    room: Option<String>,
    limit: Option<usize>,
    after: Option<String>,
}

/// Sockets of a namespace (or of one room) on every node, ordered by id, a page at a
/// time.
pub(crate) async fn sockets(
    state: &ApiState,
    namespace: &str,
    query: Option<&str>,
) -> Result<SocketsView, ApiError> {
    let page = page(query)?;
    let ns = select::namespace(&state.io, namespace)?;
    let op = match &page.room {
        Some(room) => ns.to(room.as_str()),
        None => ns.all(),
    };
    let limit = page.limit.unwrap_or(DEFAULT_SOCKETS_PAGE);
    // One more than the page, to know whether another follows.
    let wanted = SocketsPage {
        after: page.after.clone(),
        limit: Some(limit + 1),
        brief: false,
    };
    let mut sockets = cluster_sockets_page(&ns, &op, &wanted).await?;
    let next = (sockets.len() > limit).then(|| sockets[limit - 1].id().to_owned());
    sockets.truncate(limit);
    Ok(SocketsView {
        namespace: ns.name().to_owned(),
        sockets,
        next,
    })
}

fn page(query: Option<&str>) -> Result<Page, ApiError> {
    let mut page = Page::default();
    for (name, value) in query_pairs(query)? {
        match name.as_str() {
            "room" => page.room = Some(value),
            "after" => page.after = Some(value),
            "limit" => page.limit = Some(limit(&value)?),
            other => {
                return Err(ApiError::BadQuery(format!(
                    "unknown parameter `{other}` (expected room, limit, after)"
                )));
            }
        }
    }
    Ok(page)
}

fn limit(text: &str) -> Result<usize, ApiError> {
    match text.parse::<usize>() {
        Ok(n @ 1..=MAX_SOCKETS_PAGE) => Ok(n),
        _ => Err(ApiError::BadQuery(format!(
            "`limit` must be a number from 1 to {MAX_SOCKETS_PAGE}"
        ))),
    }
}

/// One socket, on whichever node holds it, or 404.
pub(crate) async fn socket(
    state: &ApiState,
    namespace: &str,
    id: &str,
) -> Result<SocketView, ApiError> {
    let ns = select::namespace(&state.io, namespace)?;
    let unknown = || ApiError::UnknownSocket(id.to_owned());
    let sid = socket_id(id).map_err(|_| unknown())?;
    if let Some(socket) = ns.socket(sid) {
        return Ok(SocketView::of(&socket));
    }
    // Every socket is in the room named by its id.
    let remote = cluster_sockets(&ns, &ns.to(sid.as_str())).await?;
    remote.into_iter().next().ok_or_else(unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_parameters_are_checked() {
        assert_eq!(page(None), Ok(Page::default()));
        assert_eq!(
            page(Some("room=a%3Ab&limit=5&after=x")),
            Ok(Page {
                room: Some("a:b".into()),
                limit: Some(5),
                after: Some("x".into()),
            })
        );
        for bad in ["limit=0", "limit=1001", "limit=x", "lmit=5"] {
            assert!(
                matches!(page(Some(bad)), Err(ApiError::BadQuery(_))),
                "{bad}"
            );
        }
    }
}
