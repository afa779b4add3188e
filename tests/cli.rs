//! Tests of the `partstore` binary: each runs it as a user would, against a
//! store in a temporary directory.

#![cfg(feature = "cli")]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use partstore::{Options, PartBody, Store};

/// Exit codes of the binary (see its `--help`).
const USAGE: i32 = 2;
const BAD_REQUEST: i32 = 3;
const NOT_FOUND: i32 = 4;
const CONFLICT: i32 = 5;
const UNSATISFIABLE: i32 = 7;
const CORRUPT: i32 = 8;

const MIB: usize = 1 << 20;

/// Runs `partstore --store <store> args...`.
fn run(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_partstore"))
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .expect("the partstore binary runs")
}

/// Runs it and asserts success; returns stdout.
fn ok(store: &Path, args: &[&str]) -> Vec<u8> {
    let out = run(store, args);
    assert!(
        out.status.success(),
        "partstore {args:?} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs it and asserts it fails with `code` and an `error: ` line.
fn fails(store: &Path, args: &[&str], code: i32) -> String {
    let out = run(store, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "partstore {args:?}: stderr {stderr}"
    );
    assert!(stderr.starts_with("error: "), "stderr: {stderr}");
    stderr
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("utf-8 output")
}

/// A temporary dir with a store (`store/`) holding layer `maps`, and a
/// place for local files.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let f = Fixture {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        ok(&f.store(), &["layer", "create", "maps"]);
        f
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// Writes a local file and returns its path as a string.
    fn file(&self, name: &str, data: &[u8]) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, data).expect("write local file");
        p.to_str().expect("utf-8 path").to_string()
    }

    fn local(&self, name: &str) -> String {
        self.dir
            .path()
            .join(name)
            .to_str()
            .expect("utf-8 path")
            .to_string()
    }
}

#[test]
fn put_as_parts_and_get_back_byte_identical() {
    let f = Fixture::new();
    let s = f.store();
    let data = common::gen(1, 20 * MIB);
    let file = f.file("in.bin", &data);
    let put = text(ok(
        &s,
        &[
            "put",
            "maps",
            "tiles/eu.bin",
            &file,
            "--part-size",
            "5MiB",
            "--jobs",
            "3",
            "--digest",
            "sha256",
        ],
    ));
    assert!(put.contains("4 part(s)"), "{put}");
    let stat = text(ok(&s, &["stat", "maps", "tiles/eu.bin"]));
    assert!(
        stat.contains(&format!("size:             {}", data.len())),
        "{stat}"
    );
    assert!(stat.contains("parts:            4"), "{stat}");
    assert!(
        stat.contains(&format!("crc32c:           {:08x}", crc32c::crc32c(&data))),
        "{stat}"
    );

    // To a file and to stdout.
    let out = f.local("out.bin");
    ok(&s, &["get", "maps", "tiles/eu.bin", "-o", &out]);
    assert!(std::fs::read(&out).expect("read output") == data);
    assert!(ok(&s, &["get", "maps", "tiles/eu.bin"]) == data);

    // Every digest algorithm is accepted and checked.
    for alg in ["crc32c", "md5", "sha1"] {
        let key = format!("d/{alg}");
        ok(
            &s,
            &[
                "put",
                "maps",
                &key,
                &file,
                "--part-size",
                "8MiB",
                "--digest",
                alg,
            ],
        );
        assert!(ok(&s, &["get", "maps", &key]) == data);
    }
    // A single-part put with a digest.
    ok(&s, &["put", "maps", "single", &file, "--digest", "md5"]);
    assert!(ok(&s, &["get", "maps", "single"]) == data);
    assert!(text(ok(&s, &["stat", "maps", "single"])).contains("parts:            1"));
}

