//! OpenPGP ASCII armor and packet framing as Rekor's Go reads and writes
//! them, for the `pgp` PKI of `rekord` entries.
//!
//! Spec: RFC 4880 §4.2 (packet headers) and §6 (armor). Mirrors
//! ProtonMail go-crypto v1.4.1 (the OpenPGP library sigstore/rekor uses):
//! `openpgp/armor` `Decode` and `Encode`, and `openpgp/packet` `readHeader`
//! and `serializeHeader`.
//!
//! The canonical forms Rekor stores are this encoder's output, so it is
//! byte-for-byte Go's: a `-----BEGIN <type>-----` line, no headers, an empty
//! line, base64 in lines of 64 characters, `=` and the CRC-24 on its own
//! line, and `-----END <type>-----` with no newline after it. Packets are
//! written with new-format headers and the shortest length encoding.
//!
//! Decoding is as lenient as Go's: text before the block is skipped, header
//! lines are ignored, the checksum line is not checked, and the block may
//! end without its `-----END` line.

use super::decoding::{go_stream_base64, to_base64};

const BEGIN: &str = "-----BEGIN ";
const END: &str = "-----END ";
const DASHES: &str = "-----";
/// Go's `bufio.NewReaderSize(in, 100)`: longer lines come back in pieces.
const READER_SIZE: usize = 100;
/// Go's `lineReader` refuses longer base64 lines.
const MAX_BODY_LINE: usize = 96;
/// go-crypto's `ArmorCorrupt`.
const ARMOR_CORRUPT: &str = "openpgp: invalid data: armor invalid";

/// A decoded armor block.
#[derive(Debug)]
pub(super) struct Block {
    /// The text between `-----BEGIN ` and the final five characters.
    pub(super) kind: String,
    /// The bytes decoded before the body ended or broke.
    pub(super) body: Vec<u8>,
    /// Why decoding stopped early, as the Go reader would report it once a
    /// packet needs bytes past [`Self::body`].
    pub(super) error: Option<String>,
}

/// Go's `bufio.Reader.ReadLine` over `input`: lines without their `\n` (or
/// `\r\n`), each with whether it was too long for the reader's buffer.
fn lines(input: &[u8]) -> impl Iterator<Item = (&[u8], bool)> {
    let trimmed = input.strip_suffix(b"\n").unwrap_or(input);
    let mut split = (!input.is_empty()).then(|| trimmed.split(|&b| b == b'\n'));
    std::iter::from_fn(move || split.as_mut()?.next()).map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        (line, line.len() >= READER_SIZE)
    })
}

/// go-crypto `armor.Decode`: the first block of `input`, or `None` when
/// there is none (Go's `io.EOF`, and what `NewSignature` takes for binary).
pub(super) fn decode(input: &[u8]) -> Option<Block> {
    let mut lines = lines(input);
    'block: loop {
        // Skip leading garbage up to a BEGIN line (long lines never are one).
        let kind = loop {
            let (line, long) = lines.next()?;
            let line = line.trim_ascii();
            if !long
                && line.len() > BEGIN.len() + DASHES.len()
                && line.starts_with(BEGIN.as_bytes())
            {
                let kind = &line[BEGIN.len()..line.len() - DASHES.len()];
                break String::from_utf8_lossy(kind).into_owned();
            }
        };
        // Headers, up to an empty line; a line that is no header restarts the search.
        loop {
            let (line, _) = lines.next()?;
            let line = line.trim_ascii();
            if line.is_empty() {
                break;
            }
            if !line.contains(&b':') {
                continue 'block;
            }
        }
        let (text, error) = body_text(&mut lines);
        let (body, b64_error) = go_stream_base64(&text);
        return Some(Block {
            kind,
            body,
            error: error.or(b64_error),
        });
    }
}

