//! The witness policy file (`v2.witness_policy`): C2SP tlog-policy, the
//! grammar Tessera's `NewWitnessGroupFromPolicy` reads (rekor-v2-tiles.md
//! X-01). One definition per line, `#` starts a comment, fields are
//! separated by whitespace:
//!
//! ```text
//! log <vkey> [url]                      ignored: we are the log
//! witness <name> <vkey> <url>           a witness and its submission prefix
//! group <name> <k|any|all> <names…>     k of the named components
//! quorum <name|none>                    the component that must be satisfied
//! ```
//!
//! Names are unique across witnesses and groups and are not keywords; a
//! group names only components defined above it; `quorum` may appear once
//! or more (the last one counts, as upstream) and must appear. One URL
//! serves one cosigner key name. Beyond upstream, a URL must be absolute
//! `http://` or `https://` with a host, so that a file that could never
//! work stops start-up instead.

use crate::note::c2sp::CosignatureVerifier;

/// Words that cannot name a witness or group.
const KEYWORDS: [&str; 7] = ["witness", "group", "any", "all", "none", "quorum", "log"];

/// A line of the policy file that is not valid, with its 1-based number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct PolicyError {
    /// 1-based line number; 0 for what the whole file lacks.
    pub line: usize,
    /// What is wrong, naming the offending text.
    pub message: String,
}

/// A witness of the policy.
#[derive(Debug, Clone)]
pub struct PolicyWitness {
    /// Its name in the policy file (metrics label, logs).
    pub name: String,
    /// Its cosignature key.
    pub verifier: CosignatureVerifier,
    /// Its submission prefix, without a trailing `/`: tlog posts to
    /// `<url>/add-checkpoint`.
    pub url: String,
}

#[derive(Debug, Clone)]
enum Component {
    /// Index into `Policy::witnesses`.
    Witness(usize),
    /// `threshold` of the children (indexes into `Policy::components`).
    Group {
        threshold: usize,
        children: Vec<usize>,
    },
}

/// A parsed witness policy.
#[derive(Debug, Clone)]
pub struct Policy {
    witnesses: Vec<PolicyWitness>,
    components: Vec<(String, Component)>,
    /// Index into `components`; `None` for `quorum none`.
    quorum: Option<usize>,
}

