//! Classic consumer groups: FindCoordinator, the JoinGroup/SyncGroup/Heartbeat edge cases of
//! KIP-394 and generations, OffsetCommit/OffsetFetch, group states in DescribeGroups and
//! ListGroups, LeaveGroup, DeleteGroups, OffsetDelete, and `__consumer_offsets` itself.

use super::{sc, Scenario};
use crate::group_ops::SESSION_TIMEOUT_MS;
use crate::ops::{assignment, join_request, topic};

pub fn all() -> Vec<Scenario> {
    vec![
        sc("group-find-coordinator", |s| {
            let g = s.n("g");
            s.wait_coordinator(&g);
            s.find_coordinator("find", &g);
        }),
        sc("group-join-member-id-required", |s| {
            let (g, t) = (s.n("g"), s.setup_topic("t", 2, &[]));
            s.wait_coordinator(&g);
            let first = s.join(0, "join-empty-id", &g, "", None, &[&t]).unwrap();
            let j = s
                .join(0, "join-with-id", &g, &first.member_id, None, &[&t])
                .unwrap();
            let a = vec![(j.member_id.clone(), assignment(&t, &[0, 1]))];
            s.sync(0, "sync", &g, j.generation_id, &j.member_id, &a);
            s.describe_groups("describe", &[&g]);
        }),
        sc("group-join-unknown-member-id", |s| {
            let g = s.n("g");
            s.wait_coordinator(&g);
            s.join(0, "join", &g, "bogus-member", None, &["x"]);
        }),
        sc("group-join-invalid-session-timeout", |s| {
            let g = s.n("g");
            s.wait_coordinator(&g);
            s.join_raw(
                "too-short",
                &join_request(&g, "", None, "consumer", &["x"], 1000),
            );
            s.join_raw(
                "too-long",
                &join_request(&g, "", None, "consumer", &["x"], 2_000_000),
            );
        }),
        sc("group-join-invalid-group-id", |s| {
            s.join(0, "join", "", "", None, &["x"]);
        }),
        sc("group-join-empty-protocol-type", |s| {
            let g = s.n("g");
            s.wait_coordinator(&g);
            let req = join_request(&g, "", None, "", &["x"], SESSION_TIMEOUT_MS);
            s.join_raw("empty-type", &req);
            let mut none = join_request(&g, "", None, "consumer", &["x"], SESSION_TIMEOUT_MS);
            none.protocols.clear();
            s.join_raw("no-protocols", &none);
        }),
        sc("group-join-inconsistent-protocol-type", |s| {
            let (g, t) = (s.n("g"), s.setup_topic("t", 1, &[]));
            s.stable_member(&g, &t);
            let req = join_request(&g, "", None, "connect", &[&t], SESSION_TIMEOUT_MS);
            s.join_raw("join-connect", &req);
        }),
        sc("group-sync-wrong-generation", |s| {
            let (g, t) = (s.n("g"), s.setup_topic("t", 1, &[]));
            let (m, gen) = s.stable_member(&g, &t);
            s.sync(0, "sync-next", &g, gen + 1, &m, &[]);
            s.sync(0, "sync-previous", &g, gen - 1, &m, &[]);
            s.sync(0, "sync-current", &g, gen, &m, &[]);
        }),
        sc("group-sync-unknown-member", |s| {
            let (g, t) = (s.n("g"), s.setup_topic("t", 1, &[]));
            let (_, gen) = s.stable_member(&g, &t);
            s.sync(0, "sync", &g, gen, "bogus-member", &[]);
            s.sync(
                0,
                "sync-unknown-group",
                &s.n("other"),
                1,
                "bogus-member",
                &[],
            );
        }),
        sc("group-heartbeat-errors", |s| {
            let (g, t) = (s.n("g"), s.setup_topic("t", 1, &[]));
            let (m, gen) = s.stable_member(&g, &t);
            s.heartbeat("ok", &g, gen, &m);
            s.heartbeat("wrong-generation", &g, gen + 1, &m);
            s.heartbeat("unknown-member", &g, gen, "bogus-member");
            s.heartbeat("unknown-group", &s.n("other"), 1, "bogus-member");
        }),
        sc("group-heartbeat-rebalance-in-progress", |s| {
            let (g, t) = (s.n("g"), s.setup_topic("t", 2, &[]));
            let (m1, gen) = s.stable_member(&g, &t);
            let second = s
                .join(1, "second-join-empty-id", &g, "", None, &[&t])
                .unwrap();
            // The second member's JoinGroup waits for the first to rejoin.
            s.join_send(1, &g, &second.member_id, None, &[&t]);
            s.wait_until("the rebalance to start", |s| {
                s.heartbeat_quiet(&g, gen, &m1) != 0
            });
            s.heartbeat("heartbeat", &g, gen, &m1);
            s.describe_groups("describe-rebalancing", &[&g]);
            let j1 = s.join(0, "rejoin-first", &g, &m1, None, &[&t]).unwrap();
            let j2 = s.join_recv(1, "join-second").unwrap();
            let (leader, follower) = if j1.leader == j1.member_id {
                (j1, j2)
            } else {
                (j2, j1)
            };
            let a = vec![
                (leader.member_id.clone(), assignment(&t, &[0])),
                (follower.member_id.clone(), assignment(&t, &[1])),
            ];
            s.sync(
                0,
                "sync-leader",
                &g,
                leader.generation_id,
                &leader.member_id,
                &a,
            );
            s.sync(
                1,
                "sync-follower",
                &g,
                follower.generation_id,
                &follower.member_id,
                &[],
            );
            s.heartbeat(
                "heartbeat-after",
                &g,
                leader.generation_id,
                &leader.member_id,
            );
            s.describe_groups("describe-stable", &[&g]);
        }),
        sc("group-commit-generations", |s| {
            let (g, t) = (s.n("g"), s.setup_topic("t", 1, &[]));
            let (m, gen) = s.stable_member(&g, &t);
            s.commit("current", &g, gen, &m, &t, &[(0, 5)]);
            s.commit("next-generation", &g, gen + 1, &m, &t, &[(0, 6)]);
            s.commit("unknown-member", &g, gen, "bogus-member", &t, &[(0, 7)]);
            s.commit("simple-to-stable", &g, -1, "", &t, &[(0, 8)]);
            s.offset_fetch("fetch", &g, Some(&[(&t, &[0])]));
        }),
        sc("group-commit-unknown-group", |s| {
            let (g, t) = (s.n("g"), s.setup_topic("t", 1, &[]));
            s.wait_coordinator(&g);
            s.commit("generation-3", &g, 3, "bogus-member", &t, &[(0, 1)]);
            s.describe_groups("describe", &[&g]);
        }),
        sc("group-commit-simple-and-fetch", |s| {
            let (g, t) = (s.n("g"), s.setup_topic("t", 2, &[]));
            s.wait_coordinator(&g);
            s.commit("commit", &g, -1, "", &t, &[(0, 3), (1, 0)]);
            s.offset_fetch("fetch-partitions", &g, Some(&[(&t, &[0, 1])]));
            s.offset_fetch("fetch-all", &g, None);
            s.describe_groups("describe", &[&g]);
        }),
        sc("group-commit-unknown-topic", |s| {
            let g = s.n("g");
            let t = s.setup_topic("t", 1, &[]);
            s.wait_coordinator(&g);
            s.commit("unknown-topic", &g, -1, "", &s.n("missing"), &[(0, 1)]);
            s.commit("unknown-partition", &g, -1, "", &t, &[(3, 1)]);
        }),
        sc("group-offset-fetch-unknown-group", |s| {
            let (g, t) = (s.n("g"), s.setup_topic("t", 1, &[]));
            s.wait_coordinator(&g);
            s.offset_fetch("fetch-partitions", &g, Some(&[(&t, &[0])]));
            s.offset_fetch("fetch-all", &g, None);
            s.offset_fetch(
                "fetch-unknown-topic",
                &g,
                Some(&[("no-such-topic", &[0, 1])]),
            );
        }),
        sc("group-describe-states", |s| {
            let t = s.setup_topic("t", 1, &[]);
            let (stable, empty, dead) = (s.n("stable"), s.n("empty"), s.n("dead"));
            s.stable_member(&stable, &t);
            s.wait_coordinator(&empty);
            s.commit("commit-empty", &empty, -1, "", &t, &[(0, 1)]);
            s.wait_coordinator(&dead);
            s.describe_groups("describe", &[&stable, &empty, &dead]);
        }),
        sc("group-list-states", |s| {
            let t = s.setup_topic("t", 1, &[]);
            let (stable, empty) = (s.n("stable"), s.n("empty"));
            s.stable_member(&stable, &t);
            s.wait_coordinator(&empty);
            s.commit("commit-empty", &empty, -1, "", &t, &[(0, 1)]);
            s.list_groups("all", &[]);
            s.list_groups("stable", &["Stable"]);
            s.list_groups("empty", &["Empty"]);
            s.list_groups(
                "rebalancing",
                &["PreparingRebalance", "CompletingRebalance"],
            );
        }),
        sc("group-leave", |s| {
            let (g, t) = (s.n("g"), s.setup_topic("t", 1, &[]));
            let (m, _) = s.stable_member(&g, &t);
            s.leave("leave-unknown", &g, &[("bogus-member", None)]);
            s.leave("leave", &g, &[(&m, None)]);
            s.describe_groups("describe", &[&g]);
            s.leave(
                "leave-unknown-group",
                &s.n("other"),
                &[("bogus-member", None)],
            );
        }),
        sc("group-static-member", |s| {
            let (g, t) = (s.n("g"), s.setup_topic("t", 1, &[]));
            s.wait_coordinator(&g);
            let j = s
                .join(0, "join", &g, "", Some("instance-1"), &[&t])
                .unwrap();
            let a = vec![(j.member_id.clone(), assignment(&t, &[0]))];
            s.sync(0, "sync", &g, j.generation_id, &j.member_id, &a);
            s.join(1, "rejoin-new-id", &g, "", Some("instance-1"), &[&t]);
            s.describe_groups("describe", &[&g]);
            s.leave("leave-by-instance", &g, &[("", Some("instance-1"))]);
            s.describe_groups("describe-after", &[&g]);
        }),
        sc("group-delete", |s| {
            let t = s.setup_topic("t", 1, &[]);
            let (stable, empty, missing) = (s.n("stable"), s.n("empty"), s.n("missing"));
            s.stable_member(&stable, &t);
            s.wait_coordinator(&empty);
            s.wait_coordinator(&missing);
            s.commit("commit-empty", &empty, -1, "", &t, &[(0, 1)]);
            s.delete_groups("delete", &[&stable, &empty, &missing]);
            s.describe_groups("describe", &[&empty]);
            s.offset_fetch("fetch", &empty, Some(&[(&t, &[0])]));
        }),
        sc("group-offset-delete", |s| {
            let t = s.setup_topic("t", 1, &[]);
            let (stable, empty, missing) = (s.n("stable"), s.n("empty"), s.n("missing"));
            let (m, gen) = s.stable_member(&stable, &t);
            s.commit("commit-stable", &stable, gen, &m, &t, &[(0, 2)]);
            s.offset_delete("delete-subscribed", &stable, &t, &[0]);
            s.wait_coordinator(&empty);
            s.commit("commit-empty", &empty, -1, "", &t, &[(0, 1)]);
            s.offset_delete("delete-empty", &empty, &t, &[0]);
            s.offset_fetch("fetch-empty", &empty, Some(&[(&t, &[0])]));
            s.wait_coordinator(&missing);
            s.offset_delete("delete-missing", &missing, &t, &[0]);
        }),
        sc("group-offsets-topic", |s| {
            let g = s.n("g");
            s.wait_coordinator(&g);
            s.metadata("metadata", &["__consumer_offsets"], false);
            s.create("create", topic("__consumer_offsets", 1));
        }),
    ]
}
