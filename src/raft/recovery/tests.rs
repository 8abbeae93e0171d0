//! Unit tests of the vote and replication rules of a recovering node.

use super::*;

fn vote(term: u64, leader: NodeId) -> Vote {
    openraft::Vote::new_committed(term, leader)
}

/// A membership of voters 1 and 2 in which node 3, held by `incarnation`, is a voter
/// (`voter`) or a learner.
fn with_node_3(incarnation: Uuid, voter: bool) -> Membership {
    let voters = if voter {
        std::collections::BTreeSet::from([1, 2, 3])
    } else {
        std::collections::BTreeSet::from([1, 2])
    };
    let nodes: std::collections::BTreeMap<NodeId, crate::raft::Member> = [1, 2, 3]
        .into_iter()
        .map(|id| {
            let inc = if id == 3 { incarnation } else { Uuid::new_v4() };
            (id, crate::raft::Member::new(format!("n{id}"), inc))
        })
        .collect();
    Membership::new(vec![voters], nodes).expect("a valid membership")
}

/// Voters 1, 2 and 3 as a membership from before incarnations records them (no incarnation).
pub(crate) fn legacy_membership() -> Membership {
    let nodes: std::collections::BTreeMap<NodeId, crate::raft::Member> = [1, 2, 3]
        .into_iter()
        .map(|id| {
            let member = crate::raft::Member {
                addr: format!("n{id}"),
                incarnation: None,
            };
            (id, member)
        })
        .collect();
    Membership::new(vec![std::collections::BTreeSet::from([1, 2, 3])], nodes)
        .expect("a valid membership")
}

/// Node 3 of incarnation `inc` whose log ends at entry 9 (term 2) and whose `log/acked` is
/// gone: it lost data and cannot say how far it had acknowledged.
fn without_watermark_file(inc: Uuid) -> Recovery {
    Recovery::new(
        3,
        inc,
        Origin::Existing,
        Some(EntryId { index: 9, term: 2 }),
        Some(9),
    )
    .data_missing("its acknowledged-watermark file (log/acked) is missing")
}

fn nobody() -> Membership {
    Membership::new(vec![], std::collections::BTreeMap::new()).expect("empty")
}

#[test]
fn a_recovering_node_accepts_only_the_leader_it_announced_itself_to() {
    let inc = Uuid::new_v4();
    let r = Recovery::new(3, inc, Origin::Fresh, None, None);
    let candidate = crate::raft::log_id(9, 100);
    assert!(!r.may_grant(Some(&candidate), &nobody()));
    assert!(
        !r.may_grant(Some(&candidate), &with_node_3(Uuid::new_v4(), true)),
        "a new directory grants nothing for a seat another incarnation holds"
    );
    assert!(!r.is_voting());
    assert!(r.admit(&vote(3, 1)).is_err());
    r.grant(Permit { term: 3, leader: 1 }, Some(7));
    assert!(r.admit(&vote(3, 1)).is_ok());
    assert!(
        r.admit(&vote(4, 3)).is_err(),
        "a new leader must be announced to again"
    );
}

#[test]
fn a_missing_vote_file_beside_a_log_is_a_loss() {
    let inc = Uuid::new_v4();
    let r = Recovery::new(3, inc, Origin::Existing, None, Some(5)).vote_missing();
    assert!(r.needs_rejoin());
    assert!(!r.may_grant(Some(&crate::raft::log_id(9, 100)), &with_node_3(inc, true)));
}

#[test]
fn a_log_that_ends_before_the_commit_index_is_a_loss_but_a_full_one_is_not() {
    let at = |index, term| Some(EntryId { index, term });
    let lost = Recovery::new(1, Uuid::new_v4(), Origin::Existing, at(10, 3), Some(7));
    assert!(lost
        .reason()
        .contains("before entry 10 that it had acknowledged"));
    let intact = Recovery::new(1, Uuid::new_v4(), Origin::Existing, at(10, 3), Some(12));
    assert!(intact.reason().is_empty());
}

