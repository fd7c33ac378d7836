//! Ed25519 keys in the `golang.org/x/mod/sumdb/note` text formats, and the private key file.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::encoding::{AsBigEndian as _, Curve25519SeedBin};
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256};

/// The signature type byte of Ed25519 in signed notes.
const ALG_ED25519: u8 = 0x01;

/// The longest key name accepted, in bytes.
pub const MAX_KEY_NAME_BYTES: usize = 256;

/// The largest key file read, in bytes (a key is under 400).
pub const MAX_KEY_FILE_BYTES: u64 = 4096;

/// Whether `name` can name a key: 1 to [`MAX_KEY_NAME_BYTES`] bytes, no Unicode space, no
/// `+`, no control character (the signed-note rule, plus the note's ban on controls).
pub(super) fn valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_KEY_NAME_BYTES
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '+')
}

/// The key id: the first four bytes of `SHA-256(name || "\n" || 0x01 || public key)`.
fn key_id(name: &str, public: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public);
    let digest: [u8; 32] = h.finalize().into();
    let mut id = [0u8; 4];
    id.copy_from_slice(digest.get(..4).unwrap_or(&[0; 4]));
    u32::from_be_bytes(id)
}

/// Splits `<name>+<8 hex id>+<base64(0x01 || 32 bytes)>` and checks its syntax.
fn split_key(text: &str) -> Result<(&str, u32, [u8; 32]), KeyError> {
    let malformed = |reason: &'static str| KeyError::Malformed { reason };
    let (name, rest) = text
        .split_once('+')
        .ok_or(malformed("expected `<name>+<key id>+<key>`"))?;
    let (id, key) = rest
        .split_once('+')
        .ok_or(malformed("expected `<name>+<key id>+<key>`"))?;
    if !valid_key_name(name) {
        return Err(malformed(
            "the key name is empty, too long, or holds a space, a control character or `+`",
        ));
    }
    if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed("the key id is not 8 hex digits"));
    }
    let id =
        u32::from_str_radix(id, 16).map_err(|_| malformed("the key id is not 8 hex digits"))?;
    let raw = STANDARD
        .decode(key)
        .map_err(|_| malformed("the key is not canonical base64"))?;
    let (alg, bytes) = raw.split_first().ok_or(malformed("the key is empty"))?;
    if *alg != ALG_ED25519 {
        return Err(KeyError::Algorithm { algorithm: *alg });
    }
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| malformed("an Ed25519 key is 32 bytes"))?;
    Ok((name, id, bytes))
}

/// A public key that checks signed notes: its name, key id and Ed25519 public key.
///
/// `Display` writes the verifier key text `<name>+<8 hex key id>+<base64(0x01 || pubkey)>`,
/// which [`VerifierKey::parse`] reads back.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    id: u32,
    public: [u8; 32],
}

impl VerifierKey {
    /// Parses a verifier key text (surrounding whitespace ignored); refuses a key id that is
    /// not the one its name and public key give.
    pub fn parse(text: &str) -> Result<VerifierKey, KeyError> {
        let text = text.trim();
        if text.starts_with("PRIVATE+KEY+") {
            return Err(KeyError::PrivateNotPublic);
        }
        let (name, id, public) = split_key(text)?;
        if key_id(name, &public) != id {
            return Err(KeyError::KeyId);
        }
        Ok(VerifierKey {
            name: name.to_owned(),
            id,
            public,
        })
    }

    /// `arg` is a verifier key text, or the path of a file holding one (at most
    /// [`MAX_KEY_FILE_BYTES`]).
    pub fn from_arg(arg: &str) -> Result<VerifierKey, KeyError> {
        match VerifierKey::parse(arg) {
            Ok(key) => Ok(key),
            Err(KeyError::PrivateNotPublic) => Err(KeyError::PrivateNotPublic),
            Err(parse_error) => {
                let path = Path::new(arg);
                if fs::symlink_metadata(path).is_err() {
                    // Neither a file nor a key: the parse error says what a key looks like.
                    return Err(parse_error);
                }
                let text = read_bounded(path)?;
                VerifierKey::parse(&text)
            }
        }
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id (the first four bytes of the SHA-256 of the name and public key).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// `name+id`, as errors and logs name a key.
    pub fn label(&self) -> String {
        format!("{}+{:08x}", self.name, self.id)
    }

    /// Whether `signature` is this key's Ed25519 signature of `message`.
    pub(super) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.public)
            .verify(message, signature)
            .is_ok()
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = Vec::with_capacity(33);
        raw.push(ALG_ED25519);
        raw.extend_from_slice(&self.public);
        write!(f, "{}+{:08x}+{}", self.name, self.id, STANDARD.encode(raw))
    }
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierKey({self})")
    }
}

