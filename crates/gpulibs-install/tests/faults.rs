//! The install transaction under network faults, as a table: with v1 installed and active, an
//! update to v2 whose one changed archive (`extra-2.tar.zst`, about 2 MB that does not
//! compress: more than the pipe between download and unpacker holds, so an unpacker that
//! refuses the bytes does so while they stream) is served with the row's fault by the shared
//! test server (`gpulibs_testkit::http`). Every row either
//!
//! - **completes**: v2 is active with the right bytes, only the changed archive was requested,
//!   and its requests carried exactly the `Range` starts the row names; or
//! - **fails**: the message names the component (`extra`), the cause and that v1 stays active;
//!   v1 is still the active install, byte for byte; no new generation, no stored component and
//!   no temporary is left, except where the row says a resumable `downloads/<sha256>.partial`
//!   stays (the bytes received before the connection kept failing). For those rows the next
//!   run is part of the row: it resumes from the `.partial` (or starts over when the server
//!   ignores `Range`) and completes. Rows whose bytes were refused say how the next run, against
//!   a healthy server, goes too: from byte 0, and it completes.
//!
//! Retries are 3 per URL with millisecond delays; only the rows about silence and trickles
//! shorten the idle timeout or tighten the stall rule, so the whole table runs in seconds.

mod support;

use gpulibs_hint::Hint;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gpulibs_fetch::{FetchOptions, StallRule};
use gpulibs_install::{install, Action, InstallError, InstallReport, InstallRequest};
use gpulibs_plan::{parse_manifest, plan, Host, Manifest, Policy, SystemInventory};
use gpulibs_sources::{PipError, PipResolver, ResolvedWheel, WheelTarget};
use gpulibs_store::{activate_at, Activation, Store};
use gpulibs_testkit::tree;
use support::*;

/// The changed archive of the update.
const CHANGED: &str = "/extra-2.tar.zst";
/// Where the rows that drop the connection cut it.
const DROP_AT: usize = 50_000;
/// Attempts per URL (`req.fetch.retry.attempts`).
const ATTEMPTS: usize = 3;
/// Bytes of the changed archive's library (noise: the archive is a little larger).
const PAYLOAD: usize = 2_000_000;

struct NoPip;
impl PipResolver for NoPip {
    fn resolve(&self, _: &[String], _: &WheelTarget) -> Result<Vec<ResolvedWheel>, PipError> {
        panic!("pip must not be asked");
    }
}

/// What a request for the changed archive must carry.
#[derive(Debug, Clone, Copy)]
enum Start {
    /// No `Range`.
    Whole,
    /// `Range: bytes=N-`.
    At(u64),
    /// `Range: bytes=N-` with `N` this many bytes before the end of the archive.
    BeforeEnd(u64),
    /// `Range: bytes=N-` with `lo <= N <= hi`.
    Within(u64, u64),
}

impl Start {
    fn matches(self, seen: Option<u64>, size: u64) -> bool {
        match self {
            Start::Whole => seen.is_none(),
            Start::At(n) => seen == Some(n),
            Start::BeforeEnd(n) => seen == Some(size - n),
            Start::Within(lo, hi) => seen.is_some_and(|s| (lo..=hi).contains(&s)),
        }
    }
}

/// What the row's messages may name.
struct Ctx {
    /// URL of the changed archive.
    url: String,
    /// URL of the redirect loop's second hop.
    hop: String,
    sha256: String,
    /// Size of the changed archive.
    size: u64,
}

/// The run after a failure that left a resumable `.partial`.
struct Then {
    /// The server's reply for the changed archive from now on.
    reply: Reply,
    starts: Vec<Start>,
    /// `resumed_bytes` of the report (0: the download started over).
    resumed: u64,
}

enum Expect {
    Completes {
        starts: Vec<Start>,
    },
    Fails {
        /// Besides the component and "install <v1> stays active", the message (with its causes)
        /// contains each of these.
        says: fn(&Ctx) -> Vec<String>,
        starts: Vec<Start>,
        /// Bytes left in `downloads/<sha256>.partial` (the archive's first N); `None`: nothing.
        partial: Option<usize>,
        /// Required when `partial` is set; where set without it, the next run starts from 0.
        then: Option<Then>,
    },
}

