//! What each caller may see of a task. Its submitter and admins see all of
//! it. An endpoint's owner sees the tasks that other users run on that
//! endpoint (to run it: what is queued, what fails and how, what takes
//! long), but not what is theirs: no arguments, results, output or failure
//! messages, which can carry their data.

use std::collections::HashSet;

use crate::Service;
use crate::core::{Principal, TaskRecord};

/// The message an endpoint's owner reads in place of another user's.
const WITHHELD: &str = "(withheld from the endpoint's owner)";

impl Service {
    /// The endpoints `who` owns.
    pub(crate) fn owned_endpoints(&self, who: &Principal) -> HashSet<String> {
        if who.endpoint.is_some() {
            return HashSet::new();
        }
        self.inner
            .identities
            .endpoints(who)
            .into_iter()
            .filter(|e| e.owner == *who.user)
            .map(|e| e.name)
            .collect()
    }

    /// `task` as `who` may see it: whole, redacted for its endpoint's owner,
    /// or not at all.
    pub(crate) fn view(
        &self,
        who: &Principal,
        task: TaskRecord,
        owned: &HashSet<String>,
    ) -> Option<TaskRecord> {
        if who.owns(&task) {
            Some(task)
        } else if owned.contains(&task.endpoint) {
            Some(redact(task))
        } else {
            None
        }
    }
}

fn redact(mut t: TaskRecord) -> TaskRecord {
    t.args.clear();
    t.pending_args = None;
    t.result = None;
    t.output = Default::default();
    if let Some(e) = &mut t.error {
        e.message = WITHHELD.to_owned();
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Failure, TaskState};

    #[test]
    fn an_owner_sees_the_shape_of_others_tasks_and_nothing_of_theirs() {
        let mut t = TaskRecord::new("t1".into(), "lab".into(), "f".into(), "run".into(), 0);
        t.owner = "bob".into();
        t.args = vec![1, 2, 3];
        t.result = Some(vec![9]);
        t.state = TaskState::Failed;
        t.error = Some(Failure {
            kind: "trap".into(),
            message: "bob's secret".into(),
        });
        let r = redact(t.clone());
        assert!(r.args.is_empty() && r.result.is_none());
        let e = r.error.unwrap();
        assert_eq!(e.kind, "trap");
        assert_eq!(e.message, WITHHELD);
        assert_eq!(
            (r.id, r.function_id, r.state),
            (t.id, t.function_id, t.state)
        );
    }
}