#[test]
fn a_node_that_lost_its_tail_votes_only_for_a_candidate_holding_what_it_held() {
    let held = Some(EntryId { index: 10, term: 3 });
    let inc = Uuid::new_v4();
    let lost = Recovery::new(3, inc, Origin::Existing, held, Some(7));
    let m = with_node_3(inc, true);
    let log = crate::raft::log_id;
    assert!(lost.may_grant(Some(&log(3, 10)), &m));
    assert!(
        lost.may_grant(Some(&log(4, 8)), &m),
        "a later term is more up to date"
    );
    assert!(
        !lost.may_grant(Some(&log(3, 9)), &m),
        "this candidate lacks entry 10"
    );
    assert!(
        !lost.may_grant(Some(&log(2, 40)), &m),
        "an older term is less up to date"
    );
    assert!(!lost.may_grant(None, &m));
}

/// The CI failure of session 10: node 3 was stopped after the leader promoted it but before
/// the promotion reached its own log, and the other follower then died. The leader's log
/// counts node 3 as a voter; node 3 lost nothing. Refusing the vote left no leader at all.
#[test]
fn an_intact_node_whose_promotion_has_not_reached_it_grants_its_vote() {
    let inc = Uuid::new_v4();
    let held = Some(EntryId { index: 10, term: 3 });
    let intact = Recovery::new(3, inc, Origin::Existing, held, Some(12));
    assert!(!intact.needs_rejoin());
    assert!(!intact.is_voting(), "not a voter in its own log yet");
    let candidate = crate::raft::log_id(3, 12);
    assert!(intact.may_grant(Some(&candidate), &with_node_3(inc, false)));
    assert!(intact.may_grant(Some(&candidate), &with_node_3(inc, true)));
}

/// An intact directory whose seat another incarnation holds (a wiped node's new
/// incarnation, restarted before the seat was handed to it) could not vouch for what the
/// old one acknowledged; nor can a node its own log does not list.
#[test]
fn an_intact_node_grants_no_vote_for_a_seat_that_is_not_its_own() {
    let inc = Uuid::new_v4();
    let intact = Recovery::new(3, inc, Origin::Existing, None, Some(12));
    let candidate = Some(crate::raft::log_id(3, 12));
    assert!(!intact.may_grant(candidate.as_ref(), &with_node_3(Uuid::new_v4(), true)));
    assert!(!intact.may_grant(candidate.as_ref(), &with_node_3(Uuid::new_v4(), false)));
    assert!(!intact.may_grant(candidate.as_ref(), &nobody()));
    assert!(
        intact.reason_now().contains("seat is not its own"),
        "{}",
        intact.reason_now()
    );
}

/// Review (session 11): the lost-tail path of `may_grant` asks nothing of the seat. A wiped
/// node's new incarnation B that lost the tail of what it had received while catching up
/// (its persisted commit id is past its log's end: a power loss mid catch-up) grants any
/// candidate as up to date as B's own watermark, while its log still gives the seat to the
/// old incarnation A. The candidate counts that grant as A's, and B never held what A
/// acknowledged. Intact, the same B refuses (the test above): losing data must not make a
/// node more willing to vote.
#[test]
fn a_node_that_lost_its_tail_grants_no_vote_for_a_seat_another_incarnation_holds() {
    let b = Uuid::new_v4();
    let held = Some(EntryId { index: 50, term: 3 });
    let lost = Recovery::new(3, b, Origin::Existing, held, Some(40));
    assert!(lost.needs_rejoin());
    let candidate = Some(crate::raft::log_id(3, 50));
    assert!(
        !lost.may_grant(candidate.as_ref(), &with_node_3(Uuid::new_v4(), true)),
        "the seat is the old incarnation's: B's vote would count as A's"
    );
    assert!(
        !lost.may_grant(candidate.as_ref(), &nobody()),
        "a log that names no seat at all cannot vouch for one"
    );
}