/// What a passing row has shown, in a few words (for docs/fault-table.md).
fn observed(row: &Row) -> String {
    match &row.expect {
        Expect::Completes { .. } => {
            "completes: v2 active with the right bytes; the Range starts the row names".into()
        }
        Expect::Fails { partial, then, .. } => format!(
            "fails naming the cause; v1 stays active{}{}",
            if partial.is_some() {
                "; a resumable .partial kept"
            } else {
                "; no .partial left"
            },
            if then.is_some() {
                "; the next run completes"
            } else {
                ""
            }
        ),
    }
}

struct Row {
    name: &'static str,
    /// Replies to the first requests for the changed archive, in order.
    script: Vec<Reply>,
    /// The reply after the script (`Serve` when `None`): a fault that persists.
    default: Option<Reply>,
    /// Defaults of other paths (the redirect loop's hop).
    others: Vec<(&'static str, Reply)>,
    tune: fn(&mut FetchOptions),
    /// What the row changes in the v2 manifest (its changed archive is `components[1]`).
    manifest: fn(&mut Manifest),
    expect: Expect,
}

fn keep(_: &mut FetchOptions) {}

fn as_published(_: &mut Manifest) {}

/// The manifest says the changed archive is 100 bytes larger than it is.
fn size_plus_100(m: &mut Manifest) {
    m.components[1].archive.size += 100;
}

/// At most 5 attempts per URL in all.
fn five_attempts(opts: &mut FetchOptions) {
    opts.retry.max_attempts = 5;
}

/// A trickle below 2 kB/s over 300 ms is a stall (the row's trickle sends 50 bytes/s).
fn strict_stall(opts: &mut FetchOptions) {
    opts.stall = StallRule {
        min_bytes_per_sec: 2_000,
        window: Duration::from_millis(300),
    };
}

/// 400 ms without a byte is a failed attempt.
fn short_idle(opts: &mut FetchOptions) {
    opts.idle_timeout = Duration::from_millis(400);
}

fn table() -> Vec<Row> {
    use Start::*;
    let drop = DROP_AT as u64;
    vec![
        Row {
            name: "connection dropped at a byte, then served: resumed with Range",
            script: vec![Reply::DropAfter(DROP_AT)],
            default: None,
            others: vec![],
            tune: keep,
            manifest: as_published,
            expect: Expect::Completes {
                starts: vec![Whole, At(drop)],
            },
        },
        Row {
            name: "connection dropped at a byte, then dropped at once on every retry",
            script: vec![Reply::DropAfter(DROP_AT)],
            default: Some(Reply::DropAfter(0)),
            others: vec![],
            tune: keep,
            manifest: as_published,
            expect: Expect::Fails {
                says: |c| {
                    vec![
                        format!("extra: downloading {} failed 3 times in a row", c.url),
                        format!("at byte {DROP_AT}"),
                        "it resumes where it stopped".into(),
                    ]
                },
                starts: vec![Whole, At(drop), At(drop)],
                partial: Some(DROP_AT),
                then: Some(Then {
                    reply: Reply::Serve,
                    starts: vec![At(drop)],
                    resumed: drop,
                }),
            },
        },
        Row {
            name: "connection dropped on every retry, the next run's server ignores Range",
            script: vec![Reply::DropAfter(DROP_AT)],
            default: Some(Reply::DropAfter(0)),
            others: vec![],
            tune: keep,
            manifest: as_published,
            expect: Expect::Fails {
                says: |c| vec![format!("extra: downloading {} failed 3 times", c.url)],
                starts: vec![Whole, At(drop), At(drop)],
                partial: Some(DROP_AT),
                then: Some(Then {
                    reply: Reply::IgnoreRange,
                    starts: vec![At(drop)],
                    resumed: 0,
                }),
            },
        },
        Row {
            name: "wrong bytes: refused, not retried, deleted",
            script: vec![],
            default: Some(Reply::WrongBytes),
            others: vec![],
            tune: keep,
            manifest: as_published,
            expect: Expect::Fails {
                says: |c| {
                    vec![
                        format!(
                            "sha256 mismatch for extra (from {}): expected {}, got ",
                            c.url, c.sha256
                        ),
                        "the downloaded bytes were deleted".into(),
                    ]
                },
                starts: vec![Whole],
                partial: None,
                then: None,
            },
        },
        Row {
            name: "500 then 503 (Retry-After: 0), then served: retried",
            script: vec![Reply::Status(500), Reply::StatusRetryAfter(503, 0)],
            default: None,
            others: vec![],
            tune: keep,
            manifest: as_published,
            expect: Expect::Completes {
                starts: vec![Whole, Whole, Whole],
            },
        },
        Row {
            name: "500 on every attempt",
            script: vec![],
            default: Some(Reply::Status(500)),
            others: vec![],
            tune: keep,
            manifest: as_published,
            expect: Expect::Fails {
                says: |c| {
                    vec![format!(
                        "extra: downloading {} failed 3 times in a row, last: answered HTTP 500",
                        c.url
                    )]
                },
                starts: vec![Whole; ATTEMPTS],
                partial: None,
                then: None,
            },
        },
        Row {
            name: "slow trickle (a stall), then served: resumed with Range",
            script: vec![Reply::Trickle {
                chunk: 1,
                delay: Duration::from_millis(20),
                max: 200,
            }],
            default: None,
            others: vec![],
            tune: strict_stall,
            manifest: as_published,
            expect: Expect::Completes {
                starts: vec![Whole, Within(1, 200)],
            },
        },
        Row {
            name: "silence after a byte (idle timeout), then served: resumed with Range",
            script: vec![Reply::Silence {
                after: DROP_AT,
                wait: Duration::from_secs(2),
            }],
            default: None,
            others: vec![],
            tune: short_idle,
            manifest: as_published,
            expect: Expect::Completes {
                starts: vec![Whole, At(drop)],
            },
        },
        Row {
            name: "silence before the first body byte on every attempt",
            script: vec![],
            default: Some(Reply::Silence {
                after: 0,
                wait: Duration::from_secs(1),
            }),
            others: vec![],
            tune: short_idle,
            manifest: as_published,
            expect: Expect::Fails {
                says: |c| {
                    vec![
                        format!("extra: downloading {0} failed 3 times in a row", c.url),
                        format!("last: connection to {} lost at byte 0", c.url),
                    ]
                },
                starts: vec![Whole; ATTEMPTS],
                partial: None,
                then: None,
            },
        },
        Row {
            name: "Content-Length longer than the body, every time: the digest decides",
            script: vec![],
            default: Some(Reply::LongContentLength { extra: 1000 }),
            others: vec![],
            tune: keep,
            manifest: as_published,
            expect: Expect::Completes {
                starts: vec![Whole],
            },
        },
        Row {
            name: "Content-Length shorter than the body, then served: the rest with Range",
            script: vec![Reply::ShortContentLength { short: 1000 }],
            default: None,
            others: vec![],
            tune: keep,
            manifest: as_published,
            expect: Expect::Completes {
                starts: vec![Whole, BeforeEnd(1000)],
            },
        },
        Row {
            name: "redirect loop: refused, not retried",
            script: vec![],
            default: Some(Reply::Redirect("/hop".into())),
            others: vec![("/hop", Reply::Redirect(CHANGED.into()))],
            tune: keep,
            manifest: as_published,
            expect: Expect::Fails {
                says: |c| {
                    vec![format!(
                        "extra: {0}: redirect loop: {0} -> {1} -> {0}; the server is misconfigured",
                        c.url, c.hop
                    )]
                },
                starts: vec![Whole],
                partial: None,
                then: None,
            },
        },
        Row {
            name: "Range ignored on the retry: starts over from byte 0",
            script: vec![Reply::DropAfter(DROP_AT), Reply::IgnoreRange],
            default: None,
            others: vec![],
            tune: keep,
            manifest: as_published,
            expect: Expect::Completes {
                starts: vec![Whole, At(drop)],
            },
        },
        Row {
            name: "404: not retried",
            script: vec![],
            default: Some(Reply::Status(404)),
            others: vec![],
            tune: keep,
            manifest: as_published,
            expect: Expect::Fails {
                says: |c| {
                    vec![format!(
                        "extra: {} answered HTTP 404 Not Found / hint: the file is not on this server",
                        c.url
                    )]
                },
                starts: vec![Whole],
                partial: None,
                then: None,
            },
        },
        Row {
            name: "first byte flipped on every attempt: refused while streaming, deleted, not \
                   retried; the next run starts from 0",
            script: vec![],
            default: Some(Reply::FlipAt(0)),
            others: vec![],
            tune: keep,
            manifest: as_published,
            expect: Expect::Fails {
                says: |c| {
                    vec![
                        format!(
                            "extra: the bytes from {} were refused by the unpacker before their \
                             sha256 could be checked (deleted): expected sha256 {}, received ",
                            c.url, c.sha256
                        ),
                        "(downloaded from byte 0 in this run)".into(),
                        "caused by: unpacking component".into(),
                    ]
                },
                starts: vec![Whole],
                partial: None,
                then: Some(Then {
                    reply: Reply::Serve,
                    starts: vec![Whole],
                    resumed: 0,
                }),
            },
        },
        Row {
            name: "a resumed range answered with the file's first bytes, once: one fresh download",
            script: vec![Reply::DropAfter(DROP_AT), Reply::WrongRange],
            default: None,
            others: vec![],
            tune: keep,
            manifest: as_published,
            expect: Expect::Completes {
                starts: vec![Whole, At(drop), Whole],
            },
        },
        Row {
            name: "a resumed range answered with wrong bytes, twice: refused, deleted; the next \
                   run starts from 0",
            script: vec![
                Reply::DropAfter(DROP_AT),
                Reply::WrongRange,
                Reply::DropAfter(DROP_AT),
                Reply::WrongRange,
            ],
            default: None,
            others: vec![],
            tune: keep,
            manifest: as_published,
            expect: Expect::Fails {
                says: |c| {
                    vec![
                        format!(
                            "were refused by the unpacker before their sha256 could be checked \
                             (deleted): expected sha256 {}, received ",
                            c.sha256
                        ),
                        format!("(resumed with Range at byte {DROP_AT})"),
                        "a download resumed with Range got bytes that do not continue the file"
                            .into(),
                    ]
                },
                starts: vec![Whole, At(drop), Whole, At(drop)],
                partial: None,
                then: Some(Then {
                    reply: Reply::Serve,
                    starts: vec![Whole],
                    resumed: 0,
                }),
            },
        },
        Row {
            name: "manifest size 100 bytes larger than the file: fails at once naming both sizes",
            script: vec![],
            default: None,
            others: vec![],
            tune: keep,
            manifest: size_plus_100,
            expect: Expect::Fails {
                says: |c| {
                    vec![format!(
                        "extra: {} has {} bytes (a 416 answer says the file ends there), the \
                         manifest says {}",
                        c.url,
                        c.size,
                        c.size + 100
                    )]
                },
                starts: vec![Whole, BeforeEnd(0)],
                partial: None,
                then: None,
            },
        },
        // A manifest size of u64::MAX no longer reaches the network: validation refuses any size
        // over 1 TiB (tests/hostile_manifests.rs), and the fetcher's own guard against it (a 416
        // that says where the file ends) is tested in gpulibs-fetch's tests/trust.rs.
        Row {
            name: "dropped after 1000 bytes on every attempt: progress, but stops at the total \
                   bound; the next run resumes",
            script: vec![],
            default: Some(Reply::DropAfter(1_000)),
            others: vec![],
            tune: five_attempts,
            manifest: as_published,
            expect: Expect::Fails {
                says: |c| {
                    vec![
                        format!("extra: gave up on {} after 5 attempts in ", c.url),
                        "(at most 5 attempts per URL)".into(),
                        "it resumes where it stopped (byte 5000)".into(),
                    ]
                },
                starts: vec![Whole, At(1_000), At(2_000), At(3_000), At(4_000)],
                partial: Some(5_000),
                then: Some(Then {
                    reply: Reply::Serve,
                    starts: vec![At(5_000)],
                    resumed: 5_000,
                }),
            },
        },
    ]
}

struct World {
    server: Server,
    tmp: tempfile::TempDir,
    v1: Manifest,
    v2: Manifest,
    /// The changed archive and the library in it.
    archive: Vec<u8>,
    payload: Vec<u8>,
}

impl World {
    fn new() -> World {
        let server = Server::start();
        let serve = |id: &str, version: &str, name: &str, archive: Vec<u8>| {
            let c = TestComponent::tar(id, version, server.url(name), &archive, 1 << 20);
            server.put(name, archive);
            c
        };
        let ort = serve("ort", "1.0", "ort-1.tar.zst", ort_archive(b"ort one"));
        let extra1 = serve(
            "extra",
            "1.0",
            "extra-1.tar.zst",
            lib_archive("libextra.so.1", b"x1"),
        );
        let payload = noise(PAYLOAD, 7);
        let archive = lib_archive("libextra.so.1", &payload);
        let extra2 = TestComponent::tar("extra", "2.0", server.url(CHANGED), &archive, 4 << 20);
        server.put(CHANGED, archive.clone());
        let v1 = parse_manifest(&manifest_toml("1.0", &[ort.clone(), extra1])).unwrap();
        let v2 = parse_manifest(&manifest_toml("2.0", &[ort, extra2])).unwrap();
        World {
            server,
            tmp: tempfile::tempdir().unwrap(),
            v1,
            v2,
            archive,
            payload,
        }
    }

    fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }

    fn run(
        &self,
        manifest: &Manifest,
        tune: fn(&mut FetchOptions),
    ) -> Result<InstallReport, InstallError> {
        self.run_planned(manifest, manifest, tune)
    }

    /// Installs `manifest` with the plan made from `planned` (the rows that change sizes plan
    /// from the published manifest: the planner's own size arithmetic is not what they test).
    fn run_planned(
        &self,
        manifest: &Manifest,
        planned: &Manifest,
        tune: fn(&mut FetchOptions),
    ) -> Result<InstallReport, InstallError> {
        let plan = plan(
            &Host::synthetic(&[], None, None),
            planned,
            &SystemInventory::default(),
            &Policy::default(),
        );
        let pip = NoPip;
        let mut req = InstallRequest::new(manifest, &plan, self.root(), "testapp", &pip);
        req.fetch.retry.attempts = ATTEMPTS as u32;
        req.fetch.retry.base_delay = Duration::from_millis(1);
        req.fetch.retry.max_delay = Duration::from_millis(5);
        req.fetch.connect_timeout = Duration::from_secs(5);
        req.fetch.idle_timeout = Duration::from_secs(10);
        req.fetch.stall = StallRule {
            min_bytes_per_sec: 1,
            window: Duration::from_secs(60),
        };
        tune(&mut req.fetch);
        install(&req, &|_| {})
    }

