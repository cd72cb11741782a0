//! The spec language: parsing, decoding, loading (file or git) and validation.
pub mod de;
pub mod load;
pub mod names;
pub mod resolved;
pub mod sandboxed;
pub mod scale;
pub mod source;
pub mod types;
pub mod units;
pub mod validate;
pub mod yaml;

pub use load::{Failed, Loaded, load, load_str};
pub use types::Spec;
