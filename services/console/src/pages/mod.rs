//! One module per section of the console.

pub mod discovered;
pub mod events;
pub mod query;
pub mod schemas;
pub mod streams;