#[test]
fn range_get() {
    let f = Fixture::new();
    let s = f.store();
    let data = common::gen(2, 3 * MIB + 17);
    ok(&s, &["put", "maps", "obj", &f.file("obj", &data)]);
    assert_eq!(
        ok(&s, &["get", "maps", "obj", "--range", "bytes=100-199"]),
        &data[100..200]
    );
    assert_eq!(
        ok(&s, &["get", "maps", "obj", "--range", "bytes=-10"]),
        &data[data.len() - 10..]
    );
    let from = MIB - 3;
    assert!(
        ok(
            &s,
            &["get", "maps", "obj", "--range", &format!("bytes={from}-")]
        ) == data[from..]
    );
    // The end is clamped to the object.
    assert_eq!(
        ok(
            &s,
            &["get", "maps", "obj", "--range", "bytes=10-99999999999"]
        )
        .len(),
        data.len() - 10
    );
    let out = f.local("range.bin");
    ok(
        &s,
        &["get", "maps", "obj", "--range", "bytes=5-9", "-o", &out],
    );
    assert_eq!(std::fs::read(&out).expect("read output"), &data[5..10]);

    let err = fails(
        &s,
        &["get", "maps", "obj", "--range", "bytes=99999999-"],
        UNSATISFIABLE,
    );
    assert!(err.contains("bytes=99999999-"), "{err}");
    fails(
        &s,
        &["get", "maps", "obj", "--range", "bytes=5-1"],
        UNSATISFIABLE,
    );
    fails(
        &s,
        &["get", "maps", "obj", "--range", "lines=1-2"],
        UNSATISFIABLE,
    );

    // An empty object: nothing without a range; any range is unsatisfiable.
    ok(&s, &["put", "maps", "empty", &f.file("empty", b"")]);
    assert!(ok(&s, &["get", "maps", "empty"]).is_empty());
    fails(
        &s,
        &["get", "maps", "empty", "--range", "bytes=0-"],
        UNSATISFIABLE,
    );
}

#[test]
fn cp_with_a_range_and_whole() {
    let f = Fixture::new();
    let s = f.store();
    let data = common::gen(3, 12 * MIB + 5);
    ok(
        &s,
        &[
            "put",
            "maps",
            "src",
            &f.file("src", &data),
            "--part-size",
            "5MiB",
        ],
    );
    // A range across the boundary of parts 1 and 2.
    let (a, b) = (4 * MIB, 7 * MIB - 1);
    let range = format!("bytes={a}-{b}");
    let out = text(ok(&s, &["cp", "maps", "src", "dst", "--range", &range]));
    assert!(out.contains(&format!("{} bytes", b - a + 1)), "{out}");
    assert!(ok(&s, &["get", "maps", "dst"]) == data[a..=b]);
    assert!(text(ok(&s, &["stat", "maps", "dst"])).contains("parts:            1"));

    // Whole-object copy keeps its parts; deleting the source leaves it.
    ok(&s, &["cp", "maps", "src", "whole"]);
    ok(&s, &["rm", "maps", "src"]);
    assert!(ok(&s, &["get", "maps", "whole"]) == data);
    assert!(ok(&s, &["get", "maps", "dst"]) == data[a..=b]);

    // Range rules of copy_part; a failed copy leaves no upload behind.
    fails(
        &s,
        &["cp", "maps", "whole", "x", "--range", "bytes=1-100"],
        UNSATISFIABLE,
    );
    fails(
        &s,
        &["cp", "maps", "whole", "x", "--range", "bytes=0-"],
        UNSATISFIABLE,
    );
    fails(&s, &["cp", "maps", "nope", "x"], NOT_FOUND);
    assert!(ok(&s, &["uploads", "maps"]).is_empty());
    fails(&s, &["stat", "maps", "x"], NOT_FOUND);
}