/// Review (session 11): a membership from before incarnations records no incarnation, and
/// `seat_is_ours` trusts every directory that is not `Fresh` *at this start*. A directory
/// made new (wiped) is `Fresh` only at its first start: restarted once (SIGKILL, before the
/// leader handed it the seat) it is `Existing`, and the seat recorded without an incarnation
/// becomes its own. It then grants votes (and, through `may_vote`, votes and campaigns) as
/// the old incarnation, without what that one acknowledged.
#[test]
fn a_wiped_directory_restarted_does_not_take_a_seat_recorded_before_incarnations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, origin) = crate::storage::Identity::open(dir.path(), false).expect("open");
    assert_eq!(origin, Origin::Fresh, "the wiped directory's first start");
    let inc = first.incarnation();
    drop(first);
    // As `raft::node::open` does at every start: what is unproven is saved before Raft runs.
    let mark = crate::storage::RecoveringMark::open(dir.path()).expect("mark");
    let first_start =
        Recovery::new(3, inc, origin, None, None).unfinished(mark.load().expect("load"));
    mark.save(first_start.unproven()).expect("save");
    // It caught up on part of the log (memberships from before incarnations), then was
    // killed and started again: the directory now holds state and an identity.
    let (again, origin) = crate::storage::Identity::open(dir.path(), true).expect("reopen");
    assert_eq!(again.incarnation(), inc);
    let mark = crate::storage::RecoveringMark::open(dir.path()).expect("mark");
    let restarted = Recovery::new(3, inc, origin, Some(EntryId { index: 5, term: 1 }), Some(5))
        .unfinished(mark.load().expect("load"));
    assert!(restarted.needs_rejoin(), "{}", restarted.reason());
    assert!(
        !restarted.may_grant(Some(&crate::raft::log_id(1, 5)), &legacy_membership()),
        "a directory made empty never held the legacy seat: its vote would count as the old node's"
    );
}

/// Review (session 11), liveness: a wiped node's new incarnation B on its first start
/// (`Fresh`) whose log already gives the seat to B, as the learner the hand-over made it,
/// refuses every vote, while the very same directory restarted once (`Existing`) grants.
/// The seat check is what makes the grant safe (a membership naming B was written after B
/// existed, so nothing an earlier incarnation acknowledged is at stake); "new directory"
/// adds nothing to it. Hand-over of node 3 in {1,2,3}: the leader promotes B with node 2
/// (joint and uniform commit on {1,2}), B is cut off before the promotion reaches it, the
/// leader dies: node 2 needs B's vote and B refuses until the old leader returns; SIGKILL
/// and restart B and node 2 is elected. The CI failure 3de0e83 fixes, one start earlier.
#[test]
fn a_new_incarnation_holding_its_own_seat_grants_as_it_would_after_a_restart() {
    let inc = Uuid::new_v4();
    let learner = with_node_3(inc, false);
    let candidate = Some(crate::raft::log_id(4, 30));
    let first_start = Recovery::new(3, inc, Origin::Fresh, None, Some(20));
    let restarted = Recovery::new(
        3,
        inc,
        Origin::Existing,
        Some(EntryId { index: 20, term: 4 }),
        Some(20),
    );
    assert!(restarted.may_grant(candidate.as_ref(), &learner));
    assert_eq!(
        first_start.may_grant(candidate.as_ref(), &learner),
        restarted.may_grant(candidate.as_ref(), &learner),
        "the same directory, the same log: only a restart between them"
    );
}

