//! `nodes.list`, `tools.list`: pages that shrink to fit the controller's frame, and cursors
//! that name the last item listed, so a listing goes on correctly while nodes come and go.

use super::*;

pub(super) fn node_view<'r, K>(entries: &[Entry], id: &'r str, rec: &NodeRec<K>) -> NodeView<'r> {
    let slot = entries
        .get(rec.conn.index as usize)
        .filter(|e| e.generation == rec.conn.generation)
        .and_then(|e| e.slot.as_ref());
    let (in_flight, encoding) = slot.map_or((0, Encoding::Json), |s| {
        (s.conn.in_flight(), s.conn.encoding())
    });
    NodeView {
        id,
        tools: rec.tools.len(),
        in_flight,
        encoding,
    }
}

fn plain<'s>(s: Option<Str<'s>>) -> Option<Option<&'s str>> {
    s.map(|s| s.as_plain())
}

impl<S: Schemas> Router<S> {
    pub(super) fn list_nodes(&mut self, conn: ConnId, id: Id<'_>, q: ListNodes<'_>) {
        // The cursor is the id of the last node of the previous page.
        let after = match q
            .cursor
            .map(|c| c.as_plain().filter(|c| valid_cursor_part(c)))
        {
            None => None,
            Some(Some(c)) => Some(c),
            Some(None) => return self.bad_cursor(conn, id),
        };
        let range = (
            after.map_or(Bound::Unbounded, Bound::Excluded),
            Bound::Unbounded,
        );
        let Router {
            entries,
            scratch,
            nodes,
            ..
        } = self;
        let all: Vec<NodeInfo<'_>> = nodes
            .range::<str, _>(range)
            .take(page_limit(q.limit) + 1)
            .map(|(id, rec)| {
                let v = node_view(entries, id, rec);
                NodeInfo {
                    id: Str::new(v.id),
                    tools: v.tools as u32,
                    in_flight: v.in_flight as u32,
                    encoding: v.encoding,
                }
            })
            .collect();
        let Some(slot) = entries[conn.index as usize].slot.as_mut() else {
            return;
        };
        let r = fit_page(&all, page_limit(q.limit), |page, more| {
            let body = NodesPage {
                nodes: List::from_slice(page),
                next_cursor: more.then(|| page.last().map(|n| n.id)).flatten(),
            };
            slot.conn.respond(id, &body, scratch)
        });
        if self.send_result(conn.index, r).is_err() {
            self.too_large(conn, id);
        }
    }

    pub(super) fn list_tools(&mut self, conn: ConnId, id: Id<'_>, q: ListTools<'_>) {
        // Names are matched as written: a filter spelled with escapes matches nothing.
        let (prefix, node) = match (plain(q.prefix), plain(q.node)) {
            (Some(None), _) | (_, Some(None)) => (Some("\u{0}"), Some("\u{0}")),
            (p, n) => (p.flatten(), n.flatten()),
        };
        // The cursor is `node/tool` of the last tool of the previous page.
        let after = match q.cursor.map(|c| {
            c.as_plain()
                .and_then(|c| c.split_once('/'))
                .filter(|(n, t)| valid_cursor_part(n) && valid_cursor_part(t))
        }) {
            None => None,
            Some(Some(c)) => Some(c),
            Some(None) => return self.bad_cursor(conn, id),
        };
        let limit = page_limit(q.limit);
        let Router {
            entries,
            scratch,
            nodes,
            ..
        } = self;
        let scope = entries
            .get(conn.index as usize)
            .and_then(|e| e.slot.as_ref())
            .and_then(|s| match &s.peer {
                Peer::Controller { scope, .. } => scope.as_deref(),
                _ => None,
            });
        let mut all: Vec<ToolEntry<'_>> = Vec::new();
        let nodes = nodes.range::<str, _>((
            after.map_or(Bound::Unbounded, |(n, _)| Bound::Included(n)),
            Bound::Unbounded,
        ));
        'outer: for (nid, rec) in nodes {
            if node.is_some_and(|n| n != nid) {
                continue;
            }
            let tools = match after {
                Some((n, t)) if n == nid => rec
                    .tools
                    .range::<str, _>((Bound::Excluded(t), Bound::Unbounded)),
                _ => rec.tools.range::<str, _>(..),
            };
            for (name, t) in tools {
                if prefix.is_some_and(|p| !name.starts_with(p))
                    || scope.is_some_and(|s| !s.permits(nid, name))
                {
                    continue;
                }
                all.push(ToolEntry {
                    node: Str::new(nid),
                    tool: tool_view(nid, name, t).def(),
                });
                if all.len() > limit {
                    break 'outer;
                }
            }
        }
        let Some(slot) = entries[conn.index as usize].slot.as_mut() else {
            return;
        };
        let r = fit_page(&all, limit, |page, more| {
            let cursor = more
                .then(|| {
                    page.last()
                        .map(|e| format!("{}/{}", e.node.raw(), e.tool.name.raw()))
                })
                .flatten();
            let body = ToolsPage {
                tools: List::from_slice(page),
                next_cursor: cursor.as_deref().map(Str::new),
            };
            slot.conn.respond(id, &body, scratch)
        });
        if self.send_result(conn.index, r).is_err() {
            self.too_large(conn, id);
        }
    }

    /// A page of one item (or a `tools.resolve` answer) that does not fit the controller's
    /// frame: the request is still answered.
    pub(super) fn too_large(&mut self, conn: ConnId, id: Id<'_>) {
        let f = Failure::new(
            ErrorCode::FrameTooLarge,
            "the answer exceeds the caller's frame limit",
        );
        self.respond_error(conn, id, &f);
    }

    fn bad_cursor(&mut self, conn: ConnId, id: Id<'_>) {
        let f = Failure::new(
            ErrorCode::InvalidParams,
            "invalid cursor: pass back a next_cursor this gateway gave",
        );
        self.respond_error(conn, id, &f);
    }
}

pub(super) fn tool_view<'r, K>(node: &'r str, name: &'r str, t: &'r ToolRec<K>) -> ToolView<'r> {
    ToolView {
        node,
        name,
        description: &t.description,
        input_schema: &t.input_schema,
        output_schema: t.output_schema.as_deref(),
        annotations: t.annotations,
    }
}

fn page_limit(limit: Option<u32>) -> usize {
    limit
        .map_or(DEFAULT_PAGE, |l| l as usize)
        .clamp(1, MAX_PAGE)
}

/// Node ids and tool names use `A-Z a-z 0-9 _ - .`; so do cursors made of them.
fn valid_cursor_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= crate::frame::MAX_TOOL_NAME
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Encodes the first `limit` of `items` (`items` holds one more when a next page exists),
/// halving the page until its frame fits.
fn fit_page<T>(
    items: &[T],
    limit: usize,
    mut encode: impl FnMut(&[T], bool) -> Result<usize, EncodeError>,
) -> Result<usize, EncodeError> {
    let mut n = limit.min(items.len());
    loop {
        match encode(&items[..n], n < items.len()) {
            Err(EncodeError::BufferTooSmall { .. }) if n > 1 => n /= 2,
            r => return r,
        }
    }
}
