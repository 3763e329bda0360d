//! Cross-site request forgery defences of the page's forms:
//!
//! * every form carries a token, `<time>.<HMAC-SHA1(secret, time)>`: the
//!   secret is random per pyzord process (tokens die with a restart), the
//!   time bounds a token's life to [`TOKEN_LIFE`]; a POST without a valid
//!   token is a 403;
//! * a POST whose `Origin` or `Referer` (when present) names another host
//!   than its `Host`, whose `Origin` is `null`, or whose `Sec-Fetch-Site`
//!   says `cross-site`/`same-site`, is a 403 too, token or not;
//! * no cookies are used at all (so there is no ambient authority to
//!   forge), and the page may not be framed (`frame-ancestors 'none'`).

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

use super::HttpRequest;

/// How long a form's token is accepted, in seconds.
pub(crate) const TOKEN_LIFE: i64 = 2 * 3600;

/// The per-process secret.
pub(crate) struct Csrf {
    secret: [u8; 32],
}

impl std::fmt::Debug for Csrf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Csrf { .. }")
    }
}

impl Csrf {
    /// A fresh random secret.
    pub(crate) fn new() -> Self {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).expect("the operating system's random source");
        Csrf { secret }
    }

    fn mac(&self, time: i64) -> Hmac<Sha1> {
        let mut m = <Hmac<Sha1> as KeyInit>::new_from_slice(&self.secret)
            .expect("HMAC takes a key of any length");
        m.update(b"pyzord whitelist-request form\0");
        m.update(time.to_string().as_bytes());
        m
    }

    /// The token of a form rendered at `now` (epoch seconds).
    pub(crate) fn token(&self, now: i64) -> String {
        let tag = self.mac(now).finalize().into_bytes();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        format!("{now}.{hex}")
    }

    /// Whether `token` was made by this process less than [`TOKEN_LIFE`]
    /// before `now` (compared in constant time).
    pub(crate) fn valid(&self, token: &str, now: i64) -> bool {
        let Some((t, hex)) = token.split_once('.') else {
            return false;
        };
        let Ok(time) = t.parse::<i64>() else {
            return false;
        };
        if !(0..=TOKEN_LIFE).contains(&now.saturating_sub(time)) || hex.len() != 40 {
            return false;
        }
        let Some(tag) = (0..20)
            .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()
        else {
            return false;
        };
        self.mac(time).verify_slice(&tag).is_ok()
    }
}

/// `scheme://host[:port]/…` to `host[:port]`.
fn authority(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    Some(rest.split(['/', '?', '#']).next().unwrap_or(rest))
}

/// Whether `req` may come from this page: `Sec-Fetch-Site`, `Origin` and
/// `Referer`, each checked when present, against `Host`.
pub(crate) fn same_origin(req: &HttpRequest) -> bool {
    if let Some(site) = req.header("sec-fetch-site") {
        if !matches!(site, "same-origin" | "none") {
            return false;
        }
    }
    let host = req.header("host");
    let matches_host = |url: &str| authority(url).is_some_and(|a| Some(a) == host);
    if req.headers.contains_key("origin") && !req.header("origin").is_some_and(matches_host) {
        return false;
    }
    if req.headers.contains_key("referer") && !req.header("referer").is_some_and(matches_host) {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::*;
    use crate::http::tests::request;

    #[test]
    fn tokens_expire_and_do_not_travel() {
        let c = Csrf::new();
        let t = c.token(1000);
        assert!(c.valid(&t, 1000));
        assert!(c.valid(&t, 1000 + TOKEN_LIFE));
        assert!(!c.valid(&t, 1001 + TOKEN_LIFE));
        assert!(!c.valid(&t, 999), "from the future");
        assert!(!Csrf::new().valid(&t, 1000), "another process's");
        let forged = format!("1001{}", &t[4..]);
        assert!(!c.valid(&forged, 1001));
        for bad in [
            "",
            ".",
            "x.y",
            "1000.",
            "1000.zz",
            &format!("{t}0"),
            "1000.é",
        ] {
            assert!(!c.valid(bad, 1000), "{bad:?}");
        }
    }

    #[test]
    fn origin_and_referer_must_name_the_host() {
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut r = request("/request", b"");
            for (k, v) in pairs {
                r.headers.insert(*k, HeaderValue::from_static(v));
            }
            same_origin(&r)
        };
        let host = ("host", "pyzor.example:8080");
        assert!(with(&[host]));
        assert!(with(&[host, ("origin", "http://pyzor.example:8080")]));
        assert!(with(&[host, ("origin", "https://pyzor.example:8080")]));
        assert!(with(&[
            host,
            ("referer", "http://pyzor.example:8080/lookup")
        ]));
        assert!(with(&[host, ("sec-fetch-site", "same-origin")]));
        assert!(!with(&[host, ("origin", "http://evil.example")]));
        assert!(!with(&[host, ("origin", "null")]));
        assert!(!with(&[
            host,
            ("origin", "http://pyzor.example:8080.evil.example")
        ]));
        assert!(!with(&[
            host,
            ("referer", "http://evil.example/pyzor.example:8080")
        ]));
        assert!(!with(&[host, ("sec-fetch-site", "cross-site")]));
        assert!(!with(&[("origin", "http://pyzor.example:8080")]), "no Host");
    }
}
