//! CURVE keys for an encrypted cluster (zeekctl 8.1+ multi-host clusters): our key pair as the
//! client, and the public key of the manager's XPUB (the server). Keys are Z85 text (40
//! characters for 32 bytes), given as values or as files holding them; a ZeroMQ certificate file
//! (`public-key = "..."` / `secret-key = "..."` lines, as `zcert` writes) works too.
use std::{fmt, path::Path};

/// Z85 (ZeroMQ RFC 32) alphabet: the character at position i stands for digit i.
const Z85: &[u8; 85] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/// Key files are a few lines; anything bigger is not one.
const MAX_KEY_FILE: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CurveError {
    #[error(
        "CURVE {which} key: {reason}; give its 40 Z85 characters or a file holding them (a ZeroMQ certificate works)"
    )]
    BadKey { which: &'static str, reason: String },
    #[error("CURVE {which} key file {path}: {source}; check the path and its permissions")]
    Read { which: &'static str, path: String, source: std::io::Error },
    #[error("this libzmq has no CURVE support; install a libzmq built with libsodium (Debian's libzmq5 is)")]
    Unsupported,
}

/// The three keys a CURVE client needs. `Debug` never shows the secret key.
#[derive(Clone, PartialEq, Eq)]
pub struct CurveKeys {
    pub client_public: [u8; 32],
    pub client_secret: [u8; 32],
    pub server_public: [u8; 32],
}

impl fmt::Debug for CurveKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CurveKeys")
            .field("client_public", &z85_encode(&self.client_public))
            .field("client_secret", &"<hidden>")
            .field("server_public", &z85_encode(&self.server_public))
            .finish()
    }
}

/// Which key a certificate line holds.
#[derive(Clone, Copy)]
enum Part {
    Public,
    Secret,
}

impl CurveKeys {
    /// Each argument is either the 40-character Z85 key or the path of a file holding it.
    pub fn load(client_public: &str, client_secret: &str, server_public: &str) -> Result<Self, CurveError> {
        Ok(CurveKeys {
            client_public: key_arg("client public", client_public, Part::Public)?,
            client_secret: key_arg("client secret", client_secret, Part::Secret)?,
            server_public: key_arg("server public", server_public, Part::Public)?,
        })
    }

    /// From Z85 text only.
    pub fn from_z85(client_public: &str, client_secret: &str, server_public: &str) -> Result<Self, CurveError> {
        let key = |which, text: &str| z85_key(text.trim()).map_err(|reason| CurveError::BadKey { which, reason });
        Ok(CurveKeys {
            client_public: key("client public", client_public)?,
            client_secret: key("client secret", client_secret)?,
            server_public: key("server public", server_public)?,
        })
    }
}

fn key_arg(which: &'static str, arg: &str, part: Part) -> Result<[u8; 32], CurveError> {
    if let Ok(key) = z85_key(arg.trim()) {
        return Ok(key);
    }
    let path = Path::new(arg);
    if !path.exists() {
        let reason = z85_key(arg.trim()).err().unwrap_or_default();
        return Err(CurveError::BadKey { which, reason: format!("not a key ({reason}) nor an existing file") });
    }
    let read_error = |source| CurveError::Read { which, path: arg.to_owned(), source };
    let size = std::fs::metadata(path).map_err(read_error)?.len();
    if size > MAX_KEY_FILE {
        return Err(CurveError::BadKey { which, reason: format!("{arg} is {size} bytes, too big for a key file") });
    }
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    key_from_file(&text, part).map_err(|reason| CurveError::BadKey { which, reason: format!("{arg}: {reason}") })
}

/// A file holding just the key, or a ZeroMQ certificate (`public-key = "..."`).
fn key_from_file(text: &str, part: Part) -> Result<[u8; 32], String> {
    if let Ok(key) = z85_key(text.trim()) {
        return Ok(key);
    }
    let name = match part {
        Part::Public => "public-key",
        Part::Secret => "secret-key",
    };
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else { continue };
        if key.trim() == name {
            return z85_key(value.trim().trim_matches('"'));
        }
    }
    Err(format!("holds neither a bare key nor a {name} line"))
}

