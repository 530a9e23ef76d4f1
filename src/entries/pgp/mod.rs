//! OpenPGP keys and detached signatures as Rekor's `pgp` PKI reads them, for
//! `rekord` entries and `publicKey` searches.
//!
//! Spec: rekor-v1.md T-06, E-08. Mirrors sigstore/rekor `pkg/pki/pgp/pgp.go`
//! on ProtonMail go-crypto v1.4.1 (`openpgp.ReadKeyRing`, `ReadEntity`,
//! `Entity.Serialize`, `CheckDetachedSignature`):
//!
//! - a signature is armored (`PGP SIGNATURE`) or binary; its first packet
//!   must be a signature. Canonical form: the armored input as given, or the
//!   binary input armored;
//! - a key is one or more armored `PGP PUBLIC KEY BLOCK`s (the input must
//!   start with `-----BEGIN PGP`) or a binary keyring. Each transferable key
//!   is read as Go reads it: user IDs need a valid self-signature (their
//!   other signatures are kept), a subkey keeps its newest valid binding
//!   signature and its revocations, key revocations must verify, and a key
//!   that breaks these rules is skipped (the input fails only if none is
//!   left). Canonical form: those packets, in that order, with new-format
//!   headers, armored;
//! - the signature must verify over the artifact with a key of the ring that
//!   may sign (key flags of its self-signature), and the key must be neither
//!   revoked nor expired, nor any signature involved expired, at the
//!   creation time of the signature's first packet (Rekor's `Config.Time`;
//!   its `Verify` reads that packet with `packet.Read`, which skips nothing,
//!   so it must be a signature Go reads);
//! - every signature (detached, certification, binding, embedded
//!   cross-signature) is read only with a hash go-crypto's version 4 parser
//!   knows (`HashIdToHashWithSha1`): SHA-1, SHA-2 or SHA-3. One made with
//!   MD5, RIPEMD-160 or another is unsupported and skipped like an unknown
//!   packet, so a user ID certified only so is dropped and a subkey bound
//!   only so fails its key. SHA-1 is accepted everywhere: go-crypto's
//!   `Config.RejectHashAlgorithms`, `RejectMessageHashAlgorithms`,
//!   `RejectPublicKeyAlgorithms`, `RejectCurves` and `MinRSABits` are read
//!   only by its `openpgp/v2` API, and Rekor calls `openpgp` with a config
//!   that sets only `Time`: key algorithms and sizes are not refused either;
//! - the key's subjects are the e-mail addresses of its user IDs.
//!
//! rPGP parses the packets and checks the cryptography; the structure, the
//! order and the canonical bytes are Go's and are built here. Where Go would
//! order user IDs by its map iteration (random), they keep the input order.
//! Not supported, and refused: secret keys (Rekor refuses the usual ones
//! too, with the same message), and version 5 and 6 keys; version 6
//! signatures (Go reads them) are skipped as Go skips version 5 ones.

use pgp::types::{KeyDetails as _, Tag};
use sha2::{Digest as _, Sha256};

use self::packets::{
    structural, user_id_email, Item, KeyPacket, Packets, Sig, SubkeyPacket, UserIdPacket,
    CERTIFICATIONS, REASON_KEY_COMPROMISED, SIGNING_ALGORITHMS, SIG_CERT_REVOCATION,
    SIG_KEY_REVOCATION, SIG_SUBKEY_BINDING, SIG_SUBKEY_REVOCATION, TAG_PUBLIC_KEY,
    TAG_PUBLIC_SUBKEY, TAG_SIGNATURE, TAG_USER_ID,
};
use super::armor::{self, FrameError};
use super::ssh::is_email;

mod packets;
mod signature;

pub(crate) use self::signature::PgpSignature;

const SIGNATURE_TYPE: &str = "PGP SIGNATURE";
const PUBLIC_KEY_TYPE: &str = "PGP PUBLIC KEY BLOCK";
const PRIVATE_KEY_TYPE: &str = "PGP PRIVATE KEY BLOCK";
const NO_KEYS: &str = "no PGP public keys could be read";
/// Go's `bufio.Scanner` refuses longer lines.
const MAX_KEY_LINE: usize = 64 * 1024;

/// A user ID with a valid self-signature.
#[derive(Debug, Clone)]
struct Identity {
    packet: UserIdPacket,
    /// The newest self-certification (not a revocation).
    self_signature: Option<Sig>,
    revocations: Vec<Sig>,
    /// Every signature that followed the user ID, in order.
    signatures: Vec<Sig>,
}

#[derive(Debug, Clone)]
struct Subkey {
    packet: SubkeyPacket,
    binding: Sig,
    revocations: Vec<Sig>,
}

/// go-crypto's `Entity`, as far as serialization and verification need.
#[derive(Debug, Clone)]
struct Entity {
    primary: KeyPacket,
    revocations: Vec<Sig>,
    identities: Vec<Identity>,
    subkeys: Vec<Subkey>,
}

/// A parsed PGP public key (a keyring of one or more entities).
#[derive(Debug)]
pub(crate) struct PgpKey {
    entities: Vec<Entity>,
}

impl PgpKey {
    /// Rekor's `NewPublicKey`.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < "-----BEGIN PGP".len() {
            return Err("unable to read PGP public key: EOF".to_owned());
        }
        let entities = if bytes.starts_with(b"-----BEGIN PGP") {
            read_armored_keys(bytes)?
        } else {
            read_key_ring(bytes, None)
                .map_err(|e| format!("error reading binary PGP public key: {e}"))?
        };
        if entities.is_empty() {
            return Err(NO_KEYS.to_owned());
        }
        Ok(Self { entities })
    }

    /// `armor.Encode("PGP PUBLIC KEY BLOCK")` over each entity's `Serialize`.
    pub(crate) fn canonical(&self) -> Vec<u8> {
        let mut packets = Vec::new();
        for entity in &self.entities {
            entity.serialize(&mut packets);
        }
        armor::encode(PUBLIC_KEY_TYPE, &packets)
    }

    /// Rekor's `EmailAddresses`: the e-mail of every user ID that has one.
    pub(crate) fn subjects(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let emails = self.entities.iter().flat_map(|e| &e.identities);
        for email in emails.filter_map(|i| user_id_email(i.packet.user_id.id())) {
            if is_email(&email) && !out.contains(&email) {
                out.push(email);
            }
        }
        out
    }
}

