//! The OpenPGP packets a keyring or a detached signature is made of, read as
//! go-crypto's `packet.Reader` reads them: which packets are skipped, which
//! subpackets count, and the bytes `Signature.Serialize` writes back.
//!
//! Spec: RFC 4880 §4.3, §5.2 and §5.11. Mirrors ProtonMail go-crypto v1.4.1
//! `openpgp/packet` (`Reader.Next`, `Signature.parse`,
//! `parseSignatureSubpacket`, `Signature.Serialize`, `parseUserId`).

use pgp::packet::{PacketHeader, PublicKey, PublicSubkey, Signature, UserId};
use pgp::types::{PublicKeyTrait, Tag};

use super::super::armor::{self, FrameError, RawPacket};

// Packet tags (RFC 4880 §4.3) and signature types (§5.2.1).
pub(super) const TAG_SIGNATURE: u8 = 2;
pub(super) const TAG_SECRET_KEY: u8 = 5;
pub(super) const TAG_PUBLIC_KEY: u8 = 6;
pub(super) const TAG_SECRET_SUBKEY: u8 = 7;
pub(super) const TAG_MARKER: u8 = 10;
pub(super) const TAG_USER_ID: u8 = 13;
pub(super) const TAG_PUBLIC_SUBKEY: u8 = 14;
/// The tags go-crypto's `packet.Read` parses (the marker, 10, aside).
pub(super) const KNOWN_TAGS: [u8; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 13, 14, 17, 18, 20, 21];
pub(super) const SIG_BINARY: u8 = 0x00;
pub(super) const SIG_TEXT: u8 = 0x01;
pub(super) const SIG_SUBKEY_BINDING: u8 = 0x18;
pub(super) const SIG_KEY_REVOCATION: u8 = 0x20;
pub(super) const SIG_SUBKEY_REVOCATION: u8 = 0x28;
pub(super) const SIG_CERT_REVOCATION: u8 = 0x30;
pub(super) const CERTIFICATIONS: [u8; 5] = [0x10, 0x11, 0x12, 0x13, SIG_CERT_REVOCATION];
/// Public-key algorithms go-crypto parses keys of.
pub(super) const KEY_ALGORITHMS: [u8; 12] = [1, 2, 3, 16, 17, 18, 19, 22, 25, 26, 27, 28];
/// Public-key algorithms go-crypto parses signatures of (and can sign with).
pub(super) const SIGNING_ALGORITHMS: [u8; 7] = [1, 3, 17, 19, 22, 27, 28];
/// Hash algorithms go-crypto v1.4.1 parses version 4 signatures with
/// (`internal/algorithm.HashIdToHashWithSha1`): SHA-1, SHA-256, SHA-384,
/// SHA-512, SHA-224, SHA3-256 and SHA3-512. Any other, MD5 (1) and
/// RIPEMD-160 (3) among them, makes the packet unsupported.
pub(super) const V4_HASHES: [u8; 7] = [2, 8, 9, 10, 11, 12, 14];
pub(super) const SIG_PRIMARY_KEY_BINDING: u8 = 0x19;
pub(super) const REASON_KEY_COMPROMISED: u8 = 2;

/// go-crypto `packet.Read`'s error for a tag it does not parse: an error for
/// the critical ones (below 40, the trust packet's 12 aside), which stop
/// `Reader.Next`; the others it skips.
pub(super) fn unknown_tag(tag: u8) -> Result<(), FrameError> {
    if tag < 40 && tag != 12 {
        return Err(FrameError::Fatal(format!(
            "openpgp: unknown critical packet type: {tag}"
        )));
    }
    Ok(())
}

pub(super) fn structural(msg: impl std::fmt::Display) -> FrameError {
    FrameError::Structural(format!("openpgp: invalid data: {msg}"))
}

