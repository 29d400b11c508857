//! What `duffy replay` prints: one line per request and a summary.
//!
//! ```text
//! compatible  GET /Node/get?key=***&ver=7&count=1  200  [fixtures/v2/10-node-get.jsonl:4 one node]
//! different   GET /Node/done?key=***&ssid=3  200  [x.jsonl:9]: $: expected "Done", got {"msg":"Session not in Prod"}
//! error       GET /Node/get?key=***  [x.jsonl:12]: request failed: …
//! replayed 3 requests from 1 file: 1 compatible, 1 different, 1 error, 0 skipped
//! ```
//! API keys never reach the output: `key=` values are masked in every request shown, and the
//! `--key` value (and any `--var key…` value) is masked wherever else it might appear.

use std::fmt;
use std::io::Write;

/// The outcome of one replayed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The answer is what the record (or the v2 contract) expects.
    Compatible,
    /// The answer differs; each entry is one readable difference.
    Different(Vec<String>),
    /// The request could not be replayed or judged.
    Error(String),
}

/// Counts over a whole run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// How many files were read.
    pub files: usize,
    /// Requests whose answers were compatible.
    pub compatible: usize,
    /// Requests whose answers differed.
    pub different: usize,
    /// Requests (or records) that could not be replayed.
    pub errors: usize,
    /// Access-log lines that are not v2 requests.
    pub skipped: usize,
}

impl Summary {
    /// How many requests (and unreadable records) were judged.
    pub fn replayed(&self) -> usize {
        self.compatible + self.different + self.errors
    }

    /// Whether the run passes: something was replayed, and all of it was compatible.
    pub fn passed(&self) -> bool {
        self.replayed() > 0 && self.different == 0 && self.errors == 0
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `replayed 23 requests from 3 files: 23 compatible, 0 different, 0 errors, 2 skipped`
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "replayed {} from {}: {} compatible, {} different, {}, {} skipped",
            plural(self.replayed(), "request", "requests"),
            plural(self.files, "file", "files"),
            self.compatible,
            self.different,
            plural(self.errors, "error", "errors"),
            self.skipped
        )
    }
}

/// Writes report lines as the run goes and keeps the counts.
pub struct Reporter<W: Write> {
    out: W,
    secrets: Vec<String>,
    summary: Summary,
}

impl<W: Write> Reporter<W> {
    /// A reporter that masks `secrets` (the API keys given on the command line).
    pub fn new(out: W, mut secrets: Vec<String>) -> Self {
        secrets.retain(|s| !s.is_empty());
        // Longer first, so a key containing another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Reporter {
            out,
            secrets,
            summary: Summary::default(),
        }
    }

    /// Reports one request: `request` is `METHOD /path?query` with keys already masked
    /// (empty when there was no request), `status` the answer's, `at` the file and line.
    pub fn request(&mut self, verdict: &Verdict, request: &str, status: Option<u16>, at: &str) {
        let (word, detail) = match verdict {
            Verdict::Compatible => {
                self.summary.compatible += 1;
                ("compatible", String::new())
            }
            Verdict::Different(diffs) => {
                self.summary.different += 1;
                ("different", format!(": {}", diffs.join("; ")))
            }
            Verdict::Error(reason) => {
                self.summary.errors += 1;
                ("error", format!(": {reason}"))
            }
        };
        let mut line = format!("{word:<11} ");
        if !request.is_empty() {
            line.push_str(request);
            line.push_str("  ");
        }
        if let Some(status) = status {
            line.push_str(&format!("{status}  "));
        }
        line.push_str(&format!("[{at}]{detail}"));
        self.write(&line);
    }

    /// Counts a line that is not replayed.
    pub fn skipped(&mut self) {
        self.summary.skipped += 1;
    }

    /// Prints the summary line and returns the counts.
    pub fn finish(mut self, files: usize) -> Summary {
        self.summary.files = files;
        let summary = self.summary;
        self.write(&summary.to_string());
        let _ = self.out.flush();
        summary
    }

    fn write(&mut self, line: &str) {
        let line = mask_secrets(line, &self.secrets);
        // A closed stdout must not stop the run: the exit status still tells the result.
        let _ = writeln!(self.out, "{line}");
    }
}

/// `text` with every occurrence of a secret replaced by `***`.
pub fn mask_secrets(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(text.to_owned(), |t, s| t.replace(s.as_str(), "***"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: impl FnOnce(&mut Reporter<&mut Vec<u8>>)) -> (String, Summary) {
        let mut out = Vec::new();
        let mut r = Reporter::new(&mut out, vec!["s3cr3t".into(), String::new()]);
        f(&mut r);
        let summary = r.finish(2);
        (String::from_utf8(out).unwrap(), summary)
    }

    #[test]
    fn lines_and_summary() {
        let (text, summary) = run(|r| {
            r.request(
                &Verdict::Compatible,
                "GET /Node/get?key=***&ver=7",
                Some(200),
                "a.jsonl:1",
            );
            r.request(
                &Verdict::Different(vec![
                    "status: expected 403, got 200".into(),
                    "$.msg: missing".into(),
                ]),
                "GET /Node/done?key=***&ssid=1",
                Some(200),
                "a.jsonl:2 done",
            );
            r.request(
                &Verdict::Error("unreadable record: EOF".into()),
                "",
                None,
                "a.jsonl:3",
            );
            r.skipped();
        });
        assert_eq!(
            text,
            "compatible  GET /Node/get?key=***&ver=7  200  [a.jsonl:1]\n\
             different   GET /Node/done?key=***&ssid=1  200  [a.jsonl:2 done]: status: expected 403, got 200; $.msg: missing\n\
             error       [a.jsonl:3]: unreadable record: EOF\n\
             replayed 3 requests from 2 files: 1 compatible, 1 different, 1 error, 1 skipped\n"
        );
        assert!(!summary.passed());
    }

    #[test]
    fn secrets_never_reach_the_output() {
        let (text, _) = run(|r| {
            r.request(
                &Verdict::Error("connect to http://h/Node/get?key=s3cr3t failed".into()),
                "GET /x",
                None,
                "b.log:1",
            );
        });
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(text.contains("key=***"), "{text}");
        assert_eq!(
            mask_secrets("ab abc", &["abc".into(), "ab".into()]),
            "*** ***"
        );
    }

    #[test]
    fn passing_needs_something_replayed_and_nothing_wrong() {
        let mut s = Summary {
            files: 1,
            skipped: 3,
            ..Summary::default()
        };
        assert!(!s.passed(), "nothing replayed");
        s.compatible = 1;
        assert!(s.passed());
        assert_eq!(
            s.to_string(),
            "replayed 1 request from 1 file: 1 compatible, 0 different, 0 errors, 3 skipped"
        );
        s.errors = 1;
        assert!(!s.passed());
    }
}
