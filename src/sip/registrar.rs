//! The registrar agents' phones REGISTER with (RFC 3261 §10.3), sans-IO.
//!
//! - **Authentication** (RFC 3261 §22.4, RFC 8760, RFC 7616): every
//!   REGISTER, queries included, needs digest credentials for our realm.
//!   Without usable ones the answer is 401 with one `WWW-Authenticate` per
//!   configured algorithm, in order (SHA-256 first, MD5 for old phones:
//!   RFC 8760 §2.4, the UAC takes the first it supports). Nonces are the
//!   stateless HMAC nonces of [`DigestServer`]; an expired nonce with the
//!   right password gets 401 `stale=true`. The credentials' username must
//!   be the To AOR's user part (no third-party registration, §10.2): else
//!   403. A wrong password and an unknown user get the same 403 after the
//!   same hashing. [`Registrar::authenticate`] does the same for other
//!   requests from agents' phones with 407 / `Proxy-Authenticate`.
//! - **Lockout**: `lockout_failures` failures within `lockout_window` from
//!   one source IP, or for one username (known or not), lock that IP or
//!   username out for `lockout_for`: its requests get the same 403 as a
//!   wrong password, without the credentials being looked at (so guessing
//!   learns nothing while locked). Both tables hold at most
//!   [`MAX_TRACKED`] entries, the oldest evicted first. A locked username
//!   can be a denial of service against that agent, and a locked IP against
//!   every phone behind the same NAT: that is the price of stopping online
//!   guessing; keep `lockout_for` short.
//! - **One binding per agent**: a REGISTER from an agent replaces its
//!   binding, whatever the Contact (the latest phone wins: an agent who
//!   moves desks does not have to unregister the old phone, and the ACD
//!   rings exactly one phone). An unregistration (expires 0) removes the
//!   binding only if its Contact is the bound one (§10.3 step 7: removal
//!   is per contact), so an old phone signing off does not knock out the
//!   new one.
//! - **Expiry** (§10.3 step 7, §10.2.1.1): the Contact's `expires`, else
//!   the `Expires` header, else `default_expires`; malformed values count
//!   as absent (§20.10, §20.19 say "treat as 3600": our default). Above
//!   `max_expires` the registrar grants `max_expires`; a non-zero request
//!   below `min_expires` gets 423 with `Min-Expires`. The 200 lists the
//!   binding with `expires=` what was granted (and `Expires:` when this
//!   request set it). No `Date` header: a core has no wall clock (§10.3
//!   step 8 makes it a SHOULD).
//! - **Ordering** (§10.3 step 7): a REGISTER with the bound Call-ID and a
//!   CSeq not above the stored one is out of order and fails with 500
//!   (step 7: a failed binding update "MUST fail with a 500 (Server
//!   Error)"; §12.2.2 uses 500 for out-of-order CSeqs too) and
//!   `Retry-After` set to the bound contact's remaining lifetime (§21.5.1):
//!   a phone that reboots and reuses its Call-ID with a reset CSeq gets in
//!   once the old binding has lapsed. The rule is applied to the agent's
//!   binding whatever the Contact: the same Call-ID is the same phone.
//! - `Contact: *` removes the binding, only with `Expires: 0` and no other
//!   Contact (§10.3 step 6); otherwise 400.
//!
//! The Request-URI's domain is not checked (§10.3 step 1): phones are
//! configured with the node's address, whatever it is.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::sip::digest::{Algorithm, Credentials, DigestServer, Rejection};
use crate::sip::msg::{Hdr, NameAddr, Request, Response, SipHeaders, SipUri};
use crate::sip::transport::Transport;
use crate::time::Instant;

/// The most entries each lockout table (per source IP, per username)
/// holds; past it the oldest entry is forgotten, so a scanner with many
/// addresses or names cannot grow memory.
pub const MAX_TRACKED: usize = 10_000;

