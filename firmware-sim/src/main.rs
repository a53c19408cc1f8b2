//! firmware-sim's runner for mitoken-core's token engine: reads the command line, brings up the
//! network, and asks the engine for one token per `req=`. The engine decides everything — the
//! cache (a repeated request is answered from it), single-flight, limits, when to retry — and
//! this loop only carries out what it says: each upstream request it asks for is one
//! [`mitoken_core::io::fetch_token`] over a smoltcp TCP connection, and between events the guest
//! halts until the engine's `poll_at` (or smoltcp's). Every result is one serial line that
//! `cargo xtask sim` checks. No unsafe code here except the entry symbol.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use firmware_sim::cmdline::{self, Pick, Settings};
use firmware_sim::idle;
use firmware_sim::net::{Conn, Net, NetError};
use firmware_sim::statics::Once;
use firmware_sim::{clock, port, sprint, sprintln, stack};
use mitoken_core::cache::{CacheKey, CachedToken};
use mitoken_core::client::Outcome;
use mitoken_core::engine::{Answer, Ask, Cause, Engine, EngineConfig, Reply};
use mitoken_core::io::{FetchError, fetch_token};
use mitoken_core::request::{Endpoint, ResIdParam, Selector, TokenRequest};
use mitoken_core::retry::RetryPolicy;
use smoltcp::wire::Ipv4Address;

/// The exchange buffer: the request goes out of it, the response comes into it, and the token
/// borrows from it. IMDS answers are 1.5–4 KB; 8 KiB leaves room for long tokens.
const EXCHANGE_LEN: usize = 8192;

static EXCHANGE: Once<[u8; EXCHANGE_LEN]> = Once::new([0; EXCHANGE_LEN]);
/// The token engine: 4 cached tokens of up to 4 KiB, keys up to 384 bytes, 2 keys fetched at
/// once, 2 waiting callers (this loop is one caller at a time).
type FwEngine = Engine<4, 4096, 384, 2, 2>;
static ENGINE: Once<FwEngine> = Once::new(FwEngine::new(EngineConfig::DEFAULT, 1));
/// A copy of the first token response, replayed from memory to measure the core's own stack.
static TAP: Once<[u8; EXCHANGE_LEN]> = Once::new([0; EXCHANGE_LEN]);

/// Called by the boot stub in long mode with the `hvm_start_info` address.
#[allow(unsafe_code)]
// SAFETY: the boot stub calls this symbol by name; no other item defines it.
#[unsafe(no_mangle)]
pub extern "C" fn fw_main(start_info: u32) -> ! {
    let code = run(start_info);
    port::exit(code)
}

/// Why one attempt failed below HTTP.
#[derive(Debug)]
enum Failure {
    Connect(NetError),
    Fetch(FetchError<NetError>),
}

impl core::fmt::Display for Failure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "connect: {e}"),
            Self::Fetch(e) => write!(f, "fetch: {e}"),
        }
    }
}

/// Where requests go: the address to connect to, the endpoint to write requests for, and the
/// deadline for one attempt.
struct Target<'a> {
    addr: Ipv4Address,
    endpoint: Endpoint<'a>,
    timeout_ms: u64,
}

/// Prints why the retry policy gave up (nothing if it was not asked).
struct Why(Option<mitoken_core::retry::RetryError>);

impl core::fmt::Display for Why {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match &self.0 {
            Some(e) => write!(f, "{e}"),
            None => Ok(()),
        }
    }
}

/// Prints microseconds as milliseconds with three decimals.
struct Ms(u64);

impl core::fmt::Display for Ms {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}

impl Failure {
    /// How the engine sees this failure.
    fn reply(&self) -> Reply<'static> {
        match self {
            Self::Connect(NetError::TimedOut) | Self::Fetch(FetchError::Io(NetError::TimedOut)) => {
                Reply::Timeout
            }
            Self::Connect(_) => Reply::ConnectFailed,
            Self::Fetch(FetchError::Client(e)) => Reply::from(*e),
            Self::Fetch(_) => Reply::Io,
        }
    }
}

/// mitoken-core's IMDS retry policy with every time divided by `div`.
fn retry_policy(div: u64) -> RetryPolicy {
    let mut p = RetryPolicy::IMDS;
    p.base_delay_ms /= div;
    p.max_delay_ms /= div;
    p.min_server_delay_ms /= div;
    p.gone_interval_ms /= div;
    p.gone_window_ms /= div;
    p.deadline_ms /= div;
    p
}