/// The E-08 `publicKey` search key for format `pgp`: hex SHA-256 of the
/// canonical armored key.
///
/// # Errors
/// The key does not parse.
pub(crate) fn search_key(bytes: &[u8]) -> Result<String, String> {
    Ok(hex::encode(Sha256::digest(
        PgpKey::parse(bytes)?.canonical(),
    )))
}

/// `NewPublicKey`'s armored branch: every block up to an `-----END PGP`
/// line is decoded and read; what follows the last one is ignored.
fn read_armored_keys(bytes: &[u8]) -> Result<Vec<Entity>, String> {
    let mut entities = Vec::new();
    let mut block = Vec::new();
    let text = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    for line in text.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > MAX_KEY_LINE {
            return Err("error reading PGP public key: bufio.Scanner: token too long".to_owned());
        }
        block.extend_from_slice(line);
        block.push(b'\n');
        if !line.starts_with(b"-----END PGP") {
            continue;
        }
        let Some(decoded) = armor::decode(&block) else {
            return Err("invalid PGP public key provided: EOF".to_owned());
        };
        if decoded.kind != PUBLIC_KEY_TYPE && decoded.kind != PRIVATE_KEY_TYPE {
            return Err("invalid PGP type detected".to_owned());
        }
        let found = read_key_ring(&decoded.body, decoded.error.as_deref())
            .map_err(|e| format!("error reading PGP public key: {e}"))?;
        entities.extend(found);
        block.clear();
    }
    Ok(entities)
}

/// go-crypto `ReadKeyRing`: entities that break the rules are skipped; the
/// last such error is returned only when none is left. Secret keys make
/// the whole ring unreadable (see the module docs).
fn read_key_ring(data: &[u8], broken: Option<&str>) -> Result<Vec<Entity>, String> {
    let mut packets = Packets::new(data, broken);
    let mut entities = Vec::new();
    let mut last_skipped = None;
    loop {
        match read_entity(&mut packets) {
            Ok(Some(entity)) => entities.push(entity),
            Ok(None) => break,
            Err(FrameError::Structural(e)) => {
                last_skipped = Some(e);
                skip_to_next_key(&mut packets).map_err(|e| e.message().to_owned())?;
            }
            Err(FrameError::Fatal(e)) => return Err(e),
        }
    }
    if packets.saw_secret {
        // `NewPublicKey` then finds no public key.
        return Ok(Vec::new());
    }
    match (entities.is_empty(), last_skipped) {
        (true, Some(e)) => Err(e),
        _ => Ok(entities),
    }
}

/// go-crypto `readToNextPublicKey`.
fn skip_to_next_key(packets: &mut Packets<'_>) -> Result<(), FrameError> {
    while let Some(item) = packets.next() {
        if let Item::PublicKey(key) = item? {
            packets.unread(Item::PublicKey(key));
            break;
        }
    }
    Ok(())
}

/// go-crypto `ReadEntity`; `Ok(None)` at the end of the packets.
fn read_entity(packets: &mut Packets<'_>) -> Result<Option<Entity>, FrameError> {
    let primary = match packets.next() {
        None => return Ok(None),
        Some(Ok(Item::PublicKey(key))) => key,
        // Secret keys are refused after the ring is read; skip this one.
        Some(Ok(Item::SecretKey)) => {
            return Err(structural("secret keys are not accepted"));
        }
        Some(Ok(other)) => {
            packets.unread(other);
            return Err(structural("first packet was not a public/private key"));
        }
        Some(Err(e)) => return Err(e),
    };
    if !SIGNING_ALGORITHMS.contains(&u8::from(primary.key.algorithm())) {
        return Err(structural("primary key cannot be used for signatures"));
    }
    let mut entity = Entity {
        primary,
        revocations: Vec::new(),
        identities: Vec::new(),
        subkeys: Vec::new(),
    };
    let mut revocations = Vec::new();
    while let Some(item) = packets.next() {
        match item? {
            Item::UserId(packet) => entity.add_user_id(packets, packet)?,
            Item::Signature(sig) if sig.typ == SIG_KEY_REVOCATION => revocations.push(*sig),
            // Direct-key signatures are kept only for v6 keys; others have nothing to attach to.
            Item::Signature(_) => {}
            Item::PublicSubkey(packet) => entity.add_subkey(packets, packet)?,
            Item::PublicKey(key) => {
                packets.unread(Item::PublicKey(key));
                break;
            }
            Item::SecretKey => return Err(structural("secret keys are not accepted")),
            Item::Other => {}
        }
    }
    if entity.identities.is_empty() {
        return Err(structural("v4 entity without any identities"));
    }
    for revocation in revocations {
        if revocation.sig.verify_key(&entity.primary.key).is_err() {
            return Err(structural("revocation signature signed by alternate key"));
        }
        entity.revocations.push(revocation);
    }
    Ok(Some(entity))
}

impl Entity {
    /// go-crypto `addUserID`.
    fn add_user_id(
        &mut self,
        packets: &mut Packets<'_>,
        packet: UserIdPacket,
    ) -> Result<(), FrameError> {
        let mut identity = Identity {
            packet,
            self_signature: None,
            revocations: Vec::new(),
            signatures: Vec::new(),
        };
        let mut valid = false;
        while let Some(item) = packets.next() {
            let sig = match item? {
                Item::Signature(sig) => *sig,
                other => {
                    packets.unread(other);
                    break;
                }
            };
            if !CERTIFICATIONS.contains(&sig.typ) {
                return Err(structural("user ID signature with wrong type"));
            }
            if sig.issued_by(&self.primary.key) {
                let user_id = &identity.packet.user_id;
                if sig
                    .sig
                    .verify_certification(&self.primary.key, Tag::UserId, user_id)
                    .is_err()
                {
                    return Err(structural(format!(
                        "user ID self-signature invalid: {}",
                        sig.failure()
                    )));
                }
                if sig.typ == SIG_CERT_REVOCATION {
                    identity.revocations.push(sig.clone());
                } else if identity
                    .self_signature
                    .as_ref()
                    .is_none_or(|s| sig.created() > s.created())
                {
                    identity.self_signature = Some(sig.clone());
                }
                valid = true;
            }
            identity.signatures.push(sig);
        }
        if valid {
            // Go keys identities by their text: a repeated one replaces the first.
            let id = identity.packet.user_id.id().to_vec();
            match self
                .identities
                .iter_mut()
                .find(|i| i.packet.user_id.id() == id.as_slice())
            {
                Some(existing) => *existing = identity,
                None => self.identities.push(identity),
            }
        }
        Ok(())
    }