/// Why go-crypto's `Signature.parse` refused a packet.
#[derive(Debug)]
pub(super) enum SigError {
    /// An `errors.UnsupportedError` (its text without the `openpgp:
    /// unsupported feature: ` prefix): `Reader.Next` skips the packet.
    Unsupported(String),
    /// Any other error, which `Reader.Next` returns.
    Frame(FrameError),
}

impl From<FrameError> for SigError {
    fn from(e: FrameError) -> Self {
        Self::Frame(e)
    }
}

/// What go-crypto's `packet.Reader.Next` returns, or why it failed.
pub(super) enum Item {
    PublicKey(KeyPacket),
    PublicSubkey(SubkeyPacket),
    SecretKey,
    UserId(UserIdPacket),
    Signature(Box<Sig>),
    /// A packet that parses but that keys do not use.
    Other,
}

/// A primary key packet: its body and its rPGP form.
#[derive(Debug, Clone)]
pub(super) struct KeyPacket {
    pub(super) body: Vec<u8>,
    pub(super) key: PublicKey,
}

#[derive(Debug, Clone)]
pub(super) struct SubkeyPacket {
    pub(super) body: Vec<u8>,
    pub(super) key: PublicSubkey,
}

#[derive(Debug, Clone)]
pub(super) struct UserIdPacket {
    pub(super) body: Vec<u8>,
    pub(super) user_id: UserId,
}

/// A version 4 signature: its Go serialization, the subpackets Go reads and
/// its rPGP form.
#[derive(Debug, Clone)]
pub(super) struct Sig {
    /// `Signature.Serialize`'s body: the hashed area as read, the unhashed
    /// subpackets re-encoded, the signature values without trailing bytes.
    pub(super) body: Vec<u8>,
    pub(super) typ: u8,
    pub(super) algorithm: u8,
    pub(super) info: SubpacketInfo,
    pub(super) sig: Signature,
}

/// Deepest chain of embedded signatures read. A subkey binding holds one
/// primary key binding signature, which holds none (RFC 4880 §5.2.3.26):
/// real keys nest one deep. go-crypto recurses without a limit; here each
/// level is a stack frame, and one packet can hold about 5,000 levels, so
/// deeper nesting is refused before it can exhaust a thread's stack.
pub(super) const MAX_EMBEDDED_DEPTH: usize = 8;

/// The subpackets go-crypto interprets: all of the hashed area, and the
/// issuer, issuer fingerprint and embedded signature of the unhashed one.
#[derive(Debug, Clone, Default)]
pub(super) struct SubpacketInfo {
    pub(super) created: Option<i64>,
    pub(super) sig_lifetime: Option<u32>,
    pub(super) key_lifetime: Option<u32>,
    pub(super) issuer: Option<[u8; 8]>,
    pub(super) issuer_fingerprint: Option<Vec<u8>>,
    pub(super) primary_user_id: bool,
    /// `Some` when the key flags subpacket is present: whether it allows signing.
    pub(super) may_sign: Option<bool>,
    pub(super) revocation_reason: Option<u8>,
    /// The embedded signature (a primary key binding signature).
    pub(super) embedded: Option<Box<Sig>>,
}

impl Sig {
    /// go-crypto `Signature.parse` for version 4. Versions 2, 3 and 5 are
    /// unsupported in Go too; version 6 (Go reads it, for version 6 keys)
    /// is unsupported here, like those keys.
    pub(super) fn parse(body: &[u8]) -> Result<Self, SigError> {
        Self::parse_nested(body, 0)
    }

