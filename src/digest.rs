//! Short content digests: the hex form of hashes used as data versions, definition hashes,
//! ETags, send keys and message ids. The one place bytes become hex.

/// Formats bytes as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Returns the hex HMAC-SHA256 of `message` under `key` (signed links, webhook signatures).
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    // HMAC takes a key of any length; `new_from_slice` cannot fail for HMAC.
    match Hmac::<sha2::Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(message);
            hex(&mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// Returns the first `bytes` bytes of a SHA-256 digest as hex.
pub fn short_hex(digest: &[u8], bytes: usize) -> String {
    hex(&digest[..bytes.min(digest.len())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_two_digits_per_byte() {
        assert_eq!(hex(&[0, 1, 0xab, 0xff]), "0001abff");
        assert_eq!(short_hex(&[0xde, 0xad, 0xbe, 0xef], 2), "dead");
        assert_eq!(short_hex(&[0xde], 4), "de");
    }
}