    /// go-crypto `addSubkey` with `VerifyKeySignature`.
    fn add_subkey(
        &mut self,
        packets: &mut Packets<'_>,
        packet: SubkeyPacket,
    ) -> Result<(), FrameError> {
        let mut binding: Option<Sig> = None;
        let mut revocations = Vec::new();
        while let Some(item) = packets.next() {
            let sig = match item
                .map_err(|e| structural(format!("subkey signature invalid: {}", e.message())))?
            {
                Item::Signature(sig) => *sig,
                other => {
                    packets.unread(other);
                    break;
                }
            };
            if sig.typ != SIG_SUBKEY_BINDING && sig.typ != SIG_SUBKEY_REVOCATION {
                return Err(structural("subkey signature with wrong type"));
            }
            self.verify_binding(&packet, &sig)
                .map_err(|e| structural(format!("subkey signature invalid: {e}")))?;
            if sig.typ == SIG_SUBKEY_REVOCATION {
                revocations.push(sig);
            } else if binding.as_ref().is_none_or(|b| sig.created() > b.created()) {
                binding = Some(sig);
            }
        }
        let binding =
            binding.ok_or_else(|| structural("subkey packet not followed by signature"))?;
        self.subkeys.push(Subkey {
            packet,
            binding,
            revocations,
        });
        Ok(())
    }

    /// A binding signature over the subkey, and for signing subkeys the
    /// subkey's cross-signature over the primary key.
    fn verify_binding(&self, subkey: &SubkeyPacket, sig: &Sig) -> Result<(), String> {
        sig.sig
            .verify_subkey_binding(&self.primary.key, &subkey.key)
            .map_err(|_| sig.failure())?;
        if sig.info.may_sign != Some(true) {
            return Ok(());
        }
        let Some(embedded) = &sig.info.embedded else {
            return Err(
                "openpgp: invalid data: signing subkey is missing cross-signature".to_owned(),
            );
        };
        embedded
            .sig
            .verify_primary_key_binding(&subkey.key, &self.primary.key)
            .map_err(|_| "openpgp: invalid data: error while verifying cross-signature".to_owned())
    }

    /// go-crypto `Entity.Serialize`, with new-format packet headers.
    fn serialize(&self, out: &mut Vec<u8>) {
        armor::write_packet(out, TAG_PUBLIC_KEY, &self.primary.body);
        for revocation in &self.revocations {
            armor::write_packet(out, TAG_SIGNATURE, &revocation.body);
        }
        for identity in &self.identities {
            armor::write_packet(out, TAG_USER_ID, &identity.packet.body);
            for sig in &identity.signatures {
                armor::write_packet(out, TAG_SIGNATURE, &sig.body);
            }
        }
        for subkey in &self.subkeys {
            armor::write_packet(out, TAG_PUBLIC_SUBKEY, &subkey.packet.body);
            for revocation in &subkey.revocations {
                armor::write_packet(out, TAG_SIGNATURE, &revocation.body);
            }
            armor::write_packet(out, TAG_SIGNATURE, &subkey.binding.body);
        }
    }

    /// go-crypto `PrimaryIdentity`: fewest revocations, then marked
    /// primary, then the newest self-signature.
    fn primary_identity(&self) -> Option<&Identity> {
        let mut best: Option<&Identity> = None;
        for candidate in &self.identities {
            if best.is_none_or(|b| prefer(b, candidate)) {
                best = Some(candidate);
            }
        }
        best
    }
}

/// go-crypto `shouldPreferIdentity`.
fn prefer(existing: &Identity, candidate: &Identity) -> bool {
    if existing.revocations.len() != candidate.revocations.len() {
        return existing.revocations.len() > candidate.revocations.len();
    }
    let Some(current) = &existing.self_signature else {
        return true;
    };
    let Some(new) = &candidate.self_signature else {
        return false;
    };
    match (current.info.primary_user_id, new.info.primary_user_id) {
        (true, false) => false,
        (false, true) => true,
        _ => new.created() > current.created(),
    }
}

/// go-crypto `revoked`: a compromised key is revoked from the start; other
/// revocations count from their creation.
fn revoked(revocations: &[Sig], now: i64) -> bool {
    revocations
        .iter()
        .any(|r| r.info.revocation_reason == Some(REASON_KEY_COMPROMISED) || !r.expired_at(now))
}

#[cfg(test)]
mod tests {
    use super::packets::{expired, key_id, subpackets, write_subpacket};
    use super::signature::signing_keys;
    use super::*;
    use crate::entries::armor::RawPacket;
    use crate::entries::decoding::to_base64;
    use pgp::types::PublicKeyTrait as _;