    /// [`Self::parse`] of a signature embedded `depth` levels deep.
    fn parse_nested(body: &[u8], depth: usize) -> Result<Self, SigError> {
        if depth > MAX_EMBEDDED_DEPTH {
            return Err(structural(format!(
                "embedded signatures nested more than {MAX_EMBEDDED_DEPTH} deep"
            ))
            .into());
        }
        let truncated = || FrameError::Fatal("unexpected EOF".to_owned());
        let version = *body.first().ok_or_else(truncated)?;
        match version {
            4 => {}
            5 => {
                return Err(SigError::Unsupported(
                    "support for parsing v5 entities is disabled; build with `-tags v5` if needed"
                        .to_owned(),
                ))
            }
            _ => {
                return Err(SigError::Unsupported(format!(
                    "signature packet version {version}"
                )))
            }
        }
        // Type, public-key algorithm, hash algorithm, hashed area length.
        let fixed = body.get(1..6).ok_or_else(truncated)?;
        let (algorithm, hash) = (fixed[1], fixed[2]);
        if !SIGNING_ALGORITHMS.contains(&algorithm) {
            return Err(SigError::Unsupported(format!(
                "public key algorithm {algorithm}"
            )));
        }
        if !V4_HASHES.contains(&hash) {
            return Err(SigError::Unsupported(format!("hash function {hash}")));
        }
        Self::parse_v4(body, algorithm, depth)
    }

