//! The plan as a picture: `plan --format dot` writes its DAG in Graphviz's DOT language. One
//! cluster per resource (the change and its reason), its operations inside in plan order,
//! coloured by the change's action; destructive operations with a thick red border and
//! `[destructive]`; an edge from each operation to each one that waits for it (`after`);
//! refusals and deferred resources in clusters of their own. Deterministic: nodes are
//! numbered in plan order, clusters follow the changes, and every string is quoted by
//! `crate::dot`.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use super::{Action, Op, Plan, Risk};
use crate::dot::{quoted, tooltip, wrap};

/// Labels are folded at about this many characters.
const WIDTH: usize = 48;

/// (border, fill) of an action's cluster and operations.
fn colours(action: Option<Action>) -> (&'static str, &'static str) {
    match action {
        Some(Action::Create) => ("#2e7d32", "#e8f5e9"),
        Some(Action::Update) => ("#b26a00", "#fff3e0"),
        Some(Action::Replace) => ("#6a1b9a", "#f3e5f5"),
        Some(Action::Delete) => ("#c62828", "#ffebee"),
        Some(Action::NoOp) | None => ("#616161", "#f5f5f5"),
    }
}

fn action_word(a: Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Update => "change",
        Action::Replace => "replace",
        Action::Delete => "delete",
        Action::NoOp => "unchanged",
    }
}

/// What an op's tooltip shows: its id and its exact command (or the file it writes).
fn op_tip(o: &Op) -> String {
    let mut t = format!("{}\n", o.id);
    if let Some(w) = o.write() {
        let _ = write!(t, "writes {}", w.path);
    } else {
        t.push_str("$ ");
        crate::runner::push_argv(&mut t, o.argv().iter().map(String::as_str));
    }
    t
}

