//! Model test: random sequences of public `Store` operations (put, delete,
//! copy_object, start, upload_part, copy_part, complete, complete_with,
//! abort, expire, compact, and drop + reopen in the middle) against a plain
//! model (`BTreeMap`s of bytes). After every step the objects (keys, sizes,
//! CRCs, bytes), open uploads and their parts, and every error kind agree.
//!
//! 256 cases by default; more with `PROPTEST_CASES=5000 cargo test --test
//! model` (proptest reads the variable). Bodies stay small; parts of 5 MiB
//! (needed before a last part) only come from `copy_part` of one 5 MiB base
//! object, so no case writes more than that base.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use partstore::{
    CopySource, Durability, ErrorKind, LayerConfig, ListItem, ListOptions, Options, PartBody,
    PartRef, Store, UploadId, UploadStatus,
};
use proptest::prelude::*;

const LAYER: &str = "l";
const BASE: &str = "base";
const MIB: u64 = 1 << 20;
const BASE_LEN: u64 = 5 * MIB;
const KEYS: [&str; 5] = ["k", "a/b", "a/c", "z", "a/b/c"];

fn base() -> &'static [u8] {
    static BASE: OnceLock<Vec<u8>> = OnceLock::new();
    BASE.get_or_init(|| (0..BASE_LEN).map(|i| (i * 7 + i / 4099) as u8).collect())
}