/// Usernames are tracked by at most this many bytes (a scanner's 60 kB
/// usernames would otherwise make the per-user table large).
const MAX_TRACKED_NAME: usize = 64;

/// The stored User-Agent is cut to this many bytes.
const MAX_USER_AGENT: usize = 256;

/// What the registrar grants and how it defends itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// The digest realm.
    pub realm: String,
    /// One `WWW-Authenticate` (or `Proxy-Authenticate`) challenge per
    /// algorithm, in this order: SHA-256 first, MD5 for old phones (RFC
    /// 8760). Empty means SHA-256 then MD5.
    pub algorithms: Vec<Algorithm>,
    /// A non-zero expiry below this gets 423 Interval Too Brief with
    /// `Min-Expires` (RFC 3261 §10.3 step 7).
    pub min_expires: Duration,
    /// A longer expiry is cut to this; the 200's Contact `expires` and
    /// `Expires` say what was granted. Taken as at least `min_expires`.
    pub max_expires: Duration,
    /// The expiry when the REGISTER gives none (or a malformed one).
    pub default_expires: Duration,
    /// How long a nonce is good for; after it, `stale=true`.
    pub nonce_ttl: Duration,
    /// This many failures within `lockout_window` from one source IP, or
    /// for one username, lock it out; 0 disables lockouts.
    pub lockout_failures: u32,
    /// The window failures are counted in (from the first one).
    pub lockout_window: Duration,
    /// How long a lockout lasts.
    pub lockout_for: Duration,
}

impl Default for RegistrarConfig {
    /// Realm `hotline`, SHA-256 then MD5, expiries 60 s ≤ 3600 s (default
    /// 3600 s), nonces 5 min, 5 failures in 5 min lock out for 15 min.
    fn default() -> Self {
        RegistrarConfig {
            realm: "hotline".into(),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            min_expires: Duration::from_secs(60),
            max_expires: Duration::from_secs(3600),
            default_expires: Duration::from_secs(3600),
            nonce_ttl: Duration::from_secs(300),
            lockout_failures: 5,
            lockout_window: Duration::from_secs(300),
            lockout_for: Duration::from_secs(900),
        }
    }
}

/// Where an agent's phone is (one per agent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The agent id (the AOR's user part, the digest username).
    pub user: String,
    /// The Contact URI as registered, without `<>` or header parameters,
    /// e.g. `sip:1001@127.0.0.1:6001`.
    pub contact: String,
    /// Where the REGISTER came from: INVITEs go there (symmetric
    /// signalling, NAT-safe, RFC 3581 in spirit).
    pub source: SocketAddr,
    /// The transport the REGISTER came on.
    pub transport: Transport,
    /// When the binding lapses unless refreshed.
    pub expires: Instant,
    /// The REGISTER's Call-ID (§10.3 step 7 ordering).
    pub call_id: String,
    /// The REGISTER's CSeq number.
    pub cseq: u32,
    /// The phone's `User-Agent`, if it sent one (cut to 256 bytes).
    pub user_agent: Option<String>,
}

/// A change of an agent's registration, for the ACD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The agent has a binding now. `refreshed`: it had one with the same
    /// Contact before (a refresh); `false` for a new binding or one that
    /// replaced another phone's.
    Registered {
        /// The agent.
        user: String,
        /// Whether this refreshed the same Contact.
        refreshed: bool,
    },
    /// The agent has no binding any more: unregistered by request
    /// (`expired: false`) or lapsed (`expired: true`).
    Unregistered {
        /// The agent.
        user: String,
        /// Whether it lapsed rather than being removed.
        expired: bool,
    },
}