/// The plan in DOT; `title` (the spec and what it is planned against) heads the picture.
pub fn render_dot(plan: &Plan, title: &str) -> String {
    let mut s = String::new();
    s.push_str("digraph plan {\n");
    let summary = format!(
        "{}{}{}",
        super::counts(plan),
        if plan.deferred.is_empty() {
            String::new()
        } else {
            format!(", {} deferred", plan.deferred.len())
        },
        if plan.refusals.is_empty() {
            String::new()
        } else {
            format!(", {} refused", plan.refusals.len())
        },
    );
    let _ = writeln!(
        s,
        "  graph [label={}, labelloc=t, fontname=\"Helvetica\", rankdir=LR, newrank=true, nodesep=0.2, ranksep=0.4];",
        quoted(&format!("{}\n{summary}", wrap(title, 2 * WIDTH)))
    );
    s.push_str(
        "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=10];\n",
    );
    s.push_str("  edge [color=\"#424242\", arrowsize=0.6];\n");

    // Each op's node name, and the resources in cluster order: the changes', then any op's
    // resource no change names (in plan order).
    let index: HashMap<&str, usize> = plan
        .ops
        .iter()
        .enumerate()
        .map(|(i, o)| (o.id.as_str(), i))
        .collect();
    let mut ops_of: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, o) in plan.ops.iter().enumerate() {
        ops_of.entry(o.resource.as_str()).or_default().push(i);
    }
    let mut clusters: Vec<(&str, Option<Action>, Option<&str>)> = Vec::new();
    let mut named: BTreeSet<&str> = BTreeSet::new();
    for c in &plan.changes {
        if !named.insert(c.resource.as_str()) {
            continue;
        }
        if c.action != Action::NoOp || ops_of.contains_key(c.resource.as_str()) {
            clusters.push((&c.resource, Some(c.action), Some(&c.reason)));
        }
    }
    for o in &plan.ops {
        if named.insert(o.resource.as_str()) {
            clusters.push((&o.resource, None, None));
        }
    }

    // Graphviz stacks the clusters of a left-to-right graph bottom up: written last to first,
    // they read top down in plan order.
    for (k, (resource, action, reason)) in clusters.iter().enumerate().rev() {
        let (border, fill) = colours(*action);
        let head = match action {
            Some(a) => format!("{} {resource}", a.symbol().trim()),
            None => resource.to_string(),
        };
        let label = match reason {
            Some(r) => format!("{head}\n{}", wrap(r, WIDTH)),
            None => head,
        };
        let _ = writeln!(s, "  subgraph cluster_{k} {{");
        let _ = writeln!(
            s,
            "    graph [label={}, color=\"{border}\", fontcolor=\"{border}\", style=rounded, fontsize=11];",
            quoted(&label)
        );
        for &i in ops_of.get(resource).into_iter().flatten() {
            let o = &plan.ops[i];
            // A summary may hold a diff: its first line names the operation.
            let mut text = o.summary.lines().next().unwrap_or_default().to_string();
            if o.summary.contains('\n') {
                text.push_str(" …");
            }
            let mut attrs = format!("fillcolor=\"{fill}\", color=\"{border}\"");
            if o.risk == Risk::Destructive {
                text.push_str(" [destructive]");
                attrs = format!(
                    "fillcolor=\"{fill}\", color=\"#c62828\", fontcolor=\"#c62828\", penwidth=3, style=\"rounded,filled,bold\""
                );
            }
            let _ = writeln!(
                s,
                "    op{i} [label={}{}, {attrs}];",
                quoted(&wrap(&text, WIDTH)),
                tooltip(&op_tip(o))
            );
        }
        s.push_str("  }\n");
    }

    // Refusals with the same reason and hint are one node, as in the text.
    let mut groups: Vec<(&str, &str, Vec<&str>)> = Vec::new();
    let mut group_of: HashMap<(&str, &str), usize> = HashMap::new();
    for r in &plan.refusals {
        let key = (r.reason.as_str(), r.hint.as_str());
        match group_of.get(&key) {
            Some(&g) => groups[g].2.push(&r.resource),
            None => {
                group_of.insert(key, groups.len());
                groups.push((key.0, key.1, vec![&r.resource]));
            }
        }
    }
    if !groups.is_empty() {
        s.push_str("  subgraph cluster_refused {\n");
        let _ = writeln!(
            s,
            "    graph [label={}, color=\"#c62828\", fontcolor=\"#c62828\", style=\"rounded,dashed\", fontsize=11];",
            quoted("refused: the plan cannot be applied")
        );
        for (g, (reason, hint, resources)) in groups.iter().enumerate() {
            let text = format!(
                "{}\n{}",
                wrap(&resources.join(", "), WIDTH),
                wrap(reason, WIDTH)
            );
            let _ = writeln!(
                s,
                "    refused{g} [label={}{}, fillcolor=\"#ffebee\", color=\"#c62828\", style=\"rounded,filled,dashed\"];",
                quoted(&text),
                tooltip(&format!("hint: {hint}"))
            );
        }
        s.push_str("  }\n");
    }
    if !plan.deferred.is_empty() {
        s.push_str("  subgraph cluster_deferred {\n");
        let _ = writeln!(
            s,
            "    graph [label={}, color=\"#00838f\", fontcolor=\"#00838f\", style=\"rounded,dashed\", fontsize=11];",
            quoted("deferred: planned once what they sit on is assembled and read")
        );
        for (d, def) in plan.deferred.iter().enumerate() {
            let _ = writeln!(
                s,
                "    deferred{d} [label={}, fillcolor=\"#e0f7fa\", color=\"#00838f\", style=\"rounded,filled,dashed\"];",
                quoted(&format!("{}\nwaits for {}", def.resource, def.waits_for))
            );
        }
        s.push_str("  }\n");
    }

    // What is drawn, with its colour: the actions present, and destruction if any.
    let mut present: Vec<Action> = clusters.iter().filter_map(|c| c.1).collect();
    present.sort();
    present.dedup();
    let destructive = plan.ops.iter().any(|o| o.risk == Risk::Destructive);
    if !present.is_empty() || destructive {
        s.push_str("  subgraph cluster_legend {\n");
        let _ = writeln!(
            s,
            "    graph [label={}, color=\"#9e9e9e\", fontcolor=\"#616161\", style=rounded, fontsize=10];",
            quoted("legend")
        );
        // One above the other.
        s.push_str("    rank=same;\n");
        for a in &present {
            let (border, fill) = colours(Some(*a));
            let name = format!("legend_{}", action_word(*a));
            let _ = writeln!(
                s,
                "    {name} [label={}, fillcolor=\"{fill}\", color=\"{border}\", fontsize=9];",
                quoted(&format!("{} {}", a.symbol().trim(), action_word(*a)))
            );
        }
        if destructive {
            let _ = writeln!(
                s,
                "    legend_destructive [label={}, fillcolor=\"#ffffff\", color=\"#c62828\", fontcolor=\"#c62828\", penwidth=3, style=\"rounded,filled,bold\", fontsize=9];",
                quoted("[destructive]")
            );
        }
        s.push_str("  }\n");
    }

    // An edge from each op to each op that waits for it; a dependency on an op that is not
    // in the plan was not needed (`order` ignores it too).
    for (i, o) in plan.ops.iter().enumerate() {
        let mut from: Vec<usize> = o
            .after
            .iter()
            .filter_map(|a| index.get(a.as_str()).copied())
            .collect();
        from.sort_unstable();
        from.dedup();
        for j in from {
            let _ = writeln!(s, "  op{j} -> op{i};");
        }
    }
    s.push_str("}\n");
    s
}