/// go-crypto's `lineReader`: the base64 text up to the END or checksum line.
fn body_text<'a>(lines: &mut impl Iterator<Item = (&'a [u8], bool)>) -> (Vec<u8>, Option<String>) {
    let mut text = Vec::new();
    for (line, long) in lines {
        if long {
            return (text, Some(ARMOR_CORRUPT.to_owned()));
        }
        let line = line.trim_ascii();
        if line.starts_with(END.as_bytes()) || (line.len() == 5 && line[0] == b'=') {
            break;
        }
        if line.len() > MAX_BODY_LINE {
            return (text, Some(ARMOR_CORRUPT.to_owned()));
        }
        text.extend_from_slice(line);
    }
    (text, None)
}

/// go-crypto `armor.Encode(out, kind, nil)` with `data` written and closed.
pub(super) fn encode(kind: &str, data: &[u8]) -> Vec<u8> {
    let b64 = to_base64(data);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).unwrap_or_default())
        .collect();
    let crc = crc24(data).to_be_bytes();
    format!(
        "{BEGIN}{kind}{DASHES}\n\n{}\n={}\n{END}{kind}{DASHES}",
        lines.join("\n"),
        to_base64(&crc[1..])
    )
    .into_bytes()
}

/// RFC 4880 §6.1 CRC-24.
fn crc24(data: &[u8]) -> u32 {
    const INIT: u32 = 0x00b7_04ce;
    const POLY: u32 = 0x0186_4cfb;
    let mut crc = INIT;
    for &byte in data {
        crc ^= u32::from(byte) << 16;
        for _ in 0..8 {
            crc <<= 1;
            if crc & 0x0100_0000 != 0 {
                crc ^= POLY;
            }
        }
    }
    crc & 0x00ff_ffff
}

/// One OpenPGP packet: its tag and its body (partial lengths joined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RawPacket {
    pub(super) tag: u8,
    pub(super) body: Vec<u8>,
}

/// Why no packet could be framed, in Go's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FrameError {
    /// `openpgp: invalid data: …`: Go skips to the next key on these.
    Structural(String),
    /// `unexpected EOF` and friends: the whole read fails.
    Fatal(String),
}

impl FrameError {
    pub(super) fn message(&self) -> &str {
        match self {
            Self::Structural(m) | Self::Fatal(m) => m,
        }
    }
}

/// go-crypto `packet.readHeader` and the body reader behind it, over
/// `data`; `broken` is the error past the end of `data` (a base64 error in
/// the armor around it), if any.
pub(super) fn next_packet(
    data: &[u8],
    pos: &mut usize,
    broken: Option<&str>,
) -> Option<Result<RawPacket, FrameError>> {
    if *pos >= data.len() {
        return broken.map(|e| Err(FrameError::Fatal(e.to_owned())));
    }
    let mut reader = Reader {
        data,
        pos: *pos,
        broken,
    };
    let result = reader.packet();
    *pos = reader.pos;
    if result.is_err() {
        *pos = data.len();
    }
    Some(result)
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    broken: Option<&'a str>,
}

impl Reader<'_> {
    fn eof(&self) -> FrameError {
        FrameError::Fatal(self.broken.unwrap_or("unexpected EOF").to_owned())
    }

    fn take(&mut self, n: usize) -> Result<&[u8], FrameError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| self.eof())?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, FrameError> {
        Ok(self.take(1)?[0])
    }

    fn packet(&mut self) -> Result<RawPacket, FrameError> {
        let first = self.byte()?;
        if first & 0x80 == 0 {
            return Err(FrameError::Structural(
                "openpgp: invalid data: tag byte does not have MSB set".to_owned(),
            ));
        }
        if first & 0x40 == 0 {
            // Old format: the tag in bits 5-2, the length type in bits 1-0.
            let tag = (first & 0x3f) >> 2;
            let len = match first & 3 {
                0 => usize::from(self.byte()?),
                1 => usize::from(u16::from_be_bytes([self.byte()?, self.byte()?])),
                2 => self.u32_len()?,
                _ => self.data.len() - self.pos,
            };
            return Ok(RawPacket {
                tag,
                body: self.take(len)?.to_vec(),
            });
        }
        let tag = first & 0x3f;
        let mut body = Vec::new();
        loop {
            let (len, partial) = self.new_length()?;
            body.extend_from_slice(self.take(len)?);
            if !partial {
                return Ok(RawPacket { tag, body });
            }
        }
    }

    fn u32_len(&mut self) -> Result<usize, FrameError> {
        let bytes: [u8; 4] = self.take(4)?.try_into().map_err(|_| self.eof())?;
        usize::try_from(u32::from_be_bytes(bytes)).map_err(|_| self.eof())
    }

    /// A new-format length: the length and whether it is a partial one.
    fn new_length(&mut self) -> Result<(usize, bool), FrameError> {
        let first = self.byte()?;
        Ok(match first {
            0..=191 => (usize::from(first), false),
            192..=223 => {
                let second = self.byte()?;
                (
                    (usize::from(first - 192) << 8) + usize::from(second) + 192,
                    false,
                )
            }
            255 => (self.u32_len()?, false),
            _ => (1 << (first & 0x1f), true),
        })
    }
}