/// A node that lost data cannot name everything it had acknowledged (a lost vote or
/// watermark file), so it catches up to the commit index of the leader that admitted it; a
/// new directory's seat hand-over already proves it caught up, and it is not held back.
#[test]
fn a_node_that_lost_data_catches_up_to_its_leaders_commit_before_it_votes() {
    let lost = Recovery::new(3, Uuid::new_v4(), Origin::Existing, None, Some(5))
        .data_missing("its acknowledged-watermark file (log/acked) is missing");
    assert!(lost.needs_rejoin());
    assert!(lost.grant(Permit { term: 4, leader: 1 }, Some(40)));
    assert_eq!(lost.watermark.load(Ordering::Acquire), 40);
    // A newer leader's commit index may lag right after its election; `may_vote` then also
    // asks for an entry committed in that leader's term.
    assert!(lost.grant(Permit { term: 5, leader: 2 }, Some(30)));
    assert_eq!(
        lost.watermark.load(Ordering::Acquire),
        30,
        "the newest leader's"
    );
    let new = Recovery::new(3, Uuid::new_v4(), Origin::Fresh, None, None);
    new.grant(Permit { term: 4, leader: 1 }, Some(40));
    assert_eq!(new.watermark.load(Ordering::Acquire), 0);
}

/// Metrics of node 3 following `leader` in `term` with its log ending at `last`, its newest
/// membership `membership`.
fn following(
    leader: NodeId,
    term: u64,
    last: u64,
    membership: Membership,
) -> openraft::RaftMetrics<crate::raft::TypeConfig> {
    let mut m = openraft::RaftMetrics::new_initial(3);
    m.current_leader = Some(leader);
    m.current_term = term;
    m.last_log_index = Some(last);
    m.membership_config = std::sync::Arc::new(crate::raft::StoredMembership::new(
        Some(crate::raft::log_id(1, 1)),
        membership,
    ));
    m
}

/// Review 2 (session 11), liveness: `log/acked` counts entries the node *acknowledged*, not
/// entries that were committed. Node 3 acknowledged entries 6..=10 from leader 1 in term 2;
/// only it had them (leader 1 died before it replicated them further), so they were never
/// committed, and its persisted commit is 5. Its tail is then damaged back to 5. Leader 2 of
/// term 3 was elected without those entries (its log ends at its blank entry 6, its commit
/// 6) and the cluster is idle. Node 3 announces itself, follows leader 2, holds everything
/// the cluster ever committed and its own seat, yet its watermark stays 10 (`Recovery::new`
/// takes max(persisted commit, acked), and `grant` only raises it): it never votes until
/// four more writes arrive, and the loop in `join_loop` re-announces every 2 s forever.
#[test]
fn a_lost_tail_of_entries_that_were_never_committed_does_not_keep_a_node_from_voting() {
    let inc = Uuid::new_v4();
    // open.rs passes max(persisted commit (2,5), log/acked (2,10)).
    let r = Recovery::new(
        3,
        inc,
        Origin::Existing,
        Some(EntryId { index: 10, term: 2 }),
        Some(5),
    );
    assert!(r.needs_rejoin(), "a tail below log/acked is a loss");
    r.grant(Permit { term: 3, leader: 2 }, Some(6));
    let mut caught_up = following(2, 3, 6, with_node_3(inc, true));
    // It holds leader 2's blank entry, committed in term 3.
    caught_up.local_committed = Some(crate::raft::log_id(3, 6));
    assert!(
        r.may_vote(&caught_up, 6),
        "node 3 holds every committed entry (the leader's commit is 6) and its own seat, and follows the leader it announced itself to: {}",
        r.reason()
    );
}

/// Review 2 (session 11), safety: a node that lost its vote file knows from its own log (or
/// its watermark) that it took part in term 3: it held an entry of term 3, so its vote was
/// at least term 3. It still accepts replication, and acknowledges it, from a leader of
/// term 2 that answered its `/raft/join` (a leader cut off from the rest before term 3 began
/// still believes it leads). Interleaving, nodes 1..3: leader 1 (term 2) is cut off from 2
/// and 3; 2 is elected in term 3 with 3's vote and commits W on {2,3}; 3 is SIGKILLed and
/// loses its vote file and the tail holding W; the cut heals between 1 and 3 only; 3
/// restarts, its vote is default (term 0), `join_targets` asks node 1 first (membership
/// order), node 1 answers as leader of term 2, `grant` records the permit, and `admit`
/// lets term 2 in: node 3 acknowledges node 1's entries at W's index, node 1 commits them
/// with {1,3}. Two different committed entries at one index: the acknowledged W is lost.
/// A node must never accept a leader of a term below one it knows it reached.
#[test]
fn a_node_that_lost_its_vote_refuses_a_leader_of_a_term_below_its_own_log() {
    let inc = Uuid::new_v4();
    let r = Recovery::new(
        3,
        inc,
        Origin::Existing,
        Some(EntryId { index: 8, term: 3 }),
        Some(8),
    )
    .vote_missing();
    r.grant(Permit { term: 2, leader: 1 }, Some(5));
    assert!(
        r.admit(&vote(2, 1)).is_err(),
        "node 3 held an entry of term 3: a leader of term 2 is stale, and acknowledging its entries lets it commit over term 3"
    );
}