#[test]
fn ls_hierarchical_and_deep() {
    let f = Fixture::new();
    let s = f.store();
    let small = f.file("small", b"hello");
    for key in ["a/x", "a/b/y", "a/b/c/z", "top", "b"] {
        ok(&s, &["put", "maps", key, &small]);
    }
    let root = text(ok(&s, &["ls", "maps"]));
    let names: Vec<&str> = root
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    assert_eq!(names, ["a/", "b", "top"], "{root}");
    assert!(root.lines().next().is_some_and(|l| l.contains("DIR")));
    assert!(root.contains("     5  "), "{root}");

    let a = text(ok(&s, &["ls", "maps", "--parent", "a/"]));
    let names: Vec<&str> = a
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    assert_eq!(names, ["a/b/", "a/x"], "{a}");

    let deep = text(ok(&s, &["ls", "maps", "--deep"]));
    let names: Vec<&str> = deep
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    assert_eq!(names, ["a/b/c/z", "a/b/y", "a/x", "b", "top"], "{deep}");
    assert!(!deep.contains("DIR"));

    let deep_a = text(ok(&s, &["ls", "maps", "--parent", "a/b", "--deep"]));
    assert_eq!(deep_a.lines().count(), 2, "{deep_a}");
    assert!(ok(&s, &["ls", "maps", "--parent", "none"]).is_empty());
    fails(&s, &["ls", "nolayer"], NOT_FOUND);
}

#[test]
fn rm_deletes_and_is_idempotent() {
    let f = Fixture::new();
    let s = f.store();
    ok(&s, &["put", "maps", "k", &f.file("k", b"bytes")]);
    ok(&s, &["rm", "maps", "k"]);
    let err = fails(&s, &["stat", "maps", "k"], NOT_FOUND);
    assert!(err.contains("\"k\""), "{err}");
    fails(&s, &["get", "maps", "k"], NOT_FOUND);
    ok(&s, &["rm", "maps", "k"]);
    assert!(ok(&s, &["ls", "maps"]).is_empty());
}

#[test]
fn uploads_abort_and_expire() {
    let f = Fixture::new();
    let s = f.store();
    let (first, second) = {
        let store = Store::open(&s, Options::default()).expect("open");
        let part = common::gen(4, MIB);
        let a = store
            .start_multipart("maps", "up/a", "application/octet-stream")
            .expect("start");
        store
            .upload_part("maps", &a, 1, PartBody::new(&part[..], part.len() as u64))
            .expect("part");
        let b = store
            .start_multipart("maps", "up/b", "application/octet-stream")
            .expect("start");
        (a.to_string(), b.to_string())
    };
    let list = text(ok(&s, &["uploads", "maps"]));
    assert_eq!(list.lines().count(), 2, "{list}");
    let line_a = list
        .lines()
        .find(|l| l.starts_with(&first))
        .unwrap_or_else(|| panic!("{first} missing from {list}"));
    assert!(line_a.ends_with("up/a"), "{line_a}");
    assert!(line_a.contains(&format!(" {MIB} ")), "{line_a}");
    assert!(list.contains(&second));

    ok(&s, &["abort", "maps", &first]);
    let list = text(ok(&s, &["uploads", "maps"]));
    assert!(!list.contains(&first) && list.contains(&second), "{list}");
    fails(&s, &["abort", "maps", &first], NOT_FOUND);
    fails(&s, &["abort", "maps", "not-a-token"], NOT_FOUND);

    let kept = text(ok(&s, &["expire", "maps", "--idle", "24h"]));
    assert!(kept.contains("aborted 0"), "{kept}");
    assert!(text(ok(&s, &["uploads", "maps"])).contains(&second));
    let gone = text(ok(&s, &["expire", "maps", "--idle", "0s"]));
    assert!(gone.contains("aborted 1"), "{gone}");
    assert!(ok(&s, &["uploads", "maps"]).is_empty());
    fails(&s, &["expire", "maps", "--idle", "24"], USAGE);
}