/// Counters since start (and the current number of bindings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistrarStats {
    /// New bindings (including one phone replacing another).
    pub registrations: u64,
    /// Refreshes of a bound Contact.
    pub refreshes: u64,
    /// Bindings removed by request (expires 0, `Contact: *`) or because
    /// the agent was removed from the configuration.
    pub removals: u64,
    /// Bindings that lapsed.
    pub expiries: u64,
    /// 401 / 407 challenges sent.
    pub challenges: u64,
    /// Wrong credentials (unknown user or wrong password), and a username
    /// that is not the To AOR's user.
    pub auth_failures: u64,
    /// Lockouts started (of an IP or a username).
    pub lockouts: u64,
    /// Requests refused 403 because their IP or username was locked out.
    pub locked_out: u64,
    /// Current bindings.
    pub bindings: usize,
}

/// Which header pair a challenge uses.
#[derive(Debug, Clone, Copy)]
enum Scheme {
    /// 401, `WWW-Authenticate` / `Authorization` (a registrar, §22.2).
    Www,
    /// 407, `Proxy-Authenticate` / `Proxy-Authorization` (§22.3).
    Proxy,
}

impl Scheme {
    fn status(self) -> u16 {
        match self {
            Scheme::Www => 401,
            Scheme::Proxy => 407,
        }
    }
    fn credentials_header(self) -> &'static str {
        match self {
            Scheme::Www => "Authorization",
            Scheme::Proxy => "Proxy-Authorization",
        }
    }
    fn challenge_header(self) -> &'static str {
        match self {
            Scheme::Www => "WWW-Authenticate",
            Scheme::Proxy => "Proxy-Authenticate",
        }
    }
}

/// The registrar: bindings, credentials, lockouts. Its `Debug` shows
/// counts, never the passwords.
pub struct Registrar {
    config: RegistrarConfig,
    users: HashMap<String, String>,
    digest: DigestServer,
    tag_key: aws_lc_rs::hmac::Key,
    tags: u64,
    bindings: HashMap<String, Binding>,
    expiries: BTreeSet<(Instant, String)>,
    by_ip: Tracker<IpAddr>,
    by_user: Tracker<String>,
    stats: RegistrarStats,
}

impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrar")
            .field("config", &self.config)
            .field("users", &self.users.len())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Registrar {
    /// A registrar for `users` (username → password: the agents); `secret`
    /// keys the nonces and To tags (the caller passes OS randomness).
    #[must_use]
    pub fn new(
        mut config: RegistrarConfig,
        users: impl IntoIterator<Item = (String, String)>,
        secret: &[u8],
        now: Instant,
    ) -> Registrar {
        if config.algorithms.is_empty() {
            config.algorithms = vec![Algorithm::Sha256, Algorithm::Md5];
        }
        config.max_expires = config.max_expires.max(config.min_expires);
        let digest = DigestServer::new(&config.realm, secret, now, config.nonce_ttl);
        Registrar {
            users: users.into_iter().collect(),
            digest,
            tag_key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret),
            tags: 0,
            bindings: HashMap::new(),
            expiries: BTreeSet::new(),
            by_ip: Tracker::new(MAX_TRACKED),
            by_user: Tracker::new(MAX_TRACKED),
            stats: RegistrarStats::default(),
            config,
        }
    }

    /// The configuration in force (after `new`'s defaults).
    #[must_use]
    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// Replace the agents' credentials (a configuration reload). Agents no
    /// longer present lose their bindings (returned as
    /// `Unregistered { expired: false }`); a changed password keeps the
    /// binding until its next refresh.
    pub fn set_users(&mut self, users: impl IntoIterator<Item = (String, String)>) -> Vec<Change> {
        self.users = users.into_iter().collect();
        let gone: Vec<String> = self
            .bindings
            .keys()
            .filter(|u| !self.users.contains_key(*u))
            .cloned()
            .collect();
        gone.into_iter()
            .filter_map(|user| {
                self.unbind(&user)?;
                self.stats.removals += 1;
                Some(Change::Unregistered {
                    user,
                    expired: false,
                })
            })
            .collect()
    }

    /// A REGISTER (already validated by `src/sip/validate.rs`): the
    /// response to send and the binding change, if any.
    pub fn register(
        &mut self,
        req: &Request,
        source: SocketAddr,
        transport: Transport,
        now: Instant,
    ) -> (Response, Option<Change>) {
        let Some(aor_user) = to_user(req) else {
            return (self.bad_request(req, "the To URI has no user part"), None);
        };
        let user = match self.check(req, source, Scheme::Www, now) {
            Ok(user) => user,
            Err(r) => return (r, None),
        };
        if user != aor_user {
            // No third-party registration (§10.2): counted like a wrong
            // password, answered alike.
            tracing::info!(%user, aor = %aor_user, source = %source.ip(),
                "REGISTER for another agent's AOR refused");
            self.failed(source.ip(), &user, now);
            return (self.forbidden(req), None);
        }
        self.update(req, user, source, transport, now)
    }

    /// Authenticate a non-REGISTER request from an agent's phone (e.g. an
    /// INVITE to a feature code `*21`) by its `Proxy-Authorization`: the
    /// username, or the response to send (407 with `Proxy-Authenticate`
    /// challenges, or 403). The identity is the digest username; From is
    /// not looked at. ACK and CANCEL cannot be challenged (§22.1): do not
    /// pass them here.
    ///
    /// # Errors
    /// The response to send instead of serving the request.
    pub fn authenticate(
        &mut self,
        req: &Request,
        source: SocketAddr,
        now: Instant,
    ) -> Result<String, Response> {
        self.check(req, source, Scheme::Proxy, now)
    }

    /// An agent's binding (a lapsed one stays until `handle_timeout`
    /// collects it).
    #[must_use]
    pub fn binding(&self, user: &str) -> Option<&Binding> {
        self.bindings.get(user)
    }

    /// Every binding, in no particular order.
    pub fn bindings(&self) -> impl Iterator<Item = &Binding> {
        self.bindings.values()
    }

    /// When `handle_timeout` next has work: a binding lapses, or a lockout
    /// or failure window ends.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.expiries.first().map(|(at, _)| *at),
            self.by_ip.earliest(),
            self.by_user.earliest(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Lapsed bindings (`Unregistered { expired: true }`); lockouts and
    /// failure windows that ended are forgotten.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Change> {
        let mut out = Vec::new();
        while let Some((at, user)) = self.expiries.first().cloned() {
            if at > now {
                break;
            }
            self.expiries.remove(&(at, user.clone()));
            if self.bindings.get(&user).is_some_and(|b| b.expires == at) {
                self.bindings.remove(&user);
                self.stats.expiries += 1;
                tracing::info!(%user, "registration expired");
                out.push(Change::Unregistered {
                    user,
                    expired: true,
                });
            }
        }
        for ip in self.by_ip.expire(now) {
            tracing::info!(%ip, "lockout of source ended");
        }
        for user in self.by_user.expire(now) {
            tracing::info!(%user, "lockout of username ended");
        }
        self.stats.bindings = self.bindings.len();
        out
    }

    /// Counters, and the current number of bindings.
    #[must_use]
    pub fn stats(&self) -> RegistrarStats {
        RegistrarStats {
            bindings: self.bindings.len(),
            ..self.stats
        }
    }

    // ------------------------------------------------------ authentication

    /// Lockouts, then credentials: the username, or the response.
    fn check(
        &mut self,
        req: &Request,
        source: SocketAddr,
        scheme: Scheme,
        now: Instant,
    ) -> Result<String, Response> {
        let ip = source.ip();
        if self.by_ip.is_locked(&ip, now) {
            self.stats.locked_out += 1;
            return Err(self.forbidden(req));
        }
        let realm = self.digest.realm();
        let creds = req
            .headers
            .0
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(scheme.credentials_header()))
            .filter_map(|h| Credentials::parse(&h.value))
            .find(|c| c.realm == realm);
        let Some(creds) = creds else {
            return Err(self.challenge(req, scheme, false, now));
        };
        if self.by_user.is_locked(&user_key(&creds.username), now) {
            self.stats.locked_out += 1;
            return Err(self.forbidden(req));
        }
        let password = self.users.get(&creds.username).map(String::as_str);
        let verdict = self
            .digest
            .check(&creds, req.method.as_str(), password, now);
        match verdict {
            Ok(()) => Ok(creds.username),
            Err(Rejection::Stale) => Err(self.challenge(req, scheme, true, now)),
            // A nonce from before a restart, another realm's parameters, an
            // algorithm we do not offer: a fresh challenge.
            Err(Rejection::BadNonce | Rejection::Malformed) => {
                Err(self.challenge(req, scheme, false, now))
            }
            Err(Rejection::Denied) => {
                tracing::info!(user = %user_key(&creds.username), source = %ip,
                    method = %req.method, "agent authentication failed");
                self.failed(ip, &creds.username, now);
                Err(self.forbidden(req))
            }
        }
    }

    /// Count one failure against the source and the username.
    fn failed(&mut self, ip: IpAddr, username: &str, now: Instant) {
        self.stats.auth_failures += 1;
        let (n, window, lock) = (
            self.config.lockout_failures,
            self.config.lockout_window,
            self.config.lockout_for,
        );
        if self.by_ip.fail(ip, now, n, window, lock) {
            self.stats.lockouts += 1;
            tracing::warn!(%ip, "source locked out after repeated authentication failures");
        }
        let user = user_key(username);
        if self.by_user.fail(user.clone(), now, n, window, lock) {
            self.stats.lockouts += 1;
            tracing::warn!(%user, "username locked out after repeated authentication failures");
        }
    }

    fn challenge(&mut self, req: &Request, scheme: Scheme, stale: bool, now: Instant) -> Response {
        let mut r = self.reply(req, scheme.status());
        for c in self.digest.challenges(now, stale, &self.config.algorithms) {
            r.headers.push(scheme.challenge_header(), c);
        }
        self.stats.challenges += 1;
        r
    }

    /// The one 403 for a wrong password, an unknown user, a lockout and a
    /// foreign AOR.
    fn forbidden(&mut self, req: &Request) -> Response {
        self.reply(req, 403)
    }

    fn bad_request(&mut self, req: &Request, why: &str) -> Response {
        let mut r = self.reply(req, 400);
        r.headers.push("Warning", format!("399 hotline \"{why}\""));
        r
    }

    /// A response with a To tag (§8.2.6.2): an HMAC of a counter, so tags
    /// are unique and unguessable without an RNG in the core.
    fn reply(&mut self, req: &Request, status: u16) -> Response {
        let mut r = Response::to(req, status);
        self.tags += 1;
        let mut input = *b"to-tag:\0\0\0\0\0\0\0\0";
        input[7..].copy_from_slice(&self.tags.to_be_bytes());
        let mac = aws_lc_rs::hmac::sign(&self.tag_key, &input);
        let tag: String = mac.as_ref()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        r.set_to_tag(&tag);
        r
    }

    // ------------------------------------------------------------ bindings

    /// §10.3 steps 5–8 for an authenticated agent.
    fn update(
        &mut self,
        req: &Request,
        user: String,
        source: SocketAddr,
        transport: Transport,
        now: Instant,
    ) -> (Response, Option<Change>) {
        let call_id = req.call_id().unwrap_or_default().to_owned();
        let cseq = req.cseq().map_or(0, |(n, _)| n);
        let current = self
            .bindings
            .get(&user)
            .filter(|b| b.expires > now)
            .cloned();
        let contacts = req.headers.elements(Hdr::Contact);
        let header_expires = req.headers.get(Hdr::Expires).map(delta_seconds);

        // A query (§10.3 step 6: no Contact).
        if contacts.is_empty() {
            let r = self.ok(req, current.as_ref(), false, now);
            return (r, None);
        }

        // The in-order rule (§10.3 step 7) for any update or removal.
        let out_of_order = |b: &Binding| b.call_id == call_id && cseq <= b.cseq;

        if contacts.iter().any(|c| c.trim() == "*") {
            // §10.3 step 6: `*` only alone and with Expires: 0.
            if contacts.len() != 1 || header_expires != Some(Some(0)) {
                let r = self.bad_request(req, "Contact: * needs Expires: 0 and no other Contact");
                return (r, None);
            }
            if let Some(b) = current.as_ref().filter(|b| out_of_order(b)) {
                return (self.out_of_order(req, b, now), None);
            }
            let change = self.unbind(&user).map(|_| {
                self.stats.removals += 1;
                tracing::info!(%user, "unregistered (Contact: *)");
                Change::Unregistered {
                    user: user.clone(),
                    expired: false,
                }
            });
            return (self.ok(req, None, false, now), change);
        }

        let mut wanted = Vec::with_capacity(contacts.len());
        for c in &contacts {
            let Some((uri, param)) = contact(c) else {
                return (self.bad_request(req, "malformed Contact"), None);
            };
            // The Contact's own expires, else the header's, else ours;
            // explicit only when well formed (a malformed value is absent).
            let explicit = param.map(delta_seconds).unwrap_or(header_expires.flatten());
            let secs = param
                .map(delta_seconds)
                .or(header_expires)
                .flatten()
                .unwrap_or(self.config.default_expires.as_secs());
            wanted.push((uri, secs, explicit.is_some()));
        }
        let min = self.config.min_expires;
        if wanted
            .iter()
            .any(|&(_, s, explicit)| explicit && s > 0 && Duration::from_secs(s) < min)
        {
            let mut r = self.reply(req, 423);
            r.headers.push("Min-Expires", ceil_secs(min).to_string());
            return (r, None);
        }
        if let Some(b) = current.as_ref().filter(|b| out_of_order(b)) {
            return (self.out_of_order(req, b, now), None);
        }

        // Apply in order: the last Contact registered wins.
        let user_agent = req
            .headers
            .get(Hdr::UserAgent)
            .map(|ua| cut(ua.trim(), MAX_USER_AGENT));
        let mut next = current.clone();
        let mut set_here = false;
        for (uri, secs, _) in wanted {
            if secs == 0 {
                if next.as_ref().is_some_and(|b| same_uri(&b.contact, &uri)) {
                    next = None;
                    set_here = false;
                }
                continue;
            }
            let granted = Duration::from_secs(secs).min(self.config.max_expires);
            next = Some(Binding {
                user: user.clone(),
                contact: uri,
                source,
                transport,
                expires: now + granted,
                call_id: call_id.clone(),
                cseq,
                user_agent: user_agent.clone(),
            });
            set_here = true;
        }

        let change = match (&current, next) {
            (None, None) => None,
            // Only a removal of a Contact that is not bound: nothing changed.
            (Some(_), Some(_)) if !set_here => None,
            (Some(_), None) => {
                self.unbind(&user);
                self.stats.removals += 1;
                tracing::info!(%user, "unregistered");
                Some(Change::Unregistered {
                    user: user.clone(),
                    expired: false,
                })
            }
            (before, Some(b)) => {
                let refreshed = before
                    .as_ref()
                    .is_some_and(|c| same_uri(&c.contact, &b.contact));
                if refreshed {
                    self.stats.refreshes += 1;
                } else {
                    self.stats.registrations += 1;
                    tracing::info!(%user, contact = %b.contact, source = %source,
                        user_agent = b.user_agent.as_deref().unwrap_or(""), "registered");
                }
                self.bind(b);
                Some(Change::Registered {
                    user: user.clone(),
                    refreshed,
                })
            }
        };
        let bound = self
            .bindings
            .get(&user)
            .filter(|b| b.expires > now)
            .cloned();
        (self.ok(req, bound.as_ref(), set_here, now), change)
    }

    /// 200 listing the binding (§10.3 step 8) with its remaining lifetime;
    /// `Expires:` too when this request set it.
    fn ok(
        &mut self,
        req: &Request,
        binding: Option<&Binding>,
        granted: bool,
        now: Instant,
    ) -> Response {
        let mut r = self.reply(req, 200);
        if let Some(b) = binding {
            let left = ceil_secs(b.expires.saturating_duration_since(now));
            r.headers
                .push("Contact", format!("<{}>;expires={left}", b.contact));
            if granted {
                r.headers.push("Expires", left.to_string());
            }
        }
        r
    }

    /// 500 for a REGISTER older than the binding (§10.3 step 7).
    fn out_of_order(&mut self, req: &Request, b: &Binding, now: Instant) -> Response {
        let mut r = self.reply(req, 500);
        r.reason = "Out of Order CSeq".into();
        let left = ceil_secs(b.expires.saturating_duration_since(now)).max(1);
        r.headers.push("Retry-After", left.to_string());
        r
    }

    fn bind(&mut self, b: Binding) {
        if let Some(old) = self.bindings.get(&b.user) {
            self.expiries.remove(&(old.expires, old.user.clone()));
        }
        self.expiries.insert((b.expires, b.user.clone()));
        self.bindings.insert(b.user.clone(), b);
        self.stats.bindings = self.bindings.len();
    }

    fn unbind(&mut self, user: &str) -> Option<Binding> {
        let b = self.bindings.remove(user)?;
        self.expiries.remove(&(b.expires, b.user.clone()));
        self.stats.bindings = self.bindings.len();
        Some(b)
    }
}

