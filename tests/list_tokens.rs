//! Page tokens survive a restart of the embedding server: the MAC key lives
//! in the store (`list-token.key`), so a listing in progress when the store
//! is dropped and reopened goes on where it stopped, visiting every item
//! exactly once. Tokens of another store, layer or listing, forged or
//! altered ones stay `BadRequest` (`Reason::InvalidPageToken`).

use partstore::{ErrorKind, LayerConfig, ListItem, ListOptions, Options, PartBody, Reason, Store};

fn names(items: &[ListItem]) -> Vec<String> {
    items
        .iter()
        .map(|i| match i {
            ListItem::Object(o) => o.key.clone(),
            ListItem::Prefix(p) => format!("{p}/"),
        })
        .collect()
}

fn fill(s: &Store) {
    s.create_layer("l", LayerConfig::default()).unwrap();
    for i in 0..25 {
        let key = format!("d{}/k{i:03}", i % 3);
        s.put_object("l", &key, PartBody::new(&b"x"[..], 1))
            .unwrap();
        s.put_object("l", &format!("top{i:03}"), PartBody::new(&b"y"[..], 1))
            .unwrap();
    }
}

#[test]
fn a_listing_goes_on_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = ListOptions::default().limit(7);
    let all: Vec<String> = {
        let s = Store::open(dir.path(), Options::default()).unwrap();
        fill(&s);
        names(&s.list("l", &ListOptions::default()).unwrap().items)
    };
    assert_eq!(all.len(), 28, "{all:?}");
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        // A new Store (a restarted server) for every page.
        let s = Store::open(dir.path(), Options::default()).unwrap();
        let mut o = opts.clone();
        if let Some(t) = token.take() {
            o = o.page_token(t);
        }
        let page = s.list("l", &o).unwrap();
        seen.extend(names(&page.items));
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(seen, all);
}

#[test]
fn foreign_and_altered_tokens_are_refused_after_reopen() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let sa = Store::open(a.path(), Options::default()).unwrap();
    let sb = Store::open(b.path(), Options::default()).unwrap();
    fill(&sa);
    fill(&sb);
    let opts = ListOptions::default().limit(5);
    let ta = sa.list("l", &opts).unwrap().next_page_token.unwrap();
    drop(sa);
    let sa = Store::open(a.path(), Options::default()).unwrap();
    // Valid in its own store after the reopen.
    assert!(sa.list("l", &opts.clone().page_token(ta.clone())).is_ok());
    let bad = |s: &Store, o: ListOptions| {
        let e = s.list("l", &o).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadRequest, "{e}");
        assert_eq!(e.reason(), Some(Reason::InvalidPageToken), "{e}");
    };
    // Another store's key.
    bad(&sb, opts.clone().page_token(ta.clone()));
    // Another listing of the same store.
    bad(&sa, opts.clone().deep(true).page_token(ta.clone()));
    bad(&sa, opts.clone().parent("d1").page_token(ta.clone()));
    // Altered: one hex digit changed.
    let mut altered = ta.clone().into_bytes();
    altered[2] = if altered[2] == b'0' { b'1' } else { b'0' };
    bad(
        &sa,
        opts.clone().page_token(String::from_utf8(altered).unwrap()),
    );
    bad(&sa, opts.clone().page_token("zz"));
}
