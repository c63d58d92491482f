//! Which role each method of the client API needs.

use qastore_security::Role;

/// What a method asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Any identity of this cluster: the calls a client makes to find the leader and the
    /// members, whatever it then does.
    AnyIdentity,
    /// One role.
    Role(Role),
    /// Only another node of the cluster.
    NodeOnly,
}

/// What `path` (`/qastore.v1.Store/Write`) needs, or `None` for a method this table does not
/// know, which no client may call.
pub fn need(path: &str) -> Option<Need> {
    let (service, method) = path.strip_prefix("/qastore.v1.")?.split_once('/')?;
    let role = match (service, method) {
        ("Store", "Write" | "WriteStream") => Role::Writer,
        (
            "Store",
            "GetOrder" | "ListOrders" | "GetAccounts" | "GetPositions" | "ListTrades" | "ListTicks"
            | "GetLatestBook" | "GetBars",
        ) => Role::Reader,
        (
            "Feed",
            "Subscribe" | "CreateConsumer" | "Ack" | "ListConsumers" | "GetConsumer"
            | "DeleteConsumer",
        ) => Role::Subscriber,
        ("Admin", "GetNodeStatus" | "ClusterStatus" | "Members") => return Some(Need::AnyIdentity),
        (
            "Admin",
            "AddLearner" | "Promote" | "RemoveNode" | "TransferLeadership" | "TriggerSnapshot"
            | "TriggerCompaction" | "Backup" | "StateHash" | "HashMark" | "GetStorageStats"
            | "GetWriteStages" | "Halt" | "SetAccess" | "RemoveAccess" | "ListAccess" | "ListAudit"
            | "GetClusterSettings" | "SetClusterSettings",
        ) => Role::Admin,
        ("Admin", "RecordAudit") => return Some(Need::NodeOnly),
        _ => return None,
    };
    Some(Need::Role(role))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_of_the_api_has_a_rule() {
        for path in qastore_proto::API_METHODS {
            assert!(need(path).is_some(), "{path} has no access rule");
        }
    }

    #[test]
    fn unknown_methods_need_what_nobody_has() {
        for path in [
            "/qastore.v1.Store/Drop",
            "/qastore.v1.RaftPeer/Append",
            "/other.Store/Write",
            "",
        ] {
            assert_eq!(need(path), None, "{path}");
        }
    }

    #[test]
    fn halting_a_node_takes_an_admin_and_writing_a_writer() {
        assert_eq!(
            need("/qastore.v1.Admin/Halt"),
            Some(Need::Role(Role::Admin))
        );
        assert_eq!(
            need("/qastore.v1.Store/WriteStream"),
            Some(Need::Role(Role::Writer))
        );
        assert_eq!(
            need("/qastore.v1.Admin/ClusterStatus"),
            Some(Need::AnyIdentity)
        );
    }
}