// ------------------------------------------------------------------ parsing

/// The To AOR's user part.
fn to_user(req: &Request) -> Option<String> {
    let to = NameAddr::parse(req.headers.get(Hdr::To)?).ok()?;
    SipUri::parse(&to.uri).ok()?.user
}

/// `delta-seconds` (§25.1): `Some(None)` when malformed; above 2³²−1
/// counts as 2³²−1 (§20.19).
fn delta_seconds(s: &str) -> Option<u64> {
    let s = s.trim().trim_matches('"');
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        s.parse::<u64>()
            .unwrap_or(u64::MAX)
            .min(u64::from(u32::MAX)),
    )
}

/// One Contact element: its URI and its raw `expires` parameter.
fn contact(elem: &str) -> Option<(String, Option<&str>)> {
    let na = NameAddr::parse(elem).ok()?;
    let elem = elem.trim();
    // The header parameters start after the `>` of a name-addr, or at the
    // first `;` of an addr-spec (§20.10).
    let mut quoted = false;
    let mut escaped = false;
    let mut params_at = None;
    for (i, ch) in elem.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match ch {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => {
                params_at = elem[i..].find('>').map(|j| i + j + 1);
                break;
            }
            _ => {}
        }
    }
    let params = match params_at {
        Some(at) => &elem[at..],
        None => elem.find(';').map_or("", |at| &elem[at..]),
    };
    let expires = params.split(';').find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("expires")
            .then_some(value.trim())
    });
    Some((na.uri, expires))
}

