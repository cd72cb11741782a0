//! What every room shares: the signature `plan_host` calls each room with, and the typed
//! outcome a kind's planner gives for one resource, from which the plan's change is derived.
//!
//! The model is stratisd's `CreateAction { Identity, Created(..) }` / `is_changed()`: a
//! planner never pushes a "no change" by hand; it says [`Outcome::Identity`] (with what it
//! found), or [`Outcome::Changed`] with the action and the reasons.

use super::{Action, Change, Options, Plan, Refusal};
use crate::discover::Facts;
use crate::spec::types::Spec;

/// A room: plans one area of the host into the plan, after the rooms before it (whose
/// operations it may wait for, through the functions their rooms export).
pub type Room = fn(&mut Plan, &Spec, &Facts, &Options);

/// What planning one resource concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Already as the spec says: nothing to do. The note says what was found
    /// (`matches the spec`, `found as vdb, used whole`).
    Identity(String),
    /// Operations bring it to the spec: what happens to it, and why.
    Changed(Action, Vec<String>),
}

impl Outcome {
    /// The usual identity note.
    pub fn identity() -> Self {
        Outcome::Identity("matches the spec".into())
    }

    pub fn is_changed(&self) -> bool {
        matches!(self, Outcome::Changed(..))
    }

    /// The change a plan shows for this outcome: `NoOp` for an identity; the action with the
    /// reasons joined by `; ` otherwise.
    pub fn change(self, resource: &str) -> Change {
        let (action, reason) = match self {
            Outcome::Identity(note) => (Action::NoOp, note),
            Outcome::Changed(action, reasons) => (action, reasons.join("; ")),
        };
        Change {
            resource: resource.into(),
            action,
            reason,
        }
    }
}

/// A unified diff (three lines of context) between two texts, with the labels of each side.
pub fn unified_diff(old: &str, new: &str, old_label: &str, new_label: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_label, new_label)
        .to_string()
}

impl Plan {
    /// Record what planning `resource` concluded.
    pub fn record(&mut self, resource: &str, outcome: Outcome) {
        self.changes.push(outcome.change(resource));
    }

    /// Record a change directly (a room whose reason is one sentence).
    pub fn change(&mut self, resource: &str, action: Action, reason: impl Into<String>) {
        let outcome = match action {
            Action::NoOp => Outcome::Identity(reason.into()),
            a => Outcome::Changed(a, vec![reason.into()]),
        };
        self.record(resource, outcome);
    }

    /// Warn of `resource`: shown with the plan, blocking nothing.
    pub fn warn(&mut self, resource: &str, reason: impl Into<String>, hint: impl Into<String>) {
        self.warnings.push(super::Warning {
            resource: resource.into(),
            reason: reason.into(),
            hint: hint.into(),
        });
    }

    /// Refuse `resource`: the plan cannot be applied, and says why and what to do.
    pub fn refuse(&mut self, resource: &str, reason: impl Into<String>, hint: impl Into<String>) {
        self.refusals.push(Refusal {
            resource: resource.into(),
            reason: reason.into(),
            hint: hint.into(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_change_is_derived_from_the_outcome() {
        let c = Outcome::identity().change("lv vg0/a");
        assert_eq!(
            (c.action, c.reason.as_str()),
            (Action::NoOp, "matches the spec")
        );
        let o = Outcome::Changed(Action::Update, vec!["grows".into(), "new ext4".into()]);
        assert!(o.is_changed() && !Outcome::identity().is_changed());
        let c = o.change("lv vg0/a");
        assert_eq!(
            (c.action, c.reason.as_str()),
            (Action::Update, "grows; new ext4")
        );
    }
}
