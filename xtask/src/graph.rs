//! The crate graph checked against DESIGN §1: arrows point from the app
//! down to the protocol and never back up, and the sans-IO crates pull in
//! no runtime, socket, WebRTC or window library, however indirectly.
//! `cargo xtask test` runs it first, from `cargo metadata`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::process::Command;

use anyhow::Context;

/// The workspace crates each crate may depend on, for its code and its
/// tests alike. `beckon-flows` holds the tests that need a real server and
/// real clients at once; no other crate may have both sides.
const ALLOWED: &[(&str, &[&str])] = &[
    ("beckon-protocol", &[]),
    ("beckon-core", &["beckon-protocol"]),
    ("beckon-server", &["beckon-core", "beckon-protocol"]),
    ("beckon-client", &["beckon-core", "beckon-protocol"]),
    ("beckon-media", &["beckon-protocol"]),
    ("beckon-netsim", &[]),
    ("beckon-load", &["beckon-client", "beckon-protocol"]),
    (
        "beckon-session",
        &["beckon-client", "beckon-media", "beckon-protocol"],
    ),
    (
        "beckon-peer",
        &[
            "beckon-client",
            "beckon-media",
            "beckon-protocol",
            "beckon-session",
        ],
    ),
    (
        "beckon",
        &[
            "beckon-client",
            "beckon-media",
            "beckon-peer",
            "beckon-protocol",
            "beckon-server",
            "beckon-session",
        ],
    ),
    (
        "beckon-flows",
        &[
            "beckon-client",
            "beckon-media",
            "beckon-peer",
            "beckon-protocol",
            "beckon-server",
            "beckon-session",
        ],
    ),
    ("xtask", &["beckon-netsim"]),
];

/// Crates that stay free of I/O and clocks.
const SANS_IO: &[&str] = &["beckon-protocol", "beckon-core"];

/// Libraries a sans-IO crate may not reach: async runtimes, sockets and
/// servers, WebRTC, the window toolkit.
fn is_io(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "tokio",
        "mio",
        "axum",
        "hyper",
        "tungstenite",
        "tokio-tungstenite",
        "webrtc",
        "tauri",
    ];
    NAMES.contains(&name)
        || ["rtc-", "webrtc-", "tauri-"]
            .iter()
            .any(|p| name.starts_with(p))
}

/// One dependency arrow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Arrow {
    pub(crate) to: String,
    /// `normal`, `dev` or `build`.
    pub(crate) kind: String,
}

/// The resolved graph: every package by name, with its arrows.
#[derive(Debug, Default)]
pub(crate) struct Graph {
    pub(crate) workspace: BTreeSet<String>,
    pub(crate) arrows: BTreeMap<String, Vec<Arrow>>,
}

impl Graph {
    /// Reads the graph of the workspace at the project root.
    fn load() -> anyhow::Result<Self> {
        let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["metadata", "--format-version", "1", "--locked"])
            .current_dir(crate::root())
            .output()
            .context("running cargo metadata")?;
        anyhow::ensure!(
            out.status.success(),
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let meta: serde_json::Value =
            serde_json::from_slice(&out.stdout).context("reading cargo metadata")?;
        Self::from_metadata(&meta)
    }

    fn from_metadata(meta: &serde_json::Value) -> anyhow::Result<Self> {
        let name_of: BTreeMap<&str, &str> = meta["packages"]
            .as_array()
            .context("metadata without packages")?
            .iter()
            .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
            .collect();
        let name = |id: &serde_json::Value| {
            id.as_str()
                .and_then(|id| name_of.get(id))
                .map(|n| (*n).to_owned())
        };
        let workspace = meta["workspace_members"]
            .as_array()
            .context("metadata without workspace members")?
            .iter()
            .filter_map(name)
            .collect();
        let mut arrows: BTreeMap<String, Vec<Arrow>> = BTreeMap::new();
        for node in meta["resolve"]["nodes"]
            .as_array()
            .context("metadata without a resolved graph")?
        {
            let Some(from) = name(&node["id"]) else {
                continue;
            };
            let entry = arrows.entry(from).or_default();
            for dep in node["deps"].as_array().into_iter().flatten() {
                let Some(to) = name(&dep["pkg"]) else {
                    continue;
                };
                for kind in dep["dep_kinds"].as_array().into_iter().flatten() {
                    let kind = kind["kind"].as_str().unwrap_or("normal").to_owned();
                    let arrow = Arrow {
                        to: to.clone(),
                        kind,
                    };
                    if !entry.contains(&arrow) {
                        entry.push(arrow);
                    }
                }
            }
        }
        Ok(Self { workspace, arrows })
    }