/// go-crypto `serializeHeader`: a new-format header with the shortest length.
pub(super) fn write_packet(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(0xc0 | tag);
    let len = body.len();
    if len < 192 {
        out.push(len as u8);
    } else if len < 8384 {
        let rest = len - 192;
        out.push(192 + (rest >> 8) as u8);
        out.push(rest as u8);
    } else {
        out.push(255);
        out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    }
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc24_matches_rfc_4880_test_values() {
        // The checksum of no data is the initial value; "=twTO" is what
        // every OpenPGP armorer writes for it.
        assert_eq!(crc24(b""), 0x00b7_04ce);
        assert_eq!(to_base64(&crc24(b"").to_be_bytes()[1..]), "twTO");
    }

    #[test]
    fn encode_wraps_at_64_columns_and_ends_without_newline() {
        let data: Vec<u8> = (0..=255).collect();
        let text = String::from_utf8(encode("PGP SIGNATURE", &data)).unwrap();
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(lines[0], "-----BEGIN PGP SIGNATURE-----");
        assert_eq!(lines[1], "");
        // 256 bytes: 344 base64 characters, five full lines and one of 24.
        let b64 = to_base64(&data);
        assert_eq!(lines[2..8].concat(), b64);
        assert!(lines[2..7].iter().all(|l| l.len() == 64));
        assert_eq!(lines[7].len(), 24);
        assert_eq!(lines[8].len(), 5);
        assert!(lines[8].starts_with('='));
        assert_eq!(lines[9], "-----END PGP SIGNATURE-----");
        assert_eq!(lines.len(), 10);
        // Exactly 48 bytes fill one 64-column line; nothing extra follows it.
        let one_line = String::from_utf8(encode("X", &[7; 48])).unwrap();
        assert_eq!(one_line.split('\n').nth(3).unwrap().len(), 5);
        // Decoding gives the bytes back.
        let block = decode(text.as_bytes()).unwrap();
        assert_eq!(
            (block.kind.as_str(), block.body, block.error),
            ("PGP SIGNATURE", data, None)
        );
    }

    #[test]
    fn decode_skips_garbage_and_headers_and_ignores_the_checksum() {
        let text = "junk\n  -----BEGIN PGP SIGNATURE-----  \r\nVersion: x\nComment: y\n\nAQID\r\nBA==\n=AAAA\n-----END PGP SIGNATURE-----\ntrailer";
        let block = decode(text.as_bytes()).unwrap();
        assert_eq!(block.kind, "PGP SIGNATURE");
        assert_eq!(block.body, [1, 2, 3, 4]);
        assert_eq!(block.error, None);
        // No END line: the body runs to the end of the input.
        let open = decode(b"-----BEGIN X-----\n\nAQID").unwrap();
        assert_eq!((open.body, open.error), (vec![1, 2, 3], None));
    }

    #[test]
    fn decode_finds_no_block_where_go_finds_none() {
        assert!(decode(b"").is_none());
        assert!(decode(b"no armor here\n").is_none());
        // A BEGIN line whose headers never end.
        assert!(decode(b"-----BEGIN X-----\nA: b").is_none());
        // A non-header line right after BEGIN restarts the search, which fails.
        assert!(decode(b"-----BEGIN X-----\nAQID\n-----END X-----\n").is_none());
        // A BEGIN line longer than Go's reader buffer is never one.
        let long = format!("-----BEGIN {}-----\n\nAQID\n", "X".repeat(90));
        assert!(decode(long.as_bytes()).is_none());
    }

    #[test]
    fn decode_reports_broken_bodies_with_what_came_before() {
        let bad = decode(b"-----BEGIN X-----\n\nAQID*AAA\n").unwrap();
        assert_eq!(bad.body, [1, 2, 3]);
        assert_eq!(
            bad.error.as_deref(),
            Some("illegal base64 data at input byte 4")
        );
        let long = format!("-----BEGIN X-----\n\nAQID\n{}\n", "A".repeat(97));
        let corrupt = decode(long.as_bytes()).unwrap();
        assert_eq!(
            (corrupt.body, corrupt.error.as_deref()),
            (vec![1, 2, 3], Some(ARMOR_CORRUPT))
        );
        let short = decode(b"-----BEGIN X-----\n\nAQIDBA\n").unwrap();
        assert_eq!(short.error.as_deref(), Some("unexpected EOF"));
    }

    fn frame(data: &[u8]) -> Vec<Result<RawPacket, FrameError>> {
        let mut pos = 0;
        std::iter::from_fn(|| next_packet(data, &mut pos, None)).collect()
    }

    #[test]
    fn packets_are_framed_in_both_header_formats_and_rewritten_in_the_new_one() {
        let body = vec![9u8; 300];
        let mut old = vec![0x99, 0x01, 0x2c];
        old.extend_from_slice(&body);
        let mut new = Vec::new();
        write_packet(&mut new, 6, &body);
        assert_eq!(new[..3], [0xc6, 0xc0, 0x6c]);
        for data in [&old, &new] {
            let packets = frame(data);
            assert_eq!(packets.len(), 1);
            let packet = packets[0].as_ref().unwrap();
            assert_eq!((packet.tag, &packet.body), (6, &body));
        }
        // One-byte and five-byte new-format lengths, and a partial body.
        let mut short = Vec::new();
        write_packet(&mut short, 13, b"id");
        assert_eq!(short, [0xcd, 2, b'i', b'd']);
        let mut huge = Vec::new();
        write_packet(&mut huge, 2, &vec![0; 9000]);
        assert_eq!(huge[..6], [0xc2, 255, 0, 0, 0x23, 0x28]);
        let partial = [0xcb, 0xe1, b'a', b'b', 0x01, b'c'];
        let packet = frame(&partial).remove(0).unwrap();
        assert_eq!((packet.tag, packet.body), (11, b"abc".to_vec()));
        // Old format with an indeterminate length takes the rest.
        let packet = frame(&[0xaf, 1, 2]).remove(0).unwrap();
        assert_eq!((packet.tag, packet.body), (11, vec![1, 2]));
    }

    #[test]
    fn broken_packet_headers_get_gos_errors() {
        assert_eq!(
            frame(b"x").remove(0).unwrap_err(),
            FrameError::Structural(
                "openpgp: invalid data: tag byte does not have MSB set".to_owned()
            )
        );
        assert_eq!(
            frame(&[0xc2, 5, 1]).remove(0).unwrap_err(),
            FrameError::Fatal("unexpected EOF".to_owned())
        );
        let mut pos = 0;
        assert_eq!(
            next_packet(
                &[0xc2, 5, 1],
                &mut pos,
                Some("illegal base64 data at input byte 8")
            ),
            Some(Err(FrameError::Fatal(
                "illegal base64 data at input byte 8".to_owned()
            )))
        );
        assert!(next_packet(&[], &mut 0, None).is_none());
    }
}