/// Session 11, second review, problem 1: a leader's commit index may lag entries committed in
/// earlier terms until it commits one of its own term, so the commit index it gave when it
/// admitted a node that lost data is not enough: the node votes only once it holds an entry
/// committed in its leader's term, which every earlier committed entry precedes.
#[test]
fn a_node_that_lost_data_votes_only_once_it_holds_an_entry_committed_in_its_leaders_term() {
    let inc = Uuid::new_v4();
    let r = without_watermark_file(inc);
    assert!(r.grant(Permit { term: 3, leader: 1 }, Some(9)));
    let mut m = following(1, 3, 9, with_node_3(inc, true));
    m.local_committed = Some(crate::raft::log_id(2, 9));
    assert!(
        !r.may_vote(&m, 9),
        "its commit is of term 2: entry 10, committed in term 2 with its lost acknowledgement, may be missing"
    );
    m.last_log_index = Some(11);
    m.local_committed = Some(crate::raft::log_id(3, 11));
    assert!(
        !r.may_vote(&m, 10),
        "entry 11 is not on disk yet: a power loss would take it and the node would look whole"
    );
    assert!(
        r.may_vote(&m, 11),
        "it holds leader 1's entry 11, committed in term 3"
    );
    let mut elsewhere = m.clone();
    elsewhere.current_leader = Some(2);
    assert!(
        !r.may_vote(&elsewhere, 11),
        "it must follow the leader it announced itself to"
    );
}

/// Review 4 (session 11): `grant` now changes the watermark and the permit under the permit
/// lock, but `may_vote` copies the permit under that lock, drops it, and only then loads the
/// watermark. A grant that lands between the two is paired the wrong way round: leader 1's
/// permit (term 3, commit 100 when it admitted node 3) with leader 2's watermark (term 4,
/// whose commit index still lags at 50 as a new leader's may). Metrics that follow leader 1
/// in term 3 with an entry committed in term 3 at 60 then pass `caught_up` on 60 >= 50 and
/// `followed` on leader 1: the node votes, and clears its mark, missing entries 61..=100
/// that leader 1 had committed. With either consistent pair it may not vote (60 < 100, or
/// it does not follow leader 2). The window is a few instructions wide, so this hammers it
/// from two threads; any `true` is the mixed pair.
#[test]
fn may_vote_never_pairs_one_leaders_permit_with_anothers_watermark() {
    let inc = Uuid::new_v4();
    let r = without_watermark_file(inc);
    let first = Permit { term: 3, leader: 1 };
    let second = Permit { term: 4, leader: 2 };
    assert!(r.grant(first, Some(100)));
    let mut m = following(1, 3, 60, with_node_3(inc, true));
    m.local_committed = Some(crate::raft::log_id(3, 60));
    assert!(!r.may_vote(&m, 60), "60 < leader 1's commit 100");
    let stop = AtomicBool::new(false);
    let mixed = std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                r.grant(second, Some(50));
                r.grant(first, Some(100));
            }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        let mut mixed = 0u64;
        while std::time::Instant::now() < deadline {
            for _ in 0..10_000 {
                if r.may_vote(&m, 60) {
                    mixed += 1;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        mixed
    });
    assert_eq!(
        mixed, 0,
        "may_vote paired leader 1's permit with leader 2's watermark {mixed} times"
    );
}