#[test]
fn verify_reports_a_flipped_byte() {
    let f = Fixture::new();
    let s = f.store();
    let marker = b"partstore-cli-test: a unique marker to find in the segment files";
    let mut data = common::gen(5, 3 * MIB);
    data[2 * MIB..2 * MIB + marker.len()].copy_from_slice(marker);
    ok(&s, &["put", "maps", "victim", &f.file("victim", &data)]);
    let clean = text(ok(&s, &["verify"]));
    assert!(clean.contains("clean"), "{clean}");

    // Flip one byte of the marker where the engine stored it.
    let mut flipped = 0;
    for entry in std::fs::read_dir(&s).expect("list store") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !(name.starts_with("seg-") && name.ends_with(".log")) {
            continue;
        }
        // The store's few MiB are at the start of its (large, sparse)
        // segment: search only there (a debug build scans a GiB slowly).
        use std::io::Read;
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open segment");
        let mut bytes = Vec::new();
        (&file)
            .take(64 * MIB as u64)
            .read_to_end(&mut bytes)
            .expect("read segment");
        if let Some(at) = bytes.windows(marker.len()).position(|w| w == marker) {
            file.write_all_at(&[bytes[at + 10] ^ 0x01], (at + 10) as u64)
                .expect("write segment");
            flipped += 1;
        }
    }
    assert_eq!(flipped, 1, "the marker is stored exactly once");

    let out = run(&s, &["verify"]);
    assert_eq!(out.status.code(), Some(CORRUPT));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("corrupt: "))
            .count(),
        1,
        "{stdout}"
    );
    assert!(stdout.contains("1 corrupt block"), "{stdout}");
    assert!(stderr.starts_with("error: corrupt"), "{stderr}");
    // Reading the block is refused too; the other blocks still read.
    fails(&s, &["get", "maps", "victim"], CORRUPT);
    assert_eq!(
        ok(&s, &["get", "maps", "victim", "--range", "bytes=0-99"]),
        &data[..100]
    );
}

#[test]
fn errors_have_distinct_exit_codes() {
    let f = Fixture::new();
    let s = f.store();
    let file = f.file("x", &common::gen(6, 6 * MIB));
    fails(&s, &["layer", "create", "maps"], CONFLICT);
    fails(&s, &["layer", "create", "bad layer!"], BAD_REQUEST);
    fails(&s, &["put", "nolayer", "k", &file], NOT_FOUND);
    fails(
        &s,
        &["put", "maps", "k", &file, "--part-size", "3MiB"],
        BAD_REQUEST,
    );
    fails(&s, &["put", "maps", "k//x", &file], BAD_REQUEST);
    fails(&s, &["put", "maps", "k", &file, "--part-size", "97MiB"], 6);
    let missing = f.local("missing");
    fails(&s, &["put", "maps", "k", &missing], 9);
    // Usage errors keep clap's code.
    let out = run(&s, &["put", "maps", "k", &file, "--part-size", "lots"]);
    assert_eq!(out.status.code(), Some(USAGE));
    assert_eq!(run(&s, &["frobnicate"]).status.code(), Some(USAGE));
    // A store open elsewhere is a Conflict.
    {
        let _held = Store::open(&s, Options::default()).expect("open");
        let err = fails(&s, &["ls", "maps"], CONFLICT);
        assert!(err.contains("already open"), "{err}");
    }
    // A store that does not exist is not created by reading commands.
    let nowhere = f.dir.path().join("nowhere");
    fails(&nowhere, &["ls", "maps"], NOT_FOUND);
    assert!(!nowhere.exists());
    // Layers are listed with their bindings.
    ok(
        &s,
        &["layer", "create", "png", "--content-type", "image/png"],
    );
    let layers = text(ok(&s, &["layer", "ls"]));
    assert!(layers
        .lines()
        .any(|l| l.starts_with("png") && l.contains("image/png")));
    assert!(layers.lines().any(|l| l.starts_with("maps")));
}

#[test]
fn every_command_has_help_with_an_example() {
    let dir = tempfile::tempdir().expect("tempdir");
    let commands: &[&[&str]] = &[
        &[],
        &["bench"],
        &["layer"],
        &["layer", "create"],
        &["layer", "ls"],
        &["put"],
        &["get"],
        &["cp"],
        &["ls"],
        &["stat"],
        &["rm"],
        &["uploads"],
        &["abort"],
        &["expire"],
        &["verify"],
        &["compact"],
        &["stats"],
    ];
    for cmd in commands {
        let mut args = cmd.to_vec();
        args.push("--help");
        let out = text(ok(dir.path(), &args));
        assert!(out.contains("Example"), "{cmd:?} --help: {out}");
    }
    let top = text(ok(dir.path(), &["--help"]));
    assert!(top.contains("Exit codes"), "{top}");
}

