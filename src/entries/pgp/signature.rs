//! Detached signatures: Rekor's `pgp.Signature` and go-crypto's
//! `CheckDetachedSignature` with `checkMessageSignatureDetails`, at the
//! signature's creation time.

use pgp::types::{KeyDetails as _, PublicKeyTrait as _};

use super::packets::{
    expired, key_id, unknown_tag, Item, Packets, Sig, SigError, KEY_ALGORITHMS, KNOWN_TAGS,
    SIG_BINARY, SIG_TEXT, TAG_MARKER, TAG_PUBLIC_KEY, TAG_PUBLIC_SUBKEY, TAG_SIGNATURE,
};
use super::{revoked, Entity, PgpKey, Subkey, SIGNATURE_TYPE};
use crate::entries::armor;

/// A detached signature, armored or binary.
#[derive(Debug)]
pub(crate) struct PgpSignature {
    armored: bool,
    input: Vec<u8>,
    /// The packets: the armor's body, or the input itself.
    packets: Vec<u8>,
    broken: Option<String>,
}

impl PgpSignature {
    /// Rekor's `NewSignature`: its first packet must be a signature.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, String> {
        let sig = match armor::decode(bytes) {
            Some(block) if block.kind != SIGNATURE_TYPE => {
                return Err("invalid PGP signature provided".to_owned());
            }
            Some(block) => Self {
                armored: true,
                input: bytes.to_vec(),
                packets: block.body,
                broken: block.error,
            },
            None => Self {
                armored: false,
                input: bytes.to_vec(),
                packets: bytes.to_vec(),
                broken: None,
            },
        };
        match Packets::new(&sig.packets, sig.broken.as_deref()).next() {
            None => Err("invalid PGP signature: EOF".to_owned()),
            Some(Err(e)) => Err(format!("invalid PGP signature: {}", e.message())),
            Some(Ok(Item::Signature(_))) => Ok(sig),
            Some(Ok(_)) => Err("valid PGP signature was not detected".to_owned()),
        }
    }

    /// The armored input as given, or the binary input armored.
    pub(crate) fn canonical(&self) -> Vec<u8> {
        if self.armored {
            self.input.clone()
        } else {
            armor::encode(SIGNATURE_TYPE, &self.input)
        }
    }

    /// Rekor's `Verify`: go-crypto `CheckDetachedSignature` at the creation
    /// time of the first packet, a signature.
    pub(crate) fn verify(&self, key: &PgpKey, artifact: &[u8]) -> Result<(), String> {
        let now = self.first_signature()?.created();
        let mut packets = Packets::new(&self.packets, self.broken.as_deref());
        let (sig, candidates) = loop {
            let sig = match packets.next() {
                None => return Err("openpgp: signature made by unknown entity".to_owned()),
                Some(Err(e)) => return Err(e.message().to_owned()),
                Some(Ok(Item::Signature(sig))) => *sig,
                Some(Ok(_)) => {
                    return Err("openpgp: invalid data: non signature packet found".to_owned())
                }
            };
            let Some(issuer) = sig.info.issuer else {
                return Err("openpgp: invalid data: signature doesn't have an issuer".to_owned());
            };
            let candidates = signing_keys(&key.entities, issuer);
            if !candidates.is_empty() {
                break (sig, candidates);
            }
        };
        if sig.typ != SIG_BINARY && sig.typ != SIG_TEXT {
            return Err(format!(
                "openpgp: unsupported feature: unsupported signature type: {}",
                sig.typ
            ));
        }
        let mut error = String::new();
        for candidate in candidates {
            match candidate.verify(&sig, artifact) {
                Ok(()) => return candidate.check_details(&sig, now),
                Err(e) => error = e,
            }
        }
        Err(error)
    }

    /// Rekor's `Verify` reads the first packet with `packet.Read`, which
    /// skips nothing (unlike `NewSignature`'s `Reader.Next`): it must be a
    /// signature that go-crypto reads, so one with a weak hash (MD5,
    /// RIPEMD-160) in front of a good one fails here.
    fn first_signature(&self) -> Result<Sig, String> {
        const NOT_A_SIGNATURE: &str = "valid PGP signature was not detected";
        let read_error = |e: &str| format!("error reading PGP signature: {e}");
        let unsupported = |e: &str| read_error(&format!("openpgp: unsupported feature: {e}"));
        let packet = match armor::next_packet(&self.packets, &mut 0, self.broken.as_deref()) {
            None => return Err(read_error("EOF")),
            Some(Err(e)) => return Err(read_error(e.message())),
            Some(Ok(packet)) => packet,
        };
        let body = &packet.body;
        match packet.tag {
            TAG_SIGNATURE => Sig::parse(body).map_err(|e| match e {
                SigError::Unsupported(e) => unsupported(&e),
                SigError::Frame(e) => read_error(e.message()),
            }),
            // go-crypto `PublicKey.parse`, for the keys `Reader.Next` skipped.
            TAG_PUBLIC_KEY | TAG_PUBLIC_SUBKEY => Err(match body.get(..6) {
                None => read_error("unexpected EOF"),
                Some(&[version, ..]) if !(4..=6).contains(&version) => {
                    unsupported(&format!("public key version {version}"))
                }
                Some(&[5, ..]) => unsupported(
                    "support for parsing v5 entities is disabled; build with `-tags v5` if needed",
                ),
                Some(&[.., algorithm]) if !KEY_ALGORITHMS.contains(&algorithm) => {
                    unsupported(&format!("public key type: {algorithm}"))
                }
                Some(_) => NOT_A_SIGNATURE.to_owned(),
            }),
            tag if !KNOWN_TAGS.contains(&tag) && tag != TAG_MARKER => Err(match unknown_tag(tag) {
                Err(critical) => read_error(critical.message()),
                Ok(()) => read_error(&format!("openpgp: unknown packet type: {tag}")),
            }),
            // Markers, and any packet Go reads that is no signature.
            _ => Err(NOT_A_SIGNATURE.to_owned()),
        }
    }
}