fn pick_name(pick: Pick<'_>) -> &'static str {
    match pick {
        Pick::System => "system",
        Pick::ClientId(_) => "client_id",
        Pick::ObjectId(_) => "object_id",
        Pick::MsiResId(_) => "msi_res_id",
    }
}

fn selector(pick: Pick<'_>) -> Option<Selector<'_>> {
    match pick {
        Pick::System => None,
        Pick::ClientId(id) => Some(Selector::ClientId(id)),
        Pick::ObjectId(id) => Some(Selector::ObjectId(id)),
        Pick::MsiResId(id) => Some(Selector::ResourceId {
            id,
            param: ResIdParam::MsiResId,
        }),
    }
}

fn request<'a>(resource: &'a str, pick: Pick<'a>) -> TokenRequest<'a> {
    let req = TokenRequest::new(resource);
    match selector(pick) {
        Some(s) => req.with_selector(s),
        None => req,
    }
}

/// Records the bytes read through it (the first `tap.len()` of them).
struct Tap<'t, T> {
    inner: T,
    log: &'t mut [u8],
    len: usize,
}

impl<T: embedded_io::ErrorType> embedded_io::ErrorType for Tap<'_, T> {
    type Error = T::Error;
}

impl<T: embedded_io::Read> embedded_io::Read for Tap<'_, T> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, T::Error> {
        let n = self.inner.read(buf)?;
        let room = self.log.len() - self.len;
        let k = n.min(room);
        self.log[self.len..self.len + k].copy_from_slice(&buf[..k]);
        self.len += k;
        Ok(n)
    }
}

impl<T: embedded_io::Write> embedded_io::Write for Tap<'_, T> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, T::Error> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> Result<(), T::Error> {
        self.inner.flush()
    }
}

/// A transport that swallows the request and answers with recorded bytes, one TCP-segment-sized
/// chunk per read.
struct Replay<'r> {
    data: &'r [u8],
    pos: usize,
}

impl embedded_io::ErrorType for Replay<'_> {
    type Error = core::convert::Infallible;
}

impl embedded_io::Read for Replay<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = buf.len().min(self.data.len() - self.pos).min(1460);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl embedded_io::Write for Replay<'_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// A seed for the engine's retry jitter: the TSC's low bits (jitter needs spread, not secrecy).
fn jitter_draw() -> u32 {
    let t = clock::rdtsc();
    #[allow(clippy::cast_possible_truncation)] // folding 64 bits into 32 on purpose
    let r = (t ^ (t >> 32)) as u32;
    r
}

/// One attempt: connect, send, receive, parse. The connection closes on return.
fn attempt<'b>(
    net: &mut Net,
    target: &Target<'_>,
    request: &TokenRequest<'_>,
    buf: &'b mut [u8],
    tap: &mut [u8],
    now: u64,
) -> (Result<Outcome<'b>, Failure>, usize) {
    let endpoint = &target.endpoint;
    let conn: Conn<'_> = match net.connect(target.addr, endpoint.port(), target.timeout_ms) {
        Ok(c) => c,
        Err(e) => return (Err(Failure::Connect(e)), 0),
    };
    let mut io = Tap {
        inner: conn,
        log: tap,
        len: 0,
    };
    let result = fetch_token(&mut io, request, endpoint, buf, now).map_err(Failure::Fetch);
    (result, io.len)
}

/// A RETRY line's `after`: `HTTP <status>`, or a failure below HTTP.
struct Status(u16);

impl core::fmt::Display for Status {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            0 => f.write_str("no HTTP answer"),
            s => write!(f, "HTTP {s}"),
        }
    }
}

/// Which request a RESULT line is for.
struct Head<'a> {
    n: usize,
    pick: Pick<'a>,
    attempts: u32,
    source: &'static str,
}

/// One RESULT line for a token (from the cache or upstream).
#[inline(never)]
fn print_token(
    head: &Head<'_>,
    token: &CachedToken<'_>,
    now_ms: u64,
    us: u64,
    depth: usize,
    at: u64,
) {
    sprintln!(
        "mitoken-sim: RESULT req={} pick={} status=200 attempts={} source={} token_len={} \
         expires_on={} expires_in={} client_id={} ms={} stack={depth} at_ms={}",
        head.n,
        pick_name(head.pick),
        head.attempts,
        head.source,
        token.access_token.len(),
        token.expires_on.unwrap_or(0),
        token.expires_in(now_ms),
        token.client_id.unwrap_or("-"),
        Ms(us),
        Ms(at)
    );
}

#[derive(Default)]
struct Totals {
    tokens: u32,
    errors: u32,
    failures: u32,
    cached: u32,
    first_token_us: Option<u64>,
    fetch_stack_max: usize,
}

/// The clocks: µs since boot (the TSC) and Unix ms for the engine (the RTC at boot plus the TSC).
#[derive(Clone, Copy)]
struct Time {
    clock: clock::Clock,
    unix_base_ms: u64,
    base_us: u64,
}