fn body(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

#[derive(Debug, Clone)]
enum Op {
    Put {
        key: usize,
        len: usize,
        seed: u8,
    },
    Delete {
        key: usize,
    },
    CopyObject {
        src: usize,
        dst: usize,
    },
    Start {
        key: usize,
    },
    /// A small part (never enough for a non-last part).
    Upload {
        up: usize,
        n: u32,
        len: usize,
        seed: u8,
    },
    /// Part n = all of the 5 MiB base object, by reference.
    CopyBase {
        up: usize,
        n: u32,
    },
    /// Part n = a range of the base, from a MiB boundary.
    CopyRange {
        up: usize,
        n: u32,
        first_mib: u64,
        len: u64,
    },
    Complete {
        up: usize,
    },
    /// The parts whose bit is set; `stale` names part 1 by a wrong id.
    CompleteWith {
        up: usize,
        mask: u8,
        stale: bool,
    },
    Abort {
        up: usize,
    },
    Expire,
    Compact,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    // Few uploads and part numbers, so that sequences often build a
    // completable upload (5 MiB copies first, a small last part).
    let up = 0usize..2;
    let n = 1u32..4;
    // Mostly base copies as part 1 and small bodies as part 2: a
    // completable upload of two parts is a few steps away.
    let copy_n = prop_oneof![3 => Just(1u32), 1 => 1u32..4];
    let small_n = prop_oneof![3 => Just(2u32), 1 => 1u32..4];
    prop_oneof![
        3 => (key.clone(), 0usize..3000, any::<u8>()).prop_map(|(key, len, seed)| Op::Put { key, len, seed }),
        1 => key.clone().prop_map(|key| Op::Delete { key }),
        1 => (key.clone(), key.clone()).prop_map(|(src, dst)| Op::CopyObject { src, dst }),
        2 => key.prop_map(|key| Op::Start { key }),
        3 => (up.clone(), small_n, 0usize..2000, any::<u8>())
            .prop_map(|(up, n, len, seed)| Op::Upload { up, n, len, seed }),
        3 => (up.clone(), copy_n).prop_map(|(up, n)| Op::CopyBase { up, n }),
        1 => (up.clone(), n, 0u64..5, 1u64..(3 * MIB))
            .prop_map(|(up, n, first_mib, len)| Op::CopyRange { up, n, first_mib, len }),
        3 => up.clone().prop_map(|up| Op::Complete { up }),
        2 => (up.clone(), prop_oneof![Just(0xff_u8), Just(0x7f), any::<u8>()], any::<bool>())
            .prop_map(|(up, mask, stale)| Op::CompleteWith { up, mask, stale }),
        1 => up.prop_map(|up| Op::Abort { up }),
        1 => Just(Op::Expire),
        1 => Just(Op::Compact),
        2 => Just(Op::Reopen),
    ]
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    /// Part number -> (id, bytes).
    Open(BTreeMap<u32, (String, Vec<u8>)>),
    Completed,
    Aborted,
}

#[derive(Debug)]
struct Upload {
    id: UploadId,
    key: String,
    state: State,
}

#[derive(Debug, Default)]
struct Model {
    objects: BTreeMap<String, Vec<u8>>,
    uploads: Vec<Upload>,
}

/// The SPEC's completion rules: at least one part, numbers 1..N, every
/// part but the last at least 5 MiB and a multiple of 1 MiB.
fn completable(parts: &[(u32, &Vec<u8>)]) -> bool {
    !parts.is_empty()
        && parts.iter().enumerate().all(|(i, (n, b))| {
            let last = i + 1 == parts.len();
            *n == i as u32 + 1
                && (last || (b.len() as u64 >= 5 * MIB && (b.len() as u64).is_multiple_of(MIB)))
        })
}

fn kind<T>(r: &partstore::Result<T>) -> Result<(), ErrorKind> {
    r.as_ref().map(|_| ()).map_err(|e| e.kind())
}

fn open(dir: &Path) -> Store {
    let opts = Options::default()
        .durability(Durability::None)
        .segment_size(256 << 10);
    Store::open(dir, opts).expect("open")
}

struct Harness {
    dir: tempfile::TempDir,
    store: Option<Store>,
    model: Model,
}

impl Harness {
    fn new() -> Harness {
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .expect("tempdir");
        let store = open(dir.path());
        store
            .create_layer(LAYER, LayerConfig::default())
            .expect("layer");
        store
            .put_object(LAYER, BASE, PartBody::new(base(), BASE_LEN))
            .expect("base");
        let mut model = Model::default();
        model.objects.insert(BASE.to_string(), base().to_vec());
        Harness {
            dir,
            store: Some(store),
            model,
        }
    }

    fn store(&self) -> &Store {
        self.store.as_ref().expect("open store")
    }

    fn upload(&mut self, up: usize) -> Option<&mut Upload> {
        let n = self.model.uploads.len();
        self.model.uploads.get_mut(up % n.max(1))
    }

    /// What the SPEC says an operation on a not-open upload fails with.
    fn not_open(state: &State) -> Option<ErrorKind> {
        match state {
            State::Open(_) => None,
            State::Completed => Some(ErrorKind::BadRequest),
            State::Aborted => Some(ErrorKind::NotFound),
        }
    }

    fn set_part(
        &mut self,
        up: usize,
        n: u32,
        result: partstore::Result<partstore::PartInfo>,
        bytes: Vec<u8>,
    ) {
        let Some(u) = self.upload(up) else { return };
        match (&mut u.state, result) {
            (State::Open(parts), Ok(info)) => {
                assert_eq!(info.size, bytes.len() as u64);
                assert_eq!(info.crc32c, crc32c::crc32c(&bytes), "part CRC");
                parts.insert(n, (info.id, bytes));
            }
            (s, r) => {
                let want = Harness::not_open(s);
                assert_eq!(kind(&r).err(), want, "upload_part on {s:?}");
            }
        }
    }

    fn complete(&mut self, up: usize, chosen: Option<(u8, bool)>) {
        let store = self.store.as_ref().expect("open store");
        let n = self.model.uploads.len().max(1);
        let Some(u) = self.model.uploads.get_mut(up % n) else {
            return;
        };
        let State::Open(parts) = &u.state else {
            let r = store.complete_multipart(LAYER, &u.id);
            assert_eq!(kind(&r).err(), Harness::not_open(&u.state));
            return;
        };
        let (refs, used): (Vec<PartRef>, Vec<(u32, &Vec<u8>)>) = match chosen {
            None => parts
                .iter()
                .map(|(n, (id, b))| {
                    (
                        PartRef {
                            number: *n,
                            id: id.clone(),
                        },
                        (*n, b),
                    )
                })
                .unzip(),
            Some((mask, stale)) => parts
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, (n, (id, b)))| {
                    let id = if stale && *n == 1 {
                        "00000000deadbeef".to_string()
                    } else {
                        id.clone()
                    };
                    (PartRef { number: *n, id }, (*n, b))
                })
                .unzip(),
        };
        // complete_with takes the pairs in any order.
        let mut refs = refs;
        if chosen.is_some_and(|(mask, _)| mask & 0x80 != 0) {
            refs.reverse();
        }
        let stale_named = chosen.is_some_and(|(_, s)| s) && refs.iter().any(|r| r.number == 1);
        let ok = !stale_named && completable(&used);
        let bytes: Vec<u8> = used.iter().flat_map(|(_, b)| b.iter().copied()).collect();
        let r = match chosen {
            None => store.complete_multipart(LAYER, &u.id),
            Some(_) => store.complete_multipart_with(LAYER, &u.id, &refs),
        };
        if ok {
            let info = r.expect("complete");
            assert_eq!(info.size, bytes.len() as u64);
            assert_eq!(info.crc32c, crc32c::crc32c(&bytes), "combined CRC");
            assert_eq!(info.part_count as usize, used.len());
            self.model.objects.insert(u.key.clone(), bytes);
            u.state = State::Completed;
        } else {
            assert_eq!(kind(&r), Err(ErrorKind::BadRequest), "{refs:?}");
        }
    }

    fn run(&mut self, op: &Op) {
        match *op {
            Op::Put { key, len, seed } => {
                let b = body(seed, len);
                let info = self
                    .store()
                    .put_object(LAYER, KEYS[key], PartBody::new(&b[..], len as u64))
                    .expect("put");
                assert_eq!(info.crc32c, crc32c::crc32c(&b));
                self.model.objects.insert(KEYS[key].to_string(), b);
            }
            Op::Delete { key } => {
                self.store().delete(LAYER, KEYS[key]).expect("delete");
                self.model.objects.remove(KEYS[key]);
            }
            Op::CopyObject { src, dst } => {
                let r = self.store().copy_object(LAYER, KEYS[dst], KEYS[src]);
                match self.model.objects.get(KEYS[src]).cloned() {
                    Some(b) => {
                        r.expect("copy_object");
                        self.model.objects.insert(KEYS[dst].to_string(), b);
                    }
                    None => assert_eq!(kind(&r), Err(ErrorKind::NotFound)),
                }
            }
            Op::Start { key } => {
                let id = self
                    .store()
                    .start_multipart(LAYER, KEYS[key], "application/octet-stream")
                    .expect("start");
                self.model.uploads.push(Upload {
                    id,
                    key: KEYS[key].to_string(),
                    state: State::Open(BTreeMap::new()),
                });
            }
            Op::Upload { up, n, len, seed } => {
                let Some(id) = self.upload(up).map(|u| u.id) else {
                    return;
                };
                let b = body(seed, len);
                let r = self
                    .store()
                    .upload_part(LAYER, &id, n, PartBody::new(&b[..], len as u64));
                self.set_part(up, n, r, b);
            }
            Op::CopyBase { up, n } => {
                let Some(id) = self.upload(up).map(|u| u.id) else {
                    return;
                };
                let range = format!("bytes=0-{}", BASE_LEN - 1).parse().expect("range");
                let r = self
                    .store()
                    .copy_part(LAYER, &id, n, CopySource::new(BASE, range));
                self.set_part(up, n, r, base().to_vec());
            }
            Op::CopyRange {
                up,
                n,
                first_mib,
                len,
            } => {
                let Some(id) = self.upload(up).map(|u| u.id) else {
                    return;
                };
                let first = first_mib * MIB;
                let last = (first + len - 1).min(BASE_LEN - 1);
                let range = format!("bytes={first}-{last}").parse().expect("range");
                let r = self
                    .store()
                    .copy_part(LAYER, &id, n, CopySource::new(BASE, range));
                self.set_part(up, n, r, base()[first as usize..=last as usize].to_vec());
            }
            Op::Complete { up } => self.complete(up, None),
            Op::CompleteWith { up, mask, stale } => self.complete(up, Some((mask, stale))),
            Op::Abort { up } => {
                let n = self.model.uploads.len().max(1);
                let Some(u) = self.model.uploads.get_mut(up % n) else {
                    return;
                };
                let r = self
                    .store
                    .as_ref()
                    .expect("store")
                    .abort_multipart(LAYER, &u.id);
                assert_eq!(kind(&r).err(), Harness::not_open(&u.state));
                if r.is_ok() {
                    u.state = State::Aborted;
                }
            }
            Op::Expire => {
                // Idle for at least zero time: every open upload.
                let n = self.store().expire_uploads(Duration::ZERO).expect("expire");
                let mut open = 0;
                for u in &mut self.model.uploads {
                    if matches!(u.state, State::Open(_)) {
                        u.state = State::Aborted;
                        open += 1;
                    }
                }
                assert_eq!(n, open, "expired uploads");
            }
            Op::Compact => {
                self.store().compact().expect("compact");
            }
            Op::Reopen => {
                drop(self.store.take());
                self.store = Some(open(self.dir.path()));
                self.check(true);
            }
        }
        self.check(false);
    }

    /// The store shows exactly the model. Objects up to 64 KiB are read
    /// whole each step, bigger ones at three ranges (whole with `full`).
    fn check(&self, full: bool) {
        let store = self.store();
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let mut opts = ListOptions::default().deep(true).limit(2);
            if let Some(t) = token.take() {
                opts = opts.page_token(t);
            }
            let page = store.list(LAYER, &opts).expect("list");
            for item in page.items {
                match item {
                    ListItem::Object(o) => keys.push(o.key),
                    ListItem::Prefix(p) => panic!("deep listing returned a prefix {p}"),
                }
            }
            match page.next_page_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        assert_eq!(
            keys,
            self.model.objects.keys().cloned().collect::<Vec<_>>(),
            "keys"
        );
        for (key, want) in &self.model.objects {
            let info = store.head(LAYER, key).expect("head");
            assert_eq!(info.size, want.len() as u64, "size of {key}");
            if want.len() <= 64 << 10 || full {
                assert_eq!(info.crc32c, crc32c::crc32c(want), "CRC of {key}");
                let got = store.get(LAYER, key).and_then(|b| b.to_vec()).expect("get");
                assert!(got == *want, "bytes of {key}");
            } else {
                let blob = store.get(LAYER, key).expect("get");
                let n = want.len() as u64;
                for (a, b) in [(0, 99), (n / 2 - 50, n / 2 + 50), (n - 100, n - 1)] {
                    let got: Vec<u8> = blob
                        .read_range(format!("bytes={a}-{b}").parse().expect("range"))
                        .expect("read_range")
                        .iter()
                        .flat_map(|s| s.iter().copied())
                        .collect();
                    assert!(
                        got[..] == want[a as usize..=b as usize],
                        "{key} bytes {a}-{b}"
                    );
                }
            }
        }
        let mut open: Vec<String> = Vec::new();
        for u in &self.model.uploads {
            let status = store.upload_status(LAYER, &u.id);
            match &u.state {
                State::Open(parts) => {
                    open.push(u.id.to_string());
                    assert!(
                        matches!(status, Ok(UploadStatus::Open { .. })),
                        "{status:?}"
                    );
                    let got: Vec<_> = store
                        .list_parts(LAYER, &u.id)
                        .expect("list_parts")
                        .into_iter()
                        .map(|p| (p.part_number, p.id, p.size, p.crc32c))
                        .collect();
                    let want: Vec<_> = parts
                        .iter()
                        .map(|(n, (id, b))| (*n, id.clone(), b.len() as u64, crc32c::crc32c(b)))
                        .collect();
                    assert_eq!(got, want, "parts of {}", u.id);
                }
                State::Completed => {
                    assert!(matches!(status, Ok(UploadStatus::Completed)), "{status:?}")
                }
                State::Aborted => assert_eq!(kind(&status), Err(ErrorKind::NotFound)),
            }
        }
        let mut listed: Vec<String> = store
            .list_uploads(LAYER)
            .expect("list_uploads")
            .into_iter()
            .map(|u| u.upload.to_string())
            .collect();
        listed.sort();
        open.sort();
        assert_eq!(listed, open, "open uploads");
        if full {
            assert!(store.verify().expect("verify").is_clean());
        }
    }
}

proptest! {
    // 256 cases unless PROPTEST_CASES says otherwise.
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn store_matches_model(ops in proptest::collection::vec(op(), 1..50)) {
        let mut h = Harness::new();
        for op in &ops {
            h.run(op);
        }
        // A last reopen: everything survives a clean close.
        h.run(&Op::Reopen);
    }
}
