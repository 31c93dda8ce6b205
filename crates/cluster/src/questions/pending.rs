//! The questions this node waits answers for, and what their answers may cost; no IO.
//!
//! An answer is taken only for a question still waiting, once per answering node, and
//! while the answers held for every waiting question together stay under a byte
//! budget: a node that answers twice, a replayed answer, or answers larger than the
//! budget allows are dropped, so the asker sees fewer answers than nodes asked.

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use tokio::sync::mpsc;

use super::frame::QuestionId;

/// One answer as the asker gets it: the answering node's name and what it said.
pub(crate) type Answer = (String, Value);

/// Why an answer was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    /// No question of this node waits for it (late, given up, or made up).
    #[error("no question waits for it")]
    NotAsked,
    /// The node answered this question already (a replay, or a buggy node).
    #[error("a second answer from the same node")]
    Twice,
    /// Taking it would pass the budget of answers held.
    #[error("over the budget of answers held")]
    OverBudget,
}

/// A question waiting for its answers.
#[derive(Debug)]
struct Waiting {
    answers: mpsc::UnboundedSender<Answer>,
    /// The uids of the nodes that answered.
    answered: HashSet<String>,
    /// Bytes of the answers taken (as they arrived, sealed).
    held: usize,
}

/// The questions waiting, and the bytes their answers hold.
#[derive(Debug)]
pub(crate) struct Pending {
    waiting: HashMap<QuestionId, Waiting>,
    /// Bytes of the answers taken for every question still waiting.
    held: usize,
    /// Most `held` may reach.
    budget: usize,
}

impl Pending {
    /// No question waits; answers may hold up to `budget` bytes in all.
    pub(crate) fn new(budget: usize) -> Pending {
        Pending {
            waiting: HashMap::new(),
            held: 0,
            budget,
        }
    }

    /// Waits for answers to `id`; they arrive on the receiver until [`Pending::forget`].
    pub(crate) fn wait(&mut self, id: QuestionId) -> mpsc::UnboundedReceiver<Answer> {
        let (tx, rx) = mpsc::unbounded_channel();
        let waiting = Waiting {
            answers: tx,
            answered: HashSet::new(),
            held: 0,
        };
        if let Some(old) = self.waiting.insert(id, waiting) {
            // Ids are random 128-bit numbers: never, but the budget stays right.
            self.held -= old.held;
        }
        rx
    }

    /// Whether any question waits for answers.
    pub(crate) fn is_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Stops waiting for answers to `id` and frees what they held.
    pub(crate) fn forget(&mut self, id: QuestionId) {
        if let Some(waiting) = self.waiting.remove(&id) {
            self.held -= waiting.held;
        }
    }

    /// Takes node `from`'s answer to `id`, `bytes` long as it arrived.
    pub(crate) fn offer(
        &mut self,
        id: QuestionId,
        from: &str,
        bytes: usize,
        answer: Answer,
    ) -> Result<(), Refused> {
        let waiting = self.waiting.get_mut(&id).ok_or(Refused::NotAsked)?;
        if waiting.answered.contains(from) {
            return Err(Refused::Twice);
        }
        let held = self.held.saturating_add(bytes);
        if held > self.budget {
            return Err(Refused::OverBudget);
        }
        if waiting.answers.send(answer).is_err() {
            // The asker is gone and forgets the question next.
            return Err(Refused::NotAsked);
        }
        waiting.answered.insert(from.to_owned());
        waiting.held += bytes;
        self.held = held;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(node: &str) -> Answer {
        (node.to_owned(), Value::Null)
    }

    #[test]
    fn answers_reach_their_question_once_per_node() {
        let mut pending = Pending::new(1000);
        assert!(!pending.is_waiting());
        let mut rx = pending.wait(1);
        assert!(pending.is_waiting());
        assert_eq!(pending.offer(1, "b", 10, answer("node-b")), Ok(()));
        assert_eq!(
            pending.offer(1, "b", 10, answer("node-b")),
            Err(Refused::Twice)
        );
        assert_eq!(pending.offer(1, "c", 10, answer("node-c")), Ok(()));
        assert_eq!(
            pending.offer(2, "b", 10, answer("node-b")),
            Err(Refused::NotAsked),
            "an id nobody asked"
        );
        assert_eq!(rx.try_recv().ok(), Some(answer("node-b")));
        assert_eq!(rx.try_recv().ok(), Some(answer("node-c")));
        assert!(rx.try_recv().is_err());
        pending.forget(1);
        assert_eq!(
            pending.offer(1, "d", 10, answer("node-d")),
            Err(Refused::NotAsked),
            "late"
        );
    }

    #[test]
    fn the_budget_bounds_every_waiting_question_together_and_is_freed() {
        let mut pending = Pending::new(100);
        let _rx1 = pending.wait(1);
        let _rx2 = pending.wait(2);
        assert_eq!(pending.offer(1, "b", 60, answer("b")), Ok(()));
        assert_eq!(
            pending.offer(2, "b", 50, answer("b")),
            Err(Refused::OverBudget)
        );
        assert_eq!(
            pending.offer(2, "c", usize::MAX, answer("c")),
            Err(Refused::OverBudget)
        );
        assert_eq!(pending.offer(2, "b", 40, answer("b")), Ok(()));
        pending.forget(1);
        assert_eq!(pending.held, 40);
        let _rx3 = pending.wait(3);
        assert_eq!(pending.offer(3, "b", 60, answer("b")), Ok(()));
        pending.forget(2);
        pending.forget(3);
        assert_eq!(pending.held, 0);
    }

    #[test]
    fn an_answer_for_a_question_given_up_is_not_held() {
        let mut pending = Pending::new(100);
        drop(pending.wait(1));
        assert_eq!(
            pending.offer(1, "b", 10, answer("b")),
            Err(Refused::NotAsked)
        );
        assert_eq!(pending.held, 0);
    }
}