#[test]
fn compact_and_stats() {
    let f = Fixture::new();
    let s = f.store();
    let data = common::gen(7, 6 * MIB);
    let file = f.file("d", &data);
    ok(&s, &["put", "maps", "k", &file]);
    ok(&s, &["put", "maps", "k", &file]);
    let stats = text(ok(&s, &["stats"]));
    assert!(stats.contains("objects:  1"), "{stats}");
    assert!(
        stats.contains(&format!("garbage:  6.00 MiB ({} bytes)", 6 * MIB)),
        "{stats}"
    );
    let report = text(ok(&s, &["compact"]));
    assert!(report.starts_with("moved "), "{report}");
    assert!(ok(&s, &["get", "maps", "k"]) == data);
}

/// Every figure of `bench --json`, by key.
const FIGURES: &[&str] = &[
    "size_bytes",
    "part_size_bytes",
    "parts",
    "jobs",
    "ingest_seconds",
    "ingest_gib_per_s",
    "complete_seconds",
    "read_range_seconds",
    "read_range_gib_per_s",
    "reader_seconds",
    "reader_gib_per_s",
    "copy_parts",
    "copy_part_mean_seconds",
    "copy_part_total_seconds",
    "copy_complete_seconds",
    "raw_seconds",
    "raw_gib_per_s",
    "ingest_vs_raw",
];

/// The number after `"key":` in a flat JSON object.
fn json_number(json: &str, key: &str) -> f64 {
    let at = json
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("{key} missing from {json}"));
    let rest = json[at + key.len() + 3..].trim_start();
    let end = rest
        .find(|c: char| c == ',' || c == '}' || c.is_whitespace())
        .unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number in {json}"))
}

#[test]
fn bench_json_has_every_figure() {
    let out = Command::new(env!("CARGO_BIN_EXE_partstore"))
        .args(["bench", "--size", "64MiB", "--json"])
        .output()
        .expect("run bench");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = text(out.stdout);
    let trimmed = json.trim();
    assert!(trimmed.starts_with('{') && trimmed.ends_with('}'), "{json}");
    for key in FIGURES {
        let v = json_number(&json, key);
        assert!(v.is_finite() && v > 0.0, "{key} = {v} in {json}");
    }
    assert_eq!(json_number(&json, "size_bytes"), (64 * MIB) as f64);
    assert_eq!(json_number(&json, "parts"), 8.0);
    assert!(json.contains("\"digest\": \"none\""), "{json}");
    assert!(json.contains("\"durability\": \"sync\""), "{json}");
    assert!(json.contains("\"temporary\": true"), "{json}");
    // The temporary store is gone.
    let store = json
        .split("\"store\": \"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("store path");
    assert!(!Path::new(store).exists(), "{store} was left behind");
}

#[test]
fn bench_in_a_given_store_with_options_and_a_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = dir.path().join("store");
    let table = text(ok(
        &s,
        &[
            "bench",
            "--size",
            "11MiB",
            "--part-size",
            "5MiB",
            "--jobs",
            "2",
            "--digest",
            "crc32c",
            "--durability",
            "none",
        ],
    ));
    for row in [
        "ingest: upload_part x3",
        "complete_multipart (3 parts)",
        "read_range",
        "reader()",
        "copy_part (5.00 MiB range), mean of 3",
        "raw std::fs: write_all_at x3",
        "ingest / raw",
    ] {
        assert!(table.contains(row), "{row} missing from\n{table}");
    }
    // Its objects are deleted afterwards, and no raw file is left.
    assert!(text(ok(&s, &["stats"])).contains("objects:  0"));
    let leftovers: Vec<_> = std::fs::read_dir(&s)
        .expect("list store")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("bench-raw"))
        .collect();
    assert!(leftovers.is_empty());
    for alg in ["md5", "sha1", "sha256"] {
        ok(
            &s,
            &[
                "bench",
                "--size",
                "5MiB",
                "--digest",
                alg,
                "--durability",
                "batched",
            ],
        );
    }
    let out = run(&s, &["bench", "--size", "20MiB", "--part-size", "3MiB"]);
    assert_eq!(out.status.code(), Some(BAD_REQUEST));
}