    fn parse_v4(body: &[u8], algorithm: u8, depth: usize) -> Result<Self, SigError> {
        let truncated = || FrameError::Fatal("unexpected EOF".to_owned());
        let mut info = SubpacketInfo::default();
        let hashed_len = usize::from(u16::from_be_bytes([
            *body.get(4).ok_or_else(truncated)?,
            *body.get(5).ok_or_else(truncated)?,
        ]));
        let hashed_end = 6 + hashed_len;
        let hashed = body.get(6..hashed_end).ok_or_else(truncated)?;
        let unhashed_len = usize::from(u16::from_be_bytes([
            *body.get(hashed_end).ok_or_else(truncated)?,
            *body.get(hashed_end + 1).ok_or_else(truncated)?,
        ]));
        let unhashed_start = hashed_end + 2;
        let unhashed = body
            .get(unhashed_start..unhashed_start + unhashed_len)
            .ok_or_else(truncated)?;
        let hashed_subpackets = subpackets(hashed)?;
        let unhashed_subpackets = subpackets(unhashed)?;
        for (typ, contents) in &hashed_subpackets {
            info.read(*typ, contents, true, depth)?;
        }
        for (typ, contents) in &unhashed_subpackets {
            info.read(*typ, contents, false, depth)?;
        }
        if info.created.is_none() {
            return Err(structural("no creation time in signature").into());
        }
        // Hash tag, then the signature values.
        let values_start = unhashed_start + unhashed_len + 2;
        let values_len =
            signature_values_len(algorithm, body.get(values_start..).ok_or_else(truncated)?)
                .ok_or_else(truncated)?;
        let mut out = body[..hashed_end].to_vec();
        let mut area = Vec::new();
        for (typ, contents) in &unhashed_subpackets {
            write_subpacket(&mut area, *typ, contents);
        }
        out.extend_from_slice(&u16::try_from(area.len()).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(&area);
        out.extend_from_slice(&body[unhashed_start + unhashed_len..values_start + values_len]);
        let header =
            PacketHeader::new_fixed(Tag::Signature, u32::try_from(body.len()).unwrap_or(0));
        let sig = Signature::try_from_reader(header, body).map_err(structural)?;
        Ok(Self {
            body: out,
            typ: body[1],
            algorithm,
            info,
            sig,
        })
    }

    pub(super) fn created(&self) -> i64 {
        self.info.created.unwrap_or_default()
    }

    /// go-crypto `Signature.SigExpired`.
    pub(super) fn expired_at(&self, now: i64) -> bool {
        expired(self.created(), self.info.sig_lifetime, now)
    }

    /// go-crypto `CheckKeyIdOrFingerprint`.
    pub(super) fn issued_by(&self, key: &impl PublicKeyTrait) -> bool {
        match &self.info.issuer_fingerprint {
            Some(fp) if fp.len() >= 20 => fp.as_slice() == key.fingerprint().as_bytes(),
            _ => self.info.issuer == Some(key_id(key)),
        }
    }

    /// go-crypto's verifier error for a signature that does not verify.
    pub(super) fn failure(&self) -> String {
        let name = match self.algorithm {
            1 | 3 => "RSA",
            17 => "DSA",
            19 => "ECDSA",
            22 => "EdDSA",
            27 => "Ed25519",
            _ => "Ed448",
        };
        format!("openpgp: invalid signature: {name} verification failure")
    }
}

pub(super) fn key_id(key: &impl PublicKeyTrait) -> [u8; 8] {
    let id = key.key_id();
    id.as_ref().try_into().unwrap_or_default()
}

/// go-crypto `SigExpired` and `KeyExpired`: created after `now`, or a
/// non-zero lifetime that ended before it.
pub(super) fn expired(created: i64, lifetime: Option<u32>, now: i64) -> bool {
    created > now || lifetime.is_some_and(|secs| secs != 0 && now > created + i64::from(secs))
}

impl SubpacketInfo {
    /// go-crypto `parseSignatureSubpacket` for the subpackets used here.
    fn read(
        &mut self,
        typ: u8,
        contents: &[u8],
        hashed: bool,
        depth: usize,
    ) -> Result<(), SigError> {
        let kind = typ & 0x7f;
        if !hashed && !matches!(kind, 16 | 32 | 33) {
            return Ok(());
        }
        let u32_of = |what: &str| -> Result<u32, FrameError> {
            let bytes: [u8; 4] = contents
                .try_into()
                .map_err(|_| structural(format!("{what} subpacket with bad length")))?;
            Ok(u32::from_be_bytes(bytes))
        };
        match kind {
            2 => self.created = Some(i64::from(u32_of("signature creation time")?)),
            3 => self.sig_lifetime = Some(u32_of("expiration")?),
            9 => self.key_lifetime = Some(u32_of("key expiration")?),
            16 => {
                let id: [u8; 8] = contents
                    .try_into()
                    .map_err(|_| structural("issuer subpacket with bad length"))?;
                self.issuer = Some(id);
            }
            25 => self.primary_user_id = contents.first().is_some_and(|&b| b != 0),
            27 => self.may_sign = Some(contents.first().is_some_and(|&b| b & 0x02 != 0)),
            29 => {
                let reason = contents
                    .first()
                    .ok_or_else(|| structural("empty revocation reason subpacket"))?;
                self.revocation_reason = Some(*reason);
            }
            32 => {
                // Parsed as it is read: an unsupported one (a weak hash, say)
                // makes the signature around it unsupported.
                if self.embedded.is_some() {
                    return Err(structural("Cannot have multiple embedded signatures").into());
                }
                let embedded = Sig::parse_nested(contents, depth + 1)?;
                if embedded.typ != SIG_PRIMARY_KEY_BINDING {
                    return Err(structural(format!(
                        "cross-signature has unexpected type {}",
                        embedded.typ
                    ))
                    .into());
                }
                self.embedded = Some(Box::new(embedded));
            }
            33 => {
                let (&version, fp) = contents
                    .split_first()
                    .ok_or_else(|| structural("empty issuer fingerprint subpacket"))?;
                if (version >= 5 && fp.len() != 32) || (version < 5 && fp.len() != 20) {
                    return Err(structural("bad fingerprint length").into());
                }
                let id = if version >= 5 { &fp[..8] } else { &fp[12..20] };
                self.issuer = id.try_into().ok();
                self.issuer_fingerprint = Some(fp.to_vec());
            }
            _ => {}
        }
        Ok(())
    }
}

/// The subpackets of one area: each type byte (critical bit included) and
/// its contents.
pub(super) fn subpackets(mut area: &[u8]) -> Result<Vec<(u8, &[u8])>, FrameError> {
    let truncated = || structural("signature subpacket truncated");
    let mut out = Vec::new();
    while let Some(&first) = area.first() {
        let (len, skip) = match first {
            0..=191 => (usize::from(first), 1),
            192..=254 => {
                let second = *area.get(1).ok_or_else(truncated)?;
                (
                    (usize::from(first - 192) << 8) + usize::from(second) + 192,
                    2,
                )
            }
            255 => {
                let bytes: [u8; 4] = area
                    .get(1..5)
                    .ok_or_else(truncated)?
                    .try_into()
                    .map_err(|_| truncated())?;
                (
                    usize::try_from(u32::from_be_bytes(bytes)).map_err(|_| truncated())?,
                    5,
                )
            }
        };
        let subpacket = area.get(skip..skip + len).ok_or_else(truncated)?;
        let (&typ, contents) = subpacket
            .split_first()
            .ok_or_else(|| structural("zero length signature subpacket"))?;
        out.push((typ, contents));
        area = &area[skip + len..];
    }
    Ok(out)
}

/// go-crypto `serializeSubpackets` for one subpacket, with its length
/// encoding (two octets up to 16319, a quirk kept for byte equality).
pub(super) fn write_subpacket(out: &mut Vec<u8>, typ: u8, contents: &[u8]) {
    let len = contents.len() + 1;
    if len < 192 {
        out.push(len as u8);
    } else if len < 16320 {
        let rest = len - 192;
        out.push(((rest >> 8) + 192) as u8);
        out.push(rest as u8);
    } else {
        out.push(255);
        out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    }
    out.push(typ);
    out.extend_from_slice(contents);
}

/// The length of the signature values: one MPI (RSA), two (DSA, ECDSA,
/// EdDSA) or fixed bytes (Ed25519, Ed448).
pub(super) fn signature_values_len(algorithm: u8, values: &[u8]) -> Option<usize> {
    let mpi = |at: usize| -> Option<usize> {
        let bits = u16::from_be_bytes([*values.get(at)?, *values.get(at + 1)?]);
        let len = 2 + usize::from(bits).div_ceil(8);
        (at + len <= values.len()).then_some(len)
    };
    let len = match algorithm {
        1 | 3 => mpi(0)?,
        27 => 64,
        28 => 114,
        _ => {
            let first = mpi(0)?;
            first + mpi(first)?
        }
    };
    (len <= values.len()).then_some(len)
}

/// go-crypto's `packet.Reader` over one keyring or signature: packets in
/// order, unknown and unsupported ones skipped, one packet of look-back.
pub(super) struct Packets<'a> {
    pub(super) data: &'a [u8],
    pub(super) pos: usize,
    pub(super) broken: Option<&'a str>,
    pub(super) unread: Option<Item>,
    /// Whether a secret key packet went by.
    pub(super) saw_secret: bool,
}

