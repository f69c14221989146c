//! What a template may do. Every value a template prints goes through [`escape_value`];
//! the functions that reach outside the template (the environment) are disabled and `range`
//! is bounded; includes, imports, macro calls and `extends` must form no cycle and no chain
//! deeper than [`MAX_CALL_DEPTH`], and a template nests at most [`MAX_NESTING`] levels, so
//! that rendering cannot recurse until the stack overflows.

use std::collections::{BTreeMap, HashMap};
use tera::ast::{Expr, ExprVal, Node};

/// Longest chain of includes, macro calls and parents a template may start.
pub const MAX_CALL_DEPTH: usize = 16;
/// Deepest nesting of tags and expressions in one template (the built-in ones use 4).
pub const MAX_NESTING: usize = 64;
/// Most items `range` may produce (a template loops over hosts, a handful).
pub const MAX_RANGE: usize = 10_000;

/// Every printed value, in every template: escaped as inside a JSON string, which YAML's
/// double-quoted scalars read the same way. No value can end a line (start a YAML key, a
/// unit directive, an nginx statement) or close the quotes it is printed in; a printable
/// value without `"` or `\` is unchanged.
pub fn escape_value(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for ch in input.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{FEFF}') => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out
}

/// Replaces tera's built-in functions that a template must not have: `get_env` reads the
/// environment of whoever renders; `range` could allocate without bound.
pub fn restrict_functions(tera: &mut tera::Tera) {
    tera.register_function(
        "get_env",
        |_: &HashMap<String, tera::Value>| -> tera::Result<tera::Value> {
            Err(tera::Error::msg(
                "get_env is disabled: templates see only the values k8s-boot gives them",
            ))
        },
    );
    tera.register_function("range", bounded_range);
}

fn bounded_range(args: &HashMap<String, tera::Value>) -> tera::Result<tera::Value> {
    let number = |key: &str, default: Option<u64>| match args.get(key) {
        Some(v) => v
            .as_u64()
            .ok_or_else(|| tera::Error::msg(format!("range: `{key}` must be a whole number"))),
        None => default.ok_or_else(|| tera::Error::msg("range: `end` is required")),
    };
    let (start, end, step) = (
        number("start", Some(0))?,
        number("end", None)?,
        number("step_by", Some(1))?,
    );
    if step == 0 {
        return Err(tera::Error::msg("range: `step_by` must be at least 1"));
    }
    let count = end.saturating_sub(start).div_ceil(step);
    if count > MAX_RANGE as u64 {
        return Err(tera::Error::msg(format!(
            "range: {count} items; templates may ask for at most {MAX_RANGE}"
        )));
    }
    Ok(tera::Value::Array(
        (start..end)
            .step_by(step as usize)
            .map(tera::Value::from)
            .collect(),
    ))
}

/// A node of the call graph: a template, or a macro of a template.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Callee {
    Template(String),
    Macro(String, String),
}

impl std::fmt::Display for Callee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Callee::Template(t) => write!(f, "template {t}"),
            Callee::Macro(t, m) => write!(f, "macro {m} of {t}"),
        }
    }
}

/// Why a template cannot be rendered safely: (template name, message).
pub type Refusal = (String, String);

/// Refuses templates nested deeper than [`MAX_NESTING`], and any cycle or chain longer than
/// [`MAX_CALL_DEPTH`] of includes, macro calls and parents. Over-approximates: a call in a
/// branch never taken still counts.
pub fn check_structure(tera: &tera::Tera) -> Result<(), Refusal> {
    let mut graph: BTreeMap<Callee, Vec<Callee>> = BTreeMap::new();
    let mut names: Vec<&String> = tera.templates.keys().collect();
    names.sort();
    for name in names {
        let t = &tera.templates[name];
        let imports: HashMap<&str, &str> = t
            .imported_macro_files
            .iter()
            .map(|(file, ns)| (ns.as_str(), file.as_str()))
            .collect();
        let resolve = |ns: &str, macro_name: &str| {
            let file = if ns == "self" {
                name.as_str()
            } else {
                imports.get(ns).copied().unwrap_or(ns)
            };
            Callee::Macro(file.to_string(), macro_name.to_string())
        };
        let mut edges = calls(&t.ast, &resolve).map_err(|m| (name.clone(), m))?;
        if let Some(parent) = &t.parent {
            edges.push(Callee::Template(parent.clone()));
        }
        graph.insert(Callee::Template(name.clone()), edges);
        let mut macros: Vec<_> = t.macros.iter().collect();
        macros.sort_by(|a, b| a.0.cmp(b.0));
        for (macro_name, def) in macros {
            let edges = calls(&def.body, &resolve).map_err(|m| (name.clone(), m))?;
            graph.insert(Callee::Macro(name.clone(), macro_name.clone()), edges);
        }
    }
    let mut depth: BTreeMap<Callee, usize> = BTreeMap::new();
    for start in graph.keys() {
        let mut path = Vec::new();
        longest_chain(&graph, start, &mut path, &mut depth)?;
    }
    Ok(())
}