    /// Every way the graph breaks DESIGN §1, one sentence each.
    pub(crate) fn problems(&self) -> Vec<String> {
        let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
        let mut problems = Vec::new();
        for from in &self.workspace {
            let Some(may) = allowed.get(from.as_str()) else {
                problems.push(format!(
                    "{from} is a new workspace crate: add it and the crates it may use to \
                     ALLOWED in xtask/src/graph.rs (DESIGN §1)"
                ));
                continue;
            };
            for arrow in self.arrows.get(from).into_iter().flatten() {
                if self.workspace.contains(&arrow.to) && !may.contains(&arrow.to.as_str()) {
                    problems.push(format!(
                        "{from} → {} ({} dependency) points the wrong way (DESIGN §1)",
                        arrow.to, arrow.kind
                    ));
                }
            }
        }
        for crate_name in SANS_IO {
            if let Some(path) = self.path_to_io(crate_name) {
                problems.push(format!(
                    "{crate_name} must stay sans-IO but reaches {} through {}",
                    path.last().expect("a path has an end"),
                    path.join(" → ")
                ));
            }
        }
        problems
    }

    /// The shortest chain of normal dependencies from `from` to an I/O
    /// library, if there is one.
    fn path_to_io(&self, from: &str) -> Option<Vec<String>> {
        let mut came_from: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = VecDeque::from([from.to_owned()]);
        while let Some(at) = queue.pop_front() {
            if at != from && is_io(&at) {
                let mut path = vec![at.clone()];
                while let Some(prev) = came_from.get(path.last().expect("not empty")) {
                    path.push(prev.clone());
                }
                path.reverse();
                return Some(path);
            }
            for arrow in self.arrows.get(&at).into_iter().flatten() {
                if arrow.kind == "normal" && arrow.to != from && !came_from.contains_key(&arrow.to)
                {
                    came_from.insert(arrow.to.clone(), at.clone());
                    queue.push_back(arrow.to.clone());
                }
            }
        }
        None
    }
}

/// Fails when the workspace's crate graph breaks DESIGN §1.
pub(crate) fn check() -> anyhow::Result<()> {
    let problems = Graph::load()?.problems();
    anyhow::ensure!(
        problems.is_empty(),
        "the crate graph breaks DESIGN §1:\n  {}",
        problems.join("\n  ")
    );
    println!("xtask: the crate graph keeps to DESIGN §1");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(arrows: &[(&str, &str, &str)]) -> Graph {
        let mut g = Graph::default();
        for (name, _) in ALLOWED {
            g.workspace.insert((*name).to_owned());
            g.arrows.insert((*name).to_owned(), Vec::new());
        }
        for (from, to, kind) in arrows {
            g.arrows.entry((*from).to_owned()).or_default().push(Arrow {
                to: (*to).to_owned(),
                kind: (*kind).to_owned(),
            });
        }
        g
    }

    #[test]
    fn the_designed_arrows_pass() {
        let g = graph(&[
            ("beckon-core", "beckon-protocol", "normal"),
            ("beckon-client", "beckon-core", "normal"),
            ("beckon", "beckon-server", "normal"),
            ("beckon-flows", "beckon-server", "dev"),
            ("beckon-flows", "beckon-client", "dev"),
            ("beckon-client", "tokio", "normal"),
            ("beckon-protocol", "serde", "normal"),
            // A dev dependency of a sans-IO crate is not in what it links.
            ("beckon-core", "tokio", "dev"),
        ]);
        assert_eq!(g.problems(), Vec::<String>::new());
    }

    #[test]
    fn an_arrow_the_wrong_way_or_a_server_in_client_tests_fails() {
        let g = graph(&[
            ("beckon-protocol", "beckon-core", "normal"),
            ("beckon-client", "beckon-server", "dev"),
        ]);
        let problems = g.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("beckon-client → beckon-server (dev"));
        assert!(problems[1].contains("beckon-protocol → beckon-core"));
    }

    #[test]
    fn a_sans_io_crate_reaching_tokio_indirectly_fails_with_the_path() {
        let g = graph(&[
            ("beckon-core", "beckon-protocol", "normal"),
            ("beckon-protocol", "helper", "normal"),
            ("helper", "tokio", "normal"),
        ]);
        let problems = g.problems();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("beckon-protocol → helper → tokio"),
            "{problems:?}"
        );
        assert!(problems[1].contains("beckon-core → beckon-protocol → helper → tokio"));
    }

    #[test]
    fn a_new_crate_must_be_placed() {
        let mut g = graph(&[]);
        g.workspace.insert("beckon-extra".into());
        assert!(g.problems()[0].contains("beckon-extra is a new workspace crate"));
    }
}