impl<'a> Packets<'a> {
    pub(super) fn new(data: &'a [u8], broken: Option<&'a str>) -> Self {
        Self {
            data,
            pos: 0,
            broken,
            unread: None,
            saw_secret: false,
        }
    }

    pub(super) fn unread(&mut self, item: Item) {
        self.unread = Some(item);
    }

    pub(super) fn next(&mut self) -> Option<Result<Item, FrameError>> {
        if let Some(item) = self.unread.take() {
            return Some(Ok(item));
        }
        loop {
            let packet = match armor::next_packet(self.data, &mut self.pos, self.broken)? {
                Ok(packet) => packet,
                Err(e) => return Some(Err(e)),
            };
            if let Some(item) = parse_packet(packet).transpose() {
                self.saw_secret |= matches!(item, Ok(Item::SecretKey));
                return Some(item);
            }
        }
    }
}

/// One packet as go-crypto's `packet.Read` sees it; `Ok(None)` for the
/// packets `Reader.Next` skips (non-critical unknown tags, markers,
/// unsupported versions and algorithms).
pub(super) fn parse_packet(packet: RawPacket) -> Result<Option<Item>, FrameError> {
    let RawPacket { tag, body } = packet;
    if tag == TAG_MARKER {
        return Ok(None);
    }
    if !KNOWN_TAGS.contains(&tag) {
        return unknown_tag(tag).map(|()| None);
    }
    let supported_key =
        body.first() == Some(&4) && body.get(5).is_some_and(|a| KEY_ALGORITHMS.contains(a));
    let len = u32::try_from(body.len()).unwrap_or(0);
    Ok(Some(match tag {
        TAG_SIGNATURE => match Sig::parse(&body) {
            Ok(sig) => Item::Signature(Box::new(sig)),
            Err(SigError::Unsupported(_)) => return Ok(None),
            Err(SigError::Frame(e)) => return Err(e),
        },
        TAG_SECRET_KEY | TAG_SECRET_SUBKEY => Item::SecretKey,
        TAG_PUBLIC_KEY if supported_key => {
            let key =
                PublicKey::try_from_reader(PacketHeader::new_fixed(Tag::PublicKey, len), &body[..])
                    .map_err(structural)?;
            Item::PublicKey(KeyPacket { body, key })
        }
        TAG_PUBLIC_SUBKEY if supported_key => {
            let header = PacketHeader::new_fixed(Tag::PublicSubkey, len);
            let key = PublicSubkey::try_from_reader(header, &body[..]).map_err(structural)?;
            Item::PublicSubkey(SubkeyPacket { body, key })
        }
        TAG_PUBLIC_KEY | TAG_PUBLIC_SUBKEY => return Ok(None),
        TAG_USER_ID => {
            let header = PacketHeader::new_fixed(Tag::UserId, len);
            let user_id = UserId::try_from_reader(header, &body[..]).map_err(structural)?;
            Item::UserId(UserIdPacket { body, user_id })
        }
        _ => Item::Other,
    }))
}

