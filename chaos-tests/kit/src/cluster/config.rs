//! A node's config file as the cluster writes it.

use std::net::SocketAddr;

use super::NodeProc;

/// The `[[initial_members]]` tables naming `(id, raft, api)` of each initial member.
pub(super) fn members(nodes: &[(u64, SocketAddr, SocketAddr)]) -> String {
    nodes
        .iter()
        .map(|(id, raft, api)| {
            format!("[[initial_members]]\nid = {id}\nraft = \"{raft}\"\napi = \"{api}\"\n\n")
        })
        .collect()
}

/// The config of node `n`: identity, directories and addresses, then `settings` (shared by
/// every node), the initial members if `n` is one of them, then the node's own extra TOML.
/// Without a `[tls]` section the node runs insecure, as said in so many words.
pub(super) fn render(cluster_id: &str, n: &NodeProc, settings: &str, members: &str) -> String {
    let members = if n.initial { members } else { "" };
    let insecure = if settings.contains("[tls]") || n.extra.contains("[tls]") {
        ""
    } else {
        "insecure = true\n"
    };
    format!(
        "cluster_id = \"{cluster_id}\"\nnode_id = {}\ndata_dir = \"{}\"\n\
         api_listen = \"{}\"\nraft_listen = \"{}\"\nhttp_listen = \"{}\"\n{insecure}{settings}\n\n\
         {members}{}",
        n.id,
        n.data.display(),
        n.api,
        n.raft,
        n.http,
        n.extra,
    )
}
