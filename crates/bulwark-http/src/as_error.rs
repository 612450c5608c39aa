//! Viewing a service's error as `&dyn Error`, so layers can classify it and still return it
//! unchanged.
//!
//! `Box<dyn Error + Send + Sync>` does not implement `std::error::Error`, so no blanket impl
//! can cover both it and concrete error types. [`AsStdError`] is implemented for the error
//! types Tower stacks actually produce; for your own error type it is one line:
//!
//! ```
//! use bulwark_http::AsStdError;
//!
//! #[derive(Debug)]
//! struct MyError;
//! impl std::fmt::Display for MyError {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("mine") }
//! }
//! impl std::error::Error for MyError {}
//!
//! impl AsStdError for MyError {
//!     fn as_std_error(&self) -> Option<&(dyn std::error::Error + 'static)> { Some(self) }
//! }
//! assert!(MyError.as_std_error().is_some());
//! ```

use std::{convert::Infallible, error::Error as StdError};

/// An error that can be viewed as `&(dyn Error + 'static)` (see the [module docs](self)).
///
/// Implemented for `BoxError` (and the other boxed `dyn Error`s), `Infallible`,
/// `std::io::Error`, `http::Error`, tower's and tokio's `Elapsed`, bulwark's rejections, and —
/// with the `hyper-util` feature (of this crate or of `bulwark-retry`) — `hyper::Error` and
/// `hyper_util::client::legacy::Error`.
#[diagnostic::on_unimplemented(
    message = "bulwark cannot classify the inner service's error `{Self}`: it does not implement `bulwark_http::AsStdError`",
    label = "`{Self}` does not implement `AsStdError`",
    note = "for hyper-util's `client::legacy::Error`, enable the `hyper-util` feature of `bulwark-retry` (or of `bulwark-http`)",
    note = "for an error type of your own, implement `AsStdError` (one line, see the `bulwark_http::as_error` docs), or turn it into a `BoxError` below the layer: `ServiceBuilder::new().layer(..).map_err(BoxError::from).service(..)`"
)]
pub trait AsStdError {
    /// The error as a trait object, or `None` for an uninhabited type.
    fn as_std_error(&self) -> Option<&(dyn StdError + 'static)>;
}

impl AsStdError for Box<dyn StdError + Send + Sync + 'static> {
    fn as_std_error(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&**self)
    }
}

impl AsStdError for Box<dyn StdError + Send + 'static> {
    fn as_std_error(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&**self)
    }
}

impl AsStdError for Box<dyn StdError + 'static> {
    fn as_std_error(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&**self)
    }
}

impl AsStdError for Infallible {
    fn as_std_error(&self) -> Option<&(dyn StdError + 'static)> {
        match *self {}
    }
}

macro_rules! concrete {
    ($($(#[$meta:meta])* $ty:ty),* $(,)?) => {
        $(
            $(#[$meta])*
            impl AsStdError for $ty {
                fn as_std_error(&self) -> Option<&(dyn StdError + 'static)> {
                    Some(self)
                }
            }
        )*
    };
}

concrete!(
    std::io::Error,
    http::Error,
    tower::timeout::error::Elapsed,
    tokio::time::error::Elapsed,
    crate::error::CircuitOpen,
    crate::error::RateLimited,
    crate::error::BodyTooLarge,
    #[cfg(feature = "hyper-util")]
    hyper::Error,
    #[cfg(feature = "hyper-util")]
    hyper_util::client::legacy::Error,
);