/// Decodes 40 Z85 characters into a 32-byte key, refusing characters outside the alphabet
/// (libzmq's own decoder silently accepts them).
fn z85_key(text: &str) -> Result<[u8; 32], String> {
    if text.len() != 40 {
        return Err(format!("{} characters instead of 40", text.chars().count()));
    }
    let bytes = z85_decode(text).ok_or("a character outside the Z85 alphabet or an out-of-range group")?;
    bytes.try_into().map_err(|_| "not 32 bytes".to_owned())
}

/// Z85 decoding of a text whose length is a multiple of 5.
fn z85_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    if !text.len().is_multiple_of(5) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 5 * 4);
    for group in text.chunks(5) {
        let mut value: u64 = 0;
        for &c in group {
            let digit = Z85.iter().position(|&z| z == c)? as u64;
            value = value * 85 + digit;
        }
        out.extend(u32::try_from(value).ok()?.to_be_bytes());
    }
    Some(out)
}

fn z85_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() / 4 * 5);
    for group in bytes.chunks(4) {
        let mut word = [0u8; 4];
        word[..group.len()].copy_from_slice(group);
        let mut value = u32::from_be_bytes(word);
        let mut digits = [0u8; 5];
        for d in digits.iter_mut().rev() {
            *d = Z85[(value % 85) as usize];
            value /= 85;
        }
        out.extend(digits.iter().map(|&d| d as char));
    }
    out
}

/// Whether the linked libzmq can do CURVE.
pub fn supported() -> bool {
    zmq::has("curve").unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z85_matches_the_rfc_test_vector() {
        // ZeroMQ RFC 32: these 8 bytes are "HelloWorld".
        let bytes = [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B];
        assert_eq!(z85_decode("HelloWorld"), Some(bytes.to_vec()));
        assert_eq!(z85_encode(&bytes), "HelloWorld");
        assert_eq!(z85_decode("Hello World"), None, "length not a multiple of 5");
        assert_eq!(z85_decode("Hello~orld"), None, "~ is not in the alphabet");
        assert_eq!(z85_decode("#####"), None, "85^5-1 does not fit 32 bits");
    }

    #[test]
    fn keys_from_values_files_and_certificates() {
        let pair = zmq::CurveKeyPair::new().expect("libzmq with CURVE");
        let (public, secret) = (z85_encode(&pair.public_key), z85_encode(&pair.secret_key));
        let server = z85_encode(&[7u8; 32]);
        let keys = CurveKeys::load(&public, &secret, &server).unwrap();
        assert_eq!((keys.client_public, keys.client_secret), (pair.public_key, pair.secret_key));
        assert!(!format!("{keys:?}").contains(&secret), "Debug hides the secret");

        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("client.key_secret");
        std::fs::write(
            &cert,
            format!("#   ****  Generated by zeek-probe tests  ****\nmetadata\ncurve\n    public-key = \"{public}\"\n    secret-key = \"{secret}\"\n"),
        )
        .unwrap();
        let bare = dir.path().join("server.key");
        std::fs::write(&bare, format!("{server}\n")).unwrap();
        let cert = cert.to_str().unwrap();
        let from_files = CurveKeys::load(cert, cert, bare.to_str().unwrap()).unwrap();
        assert_eq!(from_files, keys);
    }

    #[test]
    fn bad_keys_say_what_to_do() {
        let good = z85_encode(&[1u8; 32]);
        let e = CurveKeys::load("short", &good, &good).unwrap_err().to_string();
        assert!(e.starts_with("CURVE client public key:") && e.contains("40 Z85 characters"), "{e}");
        let e = CurveKeys::from_z85(&good, &good, &"~".repeat(40)).unwrap_err().to_string();
        assert!(e.contains("server public") && e.contains("alphabet"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk");
        std::fs::write(&junk, "not a key\n").unwrap();
        let e = CurveKeys::load(&good, junk.to_str().unwrap(), &good).unwrap_err().to_string();
        assert!(e.contains("secret-key line"), "{e}");
    }
}