    fn sha256(&self) -> String {
        sha256_hex(&self.archive)
    }

    /// The Range starts of the requests for the changed archive match `starts`.
    fn check_starts(&self, row: &str, starts: &[Start]) {
        let seen: Vec<Option<u64>> = self
            .server
            .requests(CHANGED)
            .iter()
            .map(|s| s.range_start)
            .collect();
        let size = self.archive.len() as u64;
        assert!(
            seen.len() == starts.len()
                && starts.iter().zip(&seen).all(|(s, r)| s.matches(*r, size)),
            "{row}: requests for {CHANGED} had Range starts {seen:?}, expected {starts:?}"
        );
        assert!(
            self.server.requests("/ort-1.tar.zst").is_empty()
                && self.server.requests("/extra-1.tar.zst").is_empty(),
            "{row}: an unchanged archive was requested: {:?}",
            self.server.log()
        );
    }

    /// v2 is active with the right bytes, and nothing is left behind.
    fn check_completed(&self, row: &str, report: &InstallReport, v1: &Activation, resumed: u64) {
        assert_eq!(
            report.previous.as_deref(),
            Some(v1.install_id.as_str()),
            "{row}"
        );
        assert!(!report.up_to_date, "{row}");
        let extra = report.components.iter().find(|c| c.id == "extra").unwrap();
        assert_eq!(extra.action, Action::Downloaded, "{row}");
        assert_eq!(extra.resumed_bytes, resumed, "{row}: {extra:?}");
        assert_eq!(
            extra.bytes + extra.resumed_bytes,
            self.archive.len() as u64,
            "{row}: {extra:?}"
        );
        let ort = report.components.iter().find(|c| c.id == "ort").unwrap();
        assert_eq!(ort.action, Action::Stored, "{row}");
        let active = activate_at(&self.root()).unwrap();
        assert_eq!(active.install_id, report.install_id, "{row}");
        assert_ne!(active.install_id, v1.install_id, "{row}");
        let lib = active.ort_library.parent().unwrap();
        assert!(
            std::fs::read(lib.join("libextra.so.1")).unwrap() == self.payload,
            "{row}: libextra.so.1 is not the v2 library"
        );
        assert_eq!(
            std::fs::read(&active.ort_library).unwrap(),
            b"ort one",
            "{row}"
        );
        assert!(Store::open(self.root())
            .unwrap()
            .has_component(&self.sha256()));
        assert_eq!(leftovers(&self.root()), Vec::<String>::new(), "{row}");
    }
}

