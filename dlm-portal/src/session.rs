//! Server-side sessions, their CSRF tokens, and the cookies that carry them.
//!
//! A login makes a session: a random 128-bit id (from the kernel's generator), kept here with
//! the user's name, the session's own 128-bit CSRF token and the time of its last page. The
//! browser holds only the id, in the cookie [`SESSION_COOKIE`] (`HttpOnly`, `SameSite=Strict`,
//! `Path=/`, `Secure` when the portal is told it is behind HTTPS). A session ends when it has
//! been idle for longer than the portal's idle time, at logout, or when the portal stops
//! (nothing is written to disk). Polling (the pages' script) does not count as activity: a
//! forgotten tab does not keep a session alive.
//!
//! Every form that changes something carries the session's CSRF token in a hidden field
//! `csrf`; [`tokens_match`] compares it in constant time. The login form, which has no
//! session yet, carries a token of its own that must match the cookie [`LOGIN_COOKIE`] set with
//! the form (a double submit), so that no other site can log a browser in.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cookie that holds the session's id.
pub const SESSION_COOKIE: &str = "dlm_portal_session";

/// The cookie that holds the login form's token until the login.
pub const LOGIN_COOKIE: &str = "dlm_portal_login";

/// How long a login form's token lasts.
pub const LOGIN_FORM_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// 128 random bits: a session's id or a CSRF token.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Token([u8; 16]);

impl Token {
    /// A new token from the kernel's random generator.
    pub fn random() -> Result<Token, getrandom::Error> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)?;
        Ok(Token(bytes))
    }

    /// The token written as 32 lowercase hex digits, exactly.
    pub fn parse(text: &str) -> Option<Token> {
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut bytes = [0u8; 16];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Token(bytes))
    }
}

/// 32 lowercase hex digits.
impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Not the token itself: a debug print must not leak a session.
impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(…)")
    }
}

/// Whether `given` (a form's field) is `expected`, compared in constant time.
pub fn tokens_match(expected: &Token, given: &str) -> bool {
    let expected = expected.to_string();
    if given.len() != expected.len() {
        return false;
    }
    expected.bytes().zip(given.bytes()).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
}

/// What a request learns of its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub id: Token,
    pub user: String,
    pub csrf: Token,
}

#[derive(Debug)]
struct Session {
    user: String,
    csrf: Token,
    last_seen: Instant,
}

/// Every open session.
#[derive(Debug)]
pub struct Sessions {
    idle: Duration,
    open: Mutex<HashMap<Token, Session>>,
}

impl Sessions {
    /// Sessions that end after `idle` without a page.
    pub fn new(idle: Duration) -> Self {
        Sessions { idle, open: Mutex::new(HashMap::new()) }
    }

    pub fn idle(&self) -> Duration {
        self.idle
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Token, Session>> {
        self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new session of `user` (after its login), started `now`; ended sessions go.
    pub fn create(&self, user: &str, now: Instant) -> Result<SessionView, getrandom::Error> {
        let (id, csrf) = (Token::random()?, Token::random()?);
        let mut open = self.lock();
        open.retain(|_, s| now.saturating_duration_since(s.last_seen) <= self.idle);
        open.insert(id, Session { user: user.to_string(), csrf, last_seen: now });
        Ok(SessionView { id, user: user.to_string(), csrf })
    }

    /// The session `id` if it is open at `now`; an expired one ends here. `touch`: this
    /// request is the user's (a page or a form), so the idle time starts again; a poll is not.
    pub fn get(&self, id: &Token, now: Instant, touch: bool) -> Option<SessionView> {
        let mut open = self.lock();
        let session = open.get_mut(id)?;
        if now.saturating_duration_since(session.last_seen) > self.idle {
            open.remove(id);
            return None;
        }
        if touch {
            session.last_seen = session.last_seen.max(now);
        }
        Some(SessionView { id: *id, user: session.user.clone(), csrf: session.csrf })
    }

    /// Logout.
    pub fn remove(&self, id: &Token) {
        self.lock().remove(id);
    }

    /// How many sessions are kept (expired ones included until they are next looked at).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value.trim_matches('"'))
        })
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, `Path=/`, `Secure` if `secure`;
/// `max_age` `Some(0)` deletes the cookie, `None` makes it last until the browser closes.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<Duration>) -> String {
    let mut cookie = format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/");
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={}", age.as_secs()));
    }
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{header, HeaderMap, HeaderValue};

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn tokens_are_random_hex_and_parse_back() {
        let (a, b) = (Token::random().unwrap(), Token::random().unwrap());
        assert_ne!(a, b);
        let text = a.to_string();
        assert_eq!(text.len(), 32);
        assert!(text.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(Token::parse(&text), Some(a));
        assert_eq!(format!("{a:?}"), "Token(…)");
        for bad in ["", "abc", &text[1..], &format!("{text}0"), &text.replace(&text[..1], "g")] {
            assert_eq!(Token::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_session_expires_after_its_idle_time_without_pages() {
        let sessions = Sessions::new(30 * MINUTE);
        let t0 = Instant::now();
        let s = sessions.create("alice", t0).unwrap();
        assert_eq!(sessions.get(&s.id, t0 + 29 * MINUTE, true).map(|v| v.user), Some("alice".into()));
        // The page at 29 min started the idle time again: 58 min is 29 min after it.
        assert!(sessions.get(&s.id, t0 + 58 * MINUTE, false).is_some());
        // Polls do not: 60 min is 31 min after the last page.
        assert!(sessions.get(&s.id, t0 + 60 * MINUTE, true).is_none());
        // And an expired session is gone, even if asked about at an earlier time.
        assert!(sessions.get(&s.id, t0 + 30 * MINUTE, true).is_none());
        assert!(sessions.is_empty());
    }

    #[test]
    fn logout_ends_a_session_and_logins_sweep_expired_ones() {
        let sessions = Sessions::new(MINUTE);
        let t0 = Instant::now();
        let a = sessions.create("alice", t0).unwrap();
        let b = sessions.create("bob", t0).unwrap();
        assert_ne!(a.id, b.id);
        assert_ne!(a.csrf, b.csrf);
        sessions.remove(&a.id);
        assert!(sessions.get(&a.id, t0, true).is_none());
        assert_eq!(sessions.len(), 1);
        let _c = sessions.create("carol", t0 + 2 * MINUTE).unwrap();
        assert_eq!(sessions.len(), 1, "bob's expired session was swept");
        assert!(sessions.get(&Token::random().unwrap(), t0, true).is_none());
    }

    #[test]
    fn csrf_tokens_must_match_exactly() {
        let token = Token::random().unwrap();
        let text = token.to_string();
        assert!(tokens_match(&token, &text));
        assert!(!tokens_match(&token, ""));
        assert!(!tokens_match(&token, &text.to_uppercase()));
        assert!(!tokens_match(&token, &text[..31]));
        assert!(!tokens_match(&token, &Token::random().unwrap().to_string()));
    }

    #[test]
    fn cookies_are_read_from_every_header_and_written_strict() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("theme=dark; dlm_portal_session=abc"));
        headers.append(header::COOKIE, HeaderValue::from_static("dlm_portal_login=\"xyz\""));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, LOGIN_COOKIE), Some("xyz"));
        assert_eq!(cookie(&headers, "missing"), None);
        assert_eq!(set_cookie("a", "b", false, None), "a=b; HttpOnly; SameSite=Strict; Path=/");
        assert_eq!(
            set_cookie("a", "", true, Some(Duration::ZERO)),
            "a=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0; Secure"
        );
    }
}