/// Contact URIs compared as §19.1.4 does for what matters here: scheme,
/// user, host (case-insensitive) and port; text equality otherwise.
fn same_uri(a: &str, b: &str) -> bool {
    match (SipUri::parse(a), SipUri::parse(b)) {
        (Ok(x), Ok(y)) => {
            x.scheme == y.scheme
                && x.user == y.user
                && x.host.eq_ignore_ascii_case(&y.host)
                && x.port == y.port
        }
        _ => a.eq_ignore_ascii_case(b),
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// At most `max` bytes of `s`, on a char boundary.
fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

fn user_key(username: &str) -> String {
    cut(username, MAX_TRACKED_NAME)
}

// ----------------------------------------------------------------- lockouts

/// Failures counted per key in a fixed window from the first; a lockout
/// when they reach the limit. At most `cap` keys, the oldest evicted.
#[derive(Debug)]
struct Tracker<K> {
    entries: HashMap<K, Track>,
    /// Keys in insertion order, with the `seq` they were inserted under
    /// (entries removed since leave stale items, skipped lazily).
    order: VecDeque<(K, u64)>,
    /// When each entry may be forgotten.
    forget: BTreeSet<(Instant, K)>,
    seq: u64,
    cap: usize,
}

#[derive(Debug)]
struct Track {
    window_start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
    forget_at: Instant,
    seq: u64,
}

impl<K: Hash + Eq + Ord + Clone> Tracker<K> {
    fn new(cap: usize) -> Self {
        Tracker {
            entries: HashMap::new(),
            order: VecDeque::new(),
            forget: BTreeSet::new(),
            seq: 0,
            cap: cap.max(1),
        }
    }

    fn is_locked(&self, k: &K, now: Instant) -> bool {
        self.entries
            .get(k)
            .and_then(|t| t.locked_until)
            .is_some_and(|until| until > now)
    }

    /// Count a failure; `true` if it starts a lockout.
    fn fail(&mut self, k: K, now: Instant, limit: u32, window: Duration, lock: Duration) -> bool {
        if limit == 0 {
            return false;
        }
        if !self.entries.contains_key(&k) {
            while self.entries.len() >= self.cap {
                self.evict_oldest();
            }
            self.seq += 1;
            self.order.push_back((k.clone(), self.seq));
            self.entries.insert(
                k.clone(),
                Track {
                    window_start: now,
                    failures: 0,
                    locked_until: None,
                    forget_at: now,
                    seq: self.seq,
                },
            );
            self.forget.insert((now, k.clone()));
            self.compact();
        }
        let Some(t) = self.entries.get_mut(&k) else {
            return false;
        };
        if t.locked_until.is_some_and(|u| u > now) {
            return false;
        }
        if t.locked_until.is_some() || now >= t.window_start + window {
            t.locked_until = None;
            t.window_start = now;
            t.failures = 0;
        }
        t.failures += 1;
        let started = t.failures >= limit;
        if started {
            t.locked_until = Some(now + lock);
            t.failures = 0;
        }
        let forget_at = t.locked_until.unwrap_or(t.window_start + window);
        let old = std::mem::replace(&mut t.forget_at, forget_at);
        self.forget.remove(&(old, k.clone()));
        self.forget.insert((forget_at, k));
        started
    }

    fn evict_oldest(&mut self) {
        while let Some((k, seq)) = self.order.pop_front() {
            if self.entries.get(&k).is_some_and(|t| t.seq == seq) {
                if let Some(t) = self.entries.remove(&k) {
                    self.forget.remove(&(t.forget_at, k));
                }
                return;
            }
        }
    }

    /// Keep `order` within twice the live entries.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.entries.len() + 16 {
            let entries = &self.entries;
            self.order
                .retain(|(k, seq)| entries.get(k).is_some_and(|t| t.seq == *seq));
        }
    }

    fn earliest(&self) -> Option<Instant> {
        self.forget.first().map(|(at, _)| *at)
    }

    /// Forget entries whose window or lockout ended; the keys whose
    /// lockout ended.
    fn expire(&mut self, now: Instant) -> Vec<K> {
        let mut ended = Vec::new();
        while let Some((at, k)) = self.forget.first().cloned() {
            if at > now {
                break;
            }
            self.forget.remove(&(at, k.clone()));
            if let Some(t) = self.entries.remove(&k) {
                if t.locked_until.is_some() {
                    ended.push(k);
                }
            }
        }
        self.compact();
        ended
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests;