/// Runs `partstore --store <store> args...` to its end and returns whether
/// it succeeded and how many bytes it read through read(2) and friends
/// (`rchar` of /proc/PID/io, read while the process is a zombie, before it
/// is reaped); None where /proc does not tell.
fn run_counting_reads(store: &Path, args: &[&str]) -> (bool, Option<u64>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_partstore"))
        .arg("--store")
        .arg(store)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the partstore binary runs");
    let pid = child.id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut rchar = None;
    while std::time::Instant::now() < deadline {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            break;
        };
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next());
        if state == Some("Z") {
            rchar = std::fs::read_to_string(format!("/proc/{pid}/io"))
                .ok()
                .and_then(|io| {
                    io.lines()
                        .find_map(|l| l.strip_prefix("rchar:"))
                        .and_then(|v| v.trim().parse().ok())
                });
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let status = child.wait().expect("wait for partstore");
    (status.success(), rchar)
}

#[test]
fn put_with_a_digest_reads_the_file_once() {
    let f = Fixture::new();
    let s = f.store();
    let size = 24 * MIB;
    let data = common::gen(8, size);
    let file = f.file("in.bin", &data);
    let cases: &[&[&str]] = &[
        &["--digest", "sha256"],
        &["--digest", "md5", "--part-size", "8MiB", "--jobs", "2"],
        &["--digest", "crc32c", "--part-size", "5MiB", "--jobs", "1"],
    ];
    for (i, extra) in cases.iter().enumerate() {
        let key = format!("once/{i}");
        let mut args = vec!["put", "maps", key.as_str(), file.as_str()];
        args.extend_from_slice(extra);
        let (success, rchar) = run_counting_reads(&s, &args);
        assert!(success, "partstore {args:?} failed");
        assert!(ok(&s, &["get", "maps", &key]) == data, "{args:?}");
        let Some(rchar) = rchar else {
            eprintln!("skipping the read count: /proc/PID/io is not readable here");
            return;
        };
        // The file once, plus the store's own small metadata reads; reading
        // each part twice (hash, then upload) would be 2 x 24 MiB.
        assert!(
            rchar >= size as u64 && rchar < size as u64 + 4 * MIB as u64,
            "{args:?} read {rchar} bytes for a {size}-byte file"
        );
    }
}

/// Spawns `partstore --store <store> args...` with its stdin a pipe.
fn spawn_with_stdin(store: &Path, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_partstore"))
        .arg("--store")
        .arg(store)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the partstore binary runs")
}

/// Runs `partstore --store <store> args...` with `input` piped into it.
fn run_with_stdin(store: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = spawn_with_stdin(store, args);
    let mut stdin = child.stdin.take().expect("stdin is piped");
    std::thread::scope(|s| {
        // Written on its own thread, so a child that stops reading (an
        // error) cannot block the test; a broken pipe is then expected.
        s.spawn(move || {
            use std::io::Write as _;
            let _ = stdin.write_all(input);
        });
        child.wait_with_output().expect("wait for partstore")
    })
}

#[test]
fn put_from_stdin_reads_back_byte_for_byte() {
    let f = Fixture::new();
    let s = f.store();
    let big = common::gen(9, 16 * MIB + 5);
    let cases: &[(&str, &[u8], &[&str], u32)] = &[
        ("ten", &b"0123456789"[..], &[], 1),
        ("empty", &b""[..], &[], 1),
        // Default parts are 8 MiB: 12 MiB is two parts.
        ("twelve", &big[..12 * MIB], &[], 2),
        // Exactly one part is one put; exactly two full parts are two.
        ("one-part", &big[..8 * MIB], &[], 1),
        ("two-parts", &big[..16 * MIB], &[], 2),
        (
            "digest",
            &big[..12 * MIB + 5],
            &["--part-size", "5MiB", "--digest", "sha256"],
            3,
        ),
        ("small-digest", &big[..10], &["--digest", "md5"], 1),
        // A part size too small for parts is fine for one put.
        ("tiny-parts", &big[..10], &["--part-size", "1MiB"], 1),
    ];
    for (key, input, extra, parts) in cases {
        let mut args = vec!["put", "maps", key, "-"];
        args.extend_from_slice(extra);
        let out = run_with_stdin(&s, &args, input);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = text(out.stdout);
        assert!(
            line.contains(&format!("{parts} part(s)")),
            "{args:?}: {line}"
        );
        assert!(ok(&s, &["get", "maps", key]) == *input, "{args:?}");
        let stat = text(ok(&s, &["stat", "maps", key]));
        assert!(
            stat.contains(&format!("size:             {} (", input.len())),
            "{stat}"
        );
    }
    assert!(ok(&s, &["uploads", "maps"]).is_empty());
}

