//! Redundant audio (RFC 2198): each packet carries the current Opus frame
//! and copies of the one or two before it, so a packet lost on the way is
//! rebuilt from the next one that arrives. At 30 % random loss, two copies
//! leave under 3 % of frames missing, against 30 % without; Opus's own FEC
//! only carries a coarse copy of one frame.
//!
//! ```
//! use beckon_media::rtp::red;
//! let packet = red::encode(111, b"now", &[(960, b"before")]).unwrap();
//! let (older, primary) = red::decode(&packet).unwrap();
//! assert_eq!((older[0].0, older[0].1.as_slice(), primary), (960, &b"before"[..], &b"now"[..]));
//! ```

/// The payload type RED is negotiated at, for Opus.
pub const RED_PT: u8 = 63;

/// Longest block RED can describe.
const MAX_BLOCK: usize = 1023;
/// Largest timestamp offset RED can describe.
const MAX_OFFSET: u32 = (1 << 14) - 1;

/// A RED payload: `older` blocks (timestamp offset back from the primary,
/// data), oldest first, then the primary frame of payload type `pt`.
/// `None` when a block is too big or too old to describe.
pub fn encode(pt: u8, primary: &[u8], older: &[(u32, &[u8])]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(
        1 + older.len() * 4 + primary.len() + older.iter().map(|o| o.1.len()).sum::<usize>(),
    );
    for &(offset, data) in older {
        if data.len() > MAX_BLOCK || offset > MAX_OFFSET {
            return None;
        }
        let word = (u32::from(pt & 0x7f) | 0x80) << 24 | offset << 10 | data.len() as u32;
        out.extend_from_slice(&word.to_be_bytes());
    }
    out.push(pt & 0x7f);
    for &(_, data) in older {
        out.extend_from_slice(data);
    }
    out.extend_from_slice(primary);
    Some(out)
}

/// Earlier frames carried in a RED payload: (timestamp offset back from the
/// primary, data), oldest first.
pub type Older = Vec<(u32, Vec<u8>)>;

/// Splits a RED payload: the older blocks and the primary frame. `None`
/// when it does not parse.
pub fn decode(payload: &[u8]) -> Option<(Older, &[u8])> {
    let mut headers = Vec::new();
    let mut at = 0;
    loop {
        let first = *payload.get(at)?;
        if first & 0x80 == 0 {
            at += 1;
            break;
        }
        let word = u32::from_be_bytes(payload.get(at..at + 4)?.try_into().ok()?);
        headers.push(((word >> 10) & MAX_OFFSET, (word & 0x3ff) as usize));
        at += 4;
        if headers.len() > 8 {
            return None;
        }
    }
    let mut older = Vec::with_capacity(headers.len());
    for (offset, len) in headers {
        older.push((offset, payload.get(at..at + len)?.to_vec()));
        at += len;
    }
    Some((older, &payload[at..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip() {
        let p = encode(111, &[9; 80], &[(1920, &[1; 70]), (960, &[2; 75])]).unwrap();
        assert_eq!(p.len(), 4 + 4 + 1 + 70 + 75 + 80);
        let (older, primary) = decode(&p).unwrap();
        assert_eq!(older, vec![(1920, vec![1; 70]), (960, vec![2; 75])]);
        assert_eq!(primary, &[9; 80]);
        // No redundancy: one header byte and the frame.
        assert_eq!(encode(111, &[5; 3], &[]).unwrap(), vec![111, 5, 5, 5]);
    }

    #[test]
    fn what_cannot_be_described_or_parsed_is_refused() {
        assert!(encode(111, &[0], &[(960, &[0; 1024])]).is_none());
        assert!(encode(111, &[0], &[(1 << 14, &[0])]).is_none());
        assert!(decode(&[]).is_none());
        assert!(decode(&[0x80 | 111, 0, 0]).is_none(), "a header cut short");
        // A header saying 100 bytes where there are 2.
        let mut p = ((0xef_u32) << 24 | 960 << 10 | 100).to_be_bytes().to_vec();
        p.extend_from_slice(&[111, 1, 2]);
        assert!(decode(&p).is_none());
    }
}
