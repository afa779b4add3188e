//! Shared test helpers.
#![allow(dead_code)]

pub mod counting;
pub mod faulty;

/// Deterministic pseudo-random bytes (xorshift64); different seeds give
/// unrelated data.
pub fn gen(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    if x == 0 {
        x = 1;
    }
    let mut v = vec![0u8; len];
    for c in v.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.copy_from_slice(&x.to_le_bytes()[..c.len()]);
    }
    v
}

/// A body that describes itself: its tag and its length (8 bytes each,
/// little-endian), then bytes drawn from the tag; at least 16 bytes. A
/// reader that sees one can tell a whole body from a torn or mixed one
/// without knowing which version to expect (see [`tag_of`]).
pub fn tagged(tag: u64, len: usize) -> Vec<u8> {
    let len = len.max(16);
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&tag.to_le_bytes());
    v.extend_from_slice(&(len as u64).to_le_bytes());
    v.extend_from_slice(&gen(tag, len - 16));
    v
}

/// The tag of a whole [`tagged`] body, or what is wrong with the bytes.
pub fn tag_of(bytes: &[u8]) -> Result<u64, String> {
    let word = |i: usize| {
        bytes
            .get(i..i + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or(format!("only {} bytes", bytes.len()))
    };
    let (tag, len) = (word(0)?, word(8)?);
    if len != bytes.len() as u64 || tagged(tag, bytes.len()) != bytes {
        return Err(format!(
            "not the body of tag {tag:#x} ({} bytes)",
            bytes.len()
        ));
    }
    Ok(tag)
}

/// A child process: this test binary re-run with only the test `test`,
/// the environment `env`, and its stdout read line by line in the
/// background. Lines are kept from where `find` says one of ours starts
/// (the harness may print its own words before the first on the same
/// line); `first` gets a message at the first of them.
pub struct Child {
    pub process: std::process::Child,
    pub first: std::sync::mpsc::Receiver<()>,
    lines: std::thread::JoinHandle<Vec<String>>,
}

impl Child {
    pub fn spawn(test: &str, env: &[(&str, String)], find: fn(&str) -> Option<usize>) -> Child {
        use std::io::BufRead;
        let exe = std::env::current_exe().unwrap();
        let mut cmd = std::process::Command::new(exe);
        cmd.args([test, "--exact", "--nocapture", "--test-threads", "1"]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut process = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = process.stdout.take().unwrap();
        let (tx, first) = std::sync::mpsc::channel();
        let lines = std::thread::spawn(move || {
            std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| find(&l).map(|at| l[at..].to_string()))
                .inspect(|_| {
                    let _ = tx.send(());
                })
                .collect()
        });
        Child {
            process,
            first,
            lines,
        }
    }

    /// SIGKILL, then every line the child printed.
    pub fn kill(mut self) -> Vec<String> {
        self.process.kill().unwrap();
        self.process.wait().unwrap();
        self.lines.join().unwrap()
    }
}

/// How many checkpoint records (metadata records with tag 20 or 21, see
/// docs/FORMAT.md) the segment files of a store directory hold.
pub fn checkpoints_in(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "log") {
            continue;
        }
        let b = std::fs::read(&p).unwrap();
        let mut pos = 32usize;
        while pos + 24 <= b.len() && b[pos..pos + 24].iter().any(|x| *x != 0) {
            let len = u64::from_le_bytes(b[pos + 8..pos + 16].try_into().unwrap()) as usize;
            if b[pos + 4] == 2 && len > 8 && matches!(b.get(pos + 32), Some(20 | 21)) {
                n += 1;
            }
            pos += 24 + len.div_ceil(8) * 8;
        }
    }
    n
}

/// The segment files (`seg-*.log`) of a store directory, in log order.
pub fn segment_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut segs: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segs.sort();
    segs
}
