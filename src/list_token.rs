//! Page tokens of `Store::list`: the cursor where a page ended, MAC'd with
//! a key kept in the store (file `list-token.key`, created once), so a
//! token stays valid across reopens and a forged, altered or foreign token
//! (another store, layer, parent or depth) is `BadRequest`.

use std::path::Path;

use sha2::Digest as _;

use crate::backend::Backend;
use crate::error::{bad_request, Error, Reason, Result};
use crate::index::Cursor;

/// File name of the key inside a store directory.
const KEY_FILE: &str = "list-token.key";
/// Key length in bytes.
const KEY_LEN: usize = 32;
/// MAC length in bytes (64 bits: forging one takes 2^64 tries online).
const MAC_LEN: usize = 8;

/// The per-store MAC key of page tokens.
pub(crate) struct TokenKey([u8; KEY_LEN]);

impl TokenKey {
    /// Reads the store's key, creating it (durably) on first use. A key
    /// file that is short or all zeros (a crash while creating it) is made
    /// anew.
    pub(crate) fn load_or_create(backend: &dyn Backend, dir: &Path) -> Result<TokenKey> {
        let path = dir.join(KEY_FILE);
        let io = |what: &str, e| Error::io(format!("{what} {}", path.display()), e);
        if let Ok(file) = backend.open(&path) {
            let mut key = [0u8; KEY_LEN];
            let ok = file.len().map_err(|e| io("reading", e))? == KEY_LEN as u64
                && file.read_exact_at(&mut key, 0).is_ok()
                && key.iter().any(|b| *b != 0);
            if ok {
                return Ok(TokenKey(key));
            }
            drop(file);
            backend
                .remove_file(&path)
                .map_err(|e| io("removing damaged", e))?;
        }
        let mut key = [0u8; KEY_LEN];
        getrandom::fill(&mut key)
            .map_err(|e| Error::io("reading random bytes", std::io::Error::other(e.to_string())))?;
        let file = backend.create_new(&path).map_err(|e| io("creating", e))?;
        file.write_all_at(&key, 0)
            .and_then(|()| file.sync_all())
            .map_err(|e| io("writing", e))?;
        backend
            .sync_dir(dir)
            .map_err(|e| Error::io(format!("fsync of directory {}", dir.display()), e))?;
        Ok(TokenKey(key))
    }

    fn mac(&self, layer: &str, parent: &str, deep: bool, body: &[u8]) -> [u8; MAC_LEN] {
        let mut h = sha2::Sha256::new();
        h.update(self.0);
        for part in [layer.as_bytes(), parent.as_bytes(), &[deep as u8], body] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        let out = h.finalize();
        let mut mac = [0u8; MAC_LEN];
        mac.copy_from_slice(&out[..MAC_LEN]);
        mac
    }

    /// The token that resumes a listing of (`layer`, `parent`, `deep`)
    /// after `c`.
    pub(crate) fn encode(&self, c: &Cursor, layer: &str, parent: &str, deep: bool) -> String {
        let mut body = Vec::new();
        match c {
            Cursor::AfterObject(k) => {
                body.push(b'o');
                body.extend_from_slice(k.as_bytes());
            }
            Cursor::AfterPrefix(p) => {
                body.push(b'p');
                body.extend_from_slice(p.as_bytes());
            }
        }
        let mac = self.mac(layer, parent, deep, &body);
        body.extend_from_slice(&mac);
        hex::encode(body)
    }

    /// The cursor of a token issued by [`TokenKey::encode`] for the same
    /// listing; `BadRequest` (InvalidPageToken) for any other string.
    pub(crate) fn decode(
        &self,
        token: &str,
        layer: &str,
        parent: &str,
        deep: bool,
    ) -> Result<Cursor> {
        let shown: String = token.chars().take(64).collect();
        let bad = || {
            bad_request!(
                Reason::InvalidPageToken,
                "page token \"{shown}\" was not issued for this listing"
            )
        };
        let raw = hex::decode(token).map_err(|_| bad())?;
        if raw.len() < MAC_LEN + 1 {
            return Err(bad());
        }
        let (body, mac) = raw.split_at(raw.len() - MAC_LEN);
        if self.mac(layer, parent, deep, body) != mac {
            return Err(bad());
        }
        let (kind, name) = body.split_first().ok_or_else(bad)?;
        let name = String::from_utf8(name.to_vec()).map_err(|_| bad())?;
        match kind {
            b'o' => Ok(Cursor::AfterObject(name)),
            b'p' => Ok(Cursor::AfterPrefix(name)),
            _ => Err(bad()),
        }
    }
}