/// A private Ed25519 key that signs checkpoints. `Debug` shows its name and key id, never
/// the seed; nothing here logs or renders it.
pub struct SigningKey {
    pub(super) name: String,
    pub(super) id: u32,
    pub(super) pair: Ed25519KeyPair,
    public: [u8; 32],
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}+{:08x})", self.name, self.id)
    }
}

impl SigningKey {
    /// A new key named `name` from a 32-byte seed read from the operating system's random
    /// source.
    pub fn generate(name: &str) -> Result<SigningKey, KeyError> {
        if !valid_key_name(name) {
            return Err(KeyError::Name {
                name: name.to_owned(),
            });
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random {
            reason: e.to_string(),
        })?;
        let key = SigningKey::from_seed(name, &seed);
        wipe(&mut seed);
        key
    }

    fn from_seed(name: &str, seed: &[u8]) -> Result<SigningKey, KeyError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| KeyError::Malformed {
            reason: "the seed is not an Ed25519 seed",
        })?;
        let public: [u8; 32] =
            pair.public_key()
                .as_ref()
                .try_into()
                .map_err(|_| KeyError::Malformed {
                    reason: "the public key is not 32 bytes",
                })?;
        Ok(SigningKey {
            name: name.to_owned(),
            id: key_id(name, &public),
            pair,
            public,
        })
    }

    /// Parses a private key text `PRIVATE+KEY+<name>+<key id>+<base64(0x01 || seed)>`
    /// (surrounding whitespace ignored); refuses a key id that is not the one the derived
    /// public key gives. Errors never quote the text.
    pub fn parse(text: &str) -> Result<SigningKey, KeyError> {
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(KeyError::Malformed {
                reason: "a private key starts with `PRIVATE+KEY+`",
            })?;
        let (name, id, mut seed) = split_key(rest)?;
        let key = SigningKey::from_seed(name, &seed);
        wipe(&mut seed);
        let key = key?;
        if key.id != id {
            return Err(KeyError::KeyId);
        }
        Ok(key)
    }

    /// Loads a private key file written by [`SigningKey::write_new`] (or by the Go tools).
    /// Refuses a symbolic link, anything but a regular file, a file that its group or others
    /// may read or write (`mode & 0o077 != 0`), and one larger than [`MAX_KEY_FILE_BYTES`].
    pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
        let meta = fs::symlink_metadata(path).map_err(|e| KeyError::io(path, e))?;
        if meta.file_type().is_symlink() {
            return Err(KeyError::Symlink {
                path: path.to_owned(),
            });
        }
        if !meta.file_type().is_file() {
            return Err(KeyError::NotRegular {
                path: path.to_owned(),
            });
        }
        let mut file = File::open(path).map_err(|e| KeyError::io(path, e))?;
        // The file opened must be the one checked (not swapped for a link in between), and
        // its permissions are read from the open file.
        let opened = file.metadata().map_err(|e| KeyError::io(path, e))?;
        if opened.dev() != meta.dev() || opened.ino() != meta.ino() || !opened.is_file() {
            return Err(KeyError::NotRegular {
                path: path.to_owned(),
            });
        }
        let mode = opened.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
        let text = read_to_limit(&mut file, path)?;
        let key = SigningKey::parse(&text);
        wipe(&mut text.into_bytes());
        key.map_err(|e| match e {
            KeyError::Malformed { reason } => KeyError::File {
                path: path.to_owned(),
                reason,
            },
            other => other,
        })
    }

    /// Writes the private key text (and a newline) to a new file at `path`, mode 0600.
    /// Refuses to replace anything already there (`create_new`), including a symbolic link.
    pub fn write_new(&self, path: &Path) -> Result<(), KeyError> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    KeyError::Exists {
                        path: path.to_owned(),
                    }
                } else {
                    KeyError::io(path, e)
                }
            })?;
        // The mode passed to open is masked by the umask: set it exactly.
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| KeyError::io(path, e))?;
        let mut text = self.private_text()?.into_bytes();
        let written = file
            .write_all(&text)
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all());
        wipe(&mut text);
        written.map_err(|e| KeyError::io(path, e))?;
        sync_parent(path);
        Ok(())
    }

    /// The private key text. Callers write it to a file and drop it; never log it.
    fn private_text(&self) -> Result<String, KeyError> {
        let seed = self.pair.seed().map_err(|_| KeyError::Malformed {
            reason: "the key pair has no seed",
        })?;
        let seed: Curve25519SeedBin<'static> =
            seed.as_be_bytes().map_err(|_| KeyError::Malformed {
                reason: "the key pair has no seed",
            })?;
        let mut raw = Vec::with_capacity(33);
        raw.push(ALG_ED25519);
        raw.extend_from_slice(seed.as_ref());
        let mut encoded = STANDARD.encode(&raw).into_bytes();
        wipe(&mut raw);
        let mut text = format!("PRIVATE+KEY+{}+{:08x}+", self.name, self.id);
        text.push_str(std::str::from_utf8(&encoded).unwrap_or_default());
        wipe(&mut encoded);
        Ok(text)
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public half, to hand to verifiers.
    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            id: self.id,
            public: self.public,
        }
    }
}

