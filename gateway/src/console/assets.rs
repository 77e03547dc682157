//! The console's files, built into the binary from `gateway/console/` (the third-party ones
//! vendored by `scripts/vendor-console`, which pins and verifies them). Nothing is read from
//! disk at run time, so the binary is the whole console.

use std::sync::OnceLock;

use http::{header, HeaderMap, HeaderValue, StatusCode};
use sha2::{Digest, Sha256};

use super::{full, problem, ConsoleResponse};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:literal) => {
        Asset { name: $name, content_type: $type, body: include_bytes!(concat!("../../console/", $name)) }
    };
}

const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("vendor/uPlot.iife.min.js", "text/javascript; charset=utf-8"),
    asset!("vendor/uPlot.min.css", "text/css; charset=utf-8"),
    asset!("vendor/xterm.js", "text/javascript; charset=utf-8"),
    asset!("vendor/xterm.css", "text/css; charset=utf-8"),
    asset!("vendor/addon-canvas.js", "text/javascript; charset=utf-8"),
];

/// Each asset's entity tag: a digest of its bytes, computed once.
fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| ASSETS.iter().map(|a| format!("\"{}\"", &hex::encode(Sha256::digest(a.body))[..16])).collect())
}

/// The asset `name`, or 304 when the browser holds this version already.
pub fn serve(name: &str, request: &HeaderMap) -> ConsoleResponse {
    let Some(index) = ASSETS.iter().position(|a| a.name == name) else {
        return problem(StatusCode::NOT_FOUND, "NotFound", "There is no such file.");
    };
    let (asset, etag) = (&ASSETS[index], &etags()[index]);
    let fresh = request.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v == etag);
    let mut response = if fresh {
        full(StatusCode::NOT_MODIFIED, asset.content_type, "")
    } else {
        full(StatusCode::OK, asset.content_type, asset.body)
    };
    let headers = response.headers_mut();
    // Always revalidated (a new binary may bring new files), cheaply thanks to the tag.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(tag) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, tag);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_served_and_revalidated_by_its_tag() {
        for asset in ASSETS {
            assert!(!asset.body.is_empty(), "{} is empty", asset.name);
            let response = serve(asset.name, &HeaderMap::new());
            assert_eq!(response.status(), StatusCode::OK);
            let tag = response.headers()[header::ETAG].clone();
            let mut again = HeaderMap::new();
            again.insert(header::IF_NONE_MATCH, tag);
            assert_eq!(serve(asset.name, &again).status(), StatusCode::NOT_MODIFIED);
        }
        assert_eq!(serve("../Cargo.toml", &HeaderMap::new()).status(), StatusCode::NOT_FOUND);
    }
}