/// The user ID's e-mail as go-crypto `parseUserId` finds it: between `<`
/// and `>` (or the end), else the name when it holds an `@`. Its states:
/// 1 name, 2-3 comment, 4 after the comment, 5-6 e-mail, 7 after it; the
/// delimiters are ASCII, so walking bytes is walking Go's runes.
pub(super) fn user_id_email(id: &[u8]) -> Option<String> {
    let mut state = 0u8;
    let (mut name_end, mut email_start, mut email_end) = (0, 0, 0);
    for (i, &b) in id.iter().enumerate() {
        // "Entering" states take the next character and look at it again.
        match state {
            0 => state = 1,
            2 => state = 3,
            5 => (state, email_start) = (6, i),
            _ => {}
        }
        match (state, b) {
            (1, b'(') => (state, name_end) = (2, i),
            (1, b'<') => (state, name_end) = (5, i),
            (3, b')') => state = 4,
            (4, b'<') => state = 5,
            (6, b'>') => (state, email_end) = (7, i),
            _ => {}
        }
    }
    match state {
        1 => name_end = id.len(),
        6 => email_end = id.len(),
        _ => {}
    }
    let email = std::str::from_utf8(&id[email_start..email_end])
        .ok()?
        .trim();
    if !email.is_empty() {
        return Some(email.to_owned());
    }
    let name = std::str::from_utf8(&id[..name_end]).ok()?.trim();
    name.contains('@').then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_emails_are_found_as_go_parses_them() {
        let cases: [(&[u8], Option<&str>); 8] = [
            (b"Name (comment) <a@b.example>", Some("a@b.example")),
            (b"Name <a@b.example", Some("a@b.example")),
            (b"  a@b.example  ", Some("a@b.example")),
            (b"Name (x <y@z.example>) <a@b.example>", Some("a@b.example")),
            (b"Name <>", None),
            (b"Just A Name", None),
            (b"", None),
            (
                b"N\xc3\xa4me <\xc3\xa4@b.example>",
                Some("\u{e4}@b.example"),
            ),
        ];
        for (id, email) in cases {
            assert_eq!(user_id_email(id).as_deref(), email, "{id:?}");
        }
    }
}