impl Policy {
    /// Parses a policy file's text.
    ///
    /// # Errors
    /// The first line that is not valid, or what the whole file lacks.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let mut policy = Policy {
            witnesses: Vec::new(),
            components: Vec::new(),
            quorum: None,
        };
        let mut quorum: Option<(usize, String)> = None;
        for (number, raw) in text.lines().enumerate() {
            let number = number + 1;
            let fail = |message: String| PolicyError {
                line: number,
                message,
            };
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields[0] {
                "log" => {}
                "witness" => policy.add_witness(&fields).map_err(fail)?,
                "group" => policy.add_group(&fields).map_err(fail)?,
                "quorum" => {
                    if fields.len() != 2 {
                        return Err(fail(format!(
                            "a quorum is `quorum <name|none>`, not {line:?}"
                        )));
                    }
                    quorum = Some((number, fields[1].to_owned()));
                }
                other => return Err(fail(format!("unknown keyword {other:?}"))),
            }
        }
        let Some((line, name)) = quorum else {
            return Err(PolicyError {
                line: 0,
                message: "the policy defines no quorum; hint: add `quorum <name>` \
                          (or `quorum none`)"
                    .into(),
            });
        };
        if name != "none" {
            let fail = |message: String| PolicyError { line, message };
            if KEYWORDS.contains(&name.as_str()) {
                return Err(fail(format!("{name:?} cannot name a quorum")));
            }
            let index = policy
                .find(&name)
                .ok_or_else(|| fail(format!("the quorum names {name:?}, which is not defined")))?;
            policy.quorum = Some(index);
        }
        Ok(policy)
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.components.iter().position(|(n, _)| n == name)
    }

    fn check_new_name(&self, name: &str) -> Result<(), String> {
        if KEYWORDS.contains(&name) {
            return Err(format!("{name:?} is a keyword and cannot name a component"));
        }
        if self.find(name).is_some() {
            return Err(format!("{name:?} is defined twice"));
        }
        Ok(())
    }

    fn add_witness(&mut self, fields: &[&str]) -> Result<(), String> {
        let [_, name, vkey, url] = fields else {
            return Err(format!(
                "a witness is `witness <name> <vkey> <url>`, not {:?}",
                fields.join(" ")
            ));
        };
        self.check_new_name(name)?;
        let verifier = CosignatureVerifier::from_vkey(vkey)
            .map_err(|e| format!("witness {name:?}: bad vkey {vkey:?}: {e}"))?;
        let url = submission_url(url).map_err(|e| format!("witness {name:?}: {e}"))?;
        if let Some(other) = self
            .witnesses
            .iter()
            .find(|w| w.url == url && w.verifier.name() != verifier.name())
        {
            return Err(format!(
                "witness {name:?}: URL {url} already serves key name {:?} (witness {:?})",
                other.verifier.name(),
                other.name
            ));
        }
        self.witnesses.push(PolicyWitness {
            name: (*name).to_owned(),
            verifier,
            url,
        });
        let index = self.witnesses.len() - 1;
        self.components
            .push(((*name).to_owned(), Component::Witness(index)));
        Ok(())
    }

    fn add_group(&mut self, fields: &[&str]) -> Result<(), String> {
        let [_, name, threshold, members @ ..] = fields else {
            return Err(format!(
                "a group is `group <name> <k|any|all> <names…>`, not {:?}",
                fields.join(" ")
            ));
        };
        self.check_new_name(name)?;
        let threshold = match *threshold {
            "any" => 1,
            "all" => members.len(),
            k => k
                .parse::<u8>()
                .ok()
                .filter(|_| k.bytes().all(|b| b.is_ascii_digit()))
                .map(usize::from)
                .ok_or_else(|| {
                    format!("group {name:?}: threshold {k:?} is not any, all or 0…255")
                })?,
        };
        if threshold > members.len() {
            return Err(format!(
                "group {name:?} has {} members and cannot have threshold {threshold}",
                members.len()
            ));
        }
        let mut children = Vec::with_capacity(members.len());
        for member in members {
            if KEYWORDS.contains(member) {
                return Err(format!("group {name:?}: {member:?} is a keyword"));
            }
            let child = self
                .find(member)
                .ok_or_else(|| format!("group {name:?}: {member:?} is not defined above it"))?;
            children.push(child);
        }
        self.components.push((
            (*name).to_owned(),
            Component::Group {
                threshold,
                children,
            },
        ));
        Ok(())
    }

    /// Every witness the policy defines, in file order.
    #[must_use]
    pub fn witnesses(&self) -> &[PolicyWitness] {
        &self.witnesses
    }

    /// Indexes of the witnesses the quorum can count: the ones tlog asks.
    /// Empty for `quorum none`.
    #[must_use]
    pub fn quorum_witnesses(&self) -> Vec<usize> {
        let mut out = Vec::new();
        if let Some(root) = self.quorum {
            self.collect(root, &mut out);
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    fn collect(&self, component: usize, out: &mut Vec<usize>) {
        match &self.components[component].1 {
            Component::Witness(w) => out.push(*w),
            Component::Group { children, .. } => {
                for child in children {
                    self.collect(*child, out);
                }
            }
        }
    }

    /// Whether the witnesses for which `cosigned[i]` is true (indexes as in
    /// [`Self::witnesses`]) satisfy the quorum. `quorum none` always is.
    #[must_use]
    pub fn satisfied(&self, cosigned: &[bool]) -> bool {
        self.quorum
            .is_none_or(|root| self.component_satisfied(root, cosigned))
    }

    fn component_satisfied(&self, component: usize, cosigned: &[bool]) -> bool {
        match &self.components[component].1 {
            Component::Witness(w) => cosigned.get(*w).copied().unwrap_or(false),
            Component::Group {
                threshold,
                children,
            } => {
                children
                    .iter()
                    .filter(|c| self.component_satisfied(**c, cosigned))
                    .count()
                    >= *threshold
            }
        }
    }
}

/// A witness submission prefix: absolute `http://` or `https://` with a
/// host, no query or fragment, returned without a trailing `/`.
fn submission_url(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("bad URL {text:?}: {e}"))?;
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(format!(
                "URL {text:?}: scheme {other:?} is not http or https"
            ))
        }
    }
    if url.host_str().is_none_or(str::is_empty) || url.query().is_some() || url.fragment().is_some()
    {
        return Err(format!(
            "URL {text:?} must have a host and no query or fragment"
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// rekor-v2-tiles.md V-06's witness key (seed 32×0x42).
    const W1: &str = "witness.example.test+9ac572ef+BCFS+NGbeR0kRTJC4V8uq2y3z/p7al7TAJeWDgaYgdsS";

    fn vkey(name: &str, seed: u8) -> String {
        let key = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let raw = key.verifying_key().to_bytes();
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        sha2::Digest::update(&mut hasher, format!("{name}\n").as_bytes());
        sha2::Digest::update(&mut hasher, [0x04]);
        sha2::Digest::update(&mut hasher, raw);
        let hash = sha2::Digest::finalize(hasher);
        let b64 = base64::Engine::encode(
            &base64::prelude::BASE64_STANDARD,
            [&[0x04][..], &raw].concat(),
        );
        format!("{name}+{}+{b64}", hex::encode(&hash[..4]))
    }

    fn err(text: &str) -> PolicyError {
        Policy::parse(text).expect_err(text)
    }

    #[test]
    fn the_upstream_shapes_parse_and_count_the_quorum() {
        let w2 = vkey("w2.example", 2);
        let w3 = vkey("w3.example", 3);
        let text = format!(
            "# a comment\n\
             log rekor.example.test+beafe56a+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4 https://rekor.example.test\n\
             \n\
             witness one {W1} http://127.0.0.1:1/  # trailing comment\n\
             \twitness two   {w2}   http://w2.example:8080/prefix\n\
             witness three {w3} https://w3.example/\n\
             group pair 2 one two\n\
             group top any pair three\n\
             quorum top\n"
        );
        let policy = Policy::parse(&text).unwrap();
        let names: Vec<_> = policy.witnesses().iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["one", "two", "three"]);
        assert_eq!(policy.witnesses()[0].url, "http://127.0.0.1:1");
        assert_eq!(policy.witnesses()[1].url, "http://w2.example:8080/prefix");
        assert_eq!(policy.witnesses()[2].url, "https://w3.example");
        assert_eq!(policy.quorum_witnesses(), [0, 1, 2]);
        assert!(policy.satisfied(&[false, false, true]));
        assert!(policy.satisfied(&[true, true, false]));
        assert!(!policy.satisfied(&[true, false, false]));
        assert!(!policy.satisfied(&[false, false, false]));

        // A single witness can be the quorum; only it is asked.
        let single = Policy::parse(&format!(
            "witness one {W1} http://a\nwitness two {w2} http://b\nquorum two\n"
        ))
        .unwrap();
        assert_eq!(single.quorum_witnesses(), [1]);
        assert!(single.satisfied(&[false, true]) && !single.satisfied(&[true, false]));
        // `all`, and a later quorum line replaces an earlier one.
        let all = Policy::parse(&format!(
            "witness one {W1} http://a\nwitness two {w2} http://b\nquorum one\ngroup g all one two\nquorum g\n"
        ))
        .unwrap();
        assert!(!all.satisfied(&[true, false]) && all.satisfied(&[true, true]));
        // `quorum none` asks nobody and is always met.
        let none = Policy::parse(&format!("witness one {W1} http://a\nquorum none\n")).unwrap();
        assert!(none.quorum_witnesses().is_empty() && none.satisfied(&[]));
        // A 0x01 vkey is accepted (re-keyed as 0x04).
        let v01 = "rekor.example.test+beafe56a+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4";
        assert!(Policy::parse(&format!("witness one {v01} http://a\nquorum one\n")).is_ok());
    }

    #[test]
    fn every_malformed_line_is_refused_with_its_number() {
        let w2 = vkey("w2.example", 2);
        let ok = format!("witness one {W1} http://a\n");
        let cases: Vec<(String, usize, &str)> = vec![
            (
                format!("{ok}frobnicate x\nquorum one\n"),
                2,
                "unknown keyword",
            ),
            (
                format!("{ok}witness two {w2}\nquorum one\n"),
                2,
                "a witness is",
            ),
            (
                format!("{ok}witness two {w2} http://b extra\nquorum one\n"),
                2,
                "a witness is",
            ),
            (
                format!("witness group {W1} http://a\nquorum group\n"),
                1,
                "keyword",
            ),
            (
                format!("{ok}witness one {w2} http://b\nquorum one\n"),
                2,
                "defined twice",
            ),
            (
                format!("{ok}witness two not-a-vkey http://b\nquorum one\n"),
                2,
                "bad vkey",
            ),
            (
                format!("{ok}witness two w2.example+00000000+BCFS http://b\nquorum one\n"),
                2,
                "bad vkey",
            ),
            (
                format!("{ok}witness two {w2} not a url\nquorum one\n"),
                2,
                "a witness is",
            ),
            (
                format!("{ok}witness two {w2} /relative\nquorum one\n"),
                2,
                "bad URL",
            ),
            (
                format!("{ok}witness two {w2} ftp://b\nquorum one\n"),
                2,
                "not http",
            ),
            (
                format!("{ok}witness two {w2} http://b/?q=1\nquorum one\n"),
                2,
                "no query",
            ),
            (
                format!("{ok}witness two {w2} http://a/\nquorum one\n"),
                2,
                "already serves",
            ),
            (format!("{ok}group g\nquorum g\n"), 2, "a group is"),
            (
                format!("{ok}group g 2 one\nquorum g\n"),
                2,
                "cannot have threshold",
            ),
            (
                format!("{ok}group g 256 one\nquorum g\n"),
                2,
                "is not any, all",
            ),
            (
                format!("{ok}group g -1 one\nquorum g\n"),
                2,
                "is not any, all",
            ),
            (
                format!("{ok}group g +1 one\nquorum g\n"),
                2,
                "is not any, all",
            ),
            (
                format!("{ok}group g any two\nquorum g\n"),
                2,
                "not defined above",
            ),
            (format!("{ok}group g any all\nquorum g\n"), 2, "keyword"),
            (
                format!("{ok}group one any one\nquorum one\n"),
                2,
                "defined twice",
            ),
            (format!("{ok}quorum\n"), 2, "a quorum is"),
            (format!("{ok}quorum a b\n"), 2, "a quorum is"),
            (format!("{ok}quorum nobody\n"), 2, "not defined"),
            (format!("{ok}quorum any\n"), 2, "cannot name a quorum"),
            (ok.clone(), 0, "no quorum"),
            (String::new(), 0, "no quorum"),
        ];
        for (text, line, needle) in cases {
            let e = err(&text);
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.contains(needle), "{text:?}: {e}");
        }
    }
}