/// What an install must not leave: anything in `downloads/`, and any `.tmp` entry.
fn leftovers(root: &Path) -> Vec<String> {
    tree(root)
        .into_keys()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| (p.starts_with("downloads/")) || p.contains(".tmp"))
        .collect()
}

fn installs(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("installs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The error and its causes, as the CLI prints them.
/// The message, each cause, then each hint of the chain, as the CLI prints them.
fn chain(err: &InstallError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        text.push_str(&format!(" / caused by: {s}"));
        source = s.source();
    }
    for hint in hints(err) {
        text.push_str(&format!(" / hint: {hint}"));
    }
    text
}

/// The hints of `err` and of the fetch and store errors in its chain, outermost first.
fn hints(err: &InstallError) -> Vec<String> {
    let mut source = std::error::Error::source(err);
    let mut hints: Vec<String> = err.hint().into_iter().collect();
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<gpulibs_fetch::FetchError>() {
            hints.extend(h.hint());
        }
        if let Some(h) = s.downcast_ref::<gpulibs_store::StoreError>() {
            hints.extend(h.hint());
        }
        source = s.source();
    }
    hints
}

fn check_row(row: Row) {
    let name = row.name;
    let w = World::new();
    w.run(&w.v1, keep).unwrap();
    let v1 = activate_at(&w.root()).unwrap();
    let v1_tree = tree(&Store::open(w.root()).unwrap().install_dir(&v1.install_id));
    let v1_installs = installs(&w.root());

    if let Some(default) = row.default {
        w.server.set_default(CHANGED, default);
    }
    w.server.script(CHANGED, row.script);
    for (path, reply) in row.others {
        w.server.set_default(path, reply);
    }
    w.server.clear_log();
    let mut v2 = w.v2.clone();
    (row.manifest)(&mut v2);
    let result = w.run_planned(&v2, &w.v2, row.tune);

    match row.expect {
        Expect::Completes { starts } => {
            let report = result.unwrap_or_else(|e| panic!("{name}: failed: {}", chain(&e)));
            w.check_starts(name, &starts);
            w.check_completed(name, &report, &v1, 0);
        }
        Expect::Fails {
            says,
            starts,
            partial,
            then,
        } => {
            let err = match result {
                Ok(r) => panic!("{name}: completed: {r:?}"),
                Err(e) => e,
            };
            let text = chain(&err);
            assert!(
                matches!(err, InstallError::Fetch { .. }) && !hints(&err).is_empty(),
                "{name}: {text}"
            );
            let ctx = Ctx {
                url: w.server.url(CHANGED),
                hop: w.server.url("/hop"),
                sha256: w.sha256(),
                size: w.archive.len() as u64,
            };
            let mut wanted = vec![
                format!(
                    "1 of 1 downloads failed; nothing was activated, install {} stays active",
                    v1.install_id
                ),
                "caused by: extra: download failed".into(),
            ];
            wanted.extend(says(&ctx));
            for want in wanted {
                assert!(text.contains(&want), "{name}: {want:?} not in: {text}");
            }
            w.check_starts(name, &starts);

            // v1 is still the active install, byte for byte; nothing of v2 was kept.
            let store = Store::open(w.root()).unwrap();
            assert_eq!(activate_at(&w.root()).unwrap(), v1, "{name}");
            assert_eq!(store.current_id().unwrap().as_ref(), Some(&v1.install_id));
            assert!(
                tree(&store.install_dir(&v1.install_id)) == v1_tree,
                "{name}: the files of install {} changed",
                v1.install_id
            );
            assert_eq!(installs(&w.root()), v1_installs, "{name}");
            assert!(!store.has_component(&w.sha256()), "{name}");
            let partial_name = format!("downloads/{}.partial", w.sha256());
            match partial {
                None => assert_eq!(leftovers(&w.root()), Vec::<String>::new(), "{name}"),
                Some(n) => {
                    assert_eq!(leftovers(&w.root()), vec![partial_name.clone()], "{name}");
                    let kept = std::fs::read(w.root().join(&partial_name)).unwrap();
                    assert!(
                        kept == w.archive[..n],
                        "{name}: the .partial holds {} bytes, not the archive's first {n}",
                        kept.len()
                    );
                }
            }

            match (partial, then) {
                (None, None) => {}
                (_, Some(then)) => {
                    w.server.script(CHANGED, vec![]);
                    w.server.set_default(CHANGED, then.reply);
                    w.server.clear_log();
                    let report = w
                        .run_planned(&v2, &w.v2, row.tune)
                        .unwrap_or_else(|e| panic!("{name}, next run: failed: {}", chain(&e)));
                    w.check_starts(&format!("{name}, next run"), &then.starts);
                    w.check_completed(&format!("{name}, next run"), &report, &v1, then.resumed);
                }
                (Some(_), None) => {
                    panic!("{name}: a row that leaves a .partial says how the next run goes")
                }
            }
        }
    }
}

