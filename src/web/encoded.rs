//! Answers kept as bytes, with their gzip and brotli forms, and the HTTP rules that pick one.
//!
//! A report page, its JSON and CSV, a chart, a metric API answer: each is rendered once per
//! ETag and kept as [`Encoded`] bytes; a compressed form is made the first time a client asks
//! for it and kept beside them. Serving is then a negotiation and a reference-count bump, no
//! rendering and no compression per request (tower-http's compression layer passes answers
//! that carry `Content-Encoding` through untouched).

use std::io::Write;
use std::sync::OnceLock;

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// One answer's bytes, and its compressed forms once asked for.
#[derive(Debug)]
pub struct Encoded {
    content_type: &'static str,
    identity: Bytes,
    gzip: OnceLock<Bytes>,
    br: OnceLock<Bytes>,
}

/// A content coding kpi serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// As rendered.
    Identity,
    /// gzip (RFC 1952).
    Gzip,
    /// Brotli (RFC 7932).
    Br,
}

impl Encoded {
    /// Bytes of `content_type` as rendered.
    pub fn new(content_type: &'static str, identity: impl Into<Bytes>) -> Self {
        Self {
            content_type,
            identity: identity.into(),
            gzip: OnceLock::new(),
            br: OnceLock::new(),
        }
    }

    /// The bytes in `coding`, compressed now if they were not yet.
    pub fn bytes(&self, coding: Coding) -> Bytes {
        match coding {
            Coding::Identity => self.identity.clone(),
            Coding::Gzip => self.gzip.get_or_init(|| gzip(&self.identity)).clone(),
            Coding::Br => self.br.get_or_init(|| brotli(&self.identity)).clone(),
        }
    }

    /// Bytes kept, in every form made so far (for memory accounting).
    pub fn size(&self) -> usize {
        self.identity.len()
            + self.gzip.get().map_or(0, Bytes::len)
            + self.br.get().map_or(0, Bytes::len)
    }

    /// A 200 answer in the coding the request prefers, with `etag` (revalidated each time).
    pub fn respond(&self, request: &HeaderMap, etag: Option<&str>) -> Response {
        let coding = preferred(request);
        let mut response = (StatusCode::OK, self.bytes(coding)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        match coding {
            Coding::Identity => {}
            Coding::Gzip => {
                headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            Coding::Br => {
                headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("br"));
            }
        }
        if let Some(etag) = etag.and_then(|tag| HeaderValue::from_str(tag).ok()) {
            headers.insert(header::ETAG, etag);
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        }
        response
    }
}

/// The coding a request's `Accept-Encoding` prefers among those kpi serves: brotli, then gzip,
/// then the bytes as they are; a coding with `q=0` is refused.
pub fn preferred(request: &HeaderMap) -> Coding {
    let mut best = (Coding::Identity, 0.0_f32);
    for value in request.get_all(header::ACCEPT_ENCODING) {
        let Ok(text) = value.to_str() else { continue };
        for item in text.split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let coding = match name.as_str() {
                "br" => Coding::Br,
                "gzip" | "x-gzip" => Coding::Gzip,
                _ => continue,
            };
            // Higher q wins; at equal q, brotli (smaller) over gzip.
            let better = q > best.1 || (q == best.1 && q > 0.0 && coding == Coding::Br);
            if q > 0.0 && better {
                best = (coding, q);
            }
        }
    }
    best.0
}

/// Whether `If-None-Match` names `etag`, by the weak comparison RFC 9110 prescribes for it:
/// `W/"x"` and `"x"` match each other; `*` matches any.
pub fn none_match(request: &HeaderMap, etag: &str) -> bool {
    let ours = etag.trim_start_matches("W/");
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == ours)
}

/// A 304 answer for `etag`.
pub fn not_modified(etag: &str) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    if let Ok(value) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn gzip(bytes: &[u8]) -> Bytes {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4),
        flate2::Compression::best(),
    );
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    Bytes::from(encoder.finish().unwrap_or_default())
}

fn brotli(bytes: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(bytes.len() / 4);
    {
        // Quality 9 of 11: within a few percent of the smallest, in a fraction of the time.
        let mut writer = brotli::CompressorWriter::new(&mut out, 16 * 1024, 9, 22);
        let _ = writer.write_all(bytes);
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn brotli_is_preferred_then_gzip_and_q_zero_refuses() {
        let pick = |value| preferred(&headers(&[("accept-encoding", value)]));
        assert_eq!(pick("gzip, deflate, br"), Coding::Br);
        assert_eq!(pick("gzip"), Coding::Gzip);
        assert_eq!(pick("br;q=0, gzip"), Coding::Gzip);
        assert_eq!(pick("br;q=0.5, gzip;q=0.8"), Coding::Gzip);
        assert_eq!(pick("identity"), Coding::Identity);
        assert_eq!(pick("gzip;q=0"), Coding::Identity);
        assert_eq!(preferred(&HeaderMap::new()), Coding::Identity);
    }

    #[test]
    fn if_none_match_compares_weakly() {
        let check = |value| none_match(&headers(&[("if-none-match", value)]), "\"abc\"");
        assert!(check("\"abc\""));
        assert!(check("W/\"abc\""));
        assert!(check("\"x\", W/\"abc\""));
        assert!(check("*"));
        assert!(!check("\"abcd\""));
        assert!(!check("W/\"ab\""));
        assert!(!none_match(&HeaderMap::new(), "\"abc\""));
    }

    #[test]
    fn compressed_forms_decode_to_the_same_bytes() {
        use std::io::Read;
        let text = "week,metric,value\n".repeat(500);
        let encoded = Encoded::new("text/csv", text.clone());
        let mut back = String::new();
        flate2::read::GzDecoder::new(&encoded.bytes(Coding::Gzip)[..])
            .read_to_string(&mut back)
            .expect("gzip");
        assert_eq!(back, text);
        let mut back = String::new();
        brotli::Decompressor::new(&encoded.bytes(Coding::Br)[..], 4096)
            .read_to_string(&mut back)
            .expect("brotli");
        assert_eq!(back, text);
        assert!(encoded.bytes(Coding::Br).len() < text.len() / 10);
        assert_eq!(
            encoded.size(),
            text.len() + encoded.bytes(Coding::Gzip).len() + encoded.bytes(Coding::Br).len()
        );
    }
}