/// Overwrites a copy of secret bytes before it is dropped (best effort: no `unsafe` here, so
/// `black_box` keeps the writes from being optimised away).
fn wipe(bytes: &mut [u8]) {
    bytes.fill(0);
    std::hint::black_box(bytes);
}

/// Reads a whole small file (a verifier key), refusing one over [`MAX_KEY_FILE_BYTES`].
fn read_bounded(path: &Path) -> Result<String, KeyError> {
    let mut file = File::open(path).map_err(|e| KeyError::io(path, e))?;
    read_to_limit(&mut file, path)
}

fn read_to_limit(file: &mut File, path: &Path) -> Result<String, KeyError> {
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| KeyError::io(path, e))?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(KeyError::File {
            path: path.to_owned(),
            reason: "the file is larger than a key file can be",
        });
    }
    String::from_utf8(bytes).map_err(|_| KeyError::File {
        path: path.to_owned(),
        reason: "the file is not UTF-8 text",
    })
}

/// Makes a new file's directory entry durable (best effort: some file systems refuse).
fn sync_parent(path: &Path) {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(dir) = File::open(parent) {
        let _ = dir.sync_all();
    }
}

/// A key that cannot be made, read, written or used. Messages never quote a private key.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyError {
    /// The key name is not usable in a signed note.
    #[error(
        "`{name}` cannot name a key: use 1 to 256 bytes without spaces, control characters or `+`"
    )]
    Name {
        /// The name asked for.
        name: String,
    },
    /// The key text is not in the expected format.
    #[error("malformed key: {reason}")]
    Malformed {
        /// What is wrong.
        reason: &'static str,
    },
    /// The key file does not hold a key.
    #[error("`{}` is not a key file: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// The key id does not match the name and public key.
    #[error("malformed key: the key id does not match the name and key")]
    KeyId,
    /// Not an Ed25519 key.
    #[error("unsupported key algorithm {algorithm} (only Ed25519, 1, is supported)")]
    Algorithm {
        /// The signature type byte.
        algorithm: u8,
    },
    /// A private key was given where a public (verifier) key was expected.
    #[error(
        "this is a private key; give the verifier key (the `.pub` file `warden audit keygen` wrote)"
    )]
    PrivateNotPublic,
    /// The key file may be read or written by its group or others.
    #[error(
        "the key file `{}` has mode {mode:04o}: group and others must have no access; run `chmod 600` on it",
        path.display()
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file is a symbolic link.
    #[error("the key file `{}` is a symbolic link; give the file itself", path.display())]
    Symlink {
        /// The path.
        path: PathBuf,
    },
    /// The key file is not a regular file (or changed while it was opened).
    #[error("the key file `{}` is not a regular file", path.display())]
    NotRegular {
        /// The path.
        path: PathBuf,
    },
    /// `write_new` found something at the path.
    #[error("`{}` already exists; a key file is never overwritten", path.display())]
    Exists {
        /// The path.
        path: PathBuf,
    },
    /// Reading or writing the key file failed.
    #[error("cannot read or write the key file `{}`", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: Arc<io::Error>,
    },
    /// The operating system's random source failed.
    #[error("no randomness for a new key: {reason}")]
    Random {
        /// Why.
        reason: String,
    },
}

impl KeyError {
    fn io(path: &Path, source: io::Error) -> KeyError {
        KeyError::Io {
            path: path.to_owned(),
            source: Arc::new(source),
        }
    }
}