#[test]
fn every_fault_completes_the_update_or_fails_keeping_v1() {
    gpulibs_testkit::faults::run_rows(
        "install: network faults during an update (crates/gpulibs-install/tests/faults.rs)",
        table(),
        |row| row.name.to_string(),
        |row| {
            let words = observed(&row);
            check_row(row);
            words
        },
    );
}

/// A wheel (zip) whose first byte is flipped: the zip reader refuses it while it streams, the
/// bytes are deleted with both digests named, nothing is stored, and the next run against a
/// healthy server installs it from byte 0.
#[test]
fn a_wheel_with_its_first_byte_flipped_is_refused_and_the_next_run_starts_clean() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let lib = noise(PAYLOAD, 11);
    let whl = wheel(&[("onnxruntime/capi/libonnxruntime.so.1.9.0", &lib)]);
    assert!(whl.len() > PAYLOAD, "the wheel does not compress");
    server.put_with("/ort.whl", whl.clone(), Reply::FlipAt(0));
    let mut c = TestComponent::tar("ort", "1.0", server.url("/ort.whl"), &whl, 4 << 20);
    c.format = "wheel";
    let manifest = parse_manifest(&manifest_toml("1.0", &[c])).unwrap();
    let run = || {
        let plan = plan(
            &Host::synthetic(&[], None, None),
            &manifest,
            &SystemInventory::default(),
            &Policy::default(),
        );
        let pip = NoPip;
        let mut req = InstallRequest::new(&manifest, &plan, &root, "testapp", &pip);
        req.fetch.retry.attempts = ATTEMPTS as u32;
        req.fetch.retry.base_delay = Duration::from_millis(1);
        install(&req, &|_| {})
    };

    let err = run().unwrap_err();
    let text = chain(&err);
    for want in [
        format!(
            "ort: the bytes from {} were refused by the unpacker before their sha256 could be \
             checked (deleted): expected sha256 {}, received ",
            server.url("/ort.whl"),
            sha256_hex(&whl)
        ),
        "bytes with sha256 ".into(),
        "not a zip member header".into(),
    ] {
        assert!(text.contains(&want), "{want:?} not in: {text}");
    }
    assert!(
        err.hint().unwrap().contains("vendor's archive is broken"),
        "{text}"
    );
    assert_eq!(leftovers(&root), Vec::<String>::new());
    let store = Store::open(&root).unwrap();
    assert!(!store.has_component(&sha256_hex(&whl)));
    assert!(store.current_id().unwrap().is_none());
    assert_eq!(server.requests("/ort.whl").len(), 1);

    server.set_default("/ort.whl", Reply::Serve);
    server.clear_log();
    let report = run().unwrap_or_else(|e| panic!("next run: {}", chain(&e)));
    assert_eq!(report.components[0].resumed_bytes, 0);
    let starts: Vec<_> = server.log().iter().map(|s| s.range_start).collect();
    assert_eq!(starts, [None]);
    let active = activate_at(&root).unwrap();
    assert!(std::fs::read(&active.ort_library).unwrap() == lib);
    assert_eq!(leftovers(&root), Vec::<String>::new());
}