    /// The vectors under `tests/fixtures/pgp/` (sources in its README).
    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/pgp/",
                $name
            ))
            .as_slice()
        };
    }

    const ARTIFACT: &[u8] = fixture!("artifact.txt");

    fn key(bytes: &[u8]) -> PgpKey {
        PgpKey::parse(bytes).unwrap()
    }

    fn verify(sig: &[u8], key_bytes: &[u8], artifact: &[u8]) -> Result<(), String> {
        PgpSignature::parse(sig)?.verify(&key(key_bytes), artifact)
    }

    /// The packets of an armored block.
    fn dearmor(text: &[u8]) -> Vec<u8> {
        armor::decode(text).unwrap().body
    }

    fn raw_packets(data: &[u8]) -> Vec<RawPacket> {
        let mut pos = 0;
        std::iter::from_fn(|| armor::next_packet(data, &mut pos, None))
            .map(Result::unwrap)
            .collect()
    }

    fn join(packets: &[RawPacket]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in packets {
            armor::write_packet(&mut out, p.tag, &p.body);
        }
        out
    }

    /// `packets` with old-format headers: the shortest length as GnuPG
    /// writes it, or four length bytes for every packet with `long`.
    fn join_old_format(packets: &[RawPacket], long: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for p in packets {
            let ctb = 0x80 | (p.tag << 2);
            let len = p.body.len();
            match (u8::try_from(len), u16::try_from(len)) {
                (Ok(len), _) if !long => out.extend([ctb, len]),
                (_, Ok(len)) if !long => {
                    out.push(ctb | 1);
                    out.extend(len.to_be_bytes());
                }
                _ => {
                    out.push(ctb | 2);
                    out.extend(u32::try_from(len).unwrap().to_be_bytes());
                }
            }
            out.extend_from_slice(&p.body);
        }
        out
    }

    /// `packets` with new-format headers that all use five-byte lengths.
    fn join_five_byte_lengths(packets: &[RawPacket]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in packets {
            out.extend([0xc0 | p.tag, 255]);
            out.extend(u32::try_from(p.body.len()).unwrap().to_be_bytes());
            out.extend_from_slice(&p.body);
        }
        out
    }

    /// `data` armored as other encoders write it: `headers`, base64 lines of
    /// `width` characters, `eol` line ends (also after the END line), and
    /// the checksum line only if `checksum`.
    fn armor_as(
        kind: &str,
        data: &[u8],
        headers: &[&str],
        width: usize,
        eol: &str,
        checksum: bool,
    ) -> Vec<u8> {
        let mut lines = vec![format!("-----BEGIN {kind}-----")];
        lines.extend(headers.iter().map(|h| (*h).to_owned()));
        lines.push(String::new());
        let b64 = to_base64(data);
        for chunk in b64.as_bytes().chunks(width) {
            lines.push(String::from_utf8(chunk.to_vec()).unwrap());
        }
        if checksum {
            // The CRC-24 line of Go's encoding of the same data.
            let go = String::from_utf8(armor::encode(kind, data)).unwrap();
            lines.push(go.lines().rev().nth(1).unwrap().to_owned());
        }
        lines.push(format!("-----END {kind}-----"));
        lines.push(String::new());
        lines.join(eol).into_bytes()
    }

    #[test]
    fn every_encoding_of_the_log_1_key_canonicalises_to_the_bytes_public_rekor_stored() {
        // rekor.sigstore.dev stored this key for log entry 1 as Go re-encoded
        // it: canonical already, and the same packets in any other framing
        // or armor must come out as exactly these bytes.
        let stored = fixture!("rekor-sigstore-dev-log-1-key.asc");
        let packets = raw_packets(&dearmor(stored));
        assert_eq!(
            packets.iter().map(|p| p.tag).collect::<Vec<_>>(),
            [6, 13, 2, 14, 2]
        );
        let new_format = join(&packets);
        // Old-format headers as GnuPG exports them (0x99 0x01 0x8d: tag 6, two length bytes).
        let gnupg = join_old_format(&packets, false);
        assert_eq!(gnupg[..3], [0x99, 0x01, 0x8d]);
        let variants = [
            stored.to_vec(),
            new_format.clone(),
            gnupg.clone(),
            join_old_format(&packets, true),
            join_five_byte_lengths(&packets),
            // GnuPG's armor: 64 columns, checksum, a newline after END.
            armor_as(PUBLIC_KEY_TYPE, &gnupg, &[], 64, "\n", true),
            armor_as(
                PUBLIC_KEY_TYPE,
                &new_format,
                &["Version: GnuPG v2", "Comment: re-armored"],
                76,
                "\r\n",
                false,
            ),
            armor_as(PUBLIC_KEY_TYPE, &gnupg, &["Comment: x"], 4, "\n", true),
        ];
        let want = hex::encode(Sha256::digest(stored));
        for (i, input) in variants.iter().enumerate() {
            assert!(
                i == 0 || input.as_slice() != stored,
                "variant {i} is the stored form"
            );
            assert_eq!(
                String::from_utf8_lossy(&key(input).canonical()),
                String::from_utf8_lossy(stored),
                "variant {i}"
            );
            assert_eq!(search_key(input).unwrap(), want, "variant {i}");
        }
        assert_eq!(key(stored).subjects(), ["lhinds@protonmail.com"]);
    }

    #[test]
    fn a_binary_rsa_signature_is_armored_and_verifies_after_its_key_expired() {
        // e: GnuPG RSA 3072 key made in 2020, expiring after two years;
        // e.sig was made within them and is checked at that time.
        let e = key(fixture!("e.pub.asc"));
        let entity = &e.entities[0];
        let self_sig = entity.identities[0].self_signature.as_ref().unwrap();
        let made = entity.primary.key.created_at().timestamp();
        assert!(expired(made, self_sig.info.key_lifetime, 1_700_000_000));
        let binary = fixture!("e.sig");
        let sig = PgpSignature::parse(binary).unwrap();
        let canonical = sig.canonical();
        assert_eq!(canonical, armor::encode(SIGNATURE_TYPE, binary));
        assert!(canonical.starts_with(b"-----BEGIN PGP SIGNATURE-----\n\n"));
        assert!(canonical.ends_with(b"\n-----END PGP SIGNATURE-----"));
        sig.verify(&e, ARTIFACT).unwrap();
        // The canonical form is armored, so it stays as it is.
        let again = PgpSignature::parse(&canonical).unwrap();
        assert_eq!(again.canonical(), canonical);
        again.verify(&e, ARTIFACT).unwrap();
    }

    #[test]
    fn an_rsa_key_verifies_armored_and_binary_signatures_in_both_its_forms() {
        let armored_key = fixture!("e.pub.asc");
        let binary_key = fixture!("e.pub");
        // SHA-512 (GnuPG's default for this key) and SHA-256.
        let armored_sig = fixture!("e.sig.asc");
        for k in [armored_key, binary_key] {
            verify(armored_sig, k, ARTIFACT).unwrap();
            verify(fixture!("e.sig"), k, ARTIFACT).unwrap();
        }
        assert_eq!(key(armored_key).canonical(), key(binary_key).canonical());
        assert_eq!(key(binary_key).subjects(), ["expired-rsa@example.org"]);
        // An armored signature is kept byte for byte.
        assert_eq!(
            PgpSignature::parse(armored_sig).unwrap().canonical(),
            armored_sig
        );
    }

    #[test]
    fn a_keyring_of_two_armored_blocks_keeps_every_key_and_signature() {
        // f-ring.asc: a DSA key with SHA-1 signatures and an Elgamal subkey
        // (its block has a Version header), then an RSA key with two user
        // IDs, third-party certifications (one SHA-1 by the DSA key, one by
        // a key not in the ring) and signing subkeys revoked, expired and
        // valid. Both keys carry packages@example.com.
        let complex = fixture!("f-ring.asc");
        let ring = key(complex);
        assert_eq!(ring.entities.len(), 2);
        assert_eq!(
            ring.subjects(),
            ["packages@example.com", "release@example.com"]
        );
        let text = String::from_utf8(complex.to_vec()).unwrap();
        let end = "-----END PGP PUBLIC KEY BLOCK-----\n";
        let (first, second) = text.split_at(text.find(end).unwrap() + end.len());
        assert!(first.contains("\nVersion: "));
        let binary = [dearmor(first.as_bytes()), dearmor(second.as_bytes())].concat();
        assert_eq!(key(&binary).canonical(), ring.canonical());
        // GnuPG's order is Go's: every packet comes out as it went in.
        assert_eq!(
            raw_packets(&dearmor(&ring.canonical())),
            raw_packets(&binary)
        );
        let rsa = &ring.entities[1];
        assert_eq!(rsa.identities[1].signatures.len(), 3);
        let revocations: Vec<usize> = rsa.subkeys.iter().map(|s| s.revocations.len()).collect();
        assert_eq!(revocations, [1, 0, 0, 0]);
        // The first block alone is the first key alone.
        assert_eq!(key(first.as_bytes()).entities.len(), 1);
        // The RSA key's newest signing subkey made f.sig; the ring finds it.
        verify(fixture!("f.sig"), complex, ARTIFACT).unwrap();
    }

    #[test]
    fn gpg_signatures_verify_binary_armored_text_mode_and_by_subkey() {
        let a = fixture!("a.pub.asc");
        for sig in [
            fixture!("a.sig"),
            fixture!("a.sig.asc"),
            fixture!("a-text.sig"),
        ] {
            verify(sig, a, ARTIFACT).unwrap();
            verify(sig, fixture!("a.pub"), ARTIFACT).unwrap();
        }
        assert_eq!(key(a).canonical(), key(fixture!("a.pub")).canonical());
        assert_eq!(key(a).subjects(), ["Tlog-Test@Example.com"]);
        // RSA primary that only certifies; an Ed25519 subkey signed.
        let c = fixture!("c.pub.asc");
        verify(fixture!("c.sig"), c, ARTIFACT).unwrap();
        assert_eq!(key(c).subjects(), ["signer@example.net"]);
        assert_eq!(key(c).entities[0].identities.len(), 2);
        // A key that has expired since, but not when it signed.
        verify(fixture!("d-in-time.sig"), fixture!("d.pub.asc"), ARTIFACT).unwrap();
    }

    #[test]
    fn signatures_that_do_not_verify_get_gos_errors() {
        let a = fixture!("a.pub.asc");
        assert_eq!(
            verify(fixture!("a.sig"), a, b"another artifact").unwrap_err(),
            "openpgp: invalid signature: EdDSA verification failure"
        );
        assert_eq!(
            verify(fixture!("b.sig"), a, ARTIFACT).unwrap_err(),
            "openpgp: signature made by unknown entity"
        );
        // Revoked (GnuPG's stored revocation, made with the key) before it signed.
        assert_eq!(
            verify(fixture!("a.sig"), fixture!("a-revoked.pub.asc"), ARTIFACT).unwrap_err(),
            "openpgp: key revoked"
        );
        // Signed at a time before the key was made.
        assert_eq!(
            verify(
                fixture!("d-before-key.sig"),
                fixture!("d.pub.asc"),
                ARTIFACT
            )
            .unwrap_err(),
            "openpgp: key expired"
        );
        // The primary of c may only certify: its key ID alone signs nothing.
        let c = key(fixture!("c.pub.asc"));
        let primary_id = key_id(&c.entities[0].primary.key);
        assert!(signing_keys(&c.entities, primary_id).is_empty());
    }

    #[test]
    fn malformed_signatures_get_rekors_messages() {
        let refusal = |bytes: &[u8]| PgpSignature::parse(bytes).unwrap_err();
        assert_eq!(refusal(b""), "invalid PGP signature: EOF");
        assert_eq!(
            refusal(b"hello"),
            "invalid PGP signature: openpgp: invalid data: tag byte does not have MSB set"
        );
        // An armored key is not an armored signature; a binary one has no signature packet first.
        assert_eq!(
            refusal(fixture!("a.pub.asc")),
            "invalid PGP signature provided"
        );
        assert_eq!(
            refusal(fixture!("a.pub")),
            "valid PGP signature was not detected"
        );
        let text = String::from_utf8(fixture!("a.sig.asc").to_vec()).unwrap();
        let broken = text.replacen("\n\n", "\n\n*", 1);
        assert_eq!(
            refusal(broken.as_bytes()),
            "invalid PGP signature: illegal base64 data at input byte 0"
        );
        // A cut binary signature.
        let cut = &fixture!("a.sig")[..40];
        assert_eq!(refusal(cut), "invalid PGP signature: unexpected EOF");
        // A signature packet that Go cannot read (version 3) is skipped, leaving nothing.
        let mut v3 = raw_packets(fixture!("a.sig"));
        v3[0].body[0] = 3;
        assert_eq!(refusal(&join(&v3)), "invalid PGP signature: EOF");
        // One too short to hold its version, or the fields after it, stops the reader.
        for len in [0, 1, 5] {
            let mut short = raw_packets(fixture!("a.sig"));
            short[0].body.truncate(len);
            assert_eq!(
                refusal(&join(&short)),
                "invalid PGP signature: unexpected EOF",
                "{len}"
            );
        }
        // A signature without an issuer cannot be matched to a key.
        let no_issuer = strip_issuers(fixture!("a.sig"));
        assert_eq!(
            verify(&no_issuer, fixture!("a.pub.asc"), ARTIFACT).unwrap_err(),
            "openpgp: invalid data: signature doesn't have an issuer"
        );
    }

    #[test]
    fn signatures_with_weak_hashes_are_skipped_as_go_crypto_skips_them() {
        // e-*.sig: e's signatures of the artifact with other digests. Go
        // reads SHA-1 (f-ring.asc is all SHA-1 too) but not MD5 or RIPEMD-160.
        let e = fixture!("e.pub.asc");
        verify(fixture!("e-sha1.sig"), e, ARTIFACT).unwrap();
        let md5 = fixture!("e-md5.sig");
        let ripemd160 = fixture!("e-ripemd160.sig");
        for weak in [md5, ripemd160] {
            assert_eq!(
                PgpSignature::parse(weak).unwrap_err(),
                "invalid PGP signature: EOF"
            );
        }
        // NewSignature skips it to the good one; Verify reads it first.
        for (weak, id) in [(md5, 1), (ripemd160, 3)] {
            let binary = [weak, fixture!("e.sig")].concat();
            let armored = armor::encode(SIGNATURE_TYPE, &binary);
            for sig in [binary, armored] {
                assert_eq!(
                    verify(&sig, e, ARTIFACT).unwrap_err(),
                    format!("error reading PGP signature: openpgp: unsupported feature: hash function {id}")
                );
            }
        }
        // Behind a good signature it is never read.
        verify(&[fixture!("e.sig"), md5].concat(), e, ARTIFACT).unwrap();
    }

    #[test]
    fn the_first_packet_must_be_a_signature_go_reads_and_sets_the_time() {
        let e = fixture!("e.pub.asc");
        let good = raw_packets(fixture!("e.sig")).remove(0);
        let sig_with = |at: usize, value: u8| {
            let mut p = good.clone();
            p.body[at] = value;
            p
        };
        let key_with = |body: &[u8]| RawPacket {
            tag: 6,
            body: body.to_vec(),
        };
        let e_key = raw_packets(fixture!("e.pub")).remove(0);
        let mut v6_key = e_key.body.clone();
        v6_key[0] = 6;
        let unsupported = "error reading PGP signature: openpgp: unsupported feature: ";
        let cases = [
            (sig_with(0, 3), format!("{unsupported}signature packet version 3")),
            (
                sig_with(0, 5),
                format!("{unsupported}support for parsing v5 entities is disabled; build with `-tags v5` if needed"),
            ),
            // Go reads version 6 signatures; tlog skips them (see the module docs).
            (sig_with(0, 6), format!("{unsupported}signature packet version 6")),
            (sig_with(2, 99), format!("{unsupported}public key algorithm 99")),
            (sig_with(3, 7), format!("{unsupported}hash function 7")),
            (key_with(&[3, 0, 0, 0, 0, 1]), format!("{unsupported}public key version 3")),
            (
                key_with(&[5, 0, 0, 0, 0, 1]),
                format!("{unsupported}support for parsing v5 entities is disabled; build with `-tags v5` if needed"),
            ),
            (key_with(&[4, 0, 0, 0, 0, 99]), format!("{unsupported}public key type: 99")),
            (key_with(&[4, 0, 0]), "error reading PGP signature: unexpected EOF".to_owned()),
            (key_with(&v6_key), "valid PGP signature was not detected".to_owned()),
            (
                RawPacket { tag: 10, body: b"PGP".to_vec() },
                "valid PGP signature was not detected".to_owned(),
            ),
            (
                RawPacket { tag: 12, body: vec![0, 0] },
                "error reading PGP signature: openpgp: unknown packet type: 12".to_owned(),
            ),
            (
                RawPacket { tag: 60, body: vec![1] },
                "error reading PGP signature: openpgp: unknown packet type: 60".to_owned(),
            ),
        ];
        for (first, want) in cases {
            let sig = join(&[first.clone(), good.clone()]);
            // NewSignature skips the packet; Verify does not.
            let parsed = PgpSignature::parse(&sig).unwrap();
            assert_eq!(
                parsed.verify(&key(e), ARTIFACT).unwrap_err(),
                want,
                "{first:?}"
            );
        }
        // Rekor checks the key at the first signature's time, even when a
        // later one is the key's: a.sig (2023, an unknown key's) makes e,
        // which expired in 2022, expired for e.sig (2020).
        let late_first = [fixture!("a.sig"), fixture!("e.sig")].concat();
        assert_eq!(
            verify(&late_first, e, ARTIFACT).unwrap_err(),
            "openpgp: key expired"
        );
        verify(
            &[fixture!("e.sig"), fixture!("a.sig")].concat(),
            e,
            ARTIFACT,
        )
        .unwrap();
    }

    #[test]
    fn certifications_with_weak_hashes_count_for_nothing() {
        // g: the first user ID's only self-signature is MD5, so Go drops the
        // user ID; the second's is SHA-256.
        let g = key(fixture!("g.pub.asc"));
        assert_eq!(g.subjects(), ["strong-hash@example.com"]);
        let packets = raw_packets(&dearmor(&g.canonical()));
        let tags: Vec<u8> = packets.iter().map(|p| p.tag).collect();
        assert_eq!(tags, [6, 13, 2]);
        assert_eq!(
            packets[1].body,
            b"Tlog Strong Hash <strong-hash@example.com>"
        );
        verify(fixture!("g.sig"), fixture!("g.pub.asc"), ARTIFACT).unwrap();
        // h: its signing subkey's only binding signature is RIPEMD-160.
        let h = fixture!("h.pub.asc");
        assert_eq!(
            PgpKey::parse(h).unwrap_err(),
            "error reading PGP public key: openpgp: invalid data: subkey packet not followed by signature"
        );
        // In one keyring it is skipped; as a block of its own it fails the input.
        let ring = [dearmor(fixture!("g.pub.asc")), dearmor(h)].concat();
        assert_eq!(key(&ring).canonical(), g.canonical());
        let blocks = [fixture!("g.pub.asc"), h].concat();
        assert_eq!(
            PgpKey::parse(&blocks).unwrap_err(),
            PgpKey::parse(h).unwrap_err()
        );
    }

    #[test]
    fn deeply_nested_embedded_signatures_are_refused_on_a_small_stack() {
        use crate::entries::test_support::{nested_pgp_signature, on_small_stack};
        let packet = nested_pgp_signature(5000);
        assert!(packet.len() < 70_000);
        let result = on_small_stack(move || PgpSignature::parse(&packet).map(|_| ()));
        assert_eq!(
            result.unwrap_err(),
            "invalid PGP signature: openpgp: invalid data: embedded signatures nested more than 8 deep"
        );
        // At the limit the nesting is read (and fails only on what follows).
        let at_limit = on_small_stack(|| {
            PgpSignature::parse(&nested_pgp_signature(packets::MAX_EMBEDDED_DEPTH)).map(|_| ())
        });
        assert!(!at_limit.unwrap_err().contains("nested"));
    }

    #[test]
    fn embedded_cross_signatures_are_read_as_go_reads_them() {
        // c's binding signature carries the subkey's cross-signature in its
        // unhashed area, so editing it leaves the binding valid.
        let c = raw_packets(&dearmor(fixture!("c.pub.asc")));
        assert_eq!(c[6].tag, 2);
        let with_embedded = |edit: &dyn Fn(&mut Vec<Vec<u8>>)| {
            let mut packets = c.clone();
            packets[6].body = edit_embedded(&packets[6].body, edit);
            PgpKey::parse(&join(&packets))
        };
        assert!(with_embedded(&|_| {}).is_ok());
        let prefix = "error reading binary PGP public key: openpgp: invalid data: ";
        // An MD5 cross-signature makes the binding unsupported: skipped.
        assert_eq!(
            with_embedded(&|e| e[0][3] = 1).unwrap_err(),
            format!("{prefix}subkey packet not followed by signature")
        );
        assert_eq!(
            with_embedded(&|e| e[0][1] = 0x18).unwrap_err(),
            format!("{prefix}subkey signature invalid: openpgp: invalid data: cross-signature has unexpected type 24")
        );
        assert_eq!(
            with_embedded(&|e| e.push(e[0].clone())).unwrap_err(),
            format!("{prefix}subkey signature invalid: openpgp: invalid data: Cannot have multiple embedded signatures")
        );
    }

    /// A signature body with the embedded signatures of its unhashed area
    /// edited (as a list of their bodies).
    fn edit_embedded(body: &[u8], edit: &dyn Fn(&mut Vec<Vec<u8>>)) -> Vec<u8> {
        let hashed_len = usize::from(u16::from_be_bytes([body[4], body[5]]));
        let rest = &body[6 + hashed_len..];
        let unhashed_len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let mut embedded = Vec::new();
        let mut area = Vec::new();
        for (typ, contents) in subpackets(&rest[2..2 + unhashed_len]).unwrap() {
            if typ == 32 {
                embedded.push(contents.to_vec());
            } else {
                write_subpacket(&mut area, typ, contents);
            }
        }
        edit(&mut embedded);
        for e in &embedded {
            write_subpacket(&mut area, 32, e);
        }
        let mut out = body[..6 + hashed_len].to_vec();
        out.extend_from_slice(&u16::try_from(area.len()).unwrap().to_be_bytes());
        out.extend_from_slice(&area);
        out.extend_from_slice(&rest[2 + unhashed_len..]);
        out
    }

    #[test]
    fn unknown_packets_below_tag_40_stop_the_reader_others_are_skipped() {
        let unknown = |tag: u8| RawPacket {
            tag,
            body: vec![1, 2, 3],
        };
        let a_sig = raw_packets(fixture!("a.sig")).remove(0);
        let b_sig = raw_packets(fixture!("b.sig")).remove(0);
        let a_key = fixture!("a.pub.asc");
        // a.pub: key, user ID, signature, subkey, binding.
        let a = raw_packets(fixture!("a.pub"));
        let with_at = |at: usize, tag: u8| {
            let mut packets = a.clone();
            packets.insert(at, unknown(tag));
            join(&packets)
        };
        for tag in [0, 15, 16, 19, 22, 39] {
            let critical = format!("openpgp: unknown critical packet type: {tag}");
            assert_eq!(
                PgpSignature::parse(&join(&[unknown(tag), a_sig.clone()])).unwrap_err(),
                format!("invalid PGP signature: {critical}")
            );
            // Read past a signature by an unknown key; never after the key's own.
            let after_b = join(&[b_sig.clone(), unknown(tag), a_sig.clone()]);
            assert_eq!(verify(&after_b, a_key, ARTIFACT).unwrap_err(), critical);
            let after_a = join(&[a_sig.clone(), unknown(tag)]);
            verify(&after_a, a_key, ARTIFACT).unwrap();
            // In a key it fails the read, wrapped when a subkey was reading.
            assert_eq!(
                PgpKey::parse(&with_at(3, tag)).unwrap_err(),
                format!("error reading binary PGP public key: {critical}")
            );
            assert_eq!(
                PgpKey::parse(&with_at(5, tag)).unwrap_err(),
                format!("error reading binary PGP public key: openpgp: invalid data: subkey signature invalid: {critical}")
            );
        }
        for tag in [12, 40, 63] {
            let sig = join(&[unknown(tag), a_sig.clone()]);
            assert_eq!(
                verify(&sig, a_key, ARTIFACT).unwrap_err(),
                format!("error reading PGP signature: openpgp: unknown packet type: {tag}")
            );
            verify(&join(&[a_sig.clone(), unknown(tag)]), a_key, ARTIFACT).unwrap();
            for at in [3, 5] {
                assert_eq!(key(&with_at(at, tag)).canonical(), key(a_key).canonical());
            }
        }
    }

    /// `sig` with its issuer and issuer fingerprint subpackets removed from
    /// both areas (the signature bytes no longer match, which is fine here).
    fn strip_issuers(sig: &[u8]) -> Vec<u8> {
        let mut packets = raw_packets(sig);
        let body = &packets[0].body;
        let hashed_len = usize::from(u16::from_be_bytes([body[4], body[5]]));
        let keep = |area: &[u8]| -> Vec<u8> {
            let mut out = Vec::new();
            for (typ, contents) in subpackets(area).unwrap() {
                if !matches!(typ & 0x7f, 16 | 33) {
                    write_subpacket(&mut out, typ, contents);
                }
            }
            out
        };
        let hashed = keep(&body[6..6 + hashed_len]);
        let rest = &body[6 + hashed_len..];
        let unhashed_len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let unhashed = keep(&rest[2..2 + unhashed_len]);
        let mut out = body[..4].to_vec();
        out.extend_from_slice(&u16::try_from(hashed.len()).unwrap().to_be_bytes());
        out.extend_from_slice(&hashed);
        out.extend_from_slice(&u16::try_from(unhashed.len()).unwrap().to_be_bytes());
        out.extend_from_slice(&unhashed);
        out.extend_from_slice(&rest[2 + unhashed_len..]);
        packets[0].body = out;
        join(&packets)
    }

    #[test]
    fn malformed_keys_get_rekors_messages() {
        let refusal = |bytes: &[u8]| PgpKey::parse(bytes).unwrap_err();
        assert_eq!(refusal(b"short"), "unable to read PGP public key: EOF");
        assert_eq!(
            refusal(b"not a key at all, just text"),
            "error reading binary PGP public key: openpgp: invalid data: tag byte does not have MSB set"
        );
        assert_eq!(refusal(fixture!("a.sig.asc")), "invalid PGP type detected");
        // Secret keys are refused, armored (GnuPG's export of e) or not.
        let secret = fixture!("e-secret.asc");
        assert_eq!(refusal(secret), NO_KEYS);
        assert_eq!(refusal(&dearmor(secret)), NO_KEYS);
        // A block that never ends holds no key.
        let a = String::from_utf8(fixture!("a.pub.asc").to_vec()).unwrap();
        let open = a.replace("-----END PGP PUBLIC KEY BLOCK-----", "");
        assert_eq!(refusal(open.as_bytes()), NO_KEYS);
        let broken = a.replacen("\n\n", "\n\nmDME*", 1);
        assert_eq!(
            refusal(broken.as_bytes()),
            "error reading PGP public key: illegal base64 data at input byte 4"
        );
        assert_eq!(
            refusal(&fixture!("a.pub")[..30]),
            "error reading binary PGP public key: unexpected EOF"
        );
        // A signature alone: its first packet is no key.
        assert_eq!(
            refusal(fixture!("a.sig")),
            "error reading binary PGP public key: openpgp: invalid data: first packet was not a public/private key"
        );
        let long = format!(
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n{}\n",
            "A".repeat(70_000)
        );
        assert_eq!(
            refusal(long.as_bytes()),
            "error reading PGP public key: bufio.Scanner: token too long"
        );
    }

    #[test]
    fn keys_that_break_gos_rules_are_skipped_unless_none_is_left() {
        let a = raw_packets(fixture!("a.pub"));
        let b = raw_packets(&dearmor(fixture!("b.pub.asc")));
        // a: key, user ID, self-signature, subkey, binding.
        assert_eq!(
            a.iter().map(|p| p.tag).collect::<Vec<_>>(),
            [6, 13, 2, 14, 2]
        );
        let mut bad_self_sig = a.clone();
        let last = bad_self_sig[2].body.len() - 1;
        bad_self_sig[2].body[last] ^= 1;
        assert_eq!(
            PgpKey::parse(&join(&bad_self_sig)).unwrap_err(),
            "error reading binary PGP public key: openpgp: invalid data: user ID self-signature invalid: openpgp: invalid signature: EdDSA verification failure"
        );
        // With a good key after it, the broken one is dropped.
        let ring = [bad_self_sig.clone(), b.clone()].concat();
        assert_eq!(key(&join(&ring)).canonical(), key(&join(&b)).canonical());
        let mut bad_binding = a.clone();
        let last = bad_binding[4].body.len() - 1;
        bad_binding[4].body[last] ^= 1;
        assert_eq!(
            PgpKey::parse(&join(&bad_binding)).unwrap_err(),
            "error reading binary PGP public key: openpgp: invalid data: subkey signature invalid: openpgp: invalid signature: EdDSA verification failure"
        );
        // A user ID without its self-signature is dropped; none left is an error.
        assert_eq!(
            PgpKey::parse(&join(&[a[0].clone(), a[1].clone()])).unwrap_err(),
            "error reading binary PGP public key: openpgp: invalid data: v4 entity without any identities"
        );
        // A subkey with no binding signature.
        assert_eq!(
            PgpKey::parse(&join(&a[..4])).unwrap_err(),
            "error reading binary PGP public key: openpgp: invalid data: subkey packet not followed by signature"
        );
        // A signature of the wrong type after a user ID (b's binding-free self-sig retyped).
        let mut wrong_type = a.clone();
        wrong_type[2].body[1] = 0x18;
        assert_eq!(
            PgpKey::parse(&join(&wrong_type)).unwrap_err(),
            "error reading binary PGP public key: openpgp: invalid data: user ID signature with wrong type"
        );
        // Marker and unknown packets are skipped; trust packets (tag 12) too.
        let mut with_noise = vec![RawPacket {
            tag: 10,
            body: b"PGP".to_vec(),
        }];
        with_noise.extend(a.iter().cloned());
        with_noise.insert(
            3,
            RawPacket {
                tag: 12,
                body: vec![0, 0],
            },
        );
        assert_eq!(
            key(&join(&with_noise)).canonical(),
            key(fixture!("a.pub")).canonical()
        );
    }

    #[test]
    fn canonical_keys_keep_gos_packet_order_and_newest_binding() {
        // Revocation right after the primary key, as Entity.Serialize writes it.
        let revoked = key(fixture!("a-revoked.pub.asc"));
        let tags: Vec<u8> = raw_packets(&dearmor(&revoked.canonical()))
            .iter()
            .map(|p| p.tag)
            .collect();
        assert_eq!(tags, [6, 2, 13, 2, 14, 2]);
        // Two binding signatures for one subkey: only the newer stays.
        let a = raw_packets(fixture!("a.pub"));
        let mut doubled = a.clone();
        doubled.push(a[4].clone());
        assert_eq!(key(&join(&doubled)).canonical(), key(&join(&a)).canonical());
    }
}