/// The longest chain from `node`, refusing a cycle or a chain over [`MAX_CALL_DEPTH`]
/// (which also bounds this recursion).
fn longest_chain(
    graph: &BTreeMap<Callee, Vec<Callee>>,
    node: &Callee,
    path: &mut Vec<Callee>,
    memo: &mut BTreeMap<Callee, usize>,
) -> Result<usize, Refusal> {
    if let Some(d) = memo.get(node) {
        return Ok(*d);
    }
    let owner = |c: &Callee| match c {
        Callee::Template(t) | Callee::Macro(t, _) => t.clone(),
    };
    if let Some(at) = path.iter().position(|p| p == node) {
        let cycle: Vec<String> = path[at..].iter().map(|c| c.to_string()).collect();
        return Err((
            owner(node),
            format!(
                "{} calls itself again ({} -> {node}); templates may not recurse",
                node,
                cycle.join(" -> ")
            ),
        ));
    }
    if path.len() >= MAX_CALL_DEPTH {
        return Err((
            owner(&path[0]),
            format!(
                "includes, macro calls and parents nest more than {MAX_CALL_DEPTH} deep from {}",
                path[0]
            ),
        ));
    }
    path.push(node.clone());
    let mut deepest = 0;
    for next in graph.get(node).into_iter().flatten() {
        deepest = deepest.max(1 + longest_chain(graph, next, path, memo)?);
    }
    path.pop();
    memo.insert(node.clone(), deepest);
    Ok(deepest)
}

