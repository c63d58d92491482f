//! Which node serves a subscription next: followers first, in turn, the leader last (fan-out
//! is the followers' job), and the node that just failed after the other followers.

use std::time::Duration;

use qastore_proto::v1 as pb;

use crate::connector::Connector;

/// A node's role as far as the client could tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// It answered and does not lead.
    Follower,
    /// It answered that it leads.
    Leader,
    /// It did not answer, or is between roles.
    Unknown,
}

/// The order in which to try `nodes`, rotated by `turn` so that successive rounds spread over
/// the followers. With `prefer_followers`: answering followers, then nodes of unknown role,
/// then `avoid` (the node that just failed), then the leader; without it, every node in turn
/// with `avoid` last.
pub(crate) fn order(
    nodes: &[(String, Role)],
    turn: usize,
    avoid: Option<&str>,
    prefer_followers: bool,
) -> Vec<String> {
    let n = nodes.len().max(1);
    let rotated = nodes
        .iter()
        .cycle()
        .skip(turn % n)
        .take(nodes.len())
        .filter(|(addr, _)| Some(addr.as_str()) != avoid);
    let mut out: Vec<String> = if prefer_followers {
        let pick = |role: Role| {
            rotated
                .clone()
                .filter(move |(_, r)| *r == role)
                .map(|(a, _)| a.clone())
        };
        pick(Role::Follower).chain(pick(Role::Unknown)).collect()
    } else {
        rotated.clone().map(|(a, _)| a.clone()).collect()
    };
    let avoided_leader = nodes
        .iter()
        .any(|(a, r)| Some(a.as_str()) == avoid && *r == Role::Leader);
    if let Some(a) = avoid.filter(|a| nodes.iter().any(|(n, _)| n == a)) {
        if !(prefer_followers && avoided_leader) {
            out.push(a.to_string());
        }
    }
    if prefer_followers {
        out.extend(
            nodes
                .iter()
                .filter(|(_, r)| *r == Role::Leader)
                .map(|(a, _)| a.clone()),
        );
    }
    out
}

/// Asks every endpoint for its role at once, waiting at most `wait` for each. `leader_hint`:
/// the address a node's error named as leader, for when the leader itself does not answer.
pub(crate) async fn roles(
    connector: &Connector,
    endpoints: &[String],
    wait: Duration,
    leader_hint: Option<&str>,
) -> Vec<(String, Role)> {
    let asks = endpoints.iter().map(|addr| async move {
        let Ok(mut admin) = connector.admin_at(addr) else {
            return (addr.clone(), Role::Unknown);
        };
        let mut req = tonic::Request::new(pb::NodeStatusRequest {});
        req.set_timeout(wait);
        let answer = tokio::time::timeout(wait, admin.get_node_status(req)).await;
        let role = match answer {
            Ok(Ok(s)) => match s.into_inner().role() {
                pb::Role::Leader => Role::Leader,
                pb::Role::Follower | pb::Role::Learner => Role::Follower,
                _ => Role::Unknown,
            },
            _ if leader_hint == Some(addr.as_str()) => Role::Leader,
            _ => Role::Unknown,
        };
        (addr.clone(), role)
    });
    futures::future::join_all(asks).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<(String, Role)> {
        vec![
            ("a".into(), Role::Leader),
            ("b".into(), Role::Follower),
            ("c".into(), Role::Follower),
            ("d".into(), Role::Unknown),
        ]
    }

    #[test]
    fn followers_come_first_in_turn_and_the_leader_last() {
        assert_eq!(order(&nodes(), 0, None, true), ["b", "c", "d", "a"]);
        assert_eq!(order(&nodes(), 2, None, true), ["c", "b", "d", "a"]);
        // The node that just failed goes after the other followers, before the leader.
        assert_eq!(order(&nodes(), 0, Some("b"), true), ["c", "d", "b", "a"]);
        // A failed leader is still last.
        assert_eq!(order(&nodes(), 0, Some("a"), true), ["b", "c", "d", "a"]);
    }

    #[test]
    fn without_a_preference_every_node_takes_its_turn() {
        assert_eq!(order(&nodes(), 1, None, false), ["b", "c", "d", "a"]);
        assert_eq!(order(&nodes(), 1, Some("c"), false), ["b", "d", "a", "c"]);
        assert_eq!(order(&[], 3, Some("x"), true), Vec::<String>::new());
    }
}