impl Time {
    fn unix_ms(&self) -> u64 {
        self.unix_base_ms + (self.clock.micros() - self.base_us) / 1000
    }

    /// The boot clock's µs at Unix ms `at`.
    fn micros_at(&self, at: u64) -> u64 {
        self.base_us + at.saturating_sub(self.unix_base_ms).saturating_mul(1000)
    }
}

#[allow(clippy::too_many_lines)]
fn run(start_info: u32) -> u32 {
    let (clock, line) = firmware_sim::start(start_info);
    sprintln!(
        "mitoken-sim: boot at_ms={} tsc_mhz={} cmdline=\"{line}\"",
        Ms(clock.micros()),
        clock.tsc_hz / 1_000_000
    );
    let settings = match Settings::parse(line) {
        Ok(s) => s,
        Err(bad) => {
            sprintln!("mitoken-sim: FAIL cmdline: cannot use `{}`", bad.0);
            return port::EXIT_FAILURE;
        }
    };
    let endpoint = match Endpoint::parse_spec(settings.endpoint) {
        Ok(e) => e,
        Err(e) => {
            sprintln!("mitoken-sim: FAIL endpoint: {e}");
            return port::EXIT_FAILURE;
        }
    };
    let Some(addr) = cmdline::ipv4(endpoint.host()) else {
        sprintln!("mitoken-sim: FAIL endpoint: the host must be an IPv4 address (no DNS here)");
        return port::EXIT_FAILURE;
    };
    let unix_base = clock::unix_time();
    let time = Time {
        clock,
        unix_base_ms: unix_base * 1000,
        base_us: clock.micros(),
    };
    let unix_now = || time.unix_ms() / 1000;

    let mut net = firmware_sim::bring_up_net(settings.ip, clock);
    // Deepest stack use from boot through network bring-up (the stub painted the whole stack).
    let init_peak = firmware_sim::boot::stack_bounds().1 - stack::lowest_touched();
    sprintln!(
        "mitoken-sim: net up at_ms={} ip={} gw={} endpoint={}:{}",
        Ms(clock.micros()),
        settings.ip.addr,
        settings.ip.gateway,
        endpoint.host(),
        endpoint.port()
    );

    let target = Target {
        addr,
        endpoint,
        timeout_ms: settings.timeout_ms,
    };
    let engine = ENGINE.take().expect("taken once");
    let retry = retry_policy(settings.retry_div);
    engine.configure(
        EngineConfig::DEFAULT
            .with_retry(retry)
            .with_refresh_ahead(false),
    );
    engine.reseed(jitter_draw());
    let buf = EXCHANGE.take().expect("taken once");
    let tap = TAP.take().expect("taken once");
    let mut replay_len = None;
    let mut t = Totals::default();
    let idle_before = idle::halted_us();
    for (i, pick) in settings.requests.iter().flatten().copied().enumerate() {
        let n = i + 1;
        let key = CacheKey::new(endpoint, selector(pick), settings.resource);
        let started = clock.micros();
        let now = time.unix_ms();
        let deadline = now + retry.deadline_ms + settings.timeout_ms;
        let ticket = match engine.request(&key, now, deadline, false) {
            Ok(Ask::Ready(token)) => {
                t.cached += 1;
                let head = Head {
                    n,
                    pick,
                    attempts: 0,
                    source: "cache",
                };
                print_token(
                    &head,
                    &token,
                    now,
                    clock.micros() - started,
                    0,
                    clock.micros(),
                );
                continue;
            }
            Ok(Ask::Wait(ticket)) => ticket,
            Err(_) => {
                t.failures += 1;
                sprintln!("mitoken-sim: RESULT req={n} status=0 failure=\"engine refused\"");
                continue;
            }
        };
        let mut attempts = 0u32;
        let mut depth = 0;
        'wait: loop {
            // Carry out every upstream request the engine asks for now.
            while let Some(tx) = engine.poll_transmit(time.unix_ms()) {
                attempts = tx.attempt;
                let flight = tx.flight;
                let req = tx.request(mitoken_core::request::DEFAULT_API_VERSION);
                let top = stack::sp();
                stack::repaint();
                // Record only until the first token is in: later attempts must not overwrite it.
                let tap_now: &mut [u8] = if replay_len.is_some() {
                    &mut []
                } else {
                    &mut tap[..]
                };
                let (result, tapped) =
                    attempt(&mut net, &target, &req, &mut buf[..], tap_now, unix_now());
                depth = top.saturating_sub(stack::lowest_touched());
                t.fetch_stack_max = t.fetch_stack_max.max(depth);
                if matches!(result, Ok(Outcome::Token(_))) && replay_len.is_none() {
                    replay_len = Some(tapped);
                }
                let reply = match &result {
                    Ok(o) => Reply::from(*o),
                    Err(f) => f.reply(),
                };
                let now = time.unix_ms();
                let status = match &result {
                    Ok(Outcome::Service(e)) => e.status,
                    _ => 0,
                };
                if engine.handle_reply(flight, now, reply).is_err() {
                    sprintln!("mitoken-sim: FAIL engine: unknown flight");
                }
                if let Some(at) = engine.retry_at(flight) {
                    let after = Status(status);
                    sprintln!(
                        "mitoken-sim: RETRY req={n} attempt={attempts} after=\"{after}\" \
                         delay_ms={} ms={}",
                        at.saturating_sub(now),
                        Ms(clock.micros() - started)
                    );
                }
            }
            // The answer, when the engine has it.
            let now = time.unix_ms();
            while let Some(wake) = engine.poll_wake(now) {
                if wake.ticket != ticket {
                    continue;
                }
                let ms = Ms(clock.micros() - started);
                match wake.answer {
                    Answer::Token(token) => {
                        let at = clock.micros();
                        t.tokens += 1;
                        t.first_token_us.get_or_insert(at);
                        let head = Head {
                            n,
                            pick,
                            attempts,
                            source: "upstream",
                        };
                        print_token(&head, &token, now, at - started, depth, at);
                    }
                    Answer::Failed(f) => {
                        let why = Why(f.retry);
                        if let Cause::Service(e) = f.cause {
                            t.errors += 1;
                            sprintln!(
                                "mitoken-sim: RESULT req={n} pick={} status={} \
                                 attempts={attempts} error={} ms={ms} stack={depth} \
                                 gave_up=\"{why}\" description=\"{}\"",
                                pick_name(pick),
                                e.status,
                                if e.error.is_empty() { "-" } else { e.error },
                                e.description.unwrap_or("")
                            );
                        } else {
                            t.failures += 1;
                            let failure = match f.cause {
                                Cause::Timeout => "timeout",
                                Cause::ConnectFailed => "connection failed",
                                Cause::Io => "connection error",
                                _ => "invalid answer",
                            };
                            sprintln!(
                                "mitoken-sim: RESULT req={n} pick={} status=0 \
                                 attempts={attempts} ms={ms} failure=\"{failure}\" \
                                 gave_up=\"{why}\"",
                                pick_name(pick)
                            );
                        }
                    }
                    _ => {
                        t.failures += 1;
                        sprintln!(
                            "mitoken-sim: RESULT req={n} status=0 attempts={attempts} \
                             failure=\"no answer before the deadline\""
                        );
                    }
                }
                break 'wait;
            }
            // Nothing to do until the engine's next time: halt (the network stays polled).
            let wake_us = engine
                .poll_at()
                .map_or(clock.micros() + 1_000_000, |at| time.micros_at(at));
            net.idle_until(wake_us);
            engine.handle_timeout(time.unix_ms());
        }
    }
    let idle_ms = (idle::halted_us() - idle_before) / 1000;

    // The core alone: replay the first token response from memory with a freshly painted stack.
    let mut core_stack = 0;
    let mut core_us = 0;
    if let (Some(len), Some(pick)) = (replay_len, settings.requests[0]) {
        let req = request(settings.resource, pick);
        let mut replay = Replay {
            data: &tap[..len],
            pos: 0,
        };
        let top = stack::sp();
        stack::repaint();
        let t0 = clock.micros();
        let ok = matches!(
            fetch_token(&mut replay, &req, &endpoint, &mut buf[..], unix_now()),
            Ok(Outcome::Token(_))
        );
        core_us = clock.micros() - t0;
        core_stack = top.saturating_sub(stack::lowest_touched());
        if !ok {
            sprintln!("mitoken-sim: FAIL replay of the first token response did not parse");
            t.failures += 1;
        }
    }
    sprint!(
        "mitoken-sim: STACK fetch_max={} core_only={core_stack} init_peak={init_peak} \
         exchange_buf={EXCHANGE_LEN} core_replay_us={core_us}\n",
        t.fetch_stack_max
    );
    sprintln!(
        "mitoken-sim: IDLE halted_ms={idle_ms} halts={} requests_ms={}",
        idle::halts(),
        Ms(clock.micros() - time.base_us)
    );
    sprintln!(
        "mitoken-sim: DONE tokens={} cached={} errors={} failures={} first_token_ms={} total_ms={}",
        t.tokens,
        t.cached,
        t.errors,
        t.failures,
        t.first_token_us.map_or(Ms(0), Ms),
        Ms(clock.micros())
    );
    if t.failures == 0 {
        port::EXIT_SUCCESS
    } else {
        port::EXIT_FAILURE
    }
}