/// What `nodes` include or call, refusing nesting over [`MAX_NESTING`]. Walks with its own
/// stack: a hostile template must not overflow this walk either.
fn calls(nodes: &[Node], resolve: &dyn Fn(&str, &str) -> Callee) -> Result<Vec<Callee>, String> {
    enum Item<'a> {
        Node(&'a Node),
        Expr(&'a Expr),
        Val(&'a ExprVal),
    }
    let mut out = Vec::new();
    let mut stack: Vec<(Item, usize)> = nodes.iter().map(|n| (Item::Node(n), 0)).collect();
    while let Some((item, depth)) = stack.pop() {
        if depth > MAX_NESTING {
            return Err(format!(
                "tags or expressions nest more than {MAX_NESTING} levels deep"
            ));
        }
        let d = depth + 1;
        match item {
            Item::Node(node) => match node {
                Node::VariableBlock(_, e) => stack.push((Item::Expr(e), d)),
                Node::Include(_, names, _) => {
                    out.extend(names.iter().map(|n| Callee::Template(n.clone())));
                }
                Node::Extends(_, parent) => out.push(Callee::Template(parent.clone())),
                Node::Set(_, set) => stack.push((Item::Expr(&set.value), d)),
                Node::FilterSection(_, section, _) => {
                    stack.extend(section.filter.args.values().map(|e| (Item::Expr(e), d)));
                    stack.extend(section.body.iter().map(|n| (Item::Node(n), d)));
                }
                Node::Block(_, block, _) => {
                    stack.extend(block.body.iter().map(|n| (Item::Node(n), d)));
                }
                Node::Forloop(_, forloop, _) => {
                    stack.push((Item::Expr(&forloop.container), d));
                    stack.extend(forloop.body.iter().map(|n| (Item::Node(n), d)));
                    for n in forloop.empty_body.iter().flatten() {
                        stack.push((Item::Node(n), d));
                    }
                }
                Node::If(cond, _) => {
                    for (_, e, nodes) in &cond.conditions {
                        stack.push((Item::Expr(e), d));
                        stack.extend(nodes.iter().map(|n| (Item::Node(n), d)));
                    }
                    for n in cond.otherwise.iter().flat_map(|(_, nodes)| nodes) {
                        stack.push((Item::Node(n), d));
                    }
                }
                // Macro bodies are walked as their own graph nodes.
                _ => {}
            },
            Item::Expr(e) => {
                stack.push((Item::Val(&e.val), d));
                for f in &e.filters {
                    stack.extend(f.args.values().map(|e| (Item::Expr(e), d)));
                }
            }
            Item::Val(v) => match v {
                ExprVal::MacroCall(call) => {
                    out.push(resolve(&call.namespace, &call.name));
                    stack.extend(call.args.values().map(|e| (Item::Expr(e), d)));
                }
                ExprVal::FunctionCall(call) => {
                    stack.extend(call.args.values().map(|e| (Item::Expr(e), d)));
                }
                ExprVal::Math(m) => {
                    stack.push((Item::Expr(&m.lhs), d));
                    stack.push((Item::Expr(&m.rhs), d));
                }
                ExprVal::Logic(l) => {
                    stack.push((Item::Expr(&l.lhs), d));
                    stack.push((Item::Expr(&l.rhs), d));
                }
                ExprVal::In(i) => {
                    stack.push((Item::Expr(&i.lhs), d));
                    stack.push((Item::Expr(&i.rhs), d));
                }
                ExprVal::Test(t) => stack.extend(t.args.iter().map(|e| (Item::Expr(e), d))),
                ExprVal::Array(items) => stack.extend(items.iter().map(|e| (Item::Expr(e), d))),
                ExprVal::StringConcat(c) => {
                    stack.extend(c.values.iter().map(|v| (Item::Val(v), d)))
                }
                _ => {}
            },
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_values_stay_on_one_line_and_inside_their_quotes() {
        assert_eq!(
            escape_value("docker.io/library/node:24"),
            "docker.io/library/node:24"
        );
        assert_eq!(
            escape_value("a\"\n  privileged: true\\\u{2028}\u{7}"),
            "a\\\"\\n  privileged: true\\\\\\u2028\\u0007"
        );
        let yaml = format!(
            "image: \"{}\"\n",
            escape_value("x\"\nsecurityContext: {privileged: true}")
        );
        let parsed: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(parsed.as_mapping().unwrap().len(), 1, "{yaml}");
        assert_eq!(parsed["image"], "x\"\nsecurityContext: {privileged: true}");
    }

    fn tera_of(templates: &[(&str, &str)]) -> tera::Tera {
        let mut tera = tera::Tera::default();
        tera.add_raw_templates(templates.to_vec()).unwrap();
        tera
    }

    #[test]
    fn recursion_and_deep_chains_are_refused() {
        let self_include = tera_of(&[("a", "{% include \"a\" %}")]);
        let (name, msg) = check_structure(&self_include).unwrap_err();
        assert_eq!(name, "a");
        assert!(msg.contains("calls itself again"), "{msg}");
        let mutual = tera_of(&[("a", "{% include \"b\" %}"), ("b", "x{% include \"a\" %}")]);
        assert!(check_structure(&mutual).is_err());
        let recursive_macro = tera_of(&[(
            "m",
            "{% macro f(n) %}{% if n > 0 %}{{ self::f(n=n - 1) }}{% endif %}{% endmacro f %}{{ self::f(n=3) }}",
        )]);
        let (_, msg) = check_structure(&recursive_macro).unwrap_err();
        assert!(msg.contains("macro f of m"), "{msg}");
        let chain: Vec<(String, String)> = (0..40)
            .map(|i| (format!("t{i}"), format!("{{% include \"t{}\" %}}", i + 1)))
            .chain([("t40".to_string(), "end".to_string())])
            .collect();
        let mut tera = tera::Tera::default();
        tera.add_raw_templates(chain).unwrap();
        let (_, msg) = check_structure(&tera).unwrap_err();
        assert!(msg.contains("more than 16 deep"), "{msg}");
        let fine = tera_of(&[
            ("m", "{% macro f() %}x{% endmacro f %}"),
            (
                "a",
                "{% import \"m\" as m %}{{ m::f() }}{% include \"b\" %}",
            ),
            ("b", "b"),
        ]);
        check_structure(&fine).unwrap();
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = format!(
            "{}x{}",
            "{% if true %}".repeat(80),
            "{% endif %}".repeat(80)
        );
        let (_, msg) = check_structure(&tera_of(&[("d", &deep)])).unwrap_err();
        assert!(msg.contains("nest more than 64"), "{msg}");
    }

    #[test]
    fn get_env_is_disabled_and_range_bounded() {
        let mut tera = tera::Tera::default();
        restrict_functions(&mut tera);
        let ctx = tera::Context::new();
        let err = tera
            .render_str("{{ get_env(name=\"HOME\") }}", &ctx)
            .unwrap_err();
        assert!(format!("{err:?}").contains("get_env is disabled"));
        assert!(tera
            .render_str("{% for i in range(end=4294967295) %}{% endfor %}", &ctx)
            .is_err());
        assert_eq!(
            tera.render_str(
                "{% for i in range(start=1, end=7, step_by=2) %}{{ i }}{% endfor %}",
                &ctx
            )
            .unwrap(),
            "135"
        );
    }
}
