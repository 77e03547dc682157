//! The `stratus` gateway: the EC2 Query API over HTTP, and the admin CLI.
//!
//! One request, end to end ([`server`]):
//! 1. Admit the connection (caps in all and per source address) with timeouts for headers,
//!    body and the whole request; assign a request id.
//! 2. An unsigned request draws from its source address's bucket ([`throttle`]) and is refused
//!    at once when it is empty (`RequestLimitExceeded`).
//! 3. Read the body, bounded by `max_body_bytes` and `body_timeout_secs`.
//! 4. Verify SigV4 ([`auth`]) against the access key's secret, with exactly the signed headers
//!    and the raw body bytes; this names the caller's account and region. A failure draws from
//!    the address's bucket too; success draws from the account's bucket for the action's class.
//! 5. Decode `Action` and its typed request ([`ec2api::Action::decode`]); answer `DryRun`
//!    centrally.
//! 6. [`dispatch`] hands the request to its handler (one file per action in [`handlers`]),
//!    which calls the backend off the async executor and maps back to the wire shape.
//! 7. Render the typed output, or the error envelope; domain errors become EC2 codes in
//!    exactly one place ([`errors`]).
//!
//! Beside the API, [`metadata`] serves the instance metadata service to the guests, and
//! [`admin`] serves a unix socket in the data dir so that `stratus account …` works while the
//! server holds the database. On the API's own listener, [`console`] serves the web console
//! under `/console/`, whose requests join this flow at step 5 as the session's account.

pub mod admin;
pub mod auth;
pub mod cloudwatch;
pub mod config;
pub mod console;
pub mod context;
pub mod dispatch;
pub mod doctor;
pub mod errors;
pub mod handlers;
pub mod heap;
pub mod import;
pub mod log_writer;
pub mod metadata;
pub mod prometheus;
pub mod server;
pub mod throttle;
pub mod vpc_metadata;