#[test]
fn put_from_stdin_refuses_a_part_size_that_cannot_make_parts() {
    let f = Fixture::new();
    let s = f.store();
    let data = common::gen(10, 12 * MIB);
    for (size, code) in [("3MiB", BAD_REQUEST), ("97MiB", 6), ("0", BAD_REQUEST)] {
        let out = run_with_stdin(&s, &["put", "maps", "k", "-", "--part-size", size], &data);
        assert_eq!(
            out.status.code(),
            Some(code),
            "--part-size {size}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Nothing was stored and no upload was left open.
    fails(&s, &["stat", "maps", "k"], NOT_FOUND);
    assert!(ok(&s, &["uploads", "maps"]).is_empty());
}

/// VmHWM (peak resident memory) of a live process, in bytes.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[test]
fn put_from_stdin_holds_at_most_two_parts_in_memory() {
    let f = Fixture::new();
    let s = f.store();
    let total = 96 * MIB;
    let chunk = common::gen(11, MIB);
    let mut child = spawn_with_stdin(&s, &["put", "maps", "stream", "-", "--part-size", "5MiB"]);
    let pid = child.id();
    let mut stdin = child.stdin.take().expect("stdin is piped");
    {
        use std::io::Write as _;
        for _ in 0..total / MIB {
            stdin.write_all(&chunk).expect("write to partstore");
        }
    }
    // All but the pipe's buffer has been read and all but the last two
    // parts uploaded; the input is still open, so the process is alive.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let peak = peak_rss(pid);
    drop(stdin);
    let out = child.wait_with_output().expect("wait for partstore");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text(out.stdout).contains("20 part(s)"));
    let got = ok(&s, &["get", "maps", "stream"]);
    assert_eq!(got.len(), total);
    assert!(got.chunks(MIB).all(|c| c == chunk));
    match peak {
        // Two 5 MiB parts plus the engine's buffers and the binary: far
        // below the 96 MiB the whole input would take.
        Some(peak) => assert!(peak < 48 * MIB as u64, "peak RSS {peak} bytes"),
        None => eprintln!("skipping the memory check: /proc/PID/status is not readable here"),
    }
}

#[test]
fn bench_interrupted_by_sigint_removes_its_temporary_store() {
    let parent = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_partstore"))
        .args([
            "bench",
            "--size",
            "4GiB",
            "--part-size",
            "5MiB",
            "--tmp-dir",
        ])
        .arg(parent.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run bench");
    // Started: its store is open (a segment file exists) and ingesting.
    let started = std::time::Instant::now();
    let has_segment = |dir: &Path| {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                let p = e.path();
                std::fs::read_dir(&p)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|f| f.file_name().to_string_lossy().starts_with("seg-"))
            })
    };
    while !has_segment(parent.path()) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the bench did not open its store"
        );
        assert!(
            child.try_wait().expect("poll bench").is_none(),
            "the bench ended early"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success());

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().expect("poll bench").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the bench did not stop within 60 s of SIGINT");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("bench output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "stderr: {stderr}");
    assert!(
        stderr.contains("interrupted: removed the temporary store"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no figures of a cut-short run");
    let left: Vec<_> = std::fs::read_dir(parent.path())
        .expect("list the parent")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    // --tmp-dir is for the temporary store only.
    let out = run(parent.path(), &["bench", "--tmp-dir", "/tmp"]);
    assert_eq!(out.status.code(), Some(BAD_REQUEST));
}