/// A key that may have made a signature: go-crypto's `Key`.
pub(super) struct SigningKey<'a> {
    entity: &'a Entity,
    /// `None` for the primary key.
    subkey: Option<&'a Subkey>,
}

/// go-crypto `KeysByIdUsage(id, KeyFlagSign)`: keys with that ID whose
/// self-signature carries key flags that allow signing.
pub(super) fn signing_keys(entities: &[Entity], id: [u8; 8]) -> Vec<SigningKey<'_>> {
    let mut keys = Vec::new();
    for entity in entities {
        let primary_flags = entity
            .primary_identity()
            .and_then(|i| i.self_signature.as_ref())
            .and_then(|s| s.info.may_sign);
        if key_id(&entity.primary.key) == id && primary_flags == Some(true) {
            keys.push(SigningKey {
                entity,
                subkey: None,
            });
        }
        for subkey in &entity.subkeys {
            if key_id(&subkey.packet.key) == id && subkey.binding.info.may_sign == Some(true) {
                keys.push(SigningKey {
                    entity,
                    subkey: Some(subkey),
                });
            }
        }
    }
    keys
}

impl SigningKey<'_> {
    fn verify(&self, sig: &Sig, artifact: &[u8]) -> Result<(), String> {
        let key_algorithm = match self.subkey {
            None => self.entity.primary.key.algorithm(),
            Some(subkey) => subkey.packet.key.algorithm(),
        };
        if u8::from(key_algorithm) != sig.algorithm {
            return Err(
                "openpgp: invalid argument: public key and signature use different algorithms"
                    .to_owned(),
            );
        }
        let result = match self.subkey {
            None => sig.sig.verify(&self.entity.primary.key, artifact),
            Some(subkey) => sig.sig.verify(&subkey.packet.key, artifact),
        };
        result.map_err(|_| sig.failure())
    }

    /// go-crypto `checkMessageSignatureDetails` at `now`.
    fn check_details(&self, sig: &Sig, now: i64) -> Result<(), String> {
        let identity = self.entity.primary_identity();
        let primary_self = identity.and_then(|i| i.self_signature.as_ref());
        if revoked(&self.entity.revocations, now)
            || self.subkey.is_some_and(|s| revoked(&s.revocations, now))
            || identity.is_some_and(|i| revoked(&i.revocations, now))
        {
            return Err("openpgp: key revoked".to_owned());
        }
        let primary_created = self.entity.primary.key.created_at().timestamp();
        if expired(
            primary_created,
            primary_self.and_then(|s| s.info.key_lifetime),
            now,
        ) {
            return Err("openpgp: key expired".to_owned());
        }
        let mut sigs = vec![Some(sig.clone()), primary_self.cloned()];
        if let Some(subkey) = self.subkey {
            let created = subkey.packet.key.created_at().timestamp();
            if expired(created, subkey.binding.info.key_lifetime, now) {
                return Err("openpgp: key expired".to_owned());
            }
            sigs.push(Some(subkey.binding.clone()));
            sigs.push(subkey.binding.info.embedded.as_deref().cloned());
        }
        if sigs.iter().flatten().any(|s| s.expired_at(now)) {
            return Err("openpgp: signature expired".to_owned());
        }
        Ok(())
    }
}
