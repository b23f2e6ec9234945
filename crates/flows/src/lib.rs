//! Nothing to link: this crate holds the tests in `tests/` that run a real
//! `beckon-server` against real clients (`flows`, `order`, `bad_input`) and
//! headless `beckon-peer`s (`peer`). They live here, not in the client or
//! peer crate, so that no client crate depends on the server, not even for
//! its tests (DESIGN §1).
